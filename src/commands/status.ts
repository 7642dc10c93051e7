// `status`: ask every node (one read-only round trip), the cluster and GitLab how the fleet is doing; change nothing.
import { GitlabApi } from '../gitlab/api.js';
import { gatherFacts } from '../host/converge.js';
import type { Executor, Inventory, NodeSpec } from '../inventory/types.js';
import { selectNodes } from '../inventory/schema.js';
import { EXECUTOR_LABEL } from '../kube/render.js';
import type { PodView } from '../kube/rollout.js';
import type { Logger } from '../log.js';
import { mapPool } from '../pool.js';
import type { RunnerRecord } from '../runners/records.js';
import { redact, resolveSecret } from '../secrets.js';
import { withNode } from '../ssh.js';
import {
  buildStatusReport,
  statusRow,
  type HostView,
  type PodsView,
  type RunnerView,
  type StatusReport,
} from '../status/health.js';
import { preflight } from './converge.js';
import { AUTH_MODES, authToken, withRunners } from '../gitlab/auth-modes.js';
import { metricsGatherScript, metricsTarget } from '../status/metrics.js';
import { readRunnerView } from '../status/contact.js';

export interface StatusOptions {
  concurrency: number;
  log: Logger;
  executor: Executor;
  only?: string[];
  now?: () => number;
}

const messageOf = (err: unknown) => redact(err instanceof Error ? err.message : String(err)).split('\n')[0];

/**
 * `metricsAt`: where the node reaches its runner's metrics (runners.metrics), known once the pods are listed; the
 * connection is opened meanwhile, and the read joins the gather's one round trip.
 */
async function gatherNode(
  node: NodeSpec,
  inv: Inventory,
  log: Logger,
  metricsAt?: Promise<string | undefined>,
): Promise<HostView> {
  log.progress(node.name, `connecting to ${node.user}@${node.host}:${node.port}`);
  try {
    const facts = await withNode(node, async (conn) => {
      log.progress(node.name, 'gathering facts (read-only)');
      const extra = metricsAt ? metricsGatherScript(await metricsAt) : '';
      return gatherFacts(conn, inv.gitlab.registries, extra);
    });
    log.done?.(node.name, true, `Docker ${facts.docker?.version ?? 'not answering'}, ${facts.arch}`);
    return { facts };
  } catch (err) {
    const error = messageOf(err);
    log.done?.(node.name, false, error);
    return { error };
  }
}

interface RunnerSide {
  pods: PodsView;
  runners: Map<string, RunnerView>;
  cluster?: { ok: boolean; error?: string };
}

/** The cluster's pods and records, then each recorded runner's last contact in GitLab. `onPods` hears the pods first. */
async function runnerSide(
  inv: Inventory,
  nodes: NodeSpec[],
  opts: StatusOptions,
  onPods: (pods: PodView[]) => void = () => {},
): Promise<RunnerSide> {
  const { log } = opts;
  const all = (view: RunnerView) => new Map(nodes.map((n) => [n.name, view]));
  if (!withRunners(inv.gitlab.auth)) return { pods: 'n/a', runners: all({ kind: 'n/a' }) };
  if (inv.runners.placement === 'host') {
    // Host-placed runners have no pod; their records live on the nodes (issue 5), which status does not read yet.
    return { pods: 'n/a', runners: all({ kind: 'unknown', why: 'host placement' }) };
  }

  const ns = inv.kubernetes.namespace;
  let pods: PodsView;
  let records: RunnerRecord[];
  try {
    log.progress('cluster', `reading pods and records in ${ns}`);
    // Loaded only when needed: client-node takes over a second to import.
    const [{ connectCluster }, { kubeconfigFromNode, typedStore }] = await Promise.all([
      import('../kube/converge.js'),
      import('../placement/records.js'),
    ]);
    const client = connectCluster(inv.kubernetes, await kubeconfigFromNode(inv));
    const selector = `app.kubernetes.io/name=gitlab-runner,${EXECUTOR_LABEL}=${opts.executor}`;
    pods = { pods: (await client.listObjects('v1', 'Pod', ns, selector)) as unknown as PodView[] };
    onPods(pods.pods);
    records = await typedStore(client, ns, true).load();
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
    return { pods, runners };
  }
  const token = resolveSecret(ref);
  const api = GitlabApi.fromConfig(inv.gitlab);
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
  return { pods, runners };
}

export async function runStatus(inv: Inventory, opts: StatusOptions): Promise<StatusReport> {
  const selected = selectNodes(inv, opts.only);
  preflight(selected);
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
        ? Promise.resolve('127.0.0.1')
        : podIps.then((ips) => ips.get(node.name));
    return at.then((ip) => {
      const target = ip === undefined ? undefined : metricsTarget(ip, metrics.port);
      targets.set(node.name, target);
      return target;
    });
  };
  const side = runnerSide(inv, selected.nodes, opts, podsListed).finally(() => podsListed([]));
  const [hosts, sideResult] = await Promise.all([
    mapPool(selected.nodes, opts.concurrency, (node) => gatherNode(node, inv, opts.log, metricsAt(node))),
    side,
  ]);
  const now = (opts.now ?? Date.now)();
  const rows = selected.nodes.map((node, i) =>
    statusRow(
      node,
      inv,
      hosts[i],
      sideResult.pods,
      sideResult.runners.get(node.name) ?? { kind: 'n/a' },
      now,
      targets.get(node.name),
    ),
  );
  return buildStatusReport(rows, sideResult.cluster ? { cluster: sideResult.cluster } : {});
}
