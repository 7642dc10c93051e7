// What both placements read from the cluster side: the records Secret, typed.
import type { KubeClient } from '../kube/client.js';
import { KubeRecordStore } from '../kube/cluster-converge.js';
import { parseRecords, type RecordStore, type RunnerRecord } from '../runners/records.js';

/** Records as the store holds them, validated (tokens registered for redaction, never echoed). */
export function typedStore(client: KubeClient, namespace: string, dryRun: boolean): RecordStore {
  const raw = new KubeRecordStore<unknown>(client, namespace, { dryRun });
  return {
    load: async () => parseRecords(await raw.load(), `Secret ${namespace}/runner-fleet-records`),
    save: (records: RunnerRecord[]) => raw.save(records),
    fleetId: () => raw.fleetId(),
  };
}
