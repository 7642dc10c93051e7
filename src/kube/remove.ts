// Takes runner-fleet's runner pods out of a cluster without adding anything (host placement): objects and node labels.
import type { Inventory } from '../inventory/types.js';
import type { Logger } from '../log.js';
import { changeRecorder, type ClusterReport } from '../report.js';
import { redact } from '../secrets.js';
import type { KubeClient } from './client.js';
import { planNodeLabelRemoval } from './node-labels.js';
import { describeObject } from './objects.js';

/**
 * `nodes` undefined: every runner-fleet object in the namespace goes (DaemonSets, config Secret, ServiceAccount) and
 * runner-fleet's label leaves every node. With `nodes` (`--only`): only those nodes lose the label, so their pods
 * go while the other nodes' pods stay. The Namespace and the records Secret stay either way (registration's, and
 * `destroy`'s to remove). Unlike convergeCluster with no nodes, nothing is created in a cluster that had nothing.
 */
export async function removeClusterRunners(
  client: KubeClient,
  inv: Inventory,
  opts: { nodes?: string[]; dryRun: boolean; logger?: Logger },
): Promise<ClusterReport> {
  const ns = inv.kubernetes.namespace;
  const label = inv.kubernetes.nodeLabel;
  const { changes, record } = changeRecorder('cluster', {
    dryRun: opts.dryRun,
    log: opts.logger,
    say: (c) => `${c.step}: ${c.detail}`,
  });
  const change = (step: string, detail: string) => record({ step, detail });
  try {
    if (!opts.nodes) {
      for (const o of await client.listManaged(ns)) {
        if (!opts.dryRun) await client.delete(o);
        change('prune', `delete ${describeObject(o)} (runners.placement is host)`);
      }
    }
    const removals = planNodeLabelRemoval({
      nodes: await client.listNodes(),
      inventory: inv.nodes.map((n) => n.name),
      key: label,
      namespace: ns,
      only: opts.nodes,
    });
    for (const a of removals) {
      if (!opts.dryRun) await client.applyNodeLabels(a);
      change('label', `${a.detail} (runners.placement is host)`);
    }
    return { ok: true, changes };
  } catch (err) {
    const error = redact(err instanceof Error ? err.message : String(err));
    opts.logger?.error('cluster', error);
    return { ok: false, changes, error };
  }
}
