// Cluster placement: GitLab reconcile with records in the Secret, then config.toml per node and the DaemonSet.
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { RunContext } from '../context.js';
import type { HostFacts } from '../docker/facts.js';
import { describeJobMtu, jobMtu, mtuValue } from '../docker/mtu.js';
import type { Executor, Inventory } from '../inventory/types.js';
import type { KubeClient, NodeInfo } from '../kube/client.js';
import { convergeCluster } from '../kube/cluster-converge.js';
import { planNodeLabels } from '../kube/node-labels.js';
import type { KubeObject } from '../kube/objects.js';
import type { PodView } from '../kube/rollout.js';
import { ownershipProblems } from '../kube/ownership.js';
import type { Logger } from '../log.js';
import type { ClusterReport } from '../report.js';
import { reconcileRunners, type ReconcileResult } from '../runners/reconcile.js';
import type { RunnerRecord } from '../runners/records.js';
import { redact } from '../secrets.js';
import { clusterPreflight, desiredCluster } from './desired.js';
import {
  probeInPod,
  probePod,
  proveContact,
  proveDocker,
  runnerContainerStarts,
  runningPods,
  startsOnGitlabClock,
} from './contact.js';
import { describeUnfit, type UnfitNode } from './reasons.js';
import { typedStore } from './records-read.js';

export interface RunnerPhaseResult {
  gitlab?: ClusterReport;
  cluster?: ClusterReport;
  /** nodes whose runner did not contact GitLab after the rollout, with why (runners.contactTimeout) */
  contact?: Map<string, string>;
}

export const messageOf = (err: unknown) => redact(err instanceof Error ? err.message : String(err));

/**
 * `ctx.inventory` is the whole inventory: with --only, the other nodes' runners are left alone, not taken for removed.
 * `facts`: what the host phase gathered this run, by node name; `exclude`: nodes that get no cluster runner this run.
 */
export async function convergeRunners(
  ctx: RunContext,
  facts: Map<string, HostFacts>,
  exclude: Set<string> = new Set(),
): Promise<RunnerPhaseResult> {
  // Only runnerPhase calls this, and runConverge starts that phase only when the inventory has a gitlab token.
  const { inventory: inv, dryRun, log } = ctx;
  const executor = inv.runners.executor;
  let client: KubeClient;
  try {
    client = await ctx.cluster();
  } catch (err) {
    const error = messageOf(err);
    log.error('cluster', error);
    return {
      gitlab: { ok: false, changes: [], error: `not attempted: ${error}` },
      cluster: { ok: false, changes: [], error },
    };
  }

  // Everything checkable without a change, before GitLab changes anything: each node's architecture, every
  // config.toml and cluster object rendered with stand-in records, and whether any of those objects or node labels
  // is someone else's. What fails here fails the run (exit 1) with the report; never an exit 2 after other changes.
  let nodes: NodeInfo[] = [];
  try {
    nodes = await client.listNodes();
  } catch {
    /* convergeCluster reports an unreachable cluster itself */
  }
  const archByNode = new Map(nodes.map((n) => [n.name, n.labels['kubernetes.io/arch']]));
  const archOf = (node: string) => archByNode.get(node) ?? facts.get(node)?.arch ?? 'arm64';
  const mtus = new Map(inv.nodes.map((n) => [n.name, jobMtu(n, facts.get(n.name))]));
  const mtuOf = (node: string) => {
    const m = mtus.get(node);
    return m && mtuValue(m);
  };
  for (const [node, m] of mtus) if (m.kind !== 'default') log.progress(node, describeJobMtu(m));
  const check = await checkBeforeGitlab(client, inv, nodes, archOf);
  const refused = check.refused;
  if (refused) {
    log.error('cluster', refused);
    return {
      gitlab: { ok: false, changes: [], error: `not attempted: ${refused}` },
      cluster: { ok: false, changes: [], error: refused },
    };
  }
  for (const [node, why] of check.unfit) log.error(node, describeUnfit(why));
  const fit: Inventory =
    check.unfit.size > 0 ? { ...inv, nodes: inv.nodes.filter((n) => !check.unfit.has(n.name)) } : inv;
  const unfitError = [...check.unfit]
    .map(([node, why]) => `${node}: ${describeUnfit(why)}; it gets no runner`)
    .join('; ');

  // GitLab first: the cluster's config.toml needs each node's runner token.
  let reconciled: ReconcileResult;
  try {
    log.progress(
      'gitlab',
      `${dryRun ? 'planning' : 'reconciling'} runners at ${inv.gitlab.url} (${inv.gitlab.auth.kind})`,
    );
    // Nodes whose host runner could not be removed get no cluster runner beside it (the next run tries again).
    // With such nodes and no --only, records of nodes gone from the inventory wait for the next run as well.
    const left = new Set([...exclude, ...check.unfit.keys()]);
    const only = left.size
      ? (ctx.only ?? inv.nodes.map((n) => n.name)).filter((n) => !left.has(n))
      : ctx.only;
    // New runners first, the cluster next, deletes last (retireLater): old pods never poll with deleted tokens.
    reconciled = await reconcileClusterRunners(ctx, client, only);
  } catch (err) {
    const error = messageOf(err);
    log.error('gitlab', error);
    return {
      gitlab: { ok: false, changes: [], error },
      cluster: { ok: false, changes: [], error: 'not attempted: runner registration failed' },
    };
  }

  // One config.toml per inventory node that has a runner; a node whose registration failed keeps no pod.
  const creating = new Set(
    reconciled.actions.filter((a) => a.kind === 'create' || a.kind === 'join').map((a) => a.node),
  );
  let cluster: ClusterReport;
  try {
    const desired = desiredCluster({
      inventory: fit,
      executor,
      records: reconciled.records,
      arch: archOf,
      mtu: mtuOf,
      planned: dryRun ? creating : undefined,
    });
    cluster = await convergeCluster({ ...desired, dryRun, client, logger: log });
  } catch (err) {
    // GitLab may have changed already: a failure now is a failed run with its report (exit 1), whatever its kind.
    const error = messageOf(err);
    log.error('cluster', error);
    cluster = { ok: false, changes: [], error };
  }
  const rolledOut = cluster.ok;
  if (unfitError)
    cluster = {
      ...cluster,
      ok: false,
      error: cluster.error ? `${cluster.error}; ${unfitError}` : unfitError,
    };
  if (cluster.ok) await reconciled.retire();
  else if (reconciled.records.some((r) => r.retiredAt)) {
    log.warn(
      'gitlab',
      'replaced and removed runners stay in GitLab until the cluster carries the new tokens (next run)',
    );
  }
  const gitlab = gitlabReport(reconciled, log);
  if (dryRun || !rolledOut) return { gitlab, cluster };
  // The pods are rolled out: each node's runner must now reach GitLab by itself. Only nodes the host phase
  // reached this run (they have facts): an unreachable node is reported failed already.
  const records = reconciled.records.filter(
    (r) =>
      !r.retiredAt && r.id !== undefined && facts.has(r.node) && fit.nodes.some((n) => n.name === r.node),
  );
  const { docker, contact } = await provePods(ctx, { client, executor, records, facts });
  if (docker.size > 0)
    cluster = { ...cluster, ok: false, error: [...docker].map(([n, why]) => `${n}: ${why}`).join('; ') };
  return { gitlab, cluster, contact };
}

/**
 * The rolled-out pods work: each reaches its node's Docker (after a dockerd restart, this run's or anyone's, it must
 * still answer) and its runner asks GitLab for jobs. Both start once the pods are rolled out, side by side.
 */
async function provePods(
  ctx: RunContext,
  at: { client: KubeClient; executor: Executor; records: RunnerRecord[]; facts: Map<string, HostFacts> },
): Promise<{ docker: Map<string, string>; contact: Map<string, string> }> {
  const { client, executor, records } = at;
  const inv = ctx.inventory;
  const wanted = new Set(records.map((r) => r.node));
  const listed = await runningPods(client, inv, executor).then(
    (all) => ({ pods: new Map([...all].filter(([node]) => wanted.has(node))), error: undefined }),
    (err: unknown) => ({ pods: new Map<string, PodView>(), error: messageOf(err) }),
  );
  const starts = await startsOnGitlabClock(ctx, runnerContainerStarts(listed.pods), at.facts);
  const [docker, contact] = await Promise.all([
    listed.error !== undefined
      ? new Map([['cluster', listed.error]])
      : proveDocker(client, inv, executor, listed.pods, ctx.log).catch(
          (err: unknown) => new Map([['cluster', messageOf(err)]]),
        ),
    proveContact({
      ctx,
      records,
      site: 'pod',
      // The pod listed above (a contact from before this run is probed at once); listed again only without one.
      probe: (node) => {
        const pod = listed.pods.get(node);
        return pod ? probePod(client, inv, pod.metadata.name) : probeInPod(client, inv, executor, node);
      },
      starts,
    }),
  ]);
  return { docker, contact };
}

/**
 * The GitLab side of cluster placement, apply's and render's alike: the records in the cluster's Secret, new runners
 * first and every delete held for `retire()` (retireLater), so that no pod ever polls with a deleted token.
 */
export function reconcileClusterRunners(
  ctx: RunContext,
  client: KubeClient,
  only?: string[],
): Promise<ReconcileResult> {
  const { inventory: inv, dryRun, log } = ctx;
  return reconcileRunners(inv, typedStore(client, inv.kubernetes.namespace, dryRun), ctx.gitlab(), {
    dryRun,
    only,
    log,
    retireLater: true,
  });
}

/**
 * What fails cluster placement before GitLab changes anything, apply's and render's alike. `refused`: the objects
 * cannot be rendered, or a node label or object is someone else's. `unfit`: nodes no runner pod can run on.
 */
export async function checkBeforeGitlab(
  client: KubeClient,
  inv: Inventory,
  nodes: NodeInfo[],
  archOf: (node: string) => string,
): Promise<{ refused?: string; unfit: Map<string, UnfitNode> }> {
  const check = clusterPreflight(inv, inv.runners.executor, archOf);
  const refused =
    check.error ?? (check.objects ? await othersInTheWay(client, inv, nodes, check.objects) : undefined);
  return { unfit: check.unfit, ...(refused ? { refused } : {}) };
}

/** Another fleet's node label, or an object or Pod Security level someone else set: refused before any change. */
async function othersInTheWay(
  client: KubeClient,
  inv: Inventory,
  nodes: NodeInfo[],
  objects: KubeObject[],
): Promise<string | undefined> {
  const labels = planNodeLabels({
    nodes,
    wanted: inv.nodes.map((n) => n.name),
    key: inv.kubernetes.nodeLabel,
    namespace: inv.kubernetes.namespace,
  });
  let problems: string[];
  try {
    problems = [...labels.conflicts, ...(await ownershipProblems(client, objects))];
  } catch {
    return undefined; // an unreachable cluster: convergeCluster says so, and asks again before it applies
  }
  return problems.length > 0 ? problems.join('; ') : undefined;
}

export function gitlabReport(reconciled: ReconcileResult, log: Logger): ClusterReport {
  for (const w of reconciled.warnings) log.warn('gitlab', `${w.node}: ${w.message}`);
  return {
    ok: reconciled.errors.length === 0,
    changes: reconciled.changes.map((c) => ({ step: c.step, detail: c.detail })),
    ...(reconciled.errors.length > 0
      ? { error: reconciled.errors.map((e) => `${e.node}: ${e.message}`).join('; ') }
      : {}),
  };
}

/** Whether this machine can name a cluster: the inventory does, or kubectl's default places exist. */
export function clusterConfigured(inv: Inventory): boolean {
  return clusterToClear(inv) !== 'none';
}

/**
 * Which cluster host placement must clear of runner-fleet's runners: `named` when the inventory (or $KUBECONFIG)
 * says which, `default` when only kubectl's ~/.kube/config exists, `none` when there is no cluster to look at.
 */
export function clusterToClear(inv: Inventory): 'named' | 'default' | 'none' {
  if (inv.kubernetes.kubeconfig || inv.kubernetes.fromNode || process.env.KUBECONFIG) return 'named';
  return existsSync(join(homedir(), '.kube', 'config')) ? 'default' : 'none';
}
