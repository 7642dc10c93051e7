// Host placement: gitlab-runner on the Pi with its record on the node; taking runners out of the cluster first,
// removing host runners (placement cluster, destroy, nodes gone from the inventory), and the index beside the inventory.
import type { RunContext } from '../context.js';
import { gatherHostRunnerProbe, removeHostRunner } from '../host-runner/host-runner-converge.js';
import {
  hostRunnerIndexPath,
  indexEntry,
  readHostRunnerIndex,
  writeHostRunnerIndex,
  type IndexedNode,
} from '../host-runner/state.js';
import type { Inventory, NodeSpec } from '../inventory/types.js';
import type { KubeClient } from '../kube/client.js';
import { removeClusterRunners } from '../kube/remove.js';
import type { Logger } from '../log.js';
import { mapPool } from '../pool.js';
import { changeRecorder, type ClusterReport, type NodeReport } from '../report.js';
import { reconcileRunners } from '../runners/reconcile.js';
import { withNode } from '../ssh.js';
import { clusterToClear, messageOf } from './cluster-placement.js';
import { GitlabLog } from './gitlab-log.js';
import type { DeleteCause, NodeBlock } from './reasons.js';
import { typedStore } from './records-read.js';

/** What one run learnt about a node's host runner, for the index. */
export type HostRunnerResults = Map<string, { node: IndexedNode; present: boolean }>;

/** Applies a run's host-runner results to the index beside the inventory (never in a dry run). */
export function updateIndex(
  inv: Inventory,
  dryRun: boolean,
  log: Logger,
  known: IndexedNode[],
  results: HostRunnerResults,
): void {
  if (dryRun) return;
  const next = new Map(known.map((n) => [n.name, n]));
  for (const [name, r] of results) {
    if (r.present) next.set(name, indexEntry(r.node));
    else next.delete(name);
  }
  try {
    writeHostRunnerIndex(hostRunnerIndexPath(inv.source), [...next.values()]);
  } catch (err) {
    log.warn('gitlab', `could not write ${hostRunnerIndexPath(inv.source)}: ${messageOf(err)}`);
  }
}

export function readIndex(inv: Inventory, log: Logger): IndexedNode[] {
  try {
    return readHostRunnerIndex(hostRunnerIndexPath(inv.source));
  } catch (err) {
    log.warn('gitlab', messageOf(err));
    return [];
  }
}

/**
 * Unregisters and removes the host runners of `nodes` (each a NodeSpec, or an index entry for a node gone from the
 * inventory): deletes the runner in GitLab through the record on the node, stops and disables the service, removes
 * config.toml, .runner_system_id and the record. The gitlab-runner package stays installed. Nodes without
 * runner-fleet's record are left alone. With `dryRun`, only reports what would go. For `destroy` and for nodes that
 * left the inventory.
 */
export async function removeHostRunners(
  ctx: RunContext,
  nodes: (NodeSpec | IndexedNode)[],
  cause: DeleteCause,
): Promise<{ nodes: NodeReport[]; gitlab: ClusterReport }> {
  const { inventory, dryRun, log } = ctx;
  const gitlab = new GitlabLog();
  const results: HostRunnerResults = new Map();
  const reports = await mapPool(nodes, ctx.concurrency, async (n): Promise<NodeReport> => {
    const { changes, record } = changeRecorder(n.name, { dryRun, log });
    try {
      const spec: NodeSpec = { docker: 'auto', microk8s: true, ...inventory.ssh, ...n };
      const outcome = await withNode(spec, async (conn) =>
        removeHostRunner(conn, n, await gatherHostRunnerProbe(conn), ctx, record),
      );
      gitlab.add(outcome.gitlab, inventory, cause);
      results.set(n.name, { node: indexEntry(spec), present: outcome.present });
      if (outcome.error) log.error(n.name, outcome.error);
      return {
        name: n.name,
        ok: !outcome.error,
        changes,
        ...(outcome.error ? { error: outcome.error } : {}),
      };
    } catch (err) {
      const error = messageOf(err);
      log.error(n.name, error);
      return { name: n.name, ok: false, changes, error };
    }
  });
  updateIndex(inventory, dryRun, log, readIndex(inventory, log), results);
  return { nodes: reports, gitlab: gitlab.report() };
}

/**
 * Host placement's first step: the selected nodes' cluster runners are deleted in GitLab (through the Secret's
 * records, which stay), then runner-fleet's pods go from the cluster. A node whose cluster runner may still run
 * is put in `blocked`: it gets no host runner this run.
 */
export async function takeRunnersOutOfCluster(
  ctx: RunContext,
  gitlab: GitlabLog,
  blocked: Map<string, NodeBlock>,
): Promise<ClusterReport | undefined> {
  const { inventory: inv, dryRun, log, only } = ctx;
  const which = clusterToClear(inv);
  if (which === 'none') {
    log.progress('cluster', 'no cluster configured: no cluster runners to take out');
    return undefined;
  }
  const selected = only ?? inv.nodes.map((n) => n.name);
  let client: KubeClient;
  try {
    client = await ctx.cluster();
    // The records stay where they are; only the runners of the selected nodes are deleted through them.
    const keep = { ...inv, nodes: only ? inv.nodes.filter((n) => !only.includes(n.name)) : [] };
    const r = await reconcileRunners(
      keep,
      typedStore(client, inv.kubernetes.namespace, dryRun),
      ctx.gitlab(),
      {
        dryRun,
        only,
        log,
      },
    );
    gitlab.add(r, inv, { kind: 'placement', placement: 'host' });
    for (const e of r.errors) blocked.set(e.node, { kind: 'cluster-runner-not-deleted', message: e.message });
  } catch (err) {
    const error = messageOf(err);
    if (which === 'default') {
      // The inventory names no cluster: an unreachable default kubeconfig is someone else's cluster, not ours to wait for.
      log.warn(
        'cluster',
        `could not look for runner-fleet's runners in the default kubeconfig's cluster (${error}); if it ran them, delete them with destroy`,
      );
      return undefined;
    }
    log.error('cluster', error);
    for (const n of selected) blocked.set(n, { kind: 'cluster-not-cleaned', error });
    return { ok: false, changes: [], error };
  }
  log.progress(
    'cluster',
    `${dryRun ? 'planning' : 'taking'} runner pods out of ${client.server} (runners.placement is host)`,
  );
  return removeClusterRunners(client, inv, { nodes: only, dryRun, logger: log });
}
