// One run's settings and its outside clients: made once per command and passed to every step of it.
import type { GitlabClock } from './status/clocks.js';
import { GitlabApi } from './gitlab/api.js';
import type { Inventory } from './inventory/types.js';
import type { KubeClient } from './kube/client.js';
import type { Logger } from './log.js';

export interface RunSettings {
  /** the whole inventory; with its secrets once the command's preflight has read them */
  inventory: Inventory;
  /** `plan`: read and ask (server dry-run) only, write nothing */
  dryRun: boolean;
  /** --only: the nodes this run works on; the other nodes' runners are left as they are */
  only?: string[];
  log: Logger;
  /** nodes worked on at once */
  concurrency: number;
}

/**
 * The settings and the clients, each client made at its first use and then shared by the whole run (client-node
 * takes over a second to import, and with kubernetes.fromNode the kubeconfig costs an SSH round trip).
 * A copy with another inventory or dryRun (`{ ...ctx, dryRun: true }`) shares the same clients.
 */
export interface RunContext extends RunSettings {
  /** `kubernetes.fromNode`: the admin kubeconfig that microk8s prints on that node (once per run); else undefined */
  kubeconfigText(): Promise<string | undefined>;
  /** the inventory's cluster */
  cluster(): Promise<KubeClient>;
  /** the GitLab client */
  gitlab(): GitlabApi;
  /** GitLab's clock against this machine's: one HEAD per run, shared by pre-flight and the contact proof */
  gitlabClock(): Promise<GitlabClock | undefined>;
  /** host placement: the checked package repository key (fetched once, only when a node needs it) */
  repositoryKey(): Promise<Buffer>;
}

/** Stand-ins for the outside systems (tests); each one missing is the real thing. */
export type RunClients = Partial<Pick<RunContext, 'kubeconfigText' | 'cluster' | 'gitlab' | 'repositoryKey'>>;

export function createRunContext(settings: RunSettings, clients: RunClients = {}): RunContext {
  const inv = settings.inventory;
  let kubeconfig: Promise<string | undefined> | undefined;
  let cluster: Promise<KubeClient> | undefined;
  let gitlab: GitlabApi | undefined;
  let key: Promise<Buffer> | undefined;
  let clock: Promise<GitlabClock | undefined> | undefined;
  const kubeconfigText = () => (kubeconfig ??= (clients.kubeconfigText ?? (() => kubeconfigFromNode(inv)))());
  const gitlabApi = () => (gitlab ??= clients.gitlab?.() ?? GitlabApi.fromConfig(inv.gitlab));
  return {
    ...settings,
    kubeconfigText,
    cluster: () => (cluster ??= (clients.cluster ?? (() => connect(inv, kubeconfigText)))()),
    gitlab: gitlabApi,
    gitlabClock: () => {
      if (!clock) {
        clock = gitlabApi().serverClock();
        // Each caller handles a failure its own way; the memo itself is never an unhandled rejection.
        clock.catch(() => undefined);
      }
      return clock;
    },
    repositoryKey: () => (key ??= (clients.repositoryKey ?? (() => fetchRepositoryKey(inv)))()),
  };
}

async function kubeconfigFromNode(inv: Inventory): Promise<string | undefined> {
  const name = inv.kubernetes.fromNode;
  if (!name) return undefined;
  const node = inv.nodes.find((n) => n.name === name)!;
  const { withNode } = await import('./ssh.js');
  return withNode(
    node,
    async (conn) =>
      (await conn.check('microk8s config', { sudo: true, step: `microk8s config on ${name}` })).stdout,
  );
}

/** The one place a cluster client is made: kubeconfig (+context), or the text fetched from kubernetes.fromNode. */
async function connect(
  inv: Inventory,
  kubeconfigText: () => Promise<string | undefined>,
): Promise<KubeClient> {
  // Loaded only when a command needs the cluster.
  const { connectCluster } = await import('./kube/cluster-converge.js');
  return connectCluster(inv.kubernetes, await kubeconfigText());
}

async function fetchRepositoryKey(inv: Inventory): Promise<Buffer> {
  const { loadRepositoryKey } = await import('./host-runner/repository.js');
  return loadRepositoryKey(inv.runners.packageRepository, Math.floor(Date.now() / 1000));
}
