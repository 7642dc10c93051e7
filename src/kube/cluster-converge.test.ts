// Converge against the real test cluster (etcd + apiserver + controllers + scheduler, kwok kubelets): rollout, idempotence, prune, labels, failures.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setNodeReady, startCluster, type TestCluster } from '#testbed';
import { requireRoot } from '../../test/support/requireRoot.js';
import { ApiError, InputError } from '../errors.js';
import { parseInventory } from '../inventory/schema.js';
import type { Executor, Inventory } from '../inventory/types.js';
import { KubeClient } from './client.js';
import { convergeCluster, KubeRecordStore } from './cluster-converge.js';
import { NODE_LABEL_MANAGER, type KubeObject } from './objects.js';

const canRun = requireRoot('src/kube/cluster-converge.test.ts (test cluster)');

const FLEET = ['pi1', 'pi2', 'pi3'];
const EXTRA = 'extra1';
const NS = 'gitlab-runner';
const LABEL = `fleet.runner-fleet.dev/${NS}`;

describe.runIf(canRun)('convergeCluster on the test cluster', () => {
  let cluster: TestCluster;
  let stateDir: string;
  let client: KubeClient;

  beforeAll(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'rf-cluster-'));
    const t0 = Date.now();
    cluster = await startCluster({ stateDir, nodes: FLEET, extraNodes: [EXTRA] });
    console.log(`test cluster up in ${((Date.now() - t0) / 1000).toFixed(1)}s at ${cluster.server}`);
    client = KubeClient.load({ kubeconfig: cluster.kubeconfig });
  });

  afterAll(async () => {
    await cluster?.stop();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  const inventory = (nodes = FLEET): Inventory =>
    parseInventory(
      `
gitlab: {url: https://gitlab.lan, registry: gitlab.lan:5050}
nodes:
${nodes.map((n, i) => `  - {name: ${n}, host: 127.0.0.${11 + i}}`).join('\n')}
kubernetes: {kubeconfig: ${cluster.kubeconfig}, namespace: ${NS}, rolloutTimeout: 60}
`,
      join(stateDir, 'inventory.yaml'),
    );
  const tokenOf = (node: string, v = 1) => `glrt-fake${node}token${v}xyz`;
  const configs = (nodes = FLEET, v = 1) =>
    Object.fromEntries(nodes.map((n) => [n, `[[runners]]\n  name = "${n}"\n  token = "${tokenOf(n, v)}"\n`]));
  const tokens = (nodes = FLEET, v = 1) => Object.fromEntries(nodes.map((n) => [n, tokenOf(n, v)]));
  const converge = (
    executor: Executor,
    opts: { nodes?: string[]; v?: number; dryRun?: boolean; rolloutTimeoutSeconds?: number } = {},
  ) =>
    convergeCluster({
      inventory: inventory(opts.nodes),
      executor,
      configs: configs(opts.nodes, opts.v),
      tokens: tokens(opts.nodes, opts.v),
      dryRun: opts.dryRun ?? false,
      client,
      rolloutTimeoutSeconds: opts.rolloutTimeoutSeconds,
    });

  const get = (kind: string, name: string, apiVersion = 'v1', namespace: string | undefined = NS) =>
    client.read({
      apiVersion,
      kind,
      metadata: { name, namespace: kind === 'Namespace' || kind === 'Node' ? undefined : namespace },
    });
  const list = (apiVersion: string, kind: string, namespace?: string) =>
    client.listObjects(apiVersion, kind, namespace);
  const podsByNode = async (executor: Executor) => {
    const pods = (await list('v1', 'Pod', NS)) as (KubeObject & {
      spec: { nodeName?: string };
      status?: { conditions?: { type: string; status: string }[] };
    })[];
    const mine = pods.filter(
      (p) => p.metadata.labels?.['runner-fleet.dev/executor'] === executor && !p.metadata.deletionTimestamp,
    );
    return Object.fromEntries(
      mine.map((p) => [
        p.spec.nodeName ?? '',
        p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
      ]),
    );
  };
  const eventually = async (what: string, test: () => Promise<boolean>, ms = 20_000) => {
    const deadline = Date.now() + ms;
    while (!(await test())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  const managedVersions = async () => {
    const objs = [...(await client.listManaged(NS)), (await get('Namespace', NS))!];
    const nodes = await Promise.all([...FLEET, EXTRA].map((n) => get('Node', n)));
    // Node resourceVersions move with kwok's heartbeats; the labels are what converge could touch.
    return {
      objects: Object.fromEntries(
        objs.map((o) => [`${o.kind}/${o.metadata.name}`, o.metadata.resourceVersion]),
      ),
      labels: nodes.map((n) => n?.metadata.labels?.[LABEL]),
    };
  };

  it('dry-run on an empty cluster plans every object and the labels, and writes nothing', async () => {
    const report = await converge('dood', { dryRun: true });
    expect(report.ok, report.error).toBe(true);
    expect(report.changes.map((c) => c.detail)).toEqual([
      `create Namespace ${NS}`,
      // Labels before the DaemonSet: a DaemonSet never selects bare nodes (what matters when the label changes).
      `label node pi1 ${LABEL}=true`,
      `label node pi2 ${LABEL}=true`,
      `label node pi3 ${LABEL}=true`,
      `create ServiceAccount ${NS}/gitlab-runner`,
      `create Secret ${NS}/runner-fleet-config`,
      `create DaemonSet ${NS}/gitlab-runner-dood`,
    ]);
    expect(await get('Namespace', NS)).toBeUndefined();
    for (const n of FLEET) expect((await get('Node', n))?.metadata.labels?.[LABEL]).toBeUndefined();
  });

  it.each<Executor>(['shell', 'dood', 'dind'])(
    '%s: objects created, DaemonSet Ready on every inventory node and not on the extra node',
    async (executor) => {
      const report = await converge(executor);
      expect(report.ok, report.error).toBe(true);
      expect(report.changes.some((c) => c.detail.includes(`DaemonSet ${NS}/gitlab-runner-${executor}`))).toBe(
        true,
      );
      const pods = await podsByNode(executor);
      expect(pods).toEqual({ pi1: true, pi2: true, pi3: true });
      expect(pods[EXTRA]).toBeUndefined();
      for (const n of FLEET) expect((await get('Node', n))?.metadata.labels?.[LABEL]).toBe('true');
      expect((await get('Node', EXTRA))?.metadata.labels?.[LABEL]).toBeUndefined();
    },
  );

  it('switching dood → dind removes the old DaemonSet and its pods', async () => {
    expect((await converge('dood')).ok).toBe(true);
    const report = await converge('dind');
    expect(report.ok, report.error).toBe(true);
    expect(report.changes).toContainEqual({
      step: 'prune',
      detail: `delete DaemonSet ${NS}/gitlab-runner-dood (no longer wanted)`,
    });
    expect(await get('DaemonSet', 'gitlab-runner-dood', 'apps/v1')).toBeUndefined();
    await eventually('dood pods to go', async () => Object.keys(await podsByNode('dood')).length === 0);
    expect(await podsByNode('dind')).toEqual({ pi1: true, pi2: true, pi3: true });
  });

  it('a second converge reports no change and bumps no resourceVersion', async () => {
    const before = await managedVersions();
    const report = await converge('dind');
    expect(report).toEqual({ ok: true, changes: [] });
    expect(await managedVersions()).toEqual(before);
  });

  it('dry-run of a changed config names the Secret key, never its value, and changes nothing', async () => {
    const before = await managedVersions();
    const report = await converge('dind', { v: 2, dryRun: true });
    expect(report.ok, report.error).toBe(true);
    expect(report.changes).toEqual([
      {
        step: 'apply',
        detail: `Secret ${NS}/runner-fleet-config: update data: changed pi1.config.toml, pi2.config.toml, pi3.config.toml`,
      },
    ]);
    expect(JSON.stringify(report)).not.toMatch(/glrt-|Z2xydC/);
    expect(await managedVersions()).toEqual(before);
  });

  it('tokens are in the config Secret and nowhere else; no ConfigMap holds one', async () => {
    const secret = await get('Secret', 'runner-fleet-config');
    const data = secret?.data as Record<string, string>;
    expect(Object.keys(data).sort()).toEqual(['pi1.config.toml', 'pi2.config.toml', 'pi3.config.toml']);
    expect(Buffer.from(data['pi2.config.toml'], 'base64').toString()).toContain(tokenOf('pi2'));
    const everythingElse = [
      ...(await list('v1', 'ConfigMap')),
      ...(await list('apps/v1', 'DaemonSet', NS)),
      ...(await list('v1', 'Pod', NS)),
      ...(await list('v1', 'ServiceAccount', NS)),
      (await get('Namespace', NS))!,
    ];
    for (const o of everythingElse)
      expect(JSON.stringify(o), `${o.kind} ${o.metadata.name}`).not.toMatch(/glrt-/);
  });

  it('removing a node removes its label, its pod and its config key, and leaves a label someone else set', async () => {
    // Someone labels the extra node by hand: not ours to remove.
    await client.apply(
      { apiVersion: 'v1', kind: 'Node', metadata: { name: EXTRA, labels: { [LABEL]: 'true' } } },
      { fieldManager: 'someone-else' },
    );
    const report = await converge('dind', { nodes: ['pi1', 'pi2'] });
    expect(report.ok, report.error).toBe(true);
    expect(report.changes).toContainEqual({
      step: 'label',
      detail: `remove ${LABEL} from node pi3 (not in the inventory)`,
    });
    expect(report.changes).toContainEqual({
      step: 'apply',
      detail: `Secret ${NS}/runner-fleet-config: update data: removed pi3.config.toml`,
    });
    expect((await get('Node', 'pi3'))?.metadata.labels?.[LABEL]).toBeUndefined();
    expect((await get('Node', EXTRA))?.metadata.labels?.[LABEL]).toBe('true');
    expect(Object.keys((await get('Secret', 'runner-fleet-config'))?.data as object).sort()).toEqual([
      'pi1.config.toml',
      'pi2.config.toml',
    ]);
    await eventually('the pods on pi3 and extra1 to settle', async () => {
      const pods = await podsByNode('dind');
      return pods.pi3 === undefined && pods[EXTRA] === true;
    });
    // The hand-set label put a pod on extra1: that is the owner's choice, but our label manager never held it.
    const extra = await get('Node', EXTRA);
    expect(
      (extra?.metadata.managedFields as { manager: string }[]).some((m) =>
        m.manager.startsWith(NODE_LABEL_MANAGER),
      ),
    ).toBe(false);
    await client.apply(
      { apiVersion: 'v1', kind: 'Node', metadata: { name: EXTRA } },
      { fieldManager: 'someone-else' },
    );
    await eventually('the pod on extra1 to go', async () => (await podsByNode('dind'))[EXTRA] === undefined);
    // Back to the full fleet.
    const back = await converge('dind');
    expect(back.ok, back.error).toBe(true);
    expect(await podsByNode('dind')).toEqual({ pi1: true, pi2: true, pi3: true });
  });

  it('a NotReady node makes the rollout fail after the timeout, naming the node', async () => {
    await setNodeReady(cluster.kubeconfig, 'pi2', false);
    try {
      const t0 = Date.now();
      const report = await converge('dind', { v: 3, rolloutTimeoutSeconds: 4 });
      expect(report.ok).toBe(false);
      expect(report.error).toBe(
        'DaemonSet gitlab-runner/gitlab-runner-dind did not roll out within 4s: not ready on pi2 (node NotReady)',
      );
      expect(Date.now() - t0).toBeLessThan(15_000);
    } finally {
      await setNodeReady(cluster.kubeconfig, 'pi2', true);
    }
    const again = await converge('dind', { v: 3 });
    expect(again.ok, again.error).toBe(true);
  });

  it("upgrade from the shared label: this fleet's nodes lose it after the rollout, other nodes keep it", async () => {
    const OLD = 'runner-fleet.dev/runner';
    const legacy = { fieldManager: 'runner-fleet-node-label' };
    for (const name of ['pi1', EXTRA])
      await client.apply(
        { apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { [OLD]: 'true' } } },
        legacy,
      );
    const report = await converge('dind', { v: 3 });
    expect(report.ok, report.error).toBe(true);
    expect(report.changes).toContainEqual({
      step: 'label',
      detail: `remove the old shared label ${OLD} from node pi1 (now ${LABEL})`,
    });
    expect((await get('Node', 'pi1'))?.metadata.labels?.[OLD]).toBeUndefined();
    expect((await get('Node', 'pi1'))?.metadata.labels?.[LABEL]).toBe('true');
    // Not this fleet's node: the old label may be another fleet's.
    expect((await get('Node', EXTRA))?.metadata.labels?.[OLD]).toBe('true');
    await client.apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: EXTRA } }, legacy);
  });

  it("another fleet's manager on this fleet's label key is refused before anything changes", async () => {
    const other = { fieldManager: 'runner-fleet-node-label/other' };
    await client.apply(
      { apiVersion: 'v1', kind: 'Node', metadata: { name: EXTRA, labels: { [LABEL]: 'true' } } },
      other,
    );
    try {
      const report = await converge('dind', { v: 3 });
      expect(report.ok).toBe(false);
      expect(report.error).toContain(
        `node ${EXTRA}: ${LABEL} is also the node label of the fleet in namespace other`,
      );
      expect(report.changes).toEqual([]);
    } finally {
      await client.apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: EXTRA } }, other);
    }
  });

  it('the records Secret round-trips, writes only on change, and survives prune', async () => {
    const store = new KubeRecordStore<{ node: string; token: string }>(client, NS);
    expect(await store.load()).toEqual([]);
    const records = [{ node: 'pi1', token: tokenOf('pi1') }];
    await store.save(records);
    expect(await store.load()).toEqual(records);
    const rv = (await get('Secret', 'runner-fleet-records'))?.metadata.resourceVersion;
    await store.save(records);
    expect((await get('Secret', 'runner-fleet-records'))?.metadata.resourceVersion).toBe(rv);
    await new KubeRecordStore(client, NS, { dryRun: true }).save([]);
    expect(await store.load()).toEqual(records);
    const report = await converge('dind', { v: 3 });
    expect(report).toEqual({ ok: true, changes: [] });
    expect(await get('Secret', 'runner-fleet-records')).toBeDefined();
    // A store in a namespace that does not exist yet creates it (registration runs before converge).
    const fresh = new KubeRecordStore(client, 'rf-records-test');
    await fresh.save([{ a: 1 }]);
    expect(await fresh.load()).toEqual([{ a: 1 }]);
    // The fleet id: made once, kept on the Secret through later saves, the same for every later store; a dry run
    // makes one up and writes nothing.
    const dry = await new KubeRecordStore(client, 'rf-records-test', { dryRun: true }).fleetId();
    expect(dry).toMatch(/^[0-9a-f]{12}$/);
    const id = await fresh.fleetId();
    expect(id).not.toBe(dry);
    await fresh.save([{ a: 2 }]);
    expect(await new KubeRecordStore(client, 'rf-records-test').fleetId()).toBe(id);
    expect(await fresh.load()).toEqual([{ a: 2 }]);
  });

  it('API errors come back as ApiError "<reason>: <message>", without headers or Secret data', async () => {
    let err: unknown;
    try {
      // An invalid key: the apiserver's message quotes the key, never the value.
      await client.apply({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'bad', namespace: NS },
        data: { 'bad key!': Buffer.from('glrt-secretvalue123').toString('base64') },
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ApiError);
    const e = err as ApiError;
    expect(e.status).toBe(422);
    expect(e.message).toMatch(
      /^apply Secret gitlab-runner\/bad: Invalid: Secret "bad" is invalid: data\[bad key!\]: Invalid value: /,
    );
    expect(e.message).not.toMatch(/Headers|HTTP-Code|content-type|glrt-|Z2xydC/i);
  });

  it('loads a kubeconfig from text, checks the context, and reports an unreachable cluster as ApiError', async () => {
    const { readFileSync } = await import('node:fs');
    const text = readFileSync(cluster.kubeconfig, 'utf8');
    expect(KubeClient.load({ kubeconfigText: text, context: 'runner-fleet-test' }).server).toBe(
      cluster.server,
    );
    expect(() => KubeClient.load({ kubeconfigText: text, context: 'nope' })).toThrow(InputError);
    const dead = KubeClient.load({ kubeconfigText: text.replace(cluster.server, 'https://127.0.0.1:1') });
    await expect(dead.listNodes()).rejects.toThrow(
      /^list nodes: cannot reach https:\/\/127\.0\.0\.1:1 \(ECONNREFUSED\)$/,
    );
    await expect(
      client.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'x', namespace: 'no-such-ns' } }),
    ).rejects.toThrow(/^apply Secret no-such-ns\/x: NotFound: namespaces "no-such-ns" not found$/);
  });
});
