// Test-fleet services beyond the registry: the GitLab stand-in and the real Kubernetes test cluster.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StandinServerInfo } from '../../test/gitlab/server.js';
import { startCluster, stopCluster } from './cluster.js';
import { net } from './paths.js';
import type { TestbedService } from './services.js';

const REPO = join(import.meta.dirname, '..', '..');

/**
 * The GitLab stand-in as a detached process on this machine's address on the fleet's bridge (nodes, their
 * containers and pods reach it there); the inventory gets its URL and an access-token file reference.
 */
export const gitlabService: TestbedService = {
  name: 'gitlab',
  async start(ctx) {
    const stateFile = join(ctx.dir, 'server.json');
    const tokensDir = join(ctx.dir, 'tokens');
    ctx.spawnDaemon('gitlab', join(REPO, 'node_modules', '.bin', 'tsx'), [join(REPO, 'test', 'gitlab', 'server.ts'), '--host', net.hostAddr(), '--port', '0', '--state-file', stateFile, '--tokens-dir', tokensDir]);
    const deadline = Date.now() + 30_000;
    while (!existsSync(stateFile)) {
      if (Date.now() > deadline) throw new Error(`GitLab stand-in did not start within 30 s (see ${join(ctx.dir, 'gitlab.log')})`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const info = JSON.parse(readFileSync(stateFile, 'utf8')) as StandinServerInfo;
    ctx.log(`gitlab stand-in on ${info.url}`);
    return { gitlab: { url: info.url, accessToken: `file:${info.tokenFiles['access-token'] ?? join(tokensDir, 'access-token')}` } };
  },
  async stop() {
    // spawnDaemon recorded the process; `down` ends it.
  },
};

/** Nodes the cluster has that the inventory does not: the DaemonSet must not land there. */
export const EXTRA_CLUSTER_NODES = ['edge-extra'];

export const clusterService: TestbedService = {
  name: 'cluster',
  async start(ctx) {
    const cluster = await startCluster({ stateDir: join(ctx.dir, 'k8s'), nodes: ctx.nodes.map((n) => n.name), extraNodes: EXTRA_CLUSTER_NODES });
    ctx.log(`kubernetes test cluster on ${cluster.server}`);
    return { kubernetes: { kubeconfig: cluster.kubeconfig, rolloutTimeout: 60 } };
  },
  async stop(ctx) {
    await stopCluster(join(ctx.dir, 'k8s'));
  },
};
