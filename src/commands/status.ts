// `status`: ask every node (one read-only round trip), the cluster and GitLab how the fleet is doing; change nothing.
import type { RunContext } from '../context.js';
import { EXECUTOR_SPECS, type ExecutorSpec } from '../executors.js';
import { gatherFacts } from '../docker/docker-converge.js';
import type { Executor, Inventory, NodeSpec } from '../inventory/types.js';
import { selectNodes } from '../inventory/schema.js';
import { EXECUTOR_LABEL } from '../kube/render.js';
import type { PodView } from '../kube/rollout.js';
import type { Logger } from '../log.js';
import { mapPool } from '../pool.js';
import type { RunnerRecord } from '../runners/records.js';
import { redact, secretValue } from '../secrets.js';
import { withNode } from '../ssh.js';
import { hostRunnerIndexPath, readHostRunnerIndex } from '../host-runner/state.js';
import type { KubeClient } from '../kube/client.js';
import type { PodDocker } from '../status/pod-docker.js';
import { parseReach, probeTargets, reachGatherScript, type ProbeResult } from '../status/probe.js';
import {
  buildStatusReport,
  chooseExecutor,
  statusRow,
  type DeployedMismatch,
  type HostView,
  type PodsView,
  retiringRunners,
  type RetiringRunner,
  type RunnerView,
  type StatusReport,
} from '../status/health.js';
import { nodePreflight, preflight, type NodePreflight } from './apply.js';
import { describeProblems } from '../docker/preflight.js';
import { AUTH_MODES, authToken, withRunners } from '../gitlab/auth-modes.js';
import { hostMetricsAddress, metricsGatherScript, metricsTarget } from '../status/metrics.js';
import { readRunnerView } from '../status/contact.js';
import { diskGatherScript } from '../status/disk.js';

const messageOf = (err: unknown) => redact(err instanceof Error ? err.message : String(err)).split('\n')[0];

/**
 * `metricsAt`: where the node reaches its runner's metrics (runners.metrics), known once the pods are listed; the
 * connection is opened meanwhile, and the read joins the gather's one round trip.
 */
async function gatherNode(
  node: NodeSpec,
  inv: Inventory,
  log: Logger,
  preflight: NodePreflight,
  metricsAt?: Promise<string | undefined>,
): Promise<HostView> {
  log.progress(node.name, `connecting to ${node.user}@${node.host}:${node.port}`);
  try {
    const facts = await withNode(node, async (conn) => {
      log.progress(node.name, 'gathering facts (read-only)');
      const metrics = metricsAt ? metricsGatherScript(await metricsAt) : '';
      // Host placement: the runner runs on the node, so the contact probe joins the gather.
      const reach = hostReach(inv) ? reachGatherScript(probeTargets(inv)) : '';
      const extra = [preflight.gatherExtra, metrics, reach, diskGatherScript].filter(Boolean).join('\n');
      return gatherFacts(conn, inv.gitlab.registries, extra);
    });
    const problems = await preflight.check(facts);
    log.done?.(
      node.name,
      problems.length === 0,
      `Docker ${facts.docker?.version ?? 'not answering'}, ${facts.arch}${problems.length > 0 ? `; ${describeProblems(node.name, problems)}` : ''}`,
    );
    return { facts, preflight: problems };
  } catch (err) {
    const error = messageOf(err);
    log.done?.(node.name, false, error);
    return { error };
  }
}

/** Whether status probes the way to GitLab from the node itself: host placement with runners. */
const hostReach = (inv: Inventory) => inv.runners.placement === 'host' && withRunners(inv.gitlab.auth);

/** The probe's answer for a node: from its gather (host placement) or from its pod. */
function reachOf(inv: Inventory, host: HostView, fromPod: ProbeResult | undefined): ProbeResult | undefined {
  if (!hostReach(inv)) return fromPod;
  return 'facts' in host ? parseReach(host.facts.gathered?.sections, probeTargets(inv)) : undefined;
}

interface RunnerSide {
  pods: PodsView;
  runners: Map<string, RunnerView>;
  cluster?: { ok: boolean; error?: string };
  /** the contact probe from each node's running pod */
  reach?: Map<string, ProbeResult>;
  /** the node's Docker asked from each node's running pod */
  docker?: Map<string, PodDocker>;
  mismatch?: DeployedMismatch[];
  retiring?: RetiringRunner[];
}

/** The cluster's pods and records, then each recorded runner's last contact in GitLab. `onPods` hears the pods first. */
async function runnerSide(
  ctx: RunContext,
  nodes: NodeSpec[],
  onPods: (pods: PodView[]) => void = () => {},
): Promise<RunnerSide> {
  const { inventory: inv, log } = ctx;
  const all = (view: RunnerView) => new Map(nodes.map((n) => [n.name, view]));
  if (!withRunners(inv.gitlab.auth)) return { pods: 'n/a', runners: all({ kind: 'n/a' }) };
  if (inv.runners.placement === 'host') {
    // Host-placed runners have no pod; their records live on the nodes, which status does not read yet.
    return { pods: 'n/a', runners: all({ kind: 'unknown', why: 'host placement' }) };
  }

  const ns = inv.kubernetes.namespace;
  let pods: PodsView;
  let records: RunnerRecord[];
  let reach: Promise<Map<string, ProbeResult>>;
  let docker: Promise<Map<string, PodDocker>>;
  const mismatch: DeployedMismatch[] = [];
  try {
    log.progress('cluster', `reading pods and records in ${ns}`);
    // Loaded only when needed: client-node takes over a second to import.
    const [{ typedStore }, client] = await Promise.all([
      import('../placement/records-read.js'),
      ctx.cluster(),
    ]);
    // Every runner-fleet runner pod: what is deployed decides which executor's pods are judged.
    const listed = await client.listRunnerPods(ns);
    const live = listed.filter((p) => !p.metadata.deletionTimestamp);
    const chosen = chooseExecutor(
      live.map((p) => p.metadata.labels?.[EXECUTOR_LABEL]),
      inv.runners.executor,
    );
    if (chosen.mismatch) mismatch.push(chosen.mismatch);
    pods = { pods: listed.filter((p) => p.metadata.labels?.[EXECUTOR_LABEL] === chosen.executor) };
    onPods(pods.pods);
    reach = probePods(client, inv, nodes, pods.pods);
    // Only where the executor gives the pod the node's Docker (the executor registry's pod.nodeDocker).
    // A label no executor of this version knows (a newer one deployed it): asked as before.
    docker =
      (EXECUTOR_SPECS[chosen.executor as Executor] as ExecutorSpec | undefined)?.pod.nodeDocker !== false
        ? dockerFromPods(client, inv, nodes, pods.pods)
        : Promise.resolve(new Map());
    records = await typedStore(client, ns, true).load();
    if (live.length === 0 && records.every((r) => r.retiredAt)) {
      const index = readIndexQuietly(inv);
      if (index.some((n) => nodes.some((m) => m.name === n.name))) {
        // The runners run on the hosts (the last apply had --placement host): no pod is missing, judge as deployed.
        log.done?.('cluster', true, 'no runner pods: the runners run on the hosts');
        return {
          pods: 'n/a',
          runners: all({ kind: 'unknown', why: 'host placement' }),
          mismatch: [{ kind: 'placement', deployed: 'host', inventory: 'cluster' }],
        };
      }
    }
    log.done?.('cluster', true, `${pods.pods.length} runner pod(s), ${records.length} record(s)`);
  } catch (err) {
    const error = messageOf(err);
    log.done?.('cluster', false, error);
    return {
      pods: { error },
      runners: all({ kind: 'unknown', why: 'cluster unreachable' }),
      cluster: { ok: false, error },
    };
  }
  const side = await runnersInGitlab(ctx, nodes, records);
  return {
    pods,
    ...side,
    reach: await reach,
    docker: await docker,
    mismatch,
    retiring: retiringRunners(inv, records),
  };
}

/** The host-runner index beside the inventory, or nothing when it cannot be read (status only looks). */
function readIndexQuietly(inv: Inventory): { name: string }[] {
  try {
    return readHostRunnerIndex(hostRunnerIndexPath(inv.source));
  } catch {
    return [];
  }
}

/** Each selected node's running pod. */
function runningPodOf(nodes: NodeSpec[], pods: PodView[]): { node: string; pod: string }[] {
  return nodes.flatMap((n) => {
    const pod = pods.find(
      (p) => p.spec?.nodeName === n.name && !p.metadata.deletionTimestamp && p.status?.phase === 'Running',
    );
    return pod ? [{ node: n.name, pod: pod.metadata.name }] : [];
  });
}

/** The contact probe in each selected node's running pod, in parallel (an exec each). */
async function probePods(
  client: KubeClient,
  inv: Inventory,
  nodes: NodeSpec[],
  pods: PodView[],
): Promise<Map<string, ProbeResult>> {
  const { probePod } = await import('../placement/contact.js');
  const running = runningPodOf(nodes, pods);
  const results = await mapPool(running, 4, (r) => probePod(client, inv, r.pod));
  return new Map(running.map((r, i) => [r.node, results[i]]));
}

/** The node's Docker asked from each selected node's running pod: what a job there would meet. */
async function dockerFromPods(
  client: KubeClient,
  inv: Inventory,
  nodes: NodeSpec[],
  pods: PodView[],
): Promise<Map<string, PodDocker>> {
  const { podDockerIn } = await import('../placement/contact.js');
  const running = runningPodOf(nodes, pods);
  const results = await mapPool(running, 4, (r) => podDockerIn(client, inv, r.pod));
  return new Map(running.map((r, i) => [r.node, results[i]]));
}

/** Each node's runner in GitLab through its live record, when the inventory's token can ask. */
async function runnersInGitlab(
  ctx: RunContext,
  nodes: NodeSpec[],
  records: RunnerRecord[],
): Promise<{ runners: Map<string, RunnerView> }> {
  const { inventory: inv, log } = ctx;

  const live = new Map(records.filter((r) => !r.retiredAt).map((r) => [r.node, r]));
  const runners = new Map<string, RunnerView>();
  const auth = inv.gitlab.auth;
  const ref = AUTH_MODES[auth.kind].statusAsksGitlab ? authToken(auth) : undefined;
  if (!ref) {
    for (const n of nodes)
      runners.set(
        n.name,
        live.has(n.name)
          ? { kind: 'unknown', why: `no access token (gitlab.${auth.kind})` }
          : { kind: 'no-record' },
      );
    return { runners };
  }
  const token = secretValue(inv, ref);
  const api = ctx.gitlab();
  log.progress('gitlab', `asking ${inv.gitlab.url} for each runner's last contact`);
  let failures = 0;
  await mapPool(nodes, 4, async (n) => {
    const rec = live.get(n.name);
    if (!rec) return void runners.set(n.name, { kind: 'no-record' });
    const view = await readRunnerView(api, token, rec);
    if (view.kind === 'error') failures++;
    runners.set(n.name, view);
  });
  log.done?.(
    'gitlab',
    failures === 0,
    failures === 0 ? `${nodes.length} runner(s) asked` : `${failures} question(s) failed`,
  );
  return { runners };
}

/** `now`: the clock the rows are judged by (tests). */
export async function runStatus(given: RunContext, now: () => number = Date.now): Promise<StatusReport> {
  const ctx: RunContext = { ...given, inventory: await preflight(given.inventory, given.only) };
  const { inventory: inv, log } = ctx;
  const selected = selectNodes(inv, ctx.only);
  // runners.metrics: a host runner listens on its node; a pod on its pod IP, which the pod list gives.
  const metrics = inv.runners.metrics;
  let podsListed: (pods: PodView[]) => void = () => {};
  const podIps = new Promise<Map<string, string>>((resolve) => {
    podsListed = (pods) =>
      resolve(
        new Map(
          pods
            .filter((p) => p.spec?.nodeName && p.status?.podIP && !p.metadata.deletionTimestamp)
            .map((p) => [p.spec!.nodeName!, p.status!.podIP!]),
        ),
      );
  });
  const targets = new Map<string, string | undefined>();
  const metricsAt = (node: NodeSpec): Promise<string | undefined> | undefined => {
    if (!metrics) return undefined;
    const at =
      inv.runners.placement === 'host'
        ? Promise.resolve(hostMetricsAddress(metrics.address))
        : podIps.then((ips) => ips.get(node.name));
    return at.then((ip) => {
      const target = ip === undefined ? undefined : metricsTarget(ip, metrics.port);
      targets.set(node.name, target);
      return target;
    });
  };
  const checks = nodePreflight(ctx);
  const side = runnerSide(ctx, selected.nodes, podsListed).finally(() => podsListed([]));
  const [hosts, sideResult] = await Promise.all([
    mapPool(selected.nodes, ctx.concurrency, (node) => gatherNode(node, inv, log, checks, metricsAt(node))),
    side,
  ]);
  const at = now();
  const rows = selected.nodes.map((node, i) =>
    statusRow(
      node,
      inv,
      hosts[i],
      sideResult.pods,
      sideResult.runners.get(node.name) ?? { kind: 'n/a' },
      at,
      targets.get(node.name),
      reachOf(inv, hosts[i], sideResult.reach?.get(node.name)),
      sideResult.docker?.get(node.name),
    ),
  );
  return buildStatusReport(rows, {
    ...(sideResult.cluster ? { cluster: sideResult.cluster } : {}),
    ...(sideResult.mismatch?.length ? { mismatch: sideResult.mismatch } : {}),
    ...(sideResult.retiring?.length ? { retiring: sideResult.retiring } : {}),
  });
}
