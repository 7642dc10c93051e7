// Test-fleet service `flux`: Flux's real source-controller and kustomize-controller (built by scripts/build-flux.sh)
// as pods in the test cluster, with the CRDs from the Go modules they were built from.
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { parse } from 'yaml';
import { clusterBinDir } from './cluster.js';
import { IMAGE_PATHS } from './images.js';
import { cacheRoot } from './paths.js';
import { REGISTRY } from './registry.js';
import { sh, waitFor } from './procs.js';
import type { TestbedService } from './services.js';

export const FLUX_VERSIONS = { source: 'v1.9.6', kustomize: 'v1.9.6' } as const;
export const FLUX_NAMESPACE = 'flux-system';
/** source-controller's artifact server, on the node's own address (host network) */
const STORAGE_PORT = 19090;

export const fluxBinary = (which: 'source' | 'kustomize') =>
  join(cacheRoot(), 'bin', `flux-${which}-controller-${FLUX_VERSIONS[which]}`);

/**
 * Every CRD of both modules as the projects ship them (config/crd/bases), read from the Go module cache: each
 * controller watches all its kinds (and kustomize-controller every source kind), and does not start without them.
 */
function crdFiles(): string[] {
  const mod = process.env.GOMODCACHE ?? join(cacheRoot(), 'gomod');
  return [
    ['source-controller', FLUX_VERSIONS.source],
    ['kustomize-controller', FLUX_VERSIONS.kustomize],
  ].flatMap(([m, v]) => {
    const dir = join(mod, `github.com/fluxcd/${m}@${v}`, 'config/crd/bases');
    return existsSync(dir)
      ? readdirSync(dir)
          .filter((f) => f.endsWith('.yaml'))
          .map((f) => join(dir, f))
      : [dir];
  });
}

/**
 * One Deployment per controller on the first node: the test base image with the cached binary mounted from this
 * machine, host network (pod networks are per node here, and kustomize-controller fetches source-controller's
 * artifacts by the address it advertises), ports moved off the sealed-secrets controller's 8080. Both run as
 * cluster-admin, as Flux's own install binds kustomize-controller (it applies whatever the repository holds).
 */
function objects(node: { name: string; host: string }, image: string, apiserver: URL): unknown[] {
  const ns = FLUX_NAMESPACE;
  const bin = dirname(fluxBinary('source'));
  const env = [
    { name: 'KUBERNETES_SERVICE_HOST', value: apiserver.hostname },
    { name: 'KUBERNETES_SERVICE_PORT', value: apiserver.port },
    { name: 'RUNTIME_NAMESPACE', value: ns },
  ];
  const deployment = (
    name: string,
    binary: string,
    args: string[],
    volumes: unknown[],
    mounts: unknown[],
  ) => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: ns },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          serviceAccountName: name,
          hostNetwork: true,
          nodeSelector: { 'kubernetes.io/hostname': node.name },
          containers: [
            {
              name: 'manager',
              image,
              command: [`/flux/${basename(binary)}`],
              args,
              env,
              volumeMounts: [{ name: 'bin', mountPath: '/flux', readOnly: true }, ...mounts],
            },
          ],
          volumes: [{ name: 'bin', hostPath: { path: bin, type: 'Directory' } }, ...volumes],
        },
      },
    },
  });
  const common = ['--enable-leader-election=false', '--log-level=info', '--events-addr='];
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } },
    ...['source-controller', 'kustomize-controller'].flatMap((name) => [
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: ns } },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name: `flux-${name}` },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' },
        subjects: [{ kind: 'ServiceAccount', name, namespace: ns }],
      },
    ]),
    deployment(
      'source-controller',
      fluxBinary('source'),
      [
        ...common,
        '--storage-path=/data',
        `--storage-addr=:${STORAGE_PORT}`,
        `--storage-adv-addr=${node.host}:${STORAGE_PORT}`,
        '--metrics-addr=:19080',
        '--health-addr=:19440',
      ],
      [{ name: 'data', emptyDir: {} }],
      [{ name: 'data', mountPath: '/data' }],
    ),
    deployment(
      'kustomize-controller',
      fluxBinary('kustomize'),
      [...common, '--metrics-addr=:19081', '--health-addr=:19441'],
      [{ name: 'tmp', emptyDir: {} }],
      [{ name: 'tmp', mountPath: '/tmp' }],
    ),
  ];
}

export const fluxService: TestbedService = {
  name: 'flux',
  async start(ctx) {
    const missing = [fluxBinary('source'), fluxBinary('kustomize'), ...crdFiles()].filter(
      (f) => !existsSync(f),
    );
    if (missing.length > 0)
      throw new Error(`${missing.join(', ')} missing: run bash scripts/build-flux.sh (setup.sh does)`);
    const admin = join(ctx.stateRoot, 'services', 'cluster', 'k8s', 'admin.kubeconfig');
    const kubectl = join(await clusterBinDir(), 'kubectl');
    const k = (args: string[]) => sh`${kubectl} --kubeconfig ${admin} ${args}`;
    for (const f of crdFiles()) await k(['apply', '--server-side', '-f', f]);
    await k([
      'wait',
      '--for=condition=Established',
      'crd/gitrepositories.source.toolkit.fluxcd.io',
      'crd/kustomizations.kustomize.toolkit.fluxcd.io',
      '--timeout=30s',
    ]);
    const cfg = parse(readFileSync(admin, 'utf8')) as { clusters: { cluster: { server: string } }[] };
    const image = `${REGISTRY}/${IMAGE_PATHS.base.repository}:${IMAGE_PATHS.base.tag}`;
    const list = join(ctx.dir, 'objects.json');
    const items = objects(ctx.nodes[0], image, new URL(cfg.clusters[0].cluster.server));
    writeFileSync(list, JSON.stringify({ apiVersion: 'v1', kind: 'List', items }));
    await k(['apply', '--server-side', '-f', list]);
    const ready = await waitFor(
      async () =>
        (
          await k([
            '-n',
            FLUX_NAMESPACE,
            'wait',
            '--for=condition=Available',
            'deployment/source-controller',
            'deployment/kustomize-controller',
            '--timeout=5s',
          ]).nothrow()
        ).exitCode === 0,
      120_000,
      1000,
    );
    if (!ready) {
      const pods = (await k(['get', 'pods', '-n', FLUX_NAMESPACE, '-o', 'wide']).nothrow()).stdout;
      throw new Error(`Flux's controllers were not available within 120 s:\n${pods}`);
    }
    ctx.log(`flux source-controller and kustomize-controller in ${FLUX_NAMESPACE} on ${ctx.nodes[0].name}`);
    return {};
  },
  async stop() {
    // The controllers are pods: they go with the cluster.
  },
};
