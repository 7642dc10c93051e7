// End to end: the shell executor installed on each Pi (placement host), idempotent, updated in place, and switched to and from the cluster without two runners per node.
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import {
  clusterBinDir,
  down,
  execOnNode,
  type FleetInfo,
  holdJob,
  nodeFile,
  runCiJob,
  up,
  whenJobHeld,
} from '#testbed';
import type { StandinRunner } from '../gitlab/standin.js';
import { kubectlJson, readInventory, standinState, type InventoryDoc } from '../support/fleet.js';
import { allOutput, runProvision } from '../support/provision.js';
import { requireRoot } from '../support/requireRoot.js';

const canRun = requireRoot('host placement end to end');

const NODES = ['pi1', 'pi2', 'pi3'];
const CONFIG = '/etc/gitlab-runner/config.toml';
const SYSTEM_ID = '/etc/gitlab-runner/.runner_system_id';
const RECORD = '/etc/gitlab-runner/runner-fleet-record.json';
const RESTARTS = '/var/log/gitlab-runner.restarts';
const RUNNER_LOG = '/var/log/gitlab-runner.log';
const DROP_IN = '/etc/systemd/system/gitlab-runner.service.d/runner-fleet.conf';

describe.runIf(canRun)('placement host: gitlab-runner on the Pi', () => {
  let fleet: FleetInfo;
  let base: InventoryDoc;
  let gitlabUrl: string;
  let bin: string;
  let kubeconfig: string;
  /** One path for every run, as a user edits one inventory: its host-runner index sits beside it. */
  let inventoryPath: string;
  const writeInventory = (mutate: (inv: InventoryDoc) => void = () => {}) => {
    const copy = structuredClone(base);
    mutate(copy);
    writeFileSync(inventoryPath, stringify(copy));
  };
  const provision = (...args: string[]) => runProvision(['--inventory', inventoryPath, '--json', ...args]);

  const ours = async (): Promise<StandinRunner[]> =>
    (await standinState(gitlabUrl)).runners.filter((r) => r.createdVia !== 'preset');
  const calls = async () => (await standinState(gitlabUrl)).calls;
  const sh = async (node: string, script: string) => execOnNode(node, ['sh', '-c', script]);
  const configFile = (node: string) => nodeFile(node, CONFIG);
  const restarts = (node: string) =>
    existsSync(nodeFile(node, RESTARTS)) ? Number(readFileSync(nodeFile(node, RESTARTS), 'utf8')) : 0;
  const servicePid = async (node: string) =>
    (await sh(node, 'cat /run/gitlab-runner.pid 2>/dev/null')).stdout.trim();
  const record = (node: string) =>
    JSON.parse(readFileSync(nodeFile(node, RECORD), 'utf8'))[0] as {
      id: number;
      token: string;
      systemId: string;
    };
  /** `gitlab-runner list` on the node: the runners its config.toml holds, as the runner itself reads them. */
  const listed = async (node: string) => {
    const r = await sh(node, 'gitlab-runner list');
    expect(r.code).toBe(0);
    // logrus colours the field names even without a terminal: compare the text without its escapes.
    return (
      r.stderr
        // eslint-disable-next-line no-control-regex
        .replace(/\x1b\[[0-9;]*m/g, '')
        .split('\n')
        .filter((l) => l.includes('Executor='))
        .map((l) => ({
          name: l.slice(0, 52).trim(),
          executor: /Executor=(\S+)/.exec(l)![1],
          token: /Token=(\S+)/.exec(l)![1],
          url: /URL=(\S+)/.exec(l)![1],
        }))
    );
  };
  const pods = () =>
    kubectlJson(bin, kubeconfig, ['-n', 'gitlab-runner', 'get', 'pods'])
      .items.filter((p: any) => !p.metadata.deletionTimestamp)
      .map((p: any) => p.spec.nodeName)
      .sort();

  beforeAll(async () => {
    fleet = await up({ nodes: 3 });
    base = readInventory(fleet.inventory);
    base.runners = { ...base.runners, executor: 'shell', placement: 'host', tags: ['arm64', 'pi'] };
    gitlabUrl = base.gitlab.url;
    kubeconfig = base.kubernetes.kubeconfig;
    bin = await clusterBinDir();
    inventoryPath = join(fleet.stateDir, 'host-placement.yaml');
    writeInventory();
    // The snap node as a fresh Pi with the docker snap: no docker group yet, so its dockerd gave the socket to root.
    const g = await sh(
      'pi2',
      'groupdel docker && snap restart docker >/dev/null && stat -c %G /var/run/docker.sock',
    );
    expect(g.stdout.trim(), g.stderr).toBe('root');
  });

  afterAll(async () => {
    if (canRun) await down();
  });

  it("--executor shell --placement host: package, docker group, root-only config with one block, the node's runner, the service", async () => {
    writeInventory((inv) => delete inv.runners.placement);
    const r = await provision('--executor', 'shell', '--placement', 'host');
    expect(r.code, r.stderr).toBe(0);
    const runners = await ours();
    expect(runners.map((x) => x.tagList.at(-1)).sort()).toEqual(NODES);
    for (const node of NODES) {
      const mine = runners.find((x) => x.tagList.includes(node))!;
      expect((await sh(node, "dpkg-query -W -f='${db:Status-Status}' gitlab-runner")).stdout).toBe(
        'installed',
      );
      expect((await sh(node, 'id -nG gitlab-runner')).stdout.split(/\s+/)).toContain('docker');
      const st = statSync(configFile(node));
      expect([st.mode & 0o777, st.uid]).toEqual([0o600, 0]);
      expect([
        statSync(nodeFile(node, SYSTEM_ID)).mode & 0o777,
        statSync(nodeFile(node, RECORD)).mode & 0o777,
      ]).toEqual([0o600, 0o600]);
      expect(readFileSync(configFile(node), 'utf8').match(/^\[\[runners\]\]/gm)).toHaveLength(1);
      const list = await listed(node);
      expect(list.map((l) => [l.name, l.executor, l.url])).toEqual([
        [`runner-fleet ${node}`, 'shell', gitlabUrl],
      ]);
      // Compared, never printed: a failing expect would show the token.
      expect(
        list[0].token === mine.token && record(node).token === mine.token && record(node).id === mine.id,
      ).toBe(true);
      const verify = await sh(node, 'gitlab-runner verify');
      expect(verify.code, verify.stderr.replace(/runner=\S+/g, '')).toBe(0);
      expect(verify.stderr).toContain('Verifying runner... is valid');
      expect(
        (await sh(node, 'systemctl is-active gitlab-runner; systemctl is-enabled gitlab-runner')).stdout
          .split('\n')
          .slice(0, 2),
      ).toEqual(['active', 'enabled']);
      // The manager GitLab sees is the node's recorded system_id (the service and verify both use it).
      const sid = readFileSync(nodeFile(node, SYSTEM_ID), 'utf8').trim();
      expect(sid).toBe(record(node).systemId);
      expect(
        (await standinState(gitlabUrl)).managers.filter((m) => m.runnerId === mine.id).map((m) => m.systemId),
      ).toEqual([sid]);
      // Started by the package with the config already in place: no restart was needed.
      expect(restarts(node)).toBe(0);
      // The real gitlab-runner, installed by the package's postinst: its own unit, our graceful-stop drop-in.
      const main = readFileSync(`/proc/${await servicePid(node)}/cmdline`, 'utf8').split('\0');
      expect(main.slice(0, 4)).toEqual(['/usr/bin/gitlab-runner', 'run', '--config', CONFIG]);
      expect((await sh(node, 'gitlab-runner --version')).stdout).toContain('Version:      17.9.3');
      expect(readFileSync(nodeFile(node, DROP_IN), 'utf8')).toContain('KillSignal=SIGQUIT');
      expect(
        (await sh(node, 'systemctl show -p KillSignal -p KillMode gitlab-runner')).stdout
          .split('\n')
          .slice(0, 2),
      ).toEqual(['KillSignal=SIGQUIT', 'KillMode=mixed']);
      // Shell jobs run as gitlab-runner against the node's own Docker.
      const info = await sh(node, "runuser -u gitlab-runner -- docker info --format '{{.ServerVersion}}'");
      expect(info.code, info.stderr).toBe(0);
      expect(existsSync(nodeFile(node, '/etc/apt/keyrings/runner_gitlab-runner-archive-keyring.gpg'))).toBe(
        true,
      );
    }
    // The snap node: the group was made and its dockerd restarted once for it (said in the changes).
    const pi2 = r.report!.nodes.find((n) => n.name === 'pi2')!;
    expect(pi2.changes.map((c) => c.detail).join('\n')).toContain("restart the snap's dockerd");
    expect((await sh('pi2', 'stat -c %G /var/run/docker.sock')).stdout.trim()).toBe('docker');
    // Nothing of it in the cluster.
    expect(pods()).toEqual([]);
    expect(existsSync(inventoryPath.replace(/\.yaml$/, '.state.json'))).toBe(true);
  });

  it('a second run changes nothing: same bytes and mtime, no restart, no runner created, one round trip per node', async () => {
    // The flag's choice, now in the inventory, as a user would keep it.
    writeInventory();
    const before = await Promise.all(
      NODES.map(async (n) => ({
        text: readFileSync(configFile(n), 'utf8'),
        mtime: statSync(configFile(n)).mtimeMs,
        pid: await servicePid(n),
        restarts: restarts(n),
      })),
    );
    const n = (await calls()).length;
    const r = await provision();
    expect(r.code, r.stderr).toBe(0);
    expect(r.report!.changed).toBe(0);
    expect(r.report!.ssh).toEqual({ connections: 3, roundTrips: 3 });
    const after = await Promise.all(
      NODES.map(async (n) => ({
        text: readFileSync(configFile(n), 'utf8'),
        mtime: statSync(configFile(n)).mtimeMs,
        pid: await servicePid(n),
        restarts: restarts(n),
      })),
    );
    expect(after).toEqual(before);
    const made = (await calls())
      .slice(n)
      .filter(
        (c) => c.method === 'POST' && (c.path === '/api/v4/user/runners' || c.path === '/api/v4/runners'),
      );
    expect(made).toEqual([]);
  });

  it('changed tags update the runner in GitLab in place; config.toml (which holds no tags) and the service stay', async () => {
    const ids = (await ours()).map((x) => x.id);
    const before = NODES.map((n) => ({ text: readFileSync(configFile(n), 'utf8'), restarts: restarts(n) }));
    const n = (await calls()).length;
    base.runners.tags = ['arm64', 'fast'];
    writeInventory();
    const r = await provision();
    expect(r.code, r.stderr).toBe(0);
    const since = (await calls()).slice(n);
    expect(
      since
        .filter((c) => c.method === 'PUT')
        .map((c) => c.path)
        .sort(),
    ).toEqual(ids.map((id) => `/api/v4/runners/${id}`).sort());
    expect(since.filter((c) => c.method === 'POST' && c.path === '/api/v4/user/runners')).toEqual([]);
    expect((await ours()).every((x) => x.tagList.includes('fast'))).toBe(true);
    expect(NODES.map((n) => ({ text: readFileSync(configFile(n), 'utf8'), restarts: restarts(n) }))).toEqual(
      before,
    );
  });

  it('a change that is in config.toml rewrites its one block in place and the running runner reloads it: same process, no restart', async () => {
    const tokens = NODES.map((n) => record(n).token);
    const loads = (n: string) =>
      (readFileSync(nodeFile(n, RUNNER_LOG), 'utf8').match(/Configuration loaded/g) ?? []).length;
    const before = await Promise.all(
      NODES.map(async (n) => ({ restarts: restarts(n), pid: await servicePid(n), loads: loads(n) })),
    );
    const n = (await calls()).length;
    base.runners.description = 'pi runner {node}';
    writeInventory();
    const r = await provision();
    expect(r.code, r.stderr).toBe(0);
    for (const [i, node] of NODES.entries()) {
      const text = readFileSync(configFile(node), 'utf8');
      expect(text.match(/^\[\[runners\]\]/gm)).toHaveLength(1);
      expect(text).toContain(`name = "pi runner ${node}"`);
      expect(record(node).token === tokens[i]).toBe(true);
      expect(restarts(node)).toBe(before[i].restarts);
      expect(await servicePid(node)).toBe(before[i].pid);
      // gitlab-runner says so when it re-reads config.toml (SIGHUP, or its own 3 s check of the file).
      const until = Date.now() + 10_000;
      while (loads(node) <= before[i].loads && Date.now() < until)
        await new Promise((res) => setTimeout(res, 200));
      expect(loads(node)).toBeGreaterThan(before[i].loads);
      expect((await listed(node)).map((l) => l.name)).toEqual([`pi runner ${node}`]);
    }
    expect(
      (await calls()).slice(n).filter((c) => c.method === 'POST' && c.path === '/api/v4/user/runners'),
    ).toEqual([]);
  });

  it('runners.version: both packages pinned and held; an upgrade waits for the running job, restarts each runner once, then nothing to do', async () => {
    const pkgs = async (node: string) => ({
      version: (await sh(node, "dpkg-query -W -f='${Version}' gitlab-runner")).stdout,
      helper: (await sh(node, "dpkg-query -W -f='${Version}' gitlab-runner-helper-images")).stdout,
      held: (await sh(node, 'apt-mark showhold')).stdout.split('\n').filter(Boolean).sort(),
      active: (await sh(node, 'systemctl is-active gitlab-runner')).stdout.trim(),
    });
    const pinned = (deb: string) => ({
      version: deb,
      helper: deb,
      held: ['gitlab-runner', 'gitlab-runner-helper-images'],
      active: 'active',
    });
    // 17.9.2-1 is the testbed repository's older package (scripts/testbed/standins/apt-get): a downgrade first.
    // A pinned version names the pods' image tag too (the schema insists); this fleet's runners are on the hosts.
    const pin = (version: string) => (inv: InventoryDoc) => {
      inv.runners.version = version;
      inv.runners.image = String(inv.runners.image).replace(/:[^:/]+$/, ':{version}');
    };
    writeInventory(pin('17.9.2'));
    const planned = await provision('plan');
    expect(planned.code, planned.stderr).toBe(0);
    for (const node of NODES) {
      const steps = planned.report!.nodes.find((x) => x.name === node)!.changes;
      expect(steps.map((c) => c.detail).join('\n')).toMatch(
        /downgrade gitlab-runner 17\.9\.3-1 → 17\.9\.2-1 \(runners\.version\), one node at a time/,
      );
      expect((await pkgs(node)).version).toBe('17.9.3-1');
    }
    const downgraded = await provision();
    expect(downgraded.code, downgraded.stderr).toBe(0);
    for (const node of NODES) expect(await pkgs(node)).toEqual(pinned('17.9.2-1'));

    // A job holds pi1's runner while the upgrade to 17.9.3 comes: its stop (SIGQUIT) waits for the job.
    const pids = await Promise.all(NODES.map(servicePid));
    const graceful = (node: string) =>
      (readFileSync(nodeFile(node, RUNNER_LOG), 'utf8').match(/Starting graceful shutdown/g) ?? []).length;
    const stops = NODES.map(graceful);
    const running = runCiJob({
      inventoryPath,
      executor: 'shell',
      node: 'pi1',
      timeout: 240,
      beforeScript: [holdJob(8)],
    });
    await whenJobHeld(gitlabUrl);
    writeInventory(pin('17.9.3'));
    const upgraded = await provision();
    expect(upgraded.code, upgraded.stderr).toBe(0);
    const job = await running;
    expect(job.status, `${job.failureReason}\n${job.trace}`).toBe('success');
    for (const [i, node] of NODES.entries()) {
      expect(await pkgs(node)).toEqual(pinned('17.9.3-1'));
      expect(await servicePid(node), `${node}: the runner was not restarted onto the new package`).not.toBe(
        pids[i],
      );
      const upgrade = upgraded
        .report!.nodes.find((x) => x.name === node)!
        .changes.filter((c) => c.step === 'runner-upgrade');
      expect(upgrade, node).toHaveLength(1);
    }
    // Each runner stopped once, gracefully (SIGQUIT: no new jobs, the running one finished), as its log says.
    for (const [i, node] of NODES.entries()) expect(graceful(node), node).toBe(stops[i] + 1);

    const again = await provision();
    expect(again.code, again.stderr).toBe(0);
    expect(again.report!.changed, JSON.stringify(again.report)).toBe(0);
  });

  it('host → cluster: host runners unregistered and removed first, no duplicate registered, the DaemonSet takes over', async () => {
    const hostIds = NODES.map((n) => record(n).id);
    const n = (await calls()).length;
    writeInventory((inv) => (inv.runners.placement = 'cluster'));
    const r = await provision();
    expect(r.code, r.stderr).toBe(0);
    for (const node of NODES) {
      expect(
        (await sh(node, 'systemctl is-active gitlab-runner; systemctl is-enabled gitlab-runner')).stdout
          .split('\n')
          .slice(0, 2),
      ).toEqual(['inactive', 'disabled']);
      for (const f of [CONFIG, SYSTEM_ID, RECORD])
        expect(existsSync(nodeFile(node, f)), `${node}:${f}`).toBe(false);
      // The package stays (and the run says so).
      expect((await sh(node, "dpkg-query -W -f='${db:Status-Status}' gitlab-runner")).stdout).toBe(
        'installed',
      );
    }
    expect(r.stderr).toContain('the gitlab-runner package stays installed');
    // Stopped with the drop-in's SIGQUIT: gitlab-runner's graceful shutdown, not the forceful one SIGTERM starts.
    for (const node of NODES)
      expect(readFileSync(nodeFile(node, RUNNER_LOG), 'utf8')).toContain('Starting graceful shutdown');
    const runners = await ours();
    expect(runners).toHaveLength(3);
    expect(runners.some((x) => hostIds.includes(x.id))).toBe(false);
    // Every host runner's delete came before the first cluster runner's create.
    const since = (await calls()).slice(n);
    const lastDelete = since.map((c) => `${c.method} ${c.path}`).lastIndexOf('DELETE /api/v4/runners');
    const firstCreate = since.findIndex((c) => c.method === 'POST' && c.path === '/api/v4/user/runners');
    expect(since.filter((c) => c.method === 'DELETE' && c.path === '/api/v4/runners')).toHaveLength(3);
    expect(lastDelete).toBeLessThan(firstCreate);
    expect(pods()).toEqual(NODES);
    expect(existsSync(inventoryPath.replace(/\.yaml$/, '.state.json'))).toBe(false);
  });

  it('cluster → host: the cluster runners are deleted and their pods go before the host runners come back', async () => {
    const clusterIds = (await ours()).map((x) => x.id);
    writeInventory();
    const r = await provision();
    expect(r.code, r.stderr).toBe(0);
    expect(r.report!.cluster!.changes.map((c) => c.detail)).toContain(
      'delete DaemonSet gitlab-runner/gitlab-runner-shell (runners.placement is host)',
    );
    const runners = await ours();
    expect(runners).toHaveLength(3);
    expect(runners.some((x) => clusterIds.includes(x.id))).toBe(false);
    for (const node of NODES) {
      expect((await listed(node)).length).toBe(1);
      expect((await sh(node, 'systemctl is-active gitlab-runner')).stdout.trim()).toBe('active');
      const label = kubectlJson(bin, kubeconfig, ['get', 'node', node]).metadata.labels[
        'fleet.runner-fleet.dev/gitlab-runner'
      ];
      expect(label).toBeUndefined();
    }
    const eventually = Date.now() + 20_000;
    while (pods().length > 0 && Date.now() < eventually) await new Promise((res) => setTimeout(res, 250));
    expect(pods()).toEqual([]);
  });

  it('a node taken out of the inventory has its host runner unregistered and removed, found through the index', async () => {
    const gone = record('pi3').id;
    writeInventory((inv) => (inv.nodes = inv.nodes.filter((x: { name: string }) => x.name !== 'pi3')));
    const r = await provision();
    expect(r.code, r.stderr).toBe(0);
    expect((await ours()).map((x) => x.id)).not.toContain(gone);
    expect(await ours()).toHaveLength(2);
    expect((await sh('pi3', 'systemctl is-active gitlab-runner')).stdout.trim()).toBe('inactive');
    expect(existsSync(nodeFile('pi3', CONFIG))).toBe(false);
    const index = JSON.parse(readFileSync(inventoryPath.replace(/\.yaml$/, '.state.json'), 'utf8'));
    expect(index.nodes.map((x: { name: string }) => x.name)).toEqual(['pi1', 'pi2']);
  });

  it('printed no runner token, anywhere', async () => {
    const tokens = [
      ...(await standinState(gitlabUrl)).runners.map((x) => x.token),
      ...NODES.filter((n) => existsSync(nodeFile(n, RECORD))).map((n) => record(n).token),
    ].filter((t): t is string => typeof t === 'string' && t.length > 8);
    const out = allOutput.join('\n');
    expect(tokens.filter((t) => out.includes(t)).length).toBe(0);
    expect(out).not.toMatch(/glrt-[A-Za-z0-9_-]{8,}/);
  });
});
