// End to end: one runner DaemonSet per executor on a real Kubernetes API, idempotent, pruned, planned, rolled out.
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  clusterBinDir,
  down,
  execOnNode,
  EXTRA_CLUSTER_NODES,
  type FleetInfo,
  nodeDockerPid,
  nodeFile,
  setNodeReady,
  up,
} from '#testbed';
import {
  kubectl,
  kubectlJson,
  readInventory,
  writeVariant,
  type InventoryDoc,
  withoutPrepull,
} from '../support/fleet.js';
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
    withoutPrepull(fleet.inventory);
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

  const podOn = (ns: string, executor: string, node: string): string =>
    (get(['-n', ns, 'get', 'pods', '-l', `runner-fleet.dev/executor=${executor}`]).items as any[]).find(
      (p) => p.spec.nodeName === node && !p.metadata.deletionTimestamp,
    ).metadata.name;
  const labelled = (key: string): string[] =>
    (get(['get', 'nodes', '-l', key]).items as any[]).map((n) => n.metadata.name).sort();
  const LABEL = `fleet.runner-fleet.dev/${NS}`;

  // docker.logs: read only when dockerd starts, so apply restarts every node's dockerd (pi2's is the snap's).
  const LOGS = { logs: { driver: 'local', maxSize: '10m', maxFile: 3 } };

  it("dockerd restarts under DooD pods (apply's for a log setting, then snap restart on pi2): the pods still reach Docker, as apply and status check", async () => {
    const path = variant((inv) => (inv.docker = LOGS));
    const r = await runProvision(['--inventory', path, '--executor', 'dood', '--json']);
    expect(r.code, r.stderr).toBe(0);
    for (const node of ['pi1', 'pi2', 'pi3'])
      expect(
        r
          .report!.nodes.find((n) => n.name === node)!
          .changes.map((c) => c.detail)
          .join('\n'),
      ).toMatch(/restart dockerd/);
    // After the rollout apply asked every pod's Docker.
    expect(r.stderr).toMatch(/pi2.*its runner pod reaches Docker/);
    const pid = nodeDockerPid('pi2');
    expect((await execOnNode('pi2', ['snap', 'restart', 'docker'])).code).toBe(0);
    expect(nodeDockerPid('pi2')).not.toBe(pid);
    // A new socket inode: a pod that mounted the socket file would keep the dead one.
    const version = kubectl(bin, kubeconfig, [
      ...['-n', NS, 'exec', podOn(NS, 'dood', 'pi2'), '-c', 'gitlab-runner', '--'],
      ...['/opt/docker-cli/docker', 'version', '--format', '{{.Server.Version}}'],
    ]);
    expect(version.trim()).toMatch(/^\d+\.\d+/);
    const s = await runProvision(['status', '--inventory', path, '--json']);
    const rows = (s.report as any).nodes as any[];
    expect(rows.find((n) => n.node === 'pi2').podDocker).toMatchObject({ kind: 'ok' });
    for (const n of rows) expect(n.problems.join('\n')).not.toMatch(/cannot reach the node's Docker/);
  });

  it("a second fleet (other namespace) on the same cluster leaves the first's node labels, pods and identity alone", async () => {
    expect(labelled(LABEL)).toEqual(['pi1', 'pi2', 'pi3']);
    const identity = '/var/lib/runner-fleet/namespaces/gitlab-runner/dood/.runner_system_id';
    const systemId = (await execOnNode('pi3', ['cat', identity])).stdout.trim();
    expect(systemId).toMatch(/^[rs]_[0-9a-zA-Z]{12}$/);
    const tokens = join(base.gitlab.accessToken.slice('file:'.length), '..');
    const second = variant((inv) => {
      inv.docker = LOGS;
      inv.kubernetes.namespace = 'second';
      inv.nodes = inv.nodes.filter((n: { name: string }) => n.name === 'pi3');
      // Registration token: this fleet may not look for (and so never adopts) the first fleet's runners.
      delete inv.gitlab.accessToken;
      inv.gitlab.registrationToken = `file:${join(tokens, 'registration-token')}`;
    });
    const r = await runProvision(['--inventory', second, '--executor', 'dood', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(labelled('fleet.runner-fleet.dev/second')).toEqual(['pi3']);
    expect(labelled(LABEL)).toEqual(['pi1', 'pi2', 'pi3']);
    expect(readyPodNodes('dood')).toEqual(['pi1', 'pi2', 'pi3']);
    const d = await runProvision(['destroy', '--inventory', second, '--yes', '--json']);
    expect(d.code, d.stderr).toBe(0);
    expect(labelled('fleet.runner-fleet.dev/second')).toEqual([]);
    expect(labelled(LABEL)).toEqual(['pi1', 'pi2', 'pi3']);
    expect((await execOnNode('pi3', ['cat', identity])).stdout.trim()).toBe(systemId);
    expect(
      (await execOnNode('pi3', ['test', '-e', '/var/lib/runner-fleet/namespaces/second'])).code,
    ).not.toBe(0);
  });

  it("refuses to take over a Helm ServiceAccount or lower an admin's Pod Security level; destroy leaves them", async () => {
    const ns = 'helm-owned';
    kubectl(bin, kubeconfig, ['create', 'namespace', ns]);
    kubectl(bin, kubeconfig, ['label', 'namespace', ns, 'pod-security.kubernetes.io/enforce=restricted']);
    kubectl(bin, kubeconfig, ['-n', ns, 'create', 'serviceaccount', 'gitlab-runner']);
    kubectl(bin, kubeconfig, [
      ...['-n', ns, 'label', 'serviceaccount', 'gitlab-runner'],
      'app.kubernetes.io/managed-by=Helm',
    ]);
    const path = variant((inv) => {
      inv.docker = LOGS;
      inv.kubernetes.namespace = ns;
      inv.nodes = inv.nodes.filter((n: { name: string }) => n.name === 'pi1');
    });
    const r = await runProvision(['--inventory', path, '--executor', 'dood', '--json']);
    expect(r.code).toBe(1);
    const error = r.report!.cluster!.error!;
    expect(error).toContain(
      `ServiceAccount ${ns}/gitlab-runner exists and is not runner-fleet's (app.kubernetes.io/managed-by: Helm)`,
    );
    expect(error).toContain(`kubectl -n ${ns} label serviceaccount gitlab-runner`);
    expect(error).toMatch(/has pod-security\.kubernetes\.io\/enforce=restricted/);
    // Refused before anything changed: GitLab was not asked, the objects are as they were.
    expect(r.report!.gitlab!.error).toMatch(/^not attempted/);
    const sa = get(['-n', ns, 'get', 'serviceaccount', 'gitlab-runner']);
    expect(sa.metadata.labels['app.kubernetes.io/managed-by']).toBe('Helm');
    expect((get(['-n', ns, 'get', 'daemonsets']).items as any[]).length).toBe(0);
    expect(get(['get', 'namespace', ns]).metadata.labels['pod-security.kubernetes.io/enforce']).toBe(
      'restricted',
    );

    const d = await runProvision(['destroy', '--inventory', path, '--yes', '--json']);
    expect(d.code, d.stderr).toBe(0);
    expect(get(['-n', ns, 'get', 'serviceaccount', 'gitlab-runner']).metadata.uid).toBe(sa.metadata.uid);
    kubectl(bin, kubeconfig, ['delete', 'namespace', ns, '--wait=false']);
  });
});
