// `destroy`: remove the runners from GitLab, runner-fleet's objects from the cluster and its files from the nodes; ask first.
import type { RunContext } from '../context.js';
import { InputError } from '../errors.js';
import { planNodeCleanup, runCleanup } from '../docker/cleanup.js';
import { hostRunnerIndexPath, readHostRunnerIndex, type IndexedNode } from '../host-runner/state.js';
import type { CleanupPlan } from '../docker/cleanup-plan.js';
import type { Inventory, NodeSpec } from '../inventory/types.js';
import type { KubeClient } from '../kube/client.js';
import { planTeardown, runTeardown, teardownChanges, type TeardownPlan } from '../kube/teardown.js';
import type { Logger } from '../log.js';
import { mapPool } from '../pool.js';
import {
  buildReport,
  changeRecorder,
  type Change,
  type ClusterReport,
  type NodeReport,
  type RunReport,
} from '../report.js';
import { describeAction, planRegistrations } from '../runners/registration-plan.js';
import { reconcileRunners } from '../runners/reconcile.js';
import type { RecordStore, RunnerRecord } from '../runners/records.js';
import { readInventorySecrets, redact, secretValue } from '../secrets.js';
import { withNode } from '../ssh.js';
import { keyFileIssues } from './apply.js';
import { clusterConfigured } from '../placement/cluster-placement.js';
import { removeHostRunners } from '../placement/host-placement.js';
import { typedStore } from '../placement/records-read.js';
import { withRunners } from '../gitlab/auth-modes.js';
import { readVersionedRecords } from '../kube/records-secret.js';
import { acquireFleetLock, LockHeldError, type FleetLock } from '../lock/fleet-lock.js';
import { guardInterrupts } from '../lock/interrupt.js';
import { sweepFleetStrays, type SweepInput } from '../runners/sweep.js';

export interface DestroyOptions {
  yes: boolean;
  purgeRegistryConfig: boolean;
  /** shows what will go and asks the person at the terminal; resolves true to go ahead (only called without --yes) */
  confirm: (whatGoes: string) => Promise<boolean>;
}

export interface DestroyReport extends RunReport {
  /** nothing of runner-fleet's was found: a no-op */
  nothingToRemove: boolean;
  /** the person said no: nothing was removed */
  declined?: boolean;
  /** what stays on purpose, and why */
  kept: string[];
}

/** Bad input, before anything is contacted (exit 2). `interactive`: there is a terminal to ask on. */
export function destroyPreflight(
  inv: Inventory,
  opts: { yes: boolean; interactive: boolean; only?: string[] },
): void {
  const issues: string[] = [];
  if (opts.only)
    issues.push(
      'destroy: --only does not apply; destroy removes the whole fleet (to drop some nodes, remove them from the inventory and run apply)',
    );
  if (!opts.yes && !opts.interactive)
    issues.push(
      'destroy asks for confirmation, and there is no terminal to ask on: pass --yes to remove without asking',
    );
  issues.push(...keyFileIssues(inv));
  if (issues.length > 0) throw new InputError(issues, 'cannot destroy');
}

const messageOf = (err: unknown) => redact(err instanceof Error ? err.message : String(err));

/** The inventory with no nodes: reconciling it deletes every recorded runner, with all of apply's care (no orphans). */
const withoutNodes = (inv: Inventory): Inventory => ({ ...inv, nodes: [] });

interface HostSide {
  node: NodeSpec;
  plan?: CleanupPlan;
  error?: string;
}

interface ClusterSide {
  client: KubeClient;
  store: RecordStore;
  records: RunnerRecord[];
  gitlab: Change[];
  teardown: TeardownPlan;
  /** the look for this fleet's runners that no record holds; undefined when there is nothing to look with */
  strays?: Omit<SweepInput, 'dryRun'>;
}

/** `records`: this fleet's runner records; an old shared identity folder is this fleet's only if they hold its system_id. */
async function planHosts(
  ctx: RunContext,
  opts: DestroyOptions,
  records: RunnerRecord[],
): Promise<HostSide[]> {
  const { inventory: inv, log } = ctx;
  return mapPool(inv.nodes, ctx.concurrency, async (node) => {
    try {
      log.progress(node.name, 'looking for what runner-fleet left here (read-only)');
      const plan = await withNode(node, (conn) =>
        planNodeCleanup(conn, node, inv.gitlab.registries, {
          purgeRegistryConfig: opts.purgeRegistryConfig,
          namespace: inv.kubernetes.namespace,
          systemIds: records.filter((r) => r.node === node.name).map((r) => r.systemId),
        }),
      );
      log.done?.(node.name, true, `${plan.steps.length} to remove`);
      return { node, plan };
    } catch (err) {
      const error = messageOf(err);
      log.done?.(node.name, false, error);
      return { node, error };
    }
  });
}

async function planCluster(ctx: RunContext): Promise<ClusterSide> {
  const { inventory: inv, log } = ctx;
  const ns = inv.kubernetes.namespace;
  log.progress('cluster', `looking for runner-fleet's objects in ${ns} (read-only)`);
  const client = await ctx.cluster();
  const store = typedStore(client, ns, false);
  const records = await store.load();
  const gitlab = planRegistrations(withoutNodes(inv), records)
    .map(describeAction)
    .filter((d): d is Change => d !== null);
  const strays = await strayLookup(ctx, client, records);
  if (strays) {
    const found = await sweepFleetStrays({ ...strays, dryRun: true });
    gitlab.push(...found.changes);
    for (const w of found.warnings) log.warn('gitlab', `${w.node}: ${w.message}`);
  }
  const teardown = await planTeardown(client, ns, {
    nodeLabel: inv.kubernetes.nodeLabel,
    nodes: inv.nodes.map((n) => n.name),
  });
  log.done?.(
    'cluster',
    true,
    `${records.length} runner record(s), ${teardownChanges(teardown).length} cluster change(s)`,
  );
  return { client, store, records, gitlab, teardown, strays };
}

/**
 * Runners a create made whose answer was lost are in no record: destroy finds them as apply does, by this fleet's
 * mark, on every node name the inventory and the records know. Only with an access token (the others cannot list)
 * and a fleet id on the records Secret (without one, this fleet never marked a runner with it).
 */
async function strayLookup(
  ctx: RunContext,
  client: KubeClient,
  records: RunnerRecord[],
): Promise<Omit<SweepInput, 'dryRun'> | undefined> {
  const inv = ctx.inventory;
  if (inv.gitlab.auth.kind !== 'accessToken') return undefined;
  const { fleetId } = await readVersionedRecords(client, inv.kubernetes.namespace);
  if (!fleetId) return undefined;
  return {
    api: ctx.gitlab(),
    secret: secretValue(inv, inv.gitlab.auth.token),
    fleet: fleetId,
    nodes: [...new Set([...inv.nodes.map((n) => n.name), ...records.map((r) => r.node)])],
    held: new Set(records.map((r) => r.id).filter((id): id is number => id !== undefined)),
    type: inv.gitlab.runnerType,
  };
}

/**
 * The fleet lock (apply's Lease) for the whole destroy, so that no apply creates a runner meanwhile that destroy
 * would not know of. None when the namespace does not exist (no apply ever ran there, and none holds a lock in it)
 * or the cluster cannot be read (the cluster side reports that itself); another run's lock is an error, nothing done.
 */
async function takeDestroyLock(ctx: RunContext): Promise<FleetLock | undefined> {
  const { inventory: inv, log } = ctx;
  const ns = inv.kubernetes.namespace;
  try {
    const client = await ctx.cluster();
    const live = await client.read({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    // Gone or on its way out: no apply can hold a lock in it, and taking one must not bring it back.
    if (!live || live.metadata.deletionTimestamp) return undefined;
    log.progress('cluster', `taking the fleet lock (Lease ${ns}/runner-fleet-lock)`);
    return await acquireFleetLock(client, ns, { log, namespace: 'existing' });
  } catch (err) {
    if (err instanceof LockHeldError) throw err;
    return undefined;
  }
}

/**
 * Nodes that may carry a host-placed runner: the inventory's, and those the host-runner index beside the
 * inventory still lists after they left it. None when the fleet is cluster-placed and the index is empty: no extra
 * round trip for the common case.
 */
function hostRunnerNodes(inv: Inventory, log: Logger): (NodeSpec | IndexedNode)[] {
  let indexed: IndexedNode[] = [];
  try {
    indexed = readHostRunnerIndex(hostRunnerIndexPath(inv.source));
  } catch (err) {
    log.warn('gitlab', messageOf(err));
  }
  if (inv.runners.placement !== 'host' && indexed.length === 0) return [];
  return [...inv.nodes, ...indexed.filter((n) => !inv.nodes.some((m) => m.name === n.name))];
}

type HostRunnerResult = Awaited<ReturnType<typeof removeHostRunners>>;

function hostRunnerLines(r: HostRunnerResult | undefined): string[] {
  if (!r) return [];
  return [
    ...r.gitlab.changes.map((c) => `  gitlab   ${c.detail}`),
    ...r.nodes.flatMap((n) => n.changes.map((c) => `  ${n.name.padEnd(8)} ${c.detail}`)),
  ];
}

/** Two reports of the same node (host runner, then cleanup) as one. */
function mergeNode(a: NodeReport | undefined, b: NodeReport): NodeReport {
  if (!a) return b;
  const error = [a.error, b.error].filter(Boolean).join('; ');
  return {
    name: b.name,
    ok: a.ok && b.ok,
    changes: [...a.changes, ...b.changes],
    ...(error ? { error } : {}),
  };
}

function mergeSection(a: ClusterReport | undefined, b: ClusterReport | undefined): ClusterReport | undefined {
  if (!a || !b) return a ?? b;
  const error = [a.error, b.error].filter(Boolean).join('; ');
  return { ok: a.ok && b.ok, changes: [...a.changes, ...b.changes], ...(error ? { error } : {}) };
}

export function formatDestroyPlan(
  hosts: HostSide[],
  cluster: ClusterSide | undefined,
  hostRunners?: HostRunnerResult,
): string {
  const lines: string[] = hostRunnerLines(hostRunners);
  if (cluster) {
    for (const c of cluster.gitlab) lines.push(`  gitlab   ${c.detail}`);
    for (const c of teardownChanges(cluster.teardown)) lines.push(`  cluster  ${c.detail}`);
  }
  for (const h of hosts)
    for (const s of h.plan?.steps ?? []) lines.push(`  ${h.node.name.padEnd(8)} ${s.detail}`);
  return lines.join('\n');
}

export function formatDestroySummary(r: DestroyReport): string {
  if (r.declined) return 'Destroy: not confirmed; nothing was removed.';
  const kept = r.kept.length > 0 ? `\nStays on purpose:\n${r.kept.map((k) => `  - ${k}`).join('\n')}` : '';
  if (r.nothingToRemove) return `Destroy: nothing to remove.${kept}`;
  const rows: string[] = [];
  const section = (name: string, s: { ok: boolean; changes: Change[]; error?: string }) => {
    if (s.ok && s.changes.length === 0) return;
    rows.push(
      `  ${name.padEnd(16)} ${(s.ok ? 'ok' : 'FAILED').padEnd(7)} ${s.changes.length} removed${s.error ? `: ${s.error}` : ''}`,
    );
    for (const c of s.changes) rows.push(`      - ${c.detail}`);
  };
  for (const n of r.nodes) section(n.name, n);
  if (r.gitlab) section('gitlab', r.gitlab);
  if (r.cluster) section('cluster', r.cluster);
  const failed = [
    ...r.nodes.filter((n) => !n.ok).map((n) => n.name),
    ...(r.gitlab?.ok === false ? ['gitlab'] : []),
    ...(r.cluster?.ok === false ? ['cluster'] : []),
  ];
  const head = r.ok
    ? `Destroyed: ${r.changed} removed.`
    : `Failed: ${failed.join(', ')}; run destroy again to finish.`;
  return `Destroy\n${rows.join('\n')}\n${head}${kept}`;
}

export async function runDestroy(given: RunContext, opts: DestroyOptions): Promise<DestroyReport> {
  // Every secret reference read once, before anything is contacted (bad ones: exit 2).
  const ctx: RunContext = { ...given, inventory: await readInventorySecrets(given.inventory), dryRun: false };
  const inv = ctx.inventory;
  const registers = withRunners(inv.gitlab.auth);
  // A host-placed fleet may have no cluster at all; a cluster-placed one always has.
  const withCluster = registers && (inv.runners.placement !== 'host' || clusterConfigured(inv));
  const lock = withCluster ? await takeDestroyLock(ctx) : undefined;
  const guard =
    lock &&
    guardInterrupts(() => lock.release(), {
      log: ctx.log,
      after: 'run destroy again to finish: it finds what is left through the records and the marks.',
    });
  guard?.stage('destroying');
  try {
    return await destroyLocked(ctx, opts, withCluster, lock);
  } finally {
    guard?.dispose();
    await lock?.release();
  }
}

/** What the read-only look found: the prompt lists exactly what goes. */
interface DestroyLook {
  /** nodes that may carry a host runner */
  runnerNodes: (NodeSpec | IndexedNode)[];
  hosts: HostSide[];
  /** undefined without a cluster to look at */
  cluster?: ClusterSide | { error: string };
  hostRunnerPlan?: HostRunnerResult;
}

/** Read-only. The records first: they say which old identity folders are this fleet's. */
async function lookBeforeDestroy(
  ctx: RunContext,
  opts: DestroyOptions,
  withCluster: boolean,
): Promise<DestroyLook> {
  const runnerNodes = withRunners(ctx.inventory.gitlab.auth) ? hostRunnerNodes(ctx.inventory, ctx.log) : [];
  const cluster = withCluster
    ? await planCluster(ctx).catch((err: unknown) => ({ error: messageOf(err) }))
    : undefined;
  const records = cluster && !('error' in cluster) ? cluster.records : [];
  const [hosts, hostRunnerPlan] = await Promise.all([
    planHosts(ctx, opts, records),
    runnerNodes.length > 0
      ? removeHostRunners({ ...ctx, dryRun: true }, runnerNodes, { kind: 'destroy' })
      : Promise.resolve(undefined),
  ]);
  return { runnerNodes, hosts, cluster, hostRunnerPlan };
}

/** The cluster holds the runner records: without them nothing is removed. */
function clusterUnreadable(hosts: HostSide[], error: string, kept: string[]): DestroyReport {
  const nodes: NodeReport[] = hosts.map((h) => ({
    name: h.node.name,
    ok: !h.error,
    changes: [],
    ...(h.error ? { error: h.error } : {}),
  }));
  const gitlab: ClusterReport = {
    ok: false,
    changes: [],
    error: 'not attempted: the cluster (which holds the runner records) could not be read',
  };
  return { ...buildReport(nodes, gitlab, { ok: false, changes: [], error }), nothingToRemove: false, kept };
}

async function destroyLocked(
  ctx: RunContext,
  opts: DestroyOptions,
  withCluster: boolean,
  lock: FleetLock | undefined,
): Promise<DestroyReport> {
  const { inventory: inv, log } = ctx;
  const kept: string[] = [];
  if (!withRunners(inv.gitlab.auth))
    kept.push(
      'no gitlab token in the inventory: apply made nothing in GitLab or the cluster, so destroy looks at the nodes only',
    );
  const look = await lookBeforeDestroy(ctx, opts, withCluster);
  const { hosts, hostRunnerPlan } = look;
  if (look.cluster && 'error' in look.cluster) {
    log.error('cluster', look.cluster.error);
    return clusterUnreadable(hosts, look.cluster.error, kept);
  }
  const cluster = look.cluster;
  for (const h of hosts) for (const k of h.plan?.kept ?? []) kept.push(`${h.node.name}: ${k}`);
  if (cluster?.teardown.namespaceNote) kept.push(cluster.teardown.namespaceNote);
  kept.push(...(cluster?.teardown.kept ?? []));

  const planText = formatDestroyPlan(hosts, cluster, hostRunnerPlan);
  const unreachable = [
    ...hosts.filter((h) => h.error).map((h) => h.node.name),
    ...(hostRunnerPlan?.nodes.filter((n) => !n.ok).map((n) => n.name) ?? []),
  ];
  if (planText === '' && unreachable.length === 0) {
    return {
      ...buildReport(hosts.map((h) => ({ name: h.node.name, ok: true, changes: [] }))),
      nothingToRemove: true,
      kept,
    };
  }
  if (planText !== '' && !opts.yes) {
    const warnUnreachable =
      unreachable.length > 0
        ? `\n(${[...new Set(unreachable)].join(', ')} could not be reached: what is there stays.)`
        : '';
    if (!(await opts.confirm(`runner-fleet destroy will remove:\n${planText}${warnUnreachable}`))) {
      return { ...buildReport([]), ok: false, nothingToRemove: false, declined: true, kept };
    }
  }

  // Host runners first (their records are on the nodes), then GitLab while the Secret's records still hold the
  // tokens, then the cluster (the records go last), then the nodes' files.
  let hostRunners: HostRunnerResult | undefined;
  if (hostRunnerPlan && hostRunnerLines(hostRunnerPlan).length > 0) {
    log.progress('gitlab', 'removing host-placed runners');
    hostRunners = await removeHostRunners(ctx, look.runnerNodes, { kind: 'destroy' });
  }
  const removed = cluster
    ? await removeClusterSide(ctx, cluster, lock, kept)
    : { gitlab: undefined, cluster: undefined };
  const nodes = await cleanNodes(ctx, hosts);
  // Without anything to remove there, only the host-runner look-ups that failed are worth reporting.
  const runnerReports = hostRunners?.nodes ?? hostRunnerPlan?.nodes.filter((n) => !n.ok) ?? [];
  const byName = new Map(runnerReports.map((n) => [n.name, n]));
  const merged = nodes.map((n) => mergeNode(byName.get(n.name), n));
  // Nodes only the host-runner index still knew (gone from the inventory) report too.
  for (const n of runnerReports) if (!nodes.some((m) => m.name === n.name)) merged.push(n);
  const gitlab = mergeSection(hostRunners?.gitlab, removed.gitlab);
  return { ...buildReport(merged, gitlab, removed.cluster), nothingToRemove: false, kept };
}

/** The recorded runners in GitLab, the unrecorded ones this fleet marked, then runner-fleet's cluster objects. */
async function removeClusterSide(
  ctx: RunContext,
  cluster: ClusterSide,
  lock: FleetLock | undefined,
  kept: string[],
): Promise<{ gitlab?: ClusterReport; cluster: ClusterReport }> {
  const { inventory: inv, log } = ctx;
  let gitlab: ClusterReport | undefined;
  let remaining = cluster.records.length;
  if (cluster.records.length > 0) {
    const r = await deleteRecordedRunners(ctx, cluster.store, cluster.records.length);
    remaining = r.remaining;
    gitlab = r.report;
  }
  if (cluster.strays) gitlab = mergeSection(gitlab, await sweepNow(cluster.strays, log));
  // The Lease lives in the namespace: a namespace about to go takes it along, so it is given back first.
  if (cluster.teardown.namespaceAction === 'delete') await lock?.release();
  log.progress('cluster', "removing runner-fleet's objects");
  const report = await runTeardown(cluster.client, cluster.teardown, { keepRecords: remaining > 0, log });
  if (remaining > 0)
    kept.push(
      `Secret ${inv.kubernetes.namespace}/runner-fleet-records stays: ${remaining} runner(s) could not be deleted in GitLab; run destroy again`,
    );
  log.done?.('cluster', report.ok, `${report.changes.length} removed`);
  return { gitlab, cluster: report };
}

/** Reconciling an inventory without nodes deletes every recorded runner, with all of apply's care. */
async function deleteRecordedRunners(
  ctx: RunContext,
  store: RecordStore,
  count: number,
): Promise<{ report: ClusterReport; remaining: number }> {
  const { inventory: inv, log } = ctx;
  try {
    log.progress('gitlab', `deleting ${count} runner(s) at ${inv.gitlab.url}`);
    const r = await reconcileRunners(withoutNodes(inv), store, ctx.gitlab(), { dryRun: false, log });
    const remaining = r.records.length;
    const report: ClusterReport = {
      ok: r.errors.length === 0 && remaining === 0,
      changes: r.changes.map((c) => ({ step: c.step, detail: c.detail })),
      ...(r.errors.length > 0 ? { error: r.errors.map((e) => `${e.node}: ${e.message}`).join('; ') } : {}),
    };
    log.done?.('gitlab', report.ok, `${r.changes.length} removed`);
    return { report, remaining };
  } catch (err) {
    const report: ClusterReport = { ok: false, changes: [], error: messageOf(err) };
    log.error('gitlab', report.error!);
    return { report, remaining: count };
  }
}

/** Each node's own files, as the look planned them. */
async function cleanNodes(ctx: RunContext, hosts: HostSide[]): Promise<NodeReport[]> {
  const { log } = ctx;
  return mapPool(hosts, ctx.concurrency, async (h): Promise<NodeReport> => {
    if (h.error) return { name: h.node.name, ok: false, changes: [], error: h.error };
    const changes: Change[] = [];
    if (!h.plan || h.plan.steps.length === 0) return { name: h.node.name, ok: true, changes };
    const steps = h.plan.steps;
    try {
      log.progress(h.node.name, `removing ${steps.length} thing(s)`);
      const { record } = changeRecorder(h.node.name, { dryRun: false, log, changes });
      await withNode(h.node, (conn) => runCleanup(conn, steps, record));
      log.done?.(h.node.name, true, `${changes.length} removed`);
      return { name: h.node.name, ok: true, changes };
    } catch (err) {
      const error = messageOf(err);
      log.error(h.node.name, error);
      log.done?.(h.node.name, false, 'failed');
      return { name: h.node.name, ok: false, changes, error };
    }
  });
}

/** Deletes this fleet's runners that no record holds (found again now: the plan's list may be stale). */
async function sweepNow(strays: Omit<SweepInput, 'dryRun'>, log: Logger): Promise<ClusterReport> {
  try {
    const r = await sweepFleetStrays({ ...strays, dryRun: false });
    for (const c of r.changes) log.change('gitlab', c.detail);
    const error = r.errors.map((e) => `${e.node}: ${e.message}`).join('; ');
    return {
      ok: r.errors.length === 0,
      changes: r.changes.map((c) => ({ step: c.step, detail: c.detail })),
      ...(error ? { error } : {}),
    };
  } catch (err) {
    return { ok: false, changes: [], error: messageOf(err) };
  }
}
