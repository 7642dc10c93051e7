// What both placements read from the cluster side: the kubeconfig a node prints, and the records Secret, typed.
import type { Inventory } from '../inventory/types.js';
import type { KubeClient } from '../kube/client.js';
import { KubeRecordStore } from '../kube/converge.js';
import { parseRecords, type RecordStore, type RunnerRecord } from '../runners/records.js';
import { withNode } from '../ssh.js';

/** `kubernetes.fromNode`: the admin kubeconfig that microk8s prints on that node. */
export async function kubeconfigFromNode(inv: Inventory): Promise<string | undefined> {
  const name = inv.kubernetes.fromNode;
  if (!name) return undefined;
  const node = inv.nodes.find((n) => n.name === name)!;
  return withNode(
    node,
    async (conn) =>
      (await conn.check('microk8s config', { sudo: true, step: `microk8s config on ${name}` })).stdout,
  );
}

/** Records as the store holds them, validated (tokens registered for redaction, never echoed). */
export function typedStore(client: KubeClient, namespace: string, dryRun: boolean): RecordStore {
  const raw = new KubeRecordStore<unknown>(client, namespace, { dryRun });
  return {
    load: async () => parseRecords(await raw.load(), `Secret ${namespace}/runner-fleet-records`),
    save: (records: RunnerRecord[]) => raw.save(records),
    fleetId: () => raw.fleetId(),
  };
}
