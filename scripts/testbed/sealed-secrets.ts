// Test-fleet service `sealed-secrets`: the real Sealed Secrets controller (built by scripts/build-kubeseal.sh) as a
// pod in the test cluster, with its own key, reached by kubeseal through the apiserver as in any cluster.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { parse } from 'yaml';
import { clusterBinDir } from './cluster.js';
import { IMAGE_PATHS } from './images.js';
import { cacheRoot } from './paths.js';
import { REGISTRY } from './registry.js';
import { sh, waitFor } from './procs.js';
import type { TestbedService } from './services.js';

export const SEALED_SECRETS_VERSION = 'v0.40.0';
/** The Helm chart's names (kubeseal's defaults are sealed-secrets-controller): the inventory must name them. */
export const CONTROLLER = { name: 'sealed-secrets', namespace: 'kube-system' } as const;

export function controllerBinary(): string {
  return join(cacheRoot(), 'bin', `sealed-secrets-controller-${SEALED_SECRETS_VERSION}`);
}

/** The CRD as the project ships it, read from the Go module cache the controller was built from. */
function crdFile(): string {
  const mod = process.env.GOMODCACHE ?? join(cacheRoot(), 'gomod');
  return join(
    mod,
    `github.com/bitnami-labs/sealed-secrets@${SEALED_SECRETS_VERSION}`,
    'helm/sealed-secrets/crds/bitnami.com_sealedsecrets.yaml',
  );
}

/**
 * What the controller's own manifests grant it (controller.jsonnet: the cluster-wide unsealer role), a ServiceAccount
 * to run as, a Service, and the controller as a pod: the test base image with the cached binary mounted from this
 * machine (no image of its own to build). Host network, because kubeseal --fetch-cert goes through the apiserver's
 * service proxy, which dials the pod's IP and only reaches the nodes' own addresses here (pod networks are per node).
 */
function objects(node: string, image: string, apiserver: URL): unknown[] {
  const { name, namespace } = CONTROLLER;
  const labels = { name };
  const bin = dirname(controllerBinary());
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'secrets-unsealer' },
      rules: [
        { apiGroups: ['bitnami.com'], resources: ['sealedsecrets'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['bitnami.com'], resources: ['sealedsecrets/status'], verbs: ['update'] },
        {
          apiGroups: [''],
          resources: ['secrets'],
          verbs: ['get', 'list', 'create', 'update', 'delete', 'watch'],
        },
        { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
        { apiGroups: [''], resources: ['namespaces'], verbs: ['get'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'sealed-secrets-controller' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'secrets-unsealer' },
      subjects: [{ kind: 'ServiceAccount', name, namespace }],
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace },
      spec: { selector: labels, ports: [{ name: 'http', port: 8080, targetPort: 8080 }] },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace },
      spec: {
        replicas: 1,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            serviceAccountName: name,
            hostNetwork: true,
            nodeSelector: { 'kubernetes.io/hostname': node },
            containers: [
              {
                name: 'controller',
                image,
                command: [`/controller/${basename(controllerBinary())}`],
                // Real flags; 2048-bit keys because every up makes a fresh key (the default is 4096).
                args: ['--key-size=2048'],
                // No kube-proxy in the test cluster: the kubernetes Service's ClusterIP leads nowhere.
                env: [
                  { name: 'KUBERNETES_SERVICE_HOST', value: apiserver.hostname },
                  { name: 'KUBERNETES_SERVICE_PORT', value: apiserver.port },
                ],
                volumeMounts: [{ name: 'bin', mountPath: '/controller', readOnly: true }],
              },
            ],
            volumes: [{ name: 'bin', hostPath: { path: bin, type: 'Directory' } }],
          },
        },
      },
    },
  ];
}

export const sealedSecretsService: TestbedService = {
  name: 'sealed-secrets',
  async start(ctx) {
    const binary = controllerBinary();
    if (!existsSync(binary) || !existsSync(crdFile()))
      throw new Error(`${binary} or its CRD is missing: run bash scripts/build-kubeseal.sh (setup.sh does)`);
    const admin = join(ctx.stateRoot, 'services', 'cluster', 'k8s', 'admin.kubeconfig');
    const kubectl = join(await clusterBinDir(), 'kubectl');
    const k = (args: string[]) => sh`${kubectl} --kubeconfig ${admin} ${args}`;
    await k(['apply', '--server-side', '-f', crdFile()]);
    await k(['wait', '--for=condition=Established', 'crd/sealedsecrets.bitnami.com', '--timeout=30s']);
    const cfg = parse(readFileSync(admin, 'utf8')) as { clusters: { cluster: { server: string } }[] };
    const image = `${REGISTRY}/${IMAGE_PATHS.base.repository}:${IMAGE_PATHS.base.tag}`;
    const items = objects(ctx.nodes[0].name, image, new URL(cfg.clusters[0].cluster.server));
    const list = join(ctx.dir, 'objects.json');
    writeFileSync(list, JSON.stringify({ apiVersion: 'v1', kind: 'List', items }));
    await k(['apply', '--server-side', '-f', list]);
    const { name, namespace } = CONTROLLER;
    const cert = [
      'get',
      '--raw',
      `/api/v1/namespaces/${namespace}/services/http:${name}:http/proxy/v1/cert.pem`,
    ];
    const served = await waitFor(async () => (await k(cert).nothrow()).exitCode === 0, 120_000, 1000);
    if (!served) {
      const pods = (await k(['get', 'pods', '-n', namespace, '-l', `name=${name}`, '-o', 'wide']).nothrow())
        .stdout;
      throw new Error(`the Sealed Secrets controller served no certificate within 120 s:\n${pods}`);
    }
    ctx.log(`sealed-secrets controller ${namespace}/${name} on ${ctx.nodes[0].name}`);
    return { kubernetes: { sealedSecrets: { controllerName: name, controllerNamespace: namespace } } };
  },
  async stop() {
    // The controller is a pod: it goes with the cluster.
  },
};
