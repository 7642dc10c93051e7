// Registration records kept in the Secret runner-fleet-records (JSON under one key): the record store for cluster placement.
import { randomBytes } from 'node:crypto';
import { ApiError, RunFailedError } from '../errors.js';
import type { KubeClient } from './client.js';
import { MANAGED_BY, PART_OF_LABEL, RECORDS_MANAGER, RECORDS_SECRET, type KubeObject } from './objects.js';

export const RECORDS_KEY = 'records.json';
/** The fleet's identity, made once and kept on the records Secret: runner-fleet writes it into each runner's mark. */
export const FLEET_ID_ANNOTATION = 'runner-fleet.dev/fleet-id';

/** The Secret's records and the version they were read at (undefined: no Secret yet). */
export interface VersionedRecords<T> {
  records: T[];
  resourceVersion?: string;
  /** the stored text, to skip a save that would write the same */
  text?: string;
  /** the Secret's fleet id annotation, when it has one */
  fleetId?: string;
}

/** Reads the records; [] when the Secret (or its namespace) does not exist yet. */
export async function readSecretRecords<T = unknown>(
  client: KubeClient,
  namespace: string,
  name = RECORDS_SECRET,
): Promise<T[]> {
  return (await readVersionedRecords<T>(client, namespace, name)).records;
}

export async function readVersionedRecords<T = unknown>(
  client: KubeClient,
  namespace: string,
  name = RECORDS_SECRET,
): Promise<VersionedRecords<T>> {
  const secret = await client.read({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace } });
  if (!secret) return { records: [] };
  const resourceVersion = String(secret.metadata.resourceVersion ?? '');
  const annotated = (secret.metadata.annotations as Record<string, string> | undefined)?.[
    FLEET_ID_ANNOTATION
  ];
  const fleetId = annotated ? { fleetId: annotated } : {};
  const b64 = ((secret.data ?? {}) as Record<string, string>)[RECORDS_KEY];
  if (b64 === undefined) return { records: [], resourceVersion, ...fleetId };
  const text = Buffer.from(b64, 'base64').toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Never quote the text: it holds tokens.
    throw new RunFailedError(`Secret ${namespace}/${name}: key ${RECORDS_KEY} is not valid JSON`);
  }
  if (!Array.isArray(parsed))
    throw new RunFailedError(`Secret ${namespace}/${name}: key ${RECORDS_KEY} is not a JSON list`);
  return { records: parsed as T[], resourceVersion, text, ...fleetId };
}

/** Someone else wrote the records Secret after this run read it: never overwritten, always an error naming it. */
export class RecordsConflictError extends RunFailedError {
  constructor(where: string, version: string | undefined) {
    super(
      `Secret ${where} was changed by someone else since this run read it` +
        `${version ? ` (at resourceVersion ${version})` : ' (it did not exist then)'}: another runner-fleet run may be registering runners; ` +
        'the records were not overwritten. Run again once the other run is done',
    );
    this.name = 'RecordsConflictError';
  }
}

const isConflict = (err: unknown) => err instanceof ApiError && err.status === 409;

/**
 * Writes the records with optimistic concurrency: `expected` is the version they were read at (undefined: the
 * Secret did not exist, so it is created and must still not exist). A write since then is a RecordsConflictError,
 * never a silent overwrite. Creates the namespace first if needed: registration runs before converge has created
 * anything. Returns the new version, or `expected` when nothing had to be written.
 */
export async function writeVersionedRecords(
  client: KubeClient,
  namespace: string,
  records: unknown[],
  expected: VersionedRecords<unknown>,
  name = RECORDS_SECRET,
  fleetId = expected.fleetId,
): Promise<VersionedRecords<unknown>> {
  const text = `${JSON.stringify(records, null, 2)}\n`;
  if (expected.text === text && expected.fleetId === fleetId) return expected;
  const secret: KubeObject = {
    apiVersion: 'v1',
    kind: 'Secret',
    // Deliberately without app.kubernetes.io/managed-by: converge's prune must never see it.
    metadata: {
      name,
      namespace,
      labels: { [PART_OF_LABEL]: MANAGED_BY, 'app.kubernetes.io/component': 'records' },
      ...(fleetId ? { annotations: { [FLEET_ID_ANNOTATION]: fleetId } } : {}),
    },
    type: 'Opaque',
    data: { [RECORDS_KEY]: Buffer.from(text, 'utf8').toString('base64') },
  };
  const where = `${namespace}/${name}`;
  try {
    let written: KubeObject;
    if (expected.resourceVersion === undefined) {
      if (!(await client.namespaceExists(namespace))) {
        await client.apply(
          {
            apiVersion: 'v1',
            kind: 'Namespace',
            metadata: { name: namespace, labels: { [PART_OF_LABEL]: MANAGED_BY } },
          },
          { fieldManager: RECORDS_MANAGER },
        );
      }
      written = await client.create(secret, { fieldManager: RECORDS_MANAGER });
    } else {
      written = await client.replace(
        { ...secret, metadata: { ...secret.metadata, resourceVersion: expected.resourceVersion } },
        { fieldManager: RECORDS_MANAGER },
      );
    }
    return {
      records,
      resourceVersion: String(written.metadata.resourceVersion ?? ''),
      text,
      ...(fleetId ? { fleetId } : {}),
    };
  } catch (err) {
    if (isConflict(err)) throw new RecordsConflictError(where, expected.resourceVersion);
    throw err;
  }
}

/** Writes the records when they differ from what is stored now (no version check: for callers that did not read). */
export async function writeSecretRecords(
  client: KubeClient,
  namespace: string,
  records: unknown[],
  name = RECORDS_SECRET,
): Promise<boolean> {
  const current = await readVersionedRecords(client, namespace, name);
  const after = await writeVersionedRecords(client, namespace, records, current, name);
  return after !== current;
}

/**
 * The RecordStore (src/runners/records.ts) for cluster placement. `dryRun` reads but never writes. Each save
 * writes against the version the last load or save saw, so two runs never overwrite each other's records.
 */
export class KubeRecordStore<T = unknown> {
  private seen?: VersionedRecords<unknown>;

  constructor(
    private readonly client: KubeClient,
    private readonly namespace: string,
    private readonly opts: { dryRun?: boolean; name?: string } = {},
  ) {}

  async load(): Promise<T[]> {
    const v = await readVersionedRecords<T>(this.client, this.namespace, this.opts.name);
    this.seen = v;
    return v.records;
  }

  async save(records: T[]): Promise<void> {
    if (this.opts.dryRun) return;
    this.seen ??= await readVersionedRecords(this.client, this.namespace, this.opts.name);
    this.seen = await writeVersionedRecords(this.client, this.namespace, records, this.seen, this.opts.name);
  }

  /**
   * The fleet id on the records Secret; a fleet that has none yet gets a new one, saved before it is handed out, so
   * that a runner marked with it is always found again by the same fleet. A dry run makes one up and saves nothing.
   */
  async fleetId(): Promise<string> {
    this.seen ??= await readVersionedRecords(this.client, this.namespace, this.opts.name);
    if (this.seen.fleetId) return this.seen.fleetId;
    const id = randomBytes(6).toString('hex');
    if (this.opts.dryRun) return id;
    this.seen = await writeVersionedRecords(
      this.client,
      this.namespace,
      this.seen.records,
      this.seen,
      this.opts.name,
      id,
    );
    return id;
  }
}
