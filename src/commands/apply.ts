// `apply` and `plan`: converge every node's Docker, then runners in GitLab, then the cluster; report what changed.
import { accessSync, constants, existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { InputError, RunFailedError } from '../errors.js';
import type { RunContext } from '../context.js';
import { EXECUTOR_SPECS } from '../executors.js';
import type { FleetLock } from '../lock/fleet-lock.js';
import { guardInterrupts } from '../lock/interrupt.js';
import { convergeHost, type HostResult } from '../docker/docker-converge.js';
import type { HostFacts } from '../docker/facts.js';
import {
  PREFLIGHT_GATHER,
  parsePreflight,
  preflightProblems,
  type PreflightProblem,
} from '../docker/preflight.js';
import { hostRunnerGatherScript } from '../host-runner/facts.js';
import { planPrepull } from '../docker/docker-plan.js';
import { prepullGatherScript, runPrepull, type PrepullWant } from '../docker/prepull.js';
import { firstJobImages } from '../runners/first-job-images.js';
import type { DockerFlavour, Inventory, NodeSpec } from '../inventory/types.js';
import { mapPool } from '../pool.js';
import { buildReport, changeRecorder, type Change, type NodeReport, type RunReport } from '../report.js';
import { readInventorySecrets, redact } from '../secrets.js';
import { withNode, type NodeConnection } from '../ssh.js';
import { selectNodes } from '../inventory/schema.js';
import type { RunnerPhase } from '../placement/phase.js';
import { withRunners } from '../gitlab/auth-modes.js';
import { probeTargets, reachGatherScript } from '../status/probe.js';

/** The nodes' key files unreadable: the run would fail at every connect (exit 2, nothing contacted). */
export function keyFileIssues(inv: Inventory): string[] {
  const issues: string[] = [];
  const seen = new Set<string>();
  inv.nodes.forEach((n, i) => {
    for (const [key, path] of [
      ['identityFile', n.identityFile],
      ['knownHosts', n.knownHosts],
    ] as const) {
      if (seen.has(path)) continue;
      seen.add(path);
      try {
        accessSync(path, constants.R_OK);
      } catch {
        const field = path === inv.ssh[key] ? `ssh.${key}` : `nodes[${i}].${key}`;
        issues.push(`${field}: cannot read ${path}`);
      }
    }
  });
  return issues;
}

/**
 * Problems that make the run pointless before any node is contacted (exit 2), all reported at once: the selected
 * nodes' key files, and every secret reference of the inventory, which is read here, once, for the whole run.
 * Returns the inventory carrying the secrets; `selectNodes` of it gives the selected nodes.
 */
export async function preflight(inv: Inventory, only?: string[]): Promise<Inventory> {
  const issues = keyFileIssues(selectNodes(inv, only));
  const read = await readInventorySecrets(inv).catch((err: unknown) => {
    if (!(err instanceof InputError)) throw err;
    issues.push(...err.issues);
    return inv;
  });
  if (issues.length > 0) throw new InputError(issues, 'cannot start');
  return read;
}

/** The nodes' pre-flight: its gather section, and the check of each node's gathered facts. */
export interface NodePreflight {
  gatherExtra: string;
  check(facts: HostFacts): Promise<PreflightProblem[]>;
}

/**
 * With runners, GitLab's clock is read once per run (one HEAD, alongside the SSH work); a GitLab that does not
 * answer leaves the nodes' clocks unchecked, with a warning, and lets the GitLab phase report what is wrong with it.
 */
export function nodePreflight(ctx: RunContext): NodePreflight {
  const { inventory: inv, log } = ctx;
  // Hosts only (no runners): GitLab is not asked anything, and no runner's token or TLS depends on the node's clock.
  // One HEAD, never retried (serverClock does not retry): a GitLab that does not answer only skips the check.
  const clock = !withRunners(inv.gitlab.auth)
    ? Promise.resolve(undefined)
    : ctx.gitlabClock().catch((err: unknown) => {
        log.warn(
          'gitlab',
          `cannot read GitLab's clock, the nodes' clocks are not checked: ${redact(err instanceof Error ? err.message : String(err))}`,
        );
        return undefined;
      });
  return {
    gatherExtra: PREFLIGHT_GATHER,
    check: async (facts) => preflightProblems(parsePreflight(facts.gathered, facts.gatheredAt), await clock),
  };
}

export interface NodeOutcome {
  report: NodeReport;
  host?: HostResult;
}

/** The runner phase's part of a node's host phase: a gather section, and a step on the same connection. */
interface NodeRunnerStep {
  gatherExtra: string;
  onNode: RunnerPhase['onNode'];
}

/**
 * DooD jobs talk to the node's dockerd: on the docker snap, that dockerd is confined and can bind-mount only paths
 * under /home, /mnt and /media (the snap's `home` and `removable-media` plugs; canonical/docker-snap #189), so a job's
 * `docker run -v /srv/…` or `-v $PWD:…` from a build directory elsewhere fails.
 */
export function snapDoodWarning(inv: Inventory, flavour: DockerFlavour): string | undefined {
  if (
    !EXECUTOR_SPECS[inv.runners.executor].jobMountsThroughNodeDocker ||
    flavour !== 'snap' ||
    !withRunners(inv.gitlab.auth)
  )
    return undefined;
  return 'DooD on the docker snap: jobs can bind-mount only paths under /home, /mnt or /media (the snap confines dockerd; docker-snap #189); `docker run -v` of other host paths fails. Use apt Docker (nodes[].docker: apt) or the dind executor if jobs mount other paths.';
}

/**
 * The images the first job needs, pulled on the node once its Docker is converged. `hostDone` hears the node's
 * outcome before the pull starts, so that registration and the cluster go on while the node pulls.
 */
interface NodePrepull {
  want: PrepullWant;
  hostDone: (outcome: NodeOutcome) => void;
}

/** One node's host phase, then its pre-pull; never throws: failures land in the report. */
async function convergeNode(
  node: NodeSpec,
  ctx: RunContext,
  preflight: NodePreflight,
  runners?: NodeRunnerStep,
  prepull?: NodePrepull,
): Promise<NodeOutcome> {
  let told = false;
  const hostDone = (o: NodeOutcome) => {
    if (!told) prepull?.hostDone(o);
    told = true;
  };
  const outcome = await convergeNodeOnce(node, ctx, preflight, runners, prepull && { ...prepull, hostDone });
  hostDone(outcome);
  return outcome;
}

async function convergeNodeOnce(
  node: NodeSpec,
  ctx: RunContext,
  preflight: NodePreflight,
  runners?: NodeRunnerStep,
  prepull?: NodePrepull,
): Promise<NodeOutcome> {
  const { inventory: inv, dryRun, log } = ctx;
  const changes: Change[] = [];
  try {
    log.progress(node.name, `connecting to ${node.user}@${node.host}:${node.port}`);
    return await withNode(node, async (conn) => {
      log.progress(node.name, dryRun ? 'planning' : 'converging Docker');
      const { record } = changeRecorder(node.name, { dryRun, log, changes });
      const host = await convergeHost(conn, node, inv.gitlab.registries, {
        dryRun,
        onChange: record,
        gatherExtra: `${preflight.gatherExtra}\n${runners?.gatherExtra ?? ''}\n${prepullGatherScript(prepull?.want)}`,
        docker: inv.docker,
        snap: inv.snap,
        pods: { placement: inv.runners.placement, podCidr: inv.kubernetes.podCidr },
        preflight: preflight.check,
        ca: inv.gitlab.ca,
      });
      const warning = snapDoodWarning(inv, host.plan.flavour);
      if (warning) log.warn(node.name, warning);
      const runnerError = runners ? await runners.onNode(conn, node, host.facts, record) : undefined;
      if (runnerError) {
        log.error(node.name, runnerError);
        log.done?.(node.name, false, 'failed');
        return { report: { name: node.name, ok: false, changes, error: runnerError }, host };
      }
      const outcome: NodeOutcome = { report: { name: node.name, ok: true, changes }, host };
      // Registration and the cluster need only the host phase: they go on while this node pulls.
      prepull?.hostDone(outcome);
      const pullError = await prepullOnNode(conn, node, host, dryRun, record, prepull);
      if (pullError) {
        log.error(node.name, pullError);
        log.done?.(node.name, false, 'failed');
        return { report: { name: node.name, ok: false, changes, error: pullError }, host };
      }
      log.done?.(
        node.name,
        true,
        `${dryRun ? 'would change' : 'changed'} ${changes.length}; Docker ${host.facts.docker?.version ?? '(not installed yet)'} (${host.plan.flavour}), ${host.facts.arch}`,
      );
      return outcome;
    });
  } catch (err) {
    const message = redact(err instanceof Error ? err.message : String(err));
    log.error(node.name, message);
    log.done?.(node.name, false, 'failed');
    return { report: { name: node.name, ok: false, changes, error: message } };
  }
}

/**
 * The node's pre-pull (planPrepull): listed in a dry run; otherwise run once `hostDone` has let the run go on to
 * registration. Returns the node's error when a pull fails: the node failed, no other node did.
 */
async function prepullOnNode(
  conn: NodeConnection,
  node: NodeSpec,
  host: HostResult,
  dryRun: boolean,
  record: (c: Change) => void,
  prepull: NodePrepull | undefined,
): Promise<string | undefined> {
  if (!prepull) return undefined;
  // Docker installed by a dry run's plan is not there yet: its gather knows no image, so the plan lists every one.
  const step = planPrepull(prepull.want, node, host.facts);
  if (!step) return undefined;
  if (dryRun) {
    record({ step: step.kind, detail: step.detail });
    return undefined;
  }
  try {
    await runPrepull(conn, step);
    record({ step: step.kind, detail: step.detail });
    return undefined;
  } catch (err) {
    return redact(err instanceof Error ? err.message : String(err));
  }
}

/**
 * Hosts first (Docker and the registry on each selected node), then runners in GitLab, then the cluster.
 * `inv` is the whole inventory; `only` limits the host phase and keeps the other nodes' runners as they are.
 */
export async function runConverge(given: RunContext): Promise<RunReport> {
  const ctx: RunContext = { ...given, inventory: await preflight(given.inventory, given.only) };
  const selected = selectNodes(ctx.inventory, ctx.only);
  // The fleet lock comes before GitLab or any node is touched: a second apply fails here, having changed nothing.
  const lock = ctx.dryRun ? undefined : await takeFleetLock(ctx);
  // An interrupted apply gives the lock back at once. An executor switch cut short may leave both DaemonSets running
  // until the next apply, which finishes it: the old runners' records were saved as retired before any delete.
  const guard =
    lock &&
    guardInterrupts(() => lock.release(), {
      log: ctx.log,
      after:
        'every runner created is in the records. Run apply again to finish (an executor switch cut short may leave both DaemonSets running until then).',
    });
  try {
    const report = await convergeLocked(ctx, selected, (s) => guard?.stage(s));
    const lost = lock?.lost();
    if (!lost) return report;
    // Another run may have changed runners meanwhile: this run cannot vouch for the records.
    const gitlab = report.gitlab ?? { ok: true, changes: [] };
    return buildReport(
      report.nodes,
      { ...gitlab, ok: false, error: gitlab.error ? `${gitlab.error}; ${lost}` : lost },
      report.cluster,
    );
  } finally {
    guard?.dispose();
    await lock?.release();
  }
}

/**
 * Which cluster holds the Lease: the inventory's (or $KUBECONFIG's), else kubectl's default if there is one.
 * Without a cluster there is no fleet-wide lock; each node's daemon.json edit still takes its own lock on the node.
 */
async function takeFleetLock(ctx: RunContext): Promise<FleetLock | undefined> {
  const { inventory: inv, log } = ctx;
  const named = Boolean(inv.kubernetes.kubeconfig || inv.kubernetes.fromNode || process.env.KUBECONFIG);
  const usesCluster = inv.gitlab.auth.kind !== 'none' && inv.runners.placement === 'cluster';
  if (!named && !existsSync(join(homedir(), '.kube', 'config'))) {
    log.progress(
      'cluster',
      'no cluster configured: no fleet-wide lock for this run (each node locks its own daemon.json edit)',
    );
    return undefined;
  }
  const { acquireFleetLock, LockHeldError } = await import('../lock/fleet-lock.js');
  let server = inv.kubernetes.kubeconfig ?? inv.kubernetes.fromNode ?? 'the default kubeconfig';
  try {
    const client = await ctx.cluster();
    server = client.server;
    log.progress(
      'cluster',
      `taking the fleet lock (Lease ${inv.kubernetes.namespace}/runner-fleet-lock) on ${server}`,
    );
    return await acquireFleetLock(client, inv.kubernetes.namespace, { log });
  } catch (err) {
    if (err instanceof LockHeldError || err instanceof InputError) throw err;
    const why = redact(err instanceof Error ? err.message : String(err));
    if (!named && !usesCluster) {
      // Host placement or hosts only, and only kubectl's default cluster: maybe not ours; go on with per-node locks.
      log.warn('cluster', `no fleet-wide lock: the default kubeconfig's cluster did not answer (${why})`);
      return undefined;
    }
    throw new RunFailedError(
      `cannot take the fleet lock on the cluster ${server} (${why}); nothing was changed`,
    );
  }
}

async function convergeLocked(
  ctx: RunContext,
  selected: Inventory,
  stage: (text: string) => void = () => undefined,
): Promise<RunReport> {
  const { inventory: inv, log } = ctx;
  // The runner phases load the GitLab and Kubernetes clients (client-node alone takes ~1.7 s to import): start
  // loading them now so that it overlaps the SSH work, and not at all for a hosts-only inventory.
  const phase = withRunners(inv.gitlab.auth)
    ? import('../placement/phase.js').then((m) => m.runnerPhase(ctx))
    : undefined;
  phase?.catch(() => undefined); // awaited below; never an unhandled rejection meanwhile
  // The host-runner facts join each node's one gather: everything for host placement; in cluster placement only
  // what shows a host runner left over from host placement, which must go before the node's cluster runner comes.
  const runners: NodeRunnerStep | undefined = phase && {
    // Host placement: the contact probe too, as root where the runner runs, for a runner this run leaves alone.
    gatherExtra:
      inv.runners.placement === 'host'
        ? `${hostRunnerGatherScript('full', inv.runners.packageRepository.url)}\n${reachGatherScript(probeTargets(inv))}`
        : hostRunnerGatherScript('probe', inv.runners.packageRepository.url),
    onNode: async (...args) => (await phase).onNode(...args),
  };
  const preflight = nodePreflight(ctx);
  stage('converging the nodes (Docker, and host runners)');
  // Each node's outcome is known once its host phase is done; its pre-pull goes on beside registration.
  const hostDone = selected.nodes.map(() => {
    let resolve: (o: NodeOutcome) => void = () => undefined;
    const promise = new Promise<NodeOutcome>((r) => (resolve = r));
    return { promise, resolve };
  });
  const want = phase && inv.runners.prepull ? firstJobImages(inv, inv.runners.executor) : undefined;
  if (want) for (const note of want.notes) log.warn('images', note);
  const finished = mapPool(selected.nodes, ctx.concurrency, (node, i) =>
    convergeNode(node, ctx, preflight, runners, want && { want, hostDone: hostDone[i].resolve }),
  );
  const outcomes = want ? await Promise.all(hostDone.map((d) => d.promise)) : await finished;
  const facts = new Map(outcomes.filter((o) => o.host).map((o) => [o.report.name, o.host!.facts]));
  let after: Awaited<ReturnType<RunnerPhase['afterNodes']>>;
  stage('registering runners in GitLab and converging the cluster');
  try {
    after = phase
      ? await (await phase).afterNodes(facts)
      : (log.progress(
          'gitlab',
          'no gitlab token in the inventory: hosts only, no runners registered and no cluster changes',
        ),
        { nodes: [] });
  } catch (err) {
    // Nodes have changed by now: whatever goes wrong is a failed run with its report (exit 1), never "bad input".
    const error = redact(err instanceof Error ? err.message : String(err));
    log.error('gitlab', error);
    after = { gitlab: { ok: false, changes: [], error }, nodes: [] };
  }
  // The pulls' outcomes: a node whose pull failed has failed.
  const pulled = await finished;
  const reports = pulled.map((o) => withContact(o.report, after.contact?.get(o.report.name)));
  return buildReport([...reports, ...after.nodes], after.gitlab, after.cluster);
}

/** A node whose runner never reached GitLab has failed, whatever its host phase did. */
export function withContact(report: NodeReport, noContact: string | undefined): NodeReport {
  if (!noContact) return report;
  return { ...report, ok: false, error: report.error ? `${report.error}; ${noContact}` : noContact };
}

export function formatSummary(report: RunReport, dryRun: boolean): string {
  const verb = dryRun ? 'would change' : 'changed';
  const rows = report.nodes.map((n) => {
    const status = n.ok ? 'ok' : 'FAILED';
    const lines = [
      `  ${n.name.padEnd(16)} ${status.padEnd(7)} ${n.changes.length} ${verb}${n.error ? `: ${n.error}` : ''}`,
    ];
    for (const c of n.changes) lines.push(`      - ${c.detail}`);
    return lines.join('\n');
  });
  for (const [name, section] of [
    ['gitlab', report.gitlab],
    ['cluster', report.cluster],
  ] as const) {
    if (!section) continue;
    rows.push(
      `  ${name.padEnd(16)} ${(section.ok ? 'ok' : 'FAILED').padEnd(7)} ${section.changes.length} ${verb}${section.error ? `: ${section.error}` : ''}`,
    );
    for (const c of section.changes) rows.push(`      - ${c.detail}`);
  }
  const failed = [
    ...report.nodes.filter((n) => !n.ok).map((n) => n.name),
    ...(report.gitlab?.ok === false ? ['gitlab'] : []),
    ...(report.cluster?.ok === false ? ['cluster'] : []),
  ];
  const head = report.ok
    ? report.changed === 0
      ? 'Converged: nothing to change.'
      : `Converged: ${report.changed} ${verb}.`
    : `Failed: ${failed.join(', ')}.`;
  return `${dryRun ? 'Plan' : 'Summary'}\n${rows.join('\n')}\n${dryRun ? `${report.changed} change(s) planned; nothing was changed.` : head}`;
}
