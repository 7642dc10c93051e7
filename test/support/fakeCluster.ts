// A cluster in memory for render's tests: objects by kind/namespace/name (create/replace with resourceVersions), nodes
// whose labels belong to field managers, and runner pods that go when their node loses the fleet's label.
import { ApiError } from '../../src/errors.js';
import type { NodeInfo } from '../../src/kube/client.js';
import { objectKey, type KubeObject } from '../../src/kube/objects.js';
import type { PodView } from '../../src/kube/rollout.js';

export class FakeCluster {
  readonly server = 'https://fake-cluster:6443';
  readonly objects = new Map<string, KubeObject>();
  readonly nodes: NodeInfo[];
  /** runner pods by node; a pod goes when its node loses `podLabel`, unless the node is in `stuck` */
  readonly pods = new Set<string>();
  readonly stuck = new Set<string>();
  readonly labelCalls: { node: string; labels: Record<string, string> }[] = [];
  private version = 1;

  constructor(
    nodes: string[],
    readonly podLabel: string,
  ) {
    this.nodes = nodes.map((name) => ({
      name,
      labels: { 'kubernetes.io/arch': 'arm64' },
      ready: true,
      owners: {},
    }));
  }

  async read(ref: Pick<KubeObject, 'kind' | 'metadata'>): Promise<KubeObject | undefined> {
    return structuredClone(this.objects.get(objectKey(ref)));
  }

  async namespaceExists(): Promise<boolean> {
    return true;
  }

  private store(obj: KubeObject): KubeObject {
    const stored = {
      ...structuredClone(obj),
      metadata: { ...obj.metadata, resourceVersion: String(++this.version) },
    };
    this.objects.set(objectKey(obj), stored);
    return structuredClone(stored);
  }

  async apply(obj: KubeObject): Promise<KubeObject> {
    return this.store(obj);
  }

  async create(obj: KubeObject): Promise<KubeObject> {
    if (this.objects.has(objectKey(obj))) throw new ApiError('kubernetes', 409, 'AlreadyExists');
    return this.store(obj);
  }

  async replace(obj: KubeObject): Promise<KubeObject> {
    const live = this.objects.get(objectKey(obj));
    if (!live || live.metadata.resourceVersion !== obj.metadata.resourceVersion)
      throw new ApiError('kubernetes', 409, 'Conflict');
    return this.store(obj);
  }

  async listNodes(): Promise<NodeInfo[]> {
    return structuredClone(this.nodes);
  }

  /** Server-side apply of a Node's labels by one manager: what it no longer names goes. */
  async applyNodeLabels(a: { node: string; manager: string; labels: Record<string, string> }): Promise<void> {
    this.labelCalls.push({ node: a.node, labels: a.labels });
    const n = this.nodes.find((x) => x.name === a.node)!;
    for (const [key, owners] of Object.entries(n.owners)) {
      if (!owners.includes(a.manager) || key in a.labels) continue;
      n.owners[key] = owners.filter((m) => m !== a.manager);
      if (n.owners[key].length === 0) {
        delete n.owners[key];
        delete n.labels[key];
      }
    }
    for (const [key, value] of Object.entries(a.labels)) {
      n.labels[key] = value;
      n.owners[key] = [...new Set([...(n.owners[key] ?? []), a.manager])];
    }
    if (n.labels[this.podLabel] === 'true') this.pods.add(n.name);
    else if (!this.stuck.has(n.name)) this.pods.delete(n.name);
  }

  async listObjects(apiVersion: string, kind: string, namespace?: string): Promise<KubeObject[]> {
    if (kind !== 'Pod') return [];
    return [...this.pods].map((node) => ({
      apiVersion,
      kind,
      metadata: { name: `gitlab-runner-${node}`, namespace },
      spec: { nodeName: node },
    }));
  }

  async listRunnerPods(namespace: string): Promise<PodView[]> {
    return (await this.listObjects('v1', 'Pod', namespace)) as unknown as PodView[];
  }

  async readSecretData(namespace: string, name: string): Promise<Record<string, string> | undefined> {
    const s = this.objects.get(`Secret/${namespace}/${name}`);
    if (!s) return undefined;
    return Object.fromEntries(
      Object.entries((s.data ?? {}) as Record<string, string>).map(([k, v]) => [
        k,
        Buffer.from(v, 'base64').toString('utf8'),
      ]),
    );
  }
}
