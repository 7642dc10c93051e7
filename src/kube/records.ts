// Registration records kept in the Secret runner-fleet-records (JSON under one key): the record store for cluster placement.
import { RunFailedError } from '../errors.js';
import type { KubeClient } from './client.js';
import { MANAGED_BY, PART_OF_LABEL, RECORDS_MANAGER, RECORDS_SECRET, type KubeObject } from './objects.js';

export const RECORDS_KEY = 'records.json';

/** Reads the records; [] when the Secret (or its namespace) does not exist yet. */
export async function readSecretRecords<T = unknown>(client: KubeClient, namespace: string, name = RECORDS_SECRET): Promise<T[]> {
  const data = await client.readSecretData(namespace, name);
  const text = data?.[RECORDS_KEY];
  if (text === undefined) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Never quote the text: it holds tokens.
    throw new RunFailedError(`Secret ${namespace}/${name}: key ${RECORDS_KEY} is not valid JSON`);
  }
  if (!Array.isArray(parsed)) throw new RunFailedError(`Secret ${namespace}/${name}: key ${RECORDS_KEY} is not a JSON list`);
  return parsed as T[];
}

/**
 * Writes the records when they differ from what is stored (so an unchanged save writes nothing), creating
 * the namespace first if needed: registration runs before converge has created anything.
 * Returns whether anything was written.
 */
export async function writeSecretRecords(client: KubeClient, namespace: string, records: unknown[], name = RECORDS_SECRET): Promise<boolean> {
  const text = `${JSON.stringify(records, null, 2)}\n`;
  const current = await client.readSecretData(namespace, name);
  if (current?.[RECORDS_KEY] === text) return false;
  if (!current && !(await client.namespaceExists(namespace))) {
    await client.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace, labels: { [PART_OF_LABEL]: MANAGED_BY } } }, { fieldManager: RECORDS_MANAGER });
  }
  const secret: KubeObject = {
    apiVersion: 'v1',
    kind: 'Secret',
    // Deliberately without app.kubernetes.io/managed-by: converge's prune must never see it.
    metadata: { name, namespace, labels: { [PART_OF_LABEL]: MANAGED_BY, 'app.kubernetes.io/component': 'records' } },
    type: 'Opaque',
    data: { [RECORDS_KEY]: Buffer.from(text, 'utf8').toString('base64') },
  };
  await client.apply(secret, { fieldManager: RECORDS_MANAGER });
  return true;
}

/** The RecordStore (src/runners/records.ts) for cluster placement. `dryRun` reads but never writes. */
export class KubeRecordStore<T = unknown> {
  constructor(
    private readonly client: KubeClient,
    private readonly namespace: string,
    private readonly opts: { dryRun?: boolean; name?: string } = {},
  ) {}

  load(): Promise<T[]> {
    return readSecretRecords<T>(this.client, this.namespace, this.opts.name);
  }

  async save(records: T[]): Promise<void> {
    if (this.opts.dryRun) return;
    await writeSecretRecords(this.client, this.namespace, records, this.opts.name);
  }
}
