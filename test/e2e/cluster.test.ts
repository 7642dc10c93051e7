// Issue 4 end to end: one runner DaemonSet per executor on a real Kubernetes API, idempotent, pruned, planned, rolled out.
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterBinDir, setNodeReady } from '../../scripts/testbed/cluster.js';
import { EXTRA_CLUSTER_NODES } from '../../scripts/testbed/extra-services.js';
import { down, nodeFile, up, type FleetInfo } from '../../scripts/testbed/fleet.js';
import { kubectlJson, readInventory, writeVariant, type InventoryDoc } from '../support/fleet.js';
import { runProvision } from '../support/provision.js';
import { requireRoot } from '../support/requireRoot.js';

const canRun = requireRoot('cluster convergence end to end');
const NS = 'gitlab-runner';

describe.runIf(canRun)('runner DaemonSets on the cluster', () => {
  let fleet: FleetInfo;
  let base: InventoryDoc;
  let bin: string;
  let kubeconfig: string;
  const get = (args: string[]) => kubectlJson(bin, kubeconfig, args);
  const variant = (mutate: (inv: InventoryDoc) => void) => writeVariant(fleet.inventory, base, mutate);
  const configs = (): Record<string, string> => {
    const data = get(['-n', NS, 'get', 'secret', 'runner-fleet-config']).data as Record<string, string>;
    return Object.fromEntries(
      Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]),
    );
  };
  const versions = (): Record<string, string> => {
    const items = get(['-n', NS, 'get', 'daemonsets,secrets,serviceaccounts']).items as any[];
    const ns = get(['get', 'namespace', NS]);
    return Object.fromEntries(
      [...items, ns].map((o) => [`${o.kind}/${o.metadata.name}`, o.metadata.resourceVersion]),
    );
  };
  const readyPodNodes = (executor: string): string[] =>
    (get(['-n', NS, 'get', 'pods', '-l', `runner-fleet.dev/executor=${executor}`]).items as any[])
      .filter(
        (p) =>
          !p.metadata.deletionTimestamp &&
          p.status?.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True'),
      )
      .map((p) => p.spec.nodeName)
      .sort();

  beforeAll(async () => {
    fleet = await up({ nodes: 3, microk8s: ['pi1'] });
    base = readInventory(fleet.inventory);
    kubeconfig = base.kubernetes.kubeconfig;
    bin = await clusterBinDir();
  });

  afterAll(async () => {
    if (canRun) await down();
  });

  it.each(['dood', 'dind', 'shell'])(
    '%s: the DaemonSet rolls out on every inventory node and nowhere else; its config matches',
    async (executor) => {
      const r = await runProvision(['--inventory', fleet.inventory, '--executor', executor, '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect(r.report!.cluster!.ok).toBe(true);
      const daemonSets = (get(['-n', NS, 'get', 'daemonsets']).items as any[]).map((d) => d.metadata.name);
      expect(daemonSets).toEqual([`gitlab-runner-${executor}`]); // switching executors removed the previous one
      expect(readyPodNodes(executor)).toEqual(['pi1', 'pi2', 'pi3']);
      const pods = get(['-n', NS, 'get', 'pods']).items as any[];
      expect(pods.some((p) => EXTRA_CLUSTER_NODES.includes(p.spec.nodeName))).toBe(false);

      const toml = configs();
      for (const node of ['pi1', 'pi2', 'pi3']) {
        const text = toml[`${node}.config.toml`];
        expect(text).toBeDefined();
        if (executor === 'dind') {
          expect(text).toMatch(/executor = "docker"/);
          expect(text).toMatch(/privileged = true/);
          expect(text).toContain(`"--insecure-registry=${fleet.registry}"`);
        } else if (executor === 'dood') {
          expect(text).toMatch(/executor = "docker"/);
          expect(text).toMatch(/privileged = false/);
          expect(text).toContain('"/var/run/docker.sock:/var/run/docker.sock"');
        } else {
          expect(text).toMatch(/executor = "shell"/);
        }
      }
    },
  );

  it('a second run changes no resourceVersion and reports 0 changes', async () => {
    const before = versions();
    const r = await runProvision(['--inventory', fleet.inventory, '--executor', 'shell', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.report!.cluster!.changes).toEqual([]);
    expect(r.report!.changed).toBe(0);
    expect(versions()).toEqual(before);
  });

  it('tokens are only in the Secrets: no ConfigMap and no DaemonSet holds one', async () => {
    const tokens = Object.values(configs()).flatMap((t) =>
      [...t.matchAll(/token = "([^"]+)"/g)].map((m) => m[1]),
    );
    expect(tokens.length).toBe(3);
    const elsewhere = JSON.stringify([
      get(['get', 'configmaps', '-A']),
      get(['get', 'daemonsets', '-A']),
      get(['get', 'pods', '-A']),
    ]);
    for (const t of tokens) expect(elsewhere.includes(t)).toBe(false);
  });

  it('plan against a changed inventory lists the cluster changes and changes nothing', async () => {
    const before = versions();
    const r = await runProvision(['plan', '--inventory', fleet.inventory, '--executor', 'dood', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const details = r.report!.cluster!.changes.map((c) => c.detail).join('\n');
    expect(details).toMatch(/create DaemonSet gitlab-runner\/gitlab-runner-dood/);
    expect(details).toMatch(/delete DaemonSet gitlab-runner\/gitlab-runner-shell/);
    expect(details).toMatch(/Secret gitlab-runner\/runner-fleet-config/);
    expect(versions()).toEqual(before);
  });

  it('kubernetes.fromNode reads the kubeconfig from `microk8s config` on that node over SSH', async () => {
    // The test cluster is not microk8s: hand its admin kubeconfig to pi1's microk8s stand-in.
    const creds = nodeFile('pi1', '/var/snap/microk8s/current/credentials/client.config');
    mkdirSync(dirname(creds), { recursive: true });
    copyFileSync(kubeconfig, creds);
    const path = variant((inv) => {
      delete inv.kubernetes.kubeconfig;
      inv.kubernetes.fromNode = 'pi1';
    });
    const r = await runProvision(['--inventory', path, '--executor', 'shell', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.report!.cluster).toEqual({ ok: true, changes: [] });
  });

  it('a rollout that cannot complete fails after the timeout, exit 1, naming the node', async () => {
    await setNodeReady(kubeconfig, 'pi2', false);
    try {
      const path = variant((inv) => (inv.kubernetes.rolloutTimeout = 8));
      const r = await runProvision(['--inventory', path, '--executor', 'dood', '--json']);
      expect(r.code).toBe(1);
      expect(r.report!.cluster!.ok).toBe(false);
      expect(r.report!.cluster!.error).toMatch(/pi2/);
      expect(r.report!.cluster!.error).not.toMatch(/pi1|pi3/);
      expect(r.stderr).toMatch(/pi2/);
    } finally {
      await setNodeReady(kubeconfig, 'pi2', true);
    }
  });
});
