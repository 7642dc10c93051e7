// The runner phases of `apply`/`plan` by placement: cluster (records in a Secret, DaemonSet) or host (gitlab-runner on the Pi, record on the node).
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { GitlabApi, type GitlabRunnerApi } from '../gitlab/api.js';
import type { HostFacts } from '../host/facts.js';
import {
  convergeHostRunner, gatherHostRunnerProbe, hostRunnerFactsOf, removeHostRunner, type HostRunnerContext, type HostRunnerOutcome,
} from '../host-runner/converge.js';
import { loadRepositoryKey } from '../host-runner/repository.js';
import { hostRunnerIndexPath, indexEntry, readHostRunnerIndex, writeHostRunnerIndex, type IndexedNode } from '../host-runner/state.js';
import type { Executor, Inventory, NodeSpec } from '../inventory/types.js';
import { KubeRecordStore, connectCluster, convergeCluster } from '../kube/converge.js';
import type { KubeClient } from '../kube/client.js';
import { removeClusterRunners } from '../kube/remove.js';
import { CLUSTER_ARCHITECTURES, renderClusterObjects } from '../kube/render.js';
import type { Logger } from '../log.js';
import { mapPool } from '../pool.js';
import { changeRecorder, type Change, type ClusterReport, type NodeReport } from '../report.js';
import { renderConfigToml } from '../runners/config-toml.js';
import { reconcileRunners, type ReconcileResult, type RunnerChange, type RunnerIssue } from '../runners/reconcile.js';
import { parseRecords, type RecordStore, type RunnerRecord } from '../runners/records.js';
import { redact } from '../secrets.js';
import { withNode, type NodeConnection } from '../ssh.js';

export interface RunnerPhaseInput {
  /** the whole inventory: with --only, the other nodes' runners must be left alone, not taken for removed */
  inventory: Inventory;
  only?: string[];
  executor: Executor;
  dryRun: boolean;
  log: Logger;
  /** facts gathered by the host phase this run, by node name */
  facts: Map<string, HostFacts>;
}

export interface RunnerPhaseResult {
  gitlab?: ClusterReport;
  cluster?: ClusterReport;
}

const message = (err: unknown) => redact(err instanceof Error ? err.message : String(err));

/** `kubernetes.fromNode`: the admin kubeconfig that microk8s prints on that node. */
export async function kubeconfigFromNode(inv: Inventory): Promise<string | undefined> {
  const name = inv.kubernetes.fromNode;
  if (!name) return undefined;
  const node = inv.nodes.find((n) => n.name === name)!;
  return withNode(node, async (conn) => (await conn.check('microk8s config', { sudo: true, step: `microk8s config on ${name}` })).stdout);
}

/** Records as the store holds them, validated (tokens registered for redaction, never echoed). */
export function typedStore(client: KubeClient, namespace: string, dryRun: boolean): RecordStore {
  const raw = new KubeRecordStore<unknown>(client, namespace, { dryRun });
  return {
    load: async () => parseRecords(await raw.load(), `Secret ${namespace}/runner-fleet-records`),
    save: (records: RunnerRecord[]) => raw.save(records),
  };
}

/** A stand-in record for a runner that `plan` says would be created: the config can be planned before it exists. */
function plannedRecord(node: string): RunnerRecord {
  return { node, mode: 'access', token: 'created-on-apply', systemId: 's_000000000000', settings: null, createdAt: new Date(0).toISOString() };
}

export async function convergeRunners(input: RunnerPhaseInput & { exclude?: Set<string> }): Promise<RunnerPhaseResult> {
  // Only runnerPhase calls this, and runConverge starts that phase only when the inventory has a gitlab token.
  const { inventory: inv, dryRun, log } = input;
  let client: KubeClient;
  try {
    client = connectCluster(inv.kubernetes, await kubeconfigFromNode(inv));
  } catch (err) {
    const error = message(err);
    log.error('cluster', error);
    return { gitlab: { ok: false, changes: [], error: `not attempted: ${error}` }, cluster: { ok: false, changes: [], error } };
  }

  // Everything checkable without a change, before GitLab changes anything: each node's architecture, and every
  // config.toml and cluster object rendered with stand-in records. What fails here fails the run (exit 1) with
  // the report; never an exit 2 after other changes.
  let archByNode = new Map<string, string>();
  try {
    archByNode = new Map((await client.listNodes()).map((n) => [n.name, n.labels['kubernetes.io/arch']]));
  } catch {
    /* convergeCluster reports an unreachable cluster itself */
  }
  const archOf = (node: string) => archByNode.get(node) ?? input.facts.get(node)?.arch ?? 'arm64';
  const check = clusterPreflight(inv, input.executor, archOf);
  if (check.error) {
    log.error('cluster', check.error);
    return { gitlab: { ok: false, changes: [], error: `not attempted: ${check.error}` }, cluster: { ok: false, changes: [], error: check.error } };
  }
  for (const [node, why] of check.unfit) log.error(node, why);
  const fit: Inventory = check.unfit.size > 0 ? { ...inv, nodes: inv.nodes.filter((n) => !check.unfit.has(n.name)) } : inv;
  const unfitError = [...check.unfit].map(([node, why]) => `${node}: ${why}; it gets no runner`).join('; ');

  // GitLab first: the cluster's config.toml needs each node's runner token.
  let reconciled: ReconcileResult;
  try {
    log.progress('gitlab', `${dryRun ? 'planning' : 'reconciling'} runners at ${inv.gitlab.url} (${inv.gitlab.auth.kind})`);
    // Nodes whose host runner could not be removed get no cluster runner beside it (the next run tries again).
    // With such nodes and no --only, records of nodes gone from the inventory wait for the next run as well.
    const exclude = new Set([...(input.exclude ?? []), ...check.unfit.keys()]);
    const only = exclude.size ? (input.only ?? inv.nodes.map((n) => n.name)).filter((n) => !exclude.has(n)) : input.only;
    // New runners first, the cluster next, deletes last (retireLater): old pods never poll with deleted tokens.
    reconciled = await reconcileRunners(inv, typedStore(client, inv.kubernetes.namespace, dryRun), GitlabApi.fromConfig(inv.gitlab), {
      dryRun,
      only,
      log,
      retireLater: true,
    });
  } catch (err) {
    const error = message(err);
    log.error('gitlab', error);
    return { gitlab: { ok: false, changes: [], error }, cluster: { ok: false, changes: [], error: 'not attempted: runner registration failed' } };
  }

  // One config.toml per inventory node that has a runner; a node whose registration failed keeps no pod.
  const creating = new Set(reconciled.actions.filter((a) => a.kind === 'create' || a.kind === 'join').map((a) => a.node));
  let cluster: ClusterReport;
  try {
    const desired = desiredCluster({ inventory: fit, executor: input.executor, records: reconciled.records, arch: archOf, planned: dryRun ? creating : undefined });
    cluster = await convergeCluster({ ...desired, dryRun, client, logger: log });
  } catch (err) {
    // GitLab may have changed already: a failure now is a failed run with its report (exit 1), whatever its kind.
    const error = message(err);
    log.error('cluster', error);
    cluster = { ok: false, changes: [], error };
  }
  if (unfitError) cluster = { ...cluster, ok: false, error: cluster.error ? `${cluster.error}; ${unfitError}` : unfitError };
  if (cluster.ok) await reconciled.retire();
  else if (reconciled.records.some((r) => r.retiredAt)) {
    log.warn('gitlab', 'replaced and removed runners stay in GitLab until the cluster carries the new tokens (next run)');
  }
  return { gitlab: gitlabReport(reconciled, log), cluster };
}

function gitlabReport(reconciled: ReconcileResult, log: Logger): ClusterReport {
  for (const w of reconciled.warnings) log.warn('gitlab', `${w.node}: ${w.message}`);
  return {
    ok: reconciled.errors.length === 0,
    changes: reconciled.changes.map((c) => ({ step: c.step, detail: c.detail })),
    ...(reconciled.errors.length > 0 ? { error: reconciled.errors.map((e) => `${e.node}: ${e.message}`).join('; ') } : {}),
  };
}

/**
 * Pure: what can be known to fail before anything changes. `unfit`: nodes whose architecture no runner pod can run
 * on (they get no runner; the others go on). `error`: the cluster objects cannot be rendered at all (a template, or
 * a value config.toml cannot hold), checked with stand-in records for every node.
 */
export function clusterPreflight(inv: Inventory, executor: Executor, arch: (node: string) => string): { unfit: Map<string, string>; error?: string } {
  const unfit = new Map<string, string>();
  for (const node of inv.nodes) {
    const a = arch(node.name);
    if (!CLUSTER_ARCHITECTURES.includes(a)) {
      unfit.set(node.name, `node architecture ${JSON.stringify(a)}: runner pods run on ${CLUSTER_ARCHITECTURES.join(' and ')} only (gitlab/gitlab-runner publishes no image for it)`);
    }
  }
  const fit = inv.nodes.filter((n) => !unfit.has(n.name));
  if (fit.length === 0) return { unfit };
  try {
    renderClusterObjects(desiredCluster({ inventory: { ...inv, nodes: fit }, executor, records: [], arch, planned: new Set(fit.map((n) => n.name)) }));
  } catch (err) {
    return { unfit, error: message(err) };
  }
  return { unfit };
}

/** What the cluster should hold, before rendering: the input of renderClusterObjects (and so of convergeCluster). */
export interface DesiredCluster {
  /** the inventory limited to the nodes that have a runner */
  inventory: Inventory;
  executor: Executor;
  configs: Record<string, string>;
  tokens: Record<string, string>;
  systemIds: Record<string, string>;
}

/**
 * One config.toml per inventory node that has a live record; a node whose registration failed keeps no pod.
 * `apply` and `render` both build the cluster objects from this, so `render` writes exactly what `apply` sends.
 * `planned`: nodes `plan` would register, given a stand-in record so their config can be planned.
 */
export function desiredCluster(opts: { inventory: Inventory; executor: Executor; records: RunnerRecord[]; arch: (node: string) => string; planned?: Set<string> }): DesiredCluster {
  const { inventory: inv } = opts;
  const live = new Map(opts.records.filter((r) => !r.retiredAt).map((r) => [r.node, r]));
  const configs: Record<string, string> = {};
  const tokens: Record<string, string> = {};
  const systemIds: Record<string, string> = {};
  for (const node of inv.nodes) {
    const record = live.get(node.name) ?? (opts.planned?.has(node.name) ? plannedRecord(node.name) : undefined);
    if (!record) continue;
    configs[node.name] = renderConfigToml({ inventory: inv, node, record, executor: opts.executor, arch: opts.arch(node.name) });
    tokens[node.name] = record.token;
    systemIds[node.name] = record.systemId;
  }
  return { inventory: { ...inv, nodes: inv.nodes.filter((n) => configs[n.name] !== undefined) }, executor: opts.executor, configs, tokens, systemIds };
}

// ---------------------------------------------------------------------------------------------------------------
// Placement. Each node has one runner at a time: in the cluster (record in the Secret, a DaemonSet pod) or on the
// host (record in RECORD_FILE on the node, the gitlab-runner service). A switch deletes the old runner in GitLab,
// through its record, before the new one is registered; records never move, so neither side keeps an orphan.

export interface RunnerPhaseOptions {
  inventory: Inventory;
  only?: string[];
  executor: Executor;
  dryRun: boolean;
  log: Logger;
}

/** What `apply`/`plan` call around the host phase; see runnerPhase. */
export interface RunnerPhase {
  /**
   * Per node, after its Docker converged, on the host phase's connection and with its facts (the gather included
   * the host-runner section). Returns the node's error, if its runner could not be put right.
   */
  onNode(conn: NodeConnection, node: NodeSpec, facts: HostFacts, record: (c: Change) => void): Promise<string | undefined>;
  /** After every node: the cluster (placement cluster), nodes gone from the inventory, the host-runner index. */
  afterNodes(facts: Map<string, HostFacts>): Promise<{ gitlab?: ClusterReport; cluster?: ClusterReport; nodes: NodeReport[] }>;
}

const rewordReason = (changes: RunnerChange[], inv: Inventory, why: string): RunnerChange[] =>
  // The planner says "node left the inventory" for every record it is told to drop; for a node that is still in
  // the inventory the reason is the placement.
  changes.map((c) => (inv.nodes.some((n) => n.name === c.node) ? { ...c, detail: c.detail.replace('node left the inventory', why) } : c));

/** Collects the GitLab side of many per-node reconciles into the run's gitlab section. */
class GitlabLog {
  readonly changes: RunnerChange[] = [];
  readonly errors: RunnerIssue[] = [];

  add(g: HostRunnerOutcome['gitlab'] | Pick<ReconcileResult, 'changes' | 'errors'>, inv: Inventory, why: string): void {
    this.changes.push(...rewordReason(g.changes, inv, why));
    this.errors.push(...g.errors);
  }

  /** `later`: the cluster phase's own section, whose changes came after these. */
  report(later?: ClusterReport): ClusterReport {
    const changes = [...this.changes.map((c) => ({ step: c.step, detail: c.detail })), ...(later?.changes ?? [])];
    const errors = [...this.errors.map((e) => `${e.node}: ${e.message}`), ...(later?.error ? [later.error] : [])];
    return { ok: errors.length === 0 && (later?.ok ?? true), changes, ...(errors.length > 0 ? { error: errors.join('; ') } : {}) };
  }
}

/** Whether this machine can name a cluster: the inventory does, or kubectl's default places exist. */
export function clusterConfigured(inv: Inventory): boolean {
  return clusterToClear(inv) !== 'none';
}

/**
 * Which cluster host placement must clear of runner-fleet's runners: `named` when the inventory (or $KUBECONFIG)
 * says which, `default` when only kubectl's ~/.kube/config exists, `none` when there is no cluster to look at.
 */
function clusterToClear(inv: Inventory): 'named' | 'default' | 'none' {
  if (inv.kubernetes.kubeconfig || inv.kubernetes.fromNode || process.env.KUBECONFIG) return 'named';
  return existsSync(join(homedir(), '.kube', 'config')) ? 'default' : 'none';
}

function hostRunnerContext(inv: Inventory, api: GitlabRunnerApi, dryRun: boolean, log: Logger): HostRunnerContext {
  let key: Promise<Buffer> | undefined;
  return {
    inventory: inv,
    api,
    dryRun,
    log,
    // One fetch per run, however many nodes need it.
    repositoryKey: () => (key ??= loadRepositoryKey(inv.runners.packageRepository, Math.floor(Date.now() / 1000))),
  };
}

/** Applies a run's host-runner results to the index beside the inventory (never in a dry run). */
function updateIndex(inv: Inventory, dryRun: boolean, log: Logger, known: IndexedNode[], results: Map<string, { node: IndexedNode; present: boolean }>): void {
  if (dryRun) return;
  const next = new Map(known.map((n) => [n.name, n]));
  for (const [name, r] of results) {
    if (r.present) next.set(name, indexEntry(r.node));
    else next.delete(name);
  }
  try {
    writeHostRunnerIndex(hostRunnerIndexPath(inv.source), [...next.values()]);
  } catch (err) {
    log.warn('gitlab', `could not write ${hostRunnerIndexPath(inv.source)}: ${message(err)}`);
  }
}

function readIndex(inv: Inventory, log: Logger): IndexedNode[] {
  try {
    return readHostRunnerIndex(hostRunnerIndexPath(inv.source));
  } catch (err) {
    log.warn('gitlab', message(err));
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
  inventory: Inventory,
  nodes: (NodeSpec | IndexedNode)[],
  opts: { dryRun: boolean; log: Logger; concurrency?: number; why?: string },
): Promise<{ nodes: NodeReport[]; gitlab: ClusterReport }> {
  const { dryRun, log } = opts;
  const ctx = hostRunnerContext(inventory, GitlabApi.fromConfig(inventory.gitlab), dryRun, log);
  const gitlab = new GitlabLog();
  const results = new Map<string, { node: IndexedNode; present: boolean }>();
  const reports = await mapPool(nodes, opts.concurrency ?? 10, async (n): Promise<NodeReport> => {
    const { changes, record } = changeRecorder(n.name, { dryRun, log });
    try {
      const spec: NodeSpec = { docker: 'auto', microk8s: true, ...inventory.ssh, ...n };
      const outcome = await withNode(spec, async (conn) => removeHostRunner(conn, n, await gatherHostRunnerProbe(conn), ctx, record));
      gitlab.add(outcome.gitlab, inventory, opts.why ?? 'node left the inventory');
      results.set(n.name, { node: indexEntry(spec), present: outcome.present });
      if (outcome.error) log.error(n.name, outcome.error);
      return { name: n.name, ok: !outcome.error, changes, ...(outcome.error ? { error: outcome.error } : {}) };
    } catch (err) {
      const error = message(err);
      log.error(n.name, error);
      return { name: n.name, ok: false, changes, error };
    }
  });
  updateIndex(inventory, dryRun, log, readIndex(inventory, log), results);
  return { nodes: reports, gitlab: gitlab.report() };
}

/**
 * The runner phase for this run's placement. Host placement starts taking the selected nodes' runners out of the
 * cluster at once (GitLab first, through the Secret's records), and a node's host runner waits for that, so a
 * node never has a cluster runner and a host runner at the same time. Cluster placement removes a host runner a
 * node still has during its host phase, before the cluster phase registers the node's cluster runner.
 */
export function runnerPhase(opts: RunnerPhaseOptions): RunnerPhase {
  const { inventory: inv, dryRun, log } = opts;
  const api = GitlabApi.fromConfig(inv.gitlab);
  const ctx = hostRunnerContext(inv, api, dryRun, log);
  const gitlab = new GitlabLog();
  const index = readIndex(inv, log);
  const results = new Map<string, { node: IndexedNode; present: boolean }>();
  const host = inv.runners.placement === 'host';
  const why = host ? 'runners.placement is host' : 'runners.placement is cluster';

  // Nodes that must not get a new runner this run: their old one could not be deleted.
  const blocked = new Map<string, string>();
  const cleanup: Promise<ClusterReport | undefined> = host ? takeRunnersOutOfCluster() : Promise.resolve(undefined);
  // Settled before anything awaits it: a rejection is a report, never an unhandled one.
  cleanup.catch(() => undefined);

  async function takeRunnersOutOfCluster(): Promise<ClusterReport | undefined> {
    const which = clusterToClear(inv);
    if (which === 'none') {
      log.progress('cluster', 'no cluster configured: no cluster runners to take out');
      return undefined;
    }
    const selected = opts.only ?? inv.nodes.map((n) => n.name);
    let client: KubeClient;
    try {
      client = connectCluster(inv.kubernetes, await kubeconfigFromNode(inv));
      // The records stay where they are; only the runners of the selected nodes are deleted through them.
      const keep = { ...inv, nodes: opts.only ? inv.nodes.filter((n) => !opts.only!.includes(n.name)) : [] };
      const r = await reconcileRunners(keep, typedStore(client, inv.kubernetes.namespace, dryRun), api, { dryRun, only: opts.only, log });
      gitlab.add(r, inv, why);
      for (const e of r.errors) blocked.set(e.node, `not attempted: its cluster runner could not be deleted (${e.message})`);
    } catch (err) {
      const error = message(err);
      if (which === 'default') {
        // The inventory names no cluster: an unreachable default kubeconfig is someone else's cluster, not ours to wait for.
        log.warn('cluster', `could not look for runner-fleet's runners in the default kubeconfig's cluster (${error}); if it ran them, delete them with destroy`);
        return undefined;
      }
      log.error('cluster', error);
      for (const n of selected) blocked.set(n, `not attempted: the cluster, which may still run a runner for this node, could not be cleaned up (${error})`);
      return { ok: false, changes: [], error };
    }
    log.progress('cluster', `${dryRun ? 'planning' : 'taking'} runner pods out of ${client.server} (runners.placement is host)`);
    return removeClusterRunners(client, inv, { nodes: opts.only, dryRun, logger: log });
  }

  return {
    async onNode(conn, node, facts, record) {
      if (host) {
        await cleanup;
        const reason = blocked.get(node.name);
        if (reason) return reason;
        log.progress(node.name, dryRun ? 'planning the host runner' : 'converging the host runner');
        const outcome = await convergeHostRunner(conn, node, facts, ctx, record);
        gitlab.add(outcome.gitlab, inv, why);
        results.set(node.name, { node: indexEntry(node), present: outcome.present });
        return outcome.error;
      }
      const hr = hostRunnerFactsOf(node, facts);
      if (!hr.record.bytes && hr.config.sha256 === 'absent') {
        results.set(node.name, { node: indexEntry(node), present: false });
        return undefined;
      }
      log.progress(node.name, dryRun ? 'planning the removal of its host runner' : 'removing its host runner (runners.placement is cluster)');
      const outcome = await removeHostRunner(conn, node, hr, ctx, record);
      gitlab.add(outcome.gitlab, inv, why);
      results.set(node.name, { node: indexEntry(node), present: outcome.present });
      if (outcome.error) blocked.set(node.name, outcome.error);
      return outcome.error;
    },

    async afterNodes(facts) {
      // Nodes in the index that the inventory no longer has: only a whole-fleet run may conclude that.
      const departed = opts.only ? [] : index.filter((n) => !inv.nodes.some((m) => m.name === n.name));
      let departedReports: NodeReport[] = [];
      if (departed.length > 0) {
        log.progress('gitlab', `removing the host runners of ${departed.map((n) => n.name).join(', ')} (not in the inventory any more)`);
        const r = await removeHostRunners(inv, departed, { dryRun, log, why: 'node left the inventory' });
        departedReports = r.nodes;
        gitlab.changes.push(...r.gitlab.changes.map((c) => ({ ...c, node: '' })));
        if (r.gitlab.error) gitlab.errors.push({ node: 'gitlab', message: r.gitlab.error });
      }
      // removeHostRunners wrote the departed nodes' part of the index; this run's nodes come on top.
      updateIndex(inv, dryRun, log, readIndex(inv, log), results);
      if (host) {
        const cluster = await cleanup;
        return { gitlab: gitlab.report(), ...(cluster ? { cluster } : {}), nodes: departedReports };
      }
      const r = await convergeRunners({ ...opts, facts, exclude: new Set(blocked.keys()) });
      return { gitlab: gitlab.report(r.gitlab), ...(r.cluster ? { cluster: r.cluster } : {}), nodes: departedReports };
    },
  };
}
