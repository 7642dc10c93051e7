// Test-fleet services beyond the registry: the GitLab stand-in and the real Kubernetes test cluster.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StandinServerInfo } from '../../test/gitlab/server.js';
import { clusterBinDir, clusterBinaries, startCluster, stopCluster, type ClusterNodes } from './cluster.js';
import {
  POD_SUBNET,
  removeNodeCgroups,
  restoreSysctls,
  saveSysctls,
  startNodeKubelet,
  stopNodeKubelet,
  type PauseImage,
} from './kubelet.js';
import { PAUSE_REF, ensureTestImages } from './images.js';
import { cacheRoot, net, REPO } from './paths.js';
import { GITLAB_REGISTRY, REGISTRY, makeGitlabRegistryKey, startGitlabRegistry } from './registry.js';
import type { InventoryFields, ServiceContext, TestbedService } from './services.js';

/**
 * The GitLab stand-in as a detached process on this machine's address on the fleet's bridge (nodes, their
 * containers and pods reach it there); the inventory gets its URL and an access-token file reference. GitLab's own
 * container registry comes with it (after it: the registry's token challenge names the stand-in's URL); the
 * inventory does not list that one, so jobs push to it only where a test adds it.
 */
export const gitlabService: TestbedService = {
  name: 'gitlab',
  // GitLab's own registry runs in the registry's network namespace.
  after: ['registry'],
  async start(ctx) {
    const stateFile = join(ctx.dir, 'server.json');
    const tokensDir = join(ctx.dir, 'tokens');
    const { keyFile, certFile } = await makeGitlabRegistryKey(ctx.dir);
    ctx.spawnDaemon('gitlab', join(REPO, 'node_modules', '.bin', 'tsx'), [
      join(REPO, 'test', 'gitlab', 'server.ts'),
      '--host',
      net.hostAddr(),
      '--port',
      '0',
      '--state-file',
      stateFile,
      '--tokens-dir',
      tokensDir,
      '--registry',
      GITLAB_REGISTRY,
      '--registry-key',
      keyFile,
    ]);
    const deadline = Date.now() + 30_000;
    while (!existsSync(stateFile)) {
      if (Date.now() > deadline)
        throw new Error(`GitLab stand-in did not start within 30 s (see ${join(ctx.dir, 'gitlab.log')})`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const info = JSON.parse(readFileSync(stateFile, 'utf8')) as StandinServerInfo;
    ctx.log(`gitlab stand-in on ${info.url}`);
    await startGitlabRegistry(ctx, `${info.url}/jwt/auth`, certFile);
    return {
      gitlab: {
        url: info.url,
        accessToken: `file:${info.tokenFiles['access-token'] ?? join(tokensDir, 'access-token')}`,
      },
    };
  },
  async stop() {
    // spawnDaemon recorded the process; `down` ends it.
  },
};

/** Nodes the cluster has that the inventory does not: the DaemonSet must not land there. */
export const EXTRA_CLUSTER_NODES = ['edge-extra'];

/**
 * RUNNER_FLEET_TESTBED_KWOK=all: kwok plays every node (big benchmark fleets: a real node costs ~130 MiB and a
 * second of CPU to start). Otherwise each fleet node runs containerd and a real kubelet, and kwok only the
 * cluster's extra nodes.
 */
export function kwokForAll(): boolean {
  return process.env.RUNNER_FLEET_TESTBED_KWOK === 'all';
}

/** The sandbox image every node's containerd imports (helper "images": scripts/testbed/images.ts). */
async function pauseImage(): Promise<PauseImage> {
  // ensureTestImages re-hashes every image's inputs (~15 s warm); the pause archive alone is enough here.
  const cached = join(cacheRoot(), 'images', 'pause.oci.tar');
  if (existsSync(cached)) return { ociArchive: cached, ref: PAUSE_REF };
  return (await ensureTestImages()).pause;
}

export interface ClusterServiceOptions {
  /** Node objects no fleet node stands behind (kwok plays them); default EXTRA_CLUSTER_NODES */
  extraNodes?: string[];
}

/**
 * The cluster service. Its prepare step builds the binaries (a cold machine compiles them from Go modules) while the
 * nodes and the services before it start. Without kwok-played nodes (no extra node, real kubelets) kwok is neither
 * built nor run.
 */
export function makeClusterService(opts: ClusterServiceOptions = {}): TestbedService<string> {
  const extraNodes = opts.extraNodes ?? EXTRA_CLUSTER_NODES;
  return {
    name: 'cluster',
    // The nodes' containerd is told about the registry; nothing runs on it before the tests.
    after: ['registry'],
    // Before the nodes exist: which binaries depends only on whether there are fleet nodes, and `up` has one at least.
    prepare: ({ signal }) =>
      clusterBinDir(clusterBinaries(clusterNodes(['a fleet node'], extraNodes)), signal),
    start: (ctx, binDir) => startClusterService(ctx, extraNodes, binDir),
    stop: stopClusterService,
  };
}

export const clusterService = makeClusterService();

/** The fleet's nodes as real kubelets, or all played by kwok (RUNNER_FLEET_TESTBED_KWOK=all), and the extra nodes. */
function clusterNodes(fleet: string[], extraNodes: string[]): ClusterNodes {
  return kwokForAll()
    ? { nodes: fleet, kubelets: [], extraNodes }
    : { nodes: [], kubelets: fleet, extraNodes };
}

async function startClusterService(
  ctx: ServiceContext,
  extraNodes: string[],
  binDir: string | undefined,
): Promise<InventoryFields> {
  const real = kwokForAll() ? [] : ctx.nodes;
  const pause = real.length > 0 ? await pauseImage() : undefined;
  if (real.length > 0) saveSysctls();
  const cluster = await startCluster({
    stateDir: join(ctx.dir, 'k8s'),
    ...clusterNodes(
      ctx.nodes.map((n) => n.name),
      extraNodes,
    ),
    bindAddress: net.hostAddr(),
    binDir,
    startKubelets: async (plane) => {
      writeFileSync(join(ctx.dir, 'bin-dir'), plane.binDir);
      ctx.log(`starting containerd and kubelet on ${real.length} node(s)`);
      // Four at a time: each is a containerd start, an image import and a kubelet launch (~1 s of CPU).
      const queue = [...real];
      const worker = async (): Promise<void> => {
        for (let node = queue.shift(); node; node = queue.shift()) {
          await startNodeKubelet(node, ctx.stateRoot, {
            binDir: plane.binDir,
            caFile: plane.caFile,
            kubeconfig: plane.nodeKubeconfigs[node.name],
            pause: pause!,
            registry: REGISTRY,
          });
        }
      };
      await Promise.all(Array.from({ length: Math.min(4, real.length) }, worker));
    },
  });
  ctx.log(`kubernetes test cluster on ${cluster.server}`);
  // Real kubelets pull the 155 MB runner image on first use: on a loaded 2-core machine that alone has taken over 60 s.
  // podCidr: the nodes' real pod range, so runner-fleet's DOCKER-USER rules match the pods (src/docker/forwarding.ts).
  return { kubernetes: { kubeconfig: cluster.kubeconfig, rolloutTimeout: 240, podCidr: POD_SUBNET } };
}

async function stopClusterService(ctx: ServiceContext): Promise<void> {
  const binDir = existsSync(join(ctx.dir, 'bin-dir'))
    ? readFileSync(join(ctx.dir, 'bin-dir'), 'utf8').trim()
    : undefined;
  const errors: string[] = [];
  // Kubelets (and their pods) before the control plane: a kubelet without its apiserver cannot finish anything.
  for (const node of ctx.nodes) {
    await stopNodeKubelet(node, ctx.stateRoot, binDir && join(binDir, 'crictl')).catch((e: Error) =>
      errors.push(`${node.name}: ${e.message}`),
    );
  }
  await stopCluster(join(ctx.dir, 'k8s'));
  removeNodeCgroups();
  restoreSysctls();
  if (errors.length > 0) throw new Error(errors.join('; '));
}
