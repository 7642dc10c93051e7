// apply's last word on runners: each node's runner asks GitLab for jobs on its own before apply calls the node
// converged; a runner that does not is named with the first hop it cannot pass, probed from where it runs.
import type { RunContext } from '../context.js';
import { EXECUTOR_SPECS } from '../executors.js';
import { AUTH_MODES, authToken } from '../gitlab/auth-modes.js';
import type { Executor, Inventory, NodeSpec } from '../inventory/types.js';
import type { KubeClient } from '../kube/client.js';
import { EXECUTOR_LABEL } from '../kube/render.js';
import type { PodView } from '../kube/rollout.js';
import type { Logger } from '../log.js';
import type { HostFacts } from '../docker/facts.js';
import { gitlabAheadMs, nodeAheadMs, nodeToGitlab } from '../status/clocks.js';
import type { RunnerRecord } from '../runners/records.js';
import { redact, secretValue } from '../secrets.js';
import { withNode } from '../ssh.js';
import {
  describeLostContact,
  describeNoContact,
  type ContactOutcome,
  readRunnerView,
  systemClock,
  waitForContact,
  type ContactClock,
} from '../status/contact.js';
import { describePodDocker, parsePodDocker, podDockerScript, type PodDocker } from '../status/pod-docker.js';
import {
  describeProbe,
  parseProbe,
  probeScript,
  probeTargets,
  type Hop,
  type ProbeResult,
  type ProbeSite,
} from '../status/probe.js';

/**
 * How often each node's manager is asked meanwhile: GitLab's API, not the runners, takes these requests (two per
 * node and poll). Within a budget of requests per second for the whole fleet, and at most every 2 s a node: a few
 * nodes are asked often, so that a runner's poll (every checkInterval s) is seen soon after it happens (the no-op's
 * wall time is mostly this wait); from 15 nodes on, every 2 s as before.
 */
export function contactPollMs(nodes: number): number {
  const REQUESTS_PER_POLL = 2;
  const REQUESTS_PER_SECOND = 15;
  return Math.min(2000, Math.max(250, Math.ceil((nodes * REQUESTS_PER_POLL * 1000) / REQUESTS_PER_SECOND)));
}
/** The probe's own hops time out after 5–10 s each; this bounds a probe that hangs anyway. */
const PROBE_TIMEOUT_SECONDS = 60;

const messageOf = (err: unknown) => redact(err instanceof Error ? err.message : String(err)).split('\n')[0];

export interface ContactInput {
  /** the run's inventory, log and GitLab client */
  ctx: RunContext;
  /** the live records of the nodes whose runner this run put up */
  records: RunnerRecord[];
  site: ProbeSite;
  /** runs the probe where the node's runner runs */
  probe: (node: string) => Promise<ProbeResult>;
  /** when each node's running runner process started, on GitLab's clock (src/status/clocks.ts), where known */
  starts: ReadonlyMap<string, number>;
  /** when this run began, on GitLab's clock (default: this process's start through GitLab's clock) */
  runStartedAt?: number;
  clock?: ContactClock;
}

/**
 * Waits, up to runners.contactTimeout for all nodes together, for each record's running runner process to have
 * contacted GitLab (waitForContact: since it started, or since this moment), and checks the way there for one whose
 * contact predates this run (judgeContact). Returns the nodes whose runner is not proven, each with why. Without an
 * access token GitLab cannot be asked: the wait is skipped with a warning.
 */
export async function proveContact(input: ContactInput): Promise<Map<string, string>> {
  const { records } = input;
  const { inventory: inv, log } = input.ctx;
  const failed = new Map<string, string>();
  const timeout = inv.runners.contactTimeout;
  if (timeout === 0 || records.length === 0) return failed;
  const auth = inv.gitlab.auth;
  const ref = AUTH_MODES[auth.kind].statusAsksGitlab ? authToken(auth) : undefined;
  if (!ref) {
    log.warn(
      'gitlab',
      `cannot wait for the runners' first contact: gitlab.${auth.kind} cannot read runner managers (an access token can)`,
    );
    return failed;
  }
  const token = secretValue(inv, ref);
  const api = input.ctx.gitlab();
  const clock = input.clock ?? systemClock;
  const deadline = clock.now() + timeout * 1000;
  const runStartedAt =
    input.runStartedAt ??
    performance.timeOrigin + gitlabAheadMs(await input.ctx.gitlabClock().catch(() => undefined));
  const pollMs = contactPollMs(records.length);
  log.progress('gitlab', `waiting up to ${timeout} s for ${records.length} runner(s) to ask GitLab for jobs`);
  await Promise.all(
    records.map(async (rec) => {
      const wait = { deadline, intervalMs: pollMs, startedAt: input.starts.get(rec.node) };
      const outcome = await waitForContact(() => readRunnerView(api, token, rec), wait, clock);
      const why = await judgeContact(input, rec.node, outcome, runStartedAt);
      if (why) {
        log.error(rec.node, why);
        failed.set(rec.node, why);
      }
    }),
  );
  return failed;
}

/** The hops whose failure a probe can be sure of; `http` (no answer, or an odd one) may be the probe's own tools. */
const SURE_HOPS: ReadonlySet<Hop> = new Set<Hop>(['dns', 'tcp', 'tls']);

/**
 * A contact made during this run proves the runner. One from before it (an unchanged runner: behind Workhorse an
 * idle runner's contact stays put) is checked by the probe: the way from where the runner runs to GitLab must still
 * pass its sure hops; anything else the probe finds is a warning. No contact: the probe says which hop fails.
 * Undefined: proven.
 */
async function judgeContact(
  input: ContactInput,
  node: string,
  outcome: ContactOutcome,
  runStartedAt: number,
): Promise<string | undefined> {
  const { log } = input.ctx;
  const probe = () =>
    input.probe(node).catch((err): ProbeResult => ({ kind: 'unknown', why: messageOf(err) }));
  if (outcome.kind === 'contacted') {
    if (Date.parse(outcome.at) >= runStartedAt) {
      log.progress(node, `its runner asked GitLab for jobs (${outcome.at})`);
      return undefined;
    }
    const now = await probe();
    if (now.kind === 'failed' && now.target.kind === 'gitlab' && SURE_HOPS.has(now.hop))
      return describeLostContact(outcome.at, now, input.site);
    if (now.kind === 'failed') log.warn(node, describeProbe(now, input.site));
    else if (now.kind === 'unknown')
      log.warn(
        node,
        `its runner asked GitLab for jobs (${outcome.at}); the way there now is not known: ${now.why}`,
      );
    else log.progress(node, `its runner asked GitLab for jobs (${outcome.at}); the way there still passes`);
    return undefined;
  }
  log.progress(
    node,
    `no contact from its runner; probing the way to GitLab from ${input.site === 'pod' ? 'its pod' : 'the node'}`,
  );
  return describeNoContact(
    input.ctx.inventory.runners.contactTimeout,
    outcome.last,
    await probe(),
    input.site,
  );
}

/** The probe in the node's runner pod (container gitlab-runner), through the exec subresource. */
export async function probeInPod(
  client: KubeClient,
  inv: Inventory,
  executor: Executor,
  node: string,
): Promise<ProbeResult> {
  const ns = inv.kubernetes.namespace;
  const selector = `app.kubernetes.io/name=gitlab-runner,${EXECUTOR_LABEL}=${executor}`;
  const pods = (await client.listObjects('v1', 'Pod', ns, selector)) as unknown as PodView[];
  const pod = pods.find(
    (p) => p.spec?.nodeName === node && !p.metadata.deletionTimestamp && p.status?.phase === 'Running',
  );
  if (!pod) return { kind: 'unknown', why: 'no running runner pod on this node' };
  return probePod(client, inv, pod.metadata.name);
}

/** The probe in one runner pod; a failed exec is an `unknown` result, never a rejection. */
export async function probePod(client: KubeClient, inv: Inventory, pod: string): Promise<ProbeResult> {
  const targets = probeTargets(inv);
  try {
    const r = await client.execInPod(
      inv.kubernetes.namespace,
      pod,
      'gitlab-runner',
      ['sh', '-c', probeScript(targets)],
      PROBE_TIMEOUT_SECONDS,
    );
    return parseProbe(r.stdout, targets);
  } catch (err) {
    return { kind: 'unknown', why: messageOf(err) };
  }
}

/** How long the Docker check in a pod may take: `docker version` answers at once or says it cannot connect. */
const DOCKER_CHECK_TIMEOUT_SECONDS = 30;

/** The node's Docker asked from one runner pod, through the socket its runner uses; never a rejection. */
export async function podDockerIn(client: KubeClient, inv: Inventory, pod: string): Promise<PodDocker> {
  try {
    const r = await client.execInPod(
      inv.kubernetes.namespace,
      pod,
      'gitlab-runner',
      ['sh', '-c', podDockerScript],
      DOCKER_CHECK_TIMEOUT_SECONDS,
    );
    return parsePodDocker(r.stdout);
  } catch (err) {
    return { kind: 'unknown', why: messageOf(err) };
  }
}

/** The running runner pod of each node (this executor's), by node name. */
export async function runningPods(
  client: KubeClient,
  inv: Inventory,
  executor: Executor,
): Promise<Map<string, PodView>> {
  const selector = `app.kubernetes.io/name=gitlab-runner,${EXECUTOR_LABEL}=${executor}`;
  const pods = (await client.listObjects(
    'v1',
    'Pod',
    inv.kubernetes.namespace,
    selector,
  )) as unknown as PodView[];
  const out = new Map<string, PodView>();
  for (const p of pods)
    if (p.spec?.nodeName && !p.metadata.deletionTimestamp && p.status?.phase === 'Running')
      out.set(p.spec.nodeName, p);
  return out;
}

/** When each pod's runner container started its current run, on the node's clock (ms), by node name. */
export function runnerContainerStarts(pods: ReadonlyMap<string, PodView>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [node, pod] of pods) {
    const c = pod.status?.containerStatuses?.find((s) => s.name === 'gitlab-runner');
    const at = Date.parse(c?.state?.running?.startedAt ?? '');
    if (!Number.isNaN(at)) out.set(node, at);
  }
  return out;
}

/** Node-clock start times on GitLab's clock, through each node's clock as its gather read it. */
export async function startsOnGitlabClock(
  ctx: RunContext,
  nodeStarts: ReadonlyMap<string, number>,
  facts: ReadonlyMap<string, Pick<HostFacts, 'nodeClockMs' | 'gatheredAt'>>,
): Promise<Map<string, number>> {
  const gitlab = gitlabAheadMs(await ctx.gitlabClock().catch(() => undefined));
  const out = new Map<string, number>();
  for (const [node, at] of nodeStarts) {
    const f = facts.get(node);
    out.set(node, nodeToGitlab(at, nodeAheadMs(f?.nodeClockMs, f?.gatheredAt), gitlab));
  }
  return out;
}

/**
 * After a rollout (and whatever this run did to dockerd): each of `pods` (by node) still reaches its node's
 * Docker. Returns the nodes whose pod does not, with why.
 */
export async function proveDocker(
  client: KubeClient,
  inv: Inventory,
  executor: Executor,
  pods: ReadonlyMap<string, PodView>,
  log: Logger,
): Promise<Map<string, string>> {
  const failed = new Map<string, string>();
  // Only an executor that gives the pod the node's Docker (the executor registry's pod.nodeDocker) has one to ask.
  if (!EXECUTOR_SPECS[executor].pod.nodeDocker) return failed;
  await Promise.all(
    [...pods].map(async ([node, view]) => {
      const pod = view.metadata.name;
      const d = await podDockerIn(client, inv, pod);
      const why = describePodDocker(pod, d);
      if (why) {
        log.error(node, why);
        failed.set(node, why);
      } else if (d.kind === 'ok') log.progress(node, `its runner pod reaches Docker ${d.version}`);
    }),
  );
  return failed;
}

/** The probe on the node itself (host placement: the runner runs there), over SSH. */
export async function probeOnHost(node: NodeSpec, inv: Inventory): Promise<ProbeResult> {
  const targets = probeTargets(inv);
  // As root, as the runner service runs: its tls-ca-file is root's to read.
  const r = await withNode(node, (conn) => conn.exec(probeScript(targets), { sudo: true }));
  return parseProbe(r.stdout, targets);
}
