// Pure judgement for `status`: one row per node from gathered facts, pods and GitLab answers; what is unhealthy and why; the table.
import type { PreflightProblem } from '../docker/preflight.js';
import { parseJobs } from './metrics.js';
import { describeDisk, freeCell, parseDisk, type DiskView } from './disk.js';
import type { HostFacts } from '../docker/facts.js';
import { registryIsInsecure } from '../docker/facts.js';
import { caConsumersWithout } from '../docker/ca.js';
import { renderHostsToml } from '../docker/docker-plan.js';
import type { Inventory, NodeSpec } from '../inventory/types.js';
import type { PodView } from '../kube/rollout.js';
import type { RunnerRecord } from '../runners/records.js';
import { describePodDocker, type PodDocker } from './pod-docker.js';
import { describeProbe, type ProbeResult } from './probe.js';

/**
 * GitLab calls a runner online when it asked for jobs within the last 2 hours (Ci::Runner::ONLINE_CONTACT_TIMEOUT).
 * The API shows the contact time from its cache, fresh on every poll; only the database copy is written every
 * 40–55 minutes. The same window as GitLab's keeps `status` and GitLab's UI in agreement.
 */
export const ONLINE_CONTACT_TIMEOUT_MS = 2 * 3600 * 1000;

export type PodState = 'ready' | 'not ready' | 'missing' | 'unknown' | 'n/a';
export type GitlabState = 'online' | 'offline' | 'never contacted' | 'no runner' | 'unknown' | 'n/a';

export interface StatusRow {
  node: string;
  reachable: boolean;
  arch?: string;
  docker: {
    /** what is installed: apt docker.io, the docker snap, both, or none */
    flavour: 'apt' | 'snap' | 'apt+snap' | 'none' | 'unknown';
    version?: string;
    running: boolean;
  };
  /** per inventory registry: whether the running dockerd treats it as insecure (null: dockerd did not answer) */
  registries: { registry: string; insecure: boolean | null }[];
  /** microk8s nodes: registries whose containerd hosts.toml is missing or not ours */
  microk8s?: { missingHostsToml: string[] };
  /** gitlab.caFile: the consumers on this node without the CA (each fails with x509: certificate signed by unknown authority) */
  ca?: { missing: string[] };
  pod: { state: PodState; name?: string; detail?: string };
  /** contactedAt: of the node's runner manager (systemId) when the record names one */
  gitlab: {
    state: GitlabState;
    runnerId?: number;
    systemId?: string;
    contactedAt?: string | null;
    tokenExpiresAt?: string;
    detail?: string;
  };
  /** the contact probe from where the runner runs (its pod): the first hop to GitLab or a registry that fails */
  reach?: ProbeResult;
  /** the node's Docker asked from the runner pod, through the socket its runner uses */
  podDocker?: PodDocker;
  /** runners.metrics: gitlab_runner_jobs summed over its series (jobs running now); null when it could not be read */
  metrics?: { jobs: number | null; detail?: string };
  /** free space and what takes it (src/status/disk.ts) */
  disk?: DiskView;
  /** docker.prune's timer: active, or what systemd says it is; absent when the node has none */
  pruneTimer?: string;
  /** the docker and microk8s snaps installed, and whether snapd holds their refreshes */
  snaps?: { name: string; held: boolean }[];
  healthy: boolean;
  /** why not healthy, one phrase each */
  problems: string[];
}

export interface StatusReport {
  ok: boolean;
  nodes: StatusRow[];
  /** set when the cluster or GitLab could not be asked at all */
  cluster?: { ok: boolean; error?: string };
  gitlab?: { ok: boolean; error?: string };
  /** what is deployed differs from what the inventory says; status judged what is deployed */
  mismatch?: DeployedMismatch[];
  /**
   * Runners runner-fleet still has to delete in GitLab (records kept as retired): a removed node's, kept while its
   * pod finished its jobs, or a replaced one, kept until the cluster carried its successor's token.
   */
  retiring?: RetiringRunner[];
}

export interface RetiringRunner {
  node: string;
  runnerId?: number;
  /** the node is still in the inventory: the runner was replaced */
  replaced: boolean;
}

/** Runners whose records wait to be deleted in GitLab (render or apply keeps them until that is safe). */
export function retiringRunners(inv: Inventory, records: RunnerRecord[]): RetiringRunner[] {
  return records
    .filter((r) => r.retiredAt)
    .map((r) => ({
      node: r.node,
      ...(r.id !== undefined ? { runnerId: r.id } : {}),
      replaced: inv.nodes.some((n) => n.name === r.node),
    }));
}

/** `runner #12 of pi2 (no longer in the inventory) is still in GitLab: …` */
export function describeRetiring(r: RetiringRunner): string {
  const which = `runner #${r.runnerId ?? '?'} of ${r.node}`;
  return r.replaced
    ? `${which} (replaced) is still in GitLab: the next render or apply deletes it once the cluster gives ${r.node} the new token`
    : `${which} (no longer in the inventory) is still in GitLab: the next render or apply deletes it once its pod has finished its jobs and gone`;
}

/** A choice the inventory makes that the fleet does not run (e.g. after `apply --executor shell`). */
export type DeployedMismatch =
  | { kind: 'executor'; deployed: string; inventory: string }
  | { kind: 'placement'; deployed: 'cluster' | 'host'; inventory: 'cluster' | 'host' };

/**
 * The executor to judge: the inventory's when its pods exist (or no pod at all does), else the one the cluster's
 * runner-fleet pods run (most of them), named as a mismatch. `deployed`: each live pod's executor label.
 */
export function chooseExecutor(
  deployed: (string | undefined)[],
  inventory: string,
): { executor: string; mismatch?: DeployedMismatch } {
  const known = deployed.filter((e): e is string => e !== undefined);
  if (known.length === 0 || known.includes(inventory)) return { executor: inventory };
  const counts = new Map<string, number>();
  for (const e of known) counts.set(e, (counts.get(e) ?? 0) + 1);
  const [executor] = [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))[0];
  return { executor, mismatch: { kind: 'executor', deployed: executor, inventory } };
}

export function describeMismatch(m: DeployedMismatch): string {
  switch (m.kind) {
    case 'executor':
      return `the cluster runs the ${m.deployed} executor, the inventory says ${m.inventory} (the last apply had --executor ${m.deployed}; a plain apply switches to ${m.inventory}); judged as deployed`;
    case 'placement':
      return `the runners run ${m.deployed === 'host' ? 'on the hosts' : 'in the cluster'}, the inventory says placement ${m.inventory} (a plain apply moves them)`;
  }
}

/** What gathering found on one node: facts, or why there are none. */
/** `preflight`: what stops the node from ever running a job (src/docker/preflight.ts), as apply would refuse it. */
export type HostView = { facts: HostFacts; preflight?: PreflightProblem[] } | { error: string };

/** Pods of our DaemonSet, or why they could not be listed; 'n/a' when the runners do not live in the cluster. */
export type PodsView = { pods: PodView[] } | { error: string } | 'n/a';

/**
 * A node's runner in GitLab as the API described it, or why we cannot say. With `systemId`, `contactedAt` is that
 * runner manager's (GET /runners/:id/managers): only a runner process asking for jobs moves it, while the runner's
 * own contacted_at also moves on every `POST /runners/verify`, which each apply makes.
 */
export type RunnerView =
  | {
      kind: 'runner';
      id: number;
      contactedAt: string | null;
      paused?: boolean;
      systemId?: string;
      tokenExpiresAt?: string | null;
    }
  | { kind: 'no-record' }
  | { kind: 'unknown'; why: string }
  | { kind: 'error'; id?: number; error: string }
  | { kind: 'n/a' };

export function dockerFlavour(facts: HostFacts): StatusRow['docker']['flavour'] {
  if (facts.aptDocker && facts.snapDocker) return 'apt+snap';
  if (facts.aptDocker) return 'apt';
  if (facts.snapDocker) return 'snap';
  return 'none';
}

export function podState(node: string, view: PodsView): StatusRow['pod'] {
  if (view === 'n/a') return { state: 'n/a' };
  if ('error' in view) return { state: 'unknown', detail: view.error };
  const pods = view.pods.filter((p) => p.spec?.nodeName === node && !p.metadata.deletionTimestamp);
  if (pods.length === 0) return { state: 'missing' };
  const ready = pods.find((p) =>
    p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
  );
  if (ready) return { state: 'ready', name: ready.metadata.name };
  const p = pods[0];
  const cond = p.status?.conditions?.find((c) => c.type === 'Ready');
  return { state: 'not ready', name: p.metadata.name, detail: cond?.reason ?? p.status?.phase };
}

export function gitlabState(view: RunnerView, now: number): StatusRow['gitlab'] {
  switch (view.kind) {
    case 'n/a':
      return { state: 'n/a' };
    case 'no-record':
      return { state: 'no runner', detail: 'no registration record (run apply)' };
    case 'unknown':
      return { state: 'unknown', detail: view.why };
    case 'error':
      return { state: 'unknown', runnerId: view.id, detail: view.error };
    case 'runner': {
      const base = {
        runnerId: view.id,
        contactedAt: view.contactedAt,
        ...(view.systemId ? { systemId: view.systemId } : {}),
        ...(view.tokenExpiresAt ? { tokenExpiresAt: view.tokenExpiresAt } : {}),
      };
      if (!view.contactedAt) return { state: 'never contacted', ...base };
      const age = now - Date.parse(view.contactedAt);
      return {
        state: age <= ONLINE_CONTACT_TIMEOUT_MS ? 'online' : 'offline',
        ...base,
        detail: `last contact ${formatAge(age)} ago`,
      };
    }
  }
}

/** `12s`, `5m`, `3h`, `2d` */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** One node's row: every check the node's setup makes applicable, and whether all of them pass. */
export function statusRow(
  node: NodeSpec,
  inv: Inventory,
  host: HostView,
  pods: PodsView,
  runner: RunnerView,
  now: number,
  metricsAt?: string,
  reach?: ProbeResult,
  podDocker?: PodDocker,
): StatusRow {
  const problems: string[] = [];
  const registries = inv.gitlab.registries;
  let row: StatusRow;
  if ('error' in host) {
    problems.push(`unreachable: ${host.error}`);
    row = {
      node: node.name,
      reachable: false,
      docker: { flavour: 'unknown', running: false },
      registries: registries.map((registry) => ({ registry, insecure: null })),
      pod: podState(node.name, pods),
      gitlab: gitlabState(runner, now),
      healthy: false,
      problems,
    };
  } else {
    const f = host.facts;
    for (const p of host.preflight ?? []) problems.push(`pre-flight: ${p.fact}; fix: ${p.fix}`);
    const flavour = dockerFlavour(f);
    const running = f.docker !== undefined;
    if (flavour === 'none') problems.push('Docker is not installed');
    else if (!running)
      problems.push(
        `dockerd is not answering${f.dockerInfoError ? ` (${f.dockerInfoError.split('\n')[0]})` : ''}`,
      );
    const regs = registries.map((registry) => ({
      registry,
      insecure: f.docker ? registryIsInsecure(f.docker, registry) : null,
    }));
    const ca = inv.gitlab.ca;
    // With the private CA the registries serve HTTPS: no insecure entry is expected, the CA files are.
    const secure = ca ? [] : regs.filter((r) => r.insecure === false).map((r) => r.registry);
    if (secure.length > 0) problems.push(`dockerd does not treat ${secure.join(', ')} as insecure`);
    const withoutCa = ca
      ? caConsumersWithout({
          ca,
          node,
          registries,
          placement: inv.runners.placement,
          executor: inv.runners.executor,
          facts: f,
        })
      : [];
    if (withoutCa.length > 0)
      problems.push(
        `no copy of gitlab.caFile for ${withoutCa.join(', ')}: ${withoutCa.length > 1 ? 'they fail' : 'it fails'} with x509: certificate signed by unknown authority (run apply)`,
      );
    let microk8s: StatusRow['microk8s'];
    if (f.microk8s && node.microk8s) {
      const missing = registries.filter((r) => f.hostsToml[r]?.content !== renderHostsToml(r, ca));
      microk8s = { missingHostsToml: missing };
      if (missing.length > 0)
        problems.push(`microk8s containerd has no runner-fleet hosts.toml for ${missing.join(', ')}`);
    }
    row = {
      node: node.name,
      reachable: true,
      arch: f.arch,
      docker: { flavour, version: f.docker?.version, running },
      registries: regs,
      ...(microk8s ? { microk8s } : {}),
      ...(ca ? { ca: { missing: withoutCa } } : {}),
      pod: podState(node.name, pods),
      gitlab: gitlabState(runner, now),
      healthy: false,
      problems,
    };
  }
  if (inv.runners.metrics && 'facts' in host) {
    const jobs = parseJobs(host.facts.gathered?.sections, metricsAt);
    if (jobs && 'jobs' in jobs) row.metrics = { jobs: jobs.jobs };
    else if (jobs) {
      row.metrics = { jobs: null, detail: jobs.error };
      // Without a pod (or a cluster to ask) the pod column says it already.
      if (inv.runners.placement === 'host' || row.pod.state === 'ready' || row.pod.state === 'not ready')
        problems.push(`metrics: ${jobs.error}`);
    }
  }
  if ('facts' in host) upkeepOf(inv, host.facts, row, problems);
  if (reach) row.reach = reach;
  // The path from where the runner runs first: it says why GitLab saw no contact, or will soon see none.
  if (reach?.kind === 'failed')
    problems.push(describeProbe(reach, inv.runners.placement === 'host' ? 'host' : 'pod'));
  if (podDocker) row.podDocker = podDocker;
  const dockerProblem = podDocker && describePodDocker(row.pod.name ?? 'on this node', podDocker);
  if (dockerProblem) problems.push(dockerProblem);
  const pod = row.pod;
  if (pod.state === 'missing') problems.push('no runner pod on this node');
  else if (pod.state === 'not ready')
    problems.push(`runner pod ${pod.name} is not ready${pod.detail ? ` (${pod.detail})` : ''}`);
  else if (pod.state === 'unknown') problems.push(`runner pod unknown: ${pod.detail ?? 'cluster not asked'}`);
  const gl = row.gitlab;
  if (gl.tokenExpiresAt && Date.parse(gl.tokenExpiresAt) <= now) {
    problems.push(
      `runner #${gl.runnerId}'s token expired at ${gl.tokenExpiresAt} (apply rotates tokens before they expire; now it replaces the runner)`,
    );
  }
  if (gl.state === 'offline') problems.push(`runner #${gl.runnerId} is offline in GitLab (${gl.detail})`);
  else if (gl.state === 'never contacted') {
    problems.push(
      gl.systemId
        ? `runner #${gl.runnerId}: its manager ${gl.systemId} (this node) has never asked GitLab for jobs; is the runner process running?`
        : `runner #${gl.runnerId} has never contacted GitLab`,
    );
  } else if (gl.state === 'no runner') problems.push('no runner registered for this node (run apply)');
  // Only a failed question is a problem; "unknown" because no access token can ask is not.
  else if (gl.state === 'unknown' && runner.kind === 'error') problems.push(`GitLab: ${gl.detail}`);
  row.healthy = problems.length === 0;
  return row;
}

/** Disk use, the prune timer and the snap holds; what the inventory asks for and the node lacks is a problem. */
function upkeepOf(inv: Inventory, f: HostFacts, row: StatusRow, problems: string[]): void {
  const disk = parseDisk(f.gathered?.sections);
  if (disk) row.disk = disk;
  const timer = f.prune && f.prune.timer.sha256 !== 'absent' ? (f.prune.active ?? 'unknown') : undefined;
  if (timer !== undefined) row.pruneTimer = timer;
  if (inv.docker.prune && timer !== 'active')
    problems.push(`docker.prune: the prune timer is ${timer ?? 'not installed'} (run apply)`);
  const snaps = Object.entries(f.snaps?.installed ?? {}).map(([name, s]) => ({ name, held: s!.held }));
  if (snaps.length > 0) row.snaps = snaps;
  const free = snaps.filter((s) => !s.held).map((s) => s.name);
  if (inv.snap.holdRefresh && free.length > 0)
    problems.push(`snap.holdRefresh: snapd may refresh ${free.join(', ')} mid-job (not held; run apply)`);
}

export function buildStatusReport(
  nodes: StatusRow[],
  extra: Pick<StatusReport, 'cluster' | 'gitlab' | 'mismatch' | 'retiring'> = {},
): StatusReport {
  return {
    ok: nodes.every((n) => n.healthy) && extra.cluster?.ok !== false && extra.gitlab?.ok !== false,
    nodes,
    ...extra,
  };
}

function dockerCell(r: StatusRow): string {
  if (!r.reachable) return '?';
  if (r.docker.flavour === 'none') return 'not installed';
  return `${r.docker.flavour} ${r.docker.running ? r.docker.version : 'NOT RUNNING'}`;
}

function registryCell(r: StatusRow, registry: string): string {
  const entry = r.registries.find((x) => x.registry === registry);
  const docker = r.ca
    ? r.ca.missing.some((m) => m.startsWith('dockerd') && m.endsWith(` ${registry}`))
      ? 'NO CA'
      : 'CA'
    : entry?.insecure === true
      ? 'insecure'
      : entry?.insecure === false
        ? 'SECURE'
        : '?';
  if (!r.microk8s) return docker;
  return `${docker}, ${r.microk8s.missingHostsToml.includes(registry) ? 'NO hosts.toml' : 'hosts.toml'}`;
}

function tokenAge(expiresAt: string, now: number): string {
  const left = Date.parse(expiresAt) - now;
  return left > 0 ? `expires in ${formatAge(left)}` : 'EXPIRED';
}

function gitlabCell(r: StatusRow, now: number): string {
  const g = r.gitlab;
  const id = g.runnerId !== undefined ? `#${g.runnerId} ` : '';
  const expiry = g.tokenExpiresAt ? `, token ${tokenAge(g.tokenExpiresAt, now)}` : '';
  if (g.state === 'online' || g.state === 'offline')
    return `${id}${g.state} (${g.detail?.replace(/^last contact /, '')}${expiry})`;
  if (g.state === 'unknown' && g.detail && !r.problems.some((p) => p.startsWith('GitLab:')))
    return `${id}unknown (${g.detail})`;
  return `${id}${g.state}`;
}

function upkeepLine(r: StatusRow): string {
  const parts = [
    ...(r.disk ? [describeDisk(r.disk)] : []),
    ...(r.pruneTimer ? [`prune timer ${r.pruneTimer}`] : []),
    ...(r.snaps
      ? [`snaps: ${r.snaps.map((s) => `${s.name} ${s.held ? 'held' : 'refreshes on its own'}`).join(', ')}`]
      : []),
  ];
  return `  ${r.node}: ${parts.join('; ')}`;
}

/** The table people read: one row per node, then one line per problem. Plain text, no escape codes. */
export function formatStatusTable(
  report: StatusReport,
  registries: string[],
  now: number = Date.now(),
): string {
  // A JOBS column only when the runners export metrics (runners.metrics).
  const jobs = report.nodes.some((r) => r.metrics);
  // DISK FREE once a node's gather read it (status's own gather does).
  const disk = report.nodes.some((r) => r.disk);
  const header = [
    'NODE',
    'SSH',
    'ARCH',
    'DOCKER',
    ...registries.map((r) => `REGISTRY ${r}`),
    'RUNNER POD',
    'GITLAB',
    ...(jobs ? ['JOBS'] : []),
    ...(disk ? ['DISK FREE'] : []),
    'HEALTHY',
  ];
  const rows = report.nodes.map((r) => [
    r.node,
    r.reachable ? 'ok' : 'UNREACHABLE',
    r.arch ?? '?',
    dockerCell(r),
    ...registries.map((reg) => registryCell(r, reg)),
    r.pod.state === 'not ready' ? 'NOT READY' : r.pod.state === 'missing' ? 'MISSING' : r.pod.state,
    gitlabCell(r, now),
    ...(jobs ? [r.metrics ? (r.metrics.jobs === null ? '?' : String(r.metrics.jobs)) : '?'] : []),
    ...(disk ? [freeCell(r.disk)] : []),
    r.healthy ? 'yes' : 'NO',
  ]);
  const widths = header.map((_, c) => Math.max(...[header, ...rows].map((row) => row[c].length)));
  const lines = [header, ...rows].map((row) =>
    row
      .map((cell, c) => cell.padEnd(widths[c]))
      .join('  ')
      .trimEnd(),
  );
  const problems = report.nodes.flatMap((r) => r.problems.map((p) => `  ${r.node}: ${p}`));
  const notes = [
    ...(report.mismatch ?? []).map((m) => `Note: ${describeMismatch(m)}.`),
    ...(report.retiring ?? []).map((r) => `Note: ${describeRetiring(r)}.`),
  ];
  for (const [name, s] of [
    ['cluster', report.cluster],
    ['gitlab', report.gitlab],
  ] as const) {
    if (s && !s.ok) problems.push(`  ${name}: ${s.error}`);
  }
  const unhealthy = report.nodes.filter((n) => !n.healthy).length;
  const verdict = report.ok
    ? `All ${report.nodes.length} node(s) healthy.`
    : `${unhealthy} of ${report.nodes.length} node(s) not healthy.`;
  const disks = report.nodes.filter((r) => r.disk || r.pruneTimer || r.snaps).map(upkeepLine);
  return [
    ...lines,
    ...(disks.length > 0 ? ['', 'Disks and snaps:', ...disks] : []),
    ...(problems.length > 0 ? ['', 'Problems:', ...problems] : []),
    ...(notes.length > 0 ? ['', ...notes] : []),
    '',
    verdict,
  ].join('\n');
}
