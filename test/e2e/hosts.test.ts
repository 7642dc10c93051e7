// End to end: Docker and the insecure registry converge on a real local fleet, idempotently.
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import {
  down,
  execOnNode,
  type FleetInfo,
  NO_SUDO_USER,
  nodeDockerPid,
  nodeFile,
  seedImage,
  servicesNamed,
  up,
} from '#testbed';
import { FORWARDING_SYSCTL_CONTENT, FORWARDING_SYSCTL_FILE } from '../../src/docker/forwarding.js';
import { PRUNE_TIMER_FILE, PRUNE_UNIT } from '../../src/docker/prune.js';
import { requireRoot } from '../support/requireRoot.js';
import { runProvision } from '../support/provision.js';

const canRun = requireRoot('host convergence end to end');

const APT_JSON = '/etc/docker/daemon.json';
const SNAP_JSON = '/var/snap/docker/current/config/daemon.json';
const OTHER_KEYS = {
  'log-level': 'warn',
  'insecure-registries': ['198.19.0.9:5000'],
  'max-concurrent-downloads': 2,
};

describe.runIf(canRun)('hosts: Docker and the insecure registry', () => {
  let fleet: FleetInfo;
  let inventory: Record<string, any>;
  const jsonPath = (name: string) => nodeFile(name, name === 'pi2' ? SNAP_JSON : APT_JSON);
  const push = (name: string, tag: string) =>
    execOnNode(name, [
      'sh',
      '-c',
      `docker tag bb:local ${fleet.registry}/${tag} && docker push ${fleet.registry}/${tag}`,
    ]);
  const withInventory = (mutate: (inv: Record<string, any>) => void): string => {
    const copy = structuredClone(inventory);
    mutate(copy);
    const path = join(fleet.stateDir ?? '/tmp', `fleet-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(path, stringify(copy));
    return path;
  };

  beforeAll(async () => {
    fleet = await up({ nodes: 3 });
    inventory = parse(readFileSync(fleet.inventory, 'utf8'));
    // Hosts only: the GitLab and cluster phases have their own suites. The pod range stays: the nodes run pods.
    inventory.kubernetes = { podCidr: inventory.kubernetes.podCidr };
    for (const k of ['accessToken', 'runnerToken', 'registrationToken']) delete inventory.gitlab[k];
    writeFileSync(fleet.inventory.replace(/\.yaml$/, '.hosts.yaml'), stringify(inventory));
    writeFileSync(nodeFile('pi1', APT_JSON), `${JSON.stringify(OTHER_KEYS, null, 2)}\n`);
    await execOnNode('pi1', ['systemctl', 'reload', 'docker']);
    await seedImage('pi1');
    await seedImage('pi2');
  });

  afterAll(async () => {
    if (canRun) await down();
  });

  const hostsInventory = () => fleet.inventory.replace(/\.yaml$/, '.hosts.yaml');

  it('before provisioning, a push fails with the HTTPS error', async () => {
    for (const name of ['pi1', 'pi2']) {
      const r = await push(name, `before-${name}:1`);
      expect(r.code).not.toBe(0);
      expect(r.stdout + r.stderr).toContain('server gave HTTP response to HTTPS client');
    }
  });

  it('plan lists the changes and changes nothing', async () => {
    const before = ['pi1', 'pi2'].map((n) => readFileSync(jsonPath(n), 'utf8'));
    const pids = await Promise.all(['pi1', 'pi2'].map(nodeDockerPid));
    const r = await runProvision(['plan', '--inventory', hostsInventory(), '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.report!.nodes.map((n) => n.changes.length > 0)).toEqual([true, true, true]);
    // Forwarding goes on before Docker is installed: its first start then leaves the FORWARD policy alone.
    expect(
      r
        .report!.nodes.find((n) => n.name === 'pi3')!
        .changes.slice(0, 2)
        .map((c) => c.step),
    ).toEqual(['enable-forwarding', 'install-docker']);
    expect(['pi1', 'pi2'].map((n) => readFileSync(jsonPath(n), 'utf8'))).toEqual(before);
    expect(await Promise.all(['pi1', 'pi2'].map(nodeDockerPid))).toEqual(pids);
    expect(
      (await execOnNode('pi3', ['dpkg-query', '-W', '-f=${db:Status-Status}', 'docker.io'])).stdout,
    ).not.toBe('installed');
  });

  it('apply converges apt, snap and a fresh node; pushes then succeed everywhere', async () => {
    const r = await runProvision(['apply', '--inventory', hostsInventory(), '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.report!.ok).toBe(true);
    await seedImage('pi3');
    for (const name of ['pi1', 'pi2', 'pi3']) {
      const p = await push(name, `after-${name}:1`);
      expect(p.code, p.stdout + p.stderr).toBe(0);
      const info = await execOnNode(name, [
        'docker',
        'info',
        '--format',
        '{{json .RegistryConfig.IndexConfigs}}',
      ]);
      expect(JSON.parse(info.stdout)[fleet.registry]).toMatchObject({ Secure: false });
    }
  });

  it('pods keep forwarding: persisted and on in every node; DOCKER-USER accepts the pod range where Docker had set DROP', async () => {
    const rules = async (name: string) =>
      (await execOnNode(name, ['iptables', '-S'])).stdout
        .split('\n')
        .filter((l) => /^-P FORWARD |runner-fleet/.test(l));
    const cidr = inventory.kubernetes.podCidr as string;
    for (const name of ['pi1', 'pi2', 'pi3']) {
      expect(readFileSync(nodeFile(name, FORWARDING_SYSCTL_FILE), 'utf8')).toBe(FORWARDING_SYSCTL_CONTENT);
      expect((await execOnNode(name, ['cat', '/proc/sys/net/ipv4/ip_forward'])).stdout.trim()).toBe('1');
    }
    // pi1's dockerd started at up. With the node's forwarding off then (a fresh Pi's, and this machine's), it set
    // DROP: runner-fleet's two rules let pods through. A node that had forwarding on keeps ACCEPT and needs none.
    const pi1 = await rules('pi1');
    expect(pi1).toEqual(
      pi1[0] === '-P FORWARD DROP'
        ? [
            '-P FORWARD DROP',
            `-A DOCKER-USER -d ${cidr} -m comment --comment runner-fleet -j ACCEPT`,
            `-A DOCKER-USER -s ${cidr} -m comment --comment runner-fleet -j ACCEPT`,
          ]
        : ['-P FORWARD ACCEPT'],
    );
    // pi3's Docker was installed after forwarding went on: the policy stays ACCEPT, no rule is needed.
    expect(await rules('pi3')).toEqual(['-P FORWARD ACCEPT']);
  });

  it('keeps every other key and existing registry', () => {
    const json = JSON.parse(readFileSync(jsonPath('pi1'), 'utf8'));
    expect(json).toEqual({ ...OTHER_KEYS, 'insecure-registries': ['198.19.0.9:5000', fleet.registry] });
    expect(JSON.parse(readFileSync(jsonPath('pi2'), 'utf8'))).toEqual({
      'log-level': 'error',
      'insecure-registries': [fleet.registry],
    });
    expect(readFileSync(`${jsonPath('pi1')}.runner-fleet.bak`, 'utf8')).toBe(
      `${JSON.stringify(OTHER_KEYS, null, 2)}\n`,
    );
  });

  it('a second run changes nothing: same bytes, mtime and dockerd PIDs, one connection and round trip per node', async () => {
    const files = ['pi1', 'pi2', 'pi3'].map((n) => ({
      text: readFileSync(jsonPath(n), 'utf8'),
      mtime: statSync(jsonPath(n)).mtimeMs,
    }));
    const pids = await Promise.all(['pi1', 'pi2', 'pi3'].map(nodeDockerPid));
    const r = await runProvision(['apply', '--inventory', hostsInventory(), '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.report!.changed).toBe(0);
    expect(r.report!.ssh).toEqual({ connections: 3, roundTrips: 3 });
    expect(
      ['pi1', 'pi2', 'pi3'].map((n) => ({
        text: readFileSync(jsonPath(n), 'utf8'),
        mtime: statSync(jsonPath(n)).mtimeMs,
      })),
    ).toEqual(files);
    expect(await Promise.all(['pi1', 'pi2', 'pi3'].map(nodeDockerPid))).toEqual(pids);
  });

  it('adding a registry reloads dockerd in place (apt keeps its PID) and the new one is insecure', async () => {
    const extra = '198.18.0.2:5001';
    const path = withInventory((inv) => (inv.gitlab.registry = [fleet.registry, extra]));
    const pid1 = await nodeDockerPid('pi1');
    const pid2 = await nodeDockerPid('pi2');
    // A job's container on the snap node: a reload must not stop it.
    const run = await execOnNode('pi2', [
      'docker',
      'run',
      '-d',
      '--network',
      'none',
      'bb:local',
      'sleep',
      '600',
    ]);
    expect(run.code, run.stderr).toBe(0);
    const container = run.stdout.trim();
    const r = await runProvision(['--inventory', path, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.report!.nodes.every((n) => n.changes.some((c) => c.step === 'reload-docker'))).toBe(true);
    expect(
      r
        .report!.nodes.find((n) => n.name === 'pi2')!
        .changes.map((c) => c.detail)
        .join('\n'),
    ).toContain('systemctl kill -s HUP --kill-whom=main snap.docker.dockerd.service');
    expect(await nodeDockerPid('pi1')).toBe(pid1);
    // The snap's wrapper execs dockerd: SIGHUP to the unit's main PID reloads it in place, same PID.
    expect(await nodeDockerPid('pi2')).toBe(pid2);
    expect(
      (
        await execOnNode('pi2', [
          'docker',
          'inspect',
          '-f',
          '{{.State.Running}} {{.RestartCount}}',
          container,
        ])
      ).stdout.trim(),
    ).toBe('true 0');
    await execOnNode('pi2', ['docker', 'rm', '-f', container]);
    for (const name of ['pi1', 'pi2', 'pi3']) {
      const info = await execOnNode(name, [
        'docker',
        'info',
        '--format',
        '{{json .RegistryConfig.IndexConfigs}}',
      ]);
      expect(JSON.parse(info.stdout)[extra]).toMatchObject({ Secure: false });
    }
  });

  // The previous test's second registry goes too (this inventory has one): only the upkeep steps are looked at.
  const UPKEEP_STEPS = ['prune-timer', 'remove-prune-timer', 'snap-hold', 'snap-unhold'];
  it('docker.prune and snap.holdRefresh: applied once, shown by status; the prune removes old images and keeps those in use; dropped, both are taken back', async () => {
    // "Old" is older than `until`: imported images are created when imported, so a short until ages them quickly.
    const upkeep = withInventory((inv) => {
      inv.docker = { prune: { schedule: 'daily', keepStorage: '1GB', until: '2s' } };
      inv.snap = { holdRefresh: true };
    });
    // apply records exactly the steps plan lists (the same plan, run).
    const r = await runProvision(['apply', '--inventory', upkeep, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const applied = (name: string) =>
      r
        .report!.nodes.find((n) => n.name === name)!
        .changes.map((c) => c.step)
        .filter((k) => UPKEEP_STEPS.includes(k));
    expect(applied('pi1')).toEqual(['prune-timer']);
    expect(applied('pi2')).toEqual(['prune-timer', 'snap-hold']);
    expect((await execOnNode('pi1', ['systemctl', 'is-active', `${PRUNE_UNIT}.timer`])).stdout.trim()).toBe(
      'active',
    );
    expect((await execOnNode('pi1', ['systemctl', 'is-enabled', `${PRUNE_UNIT}.timer`])).stdout.trim()).toBe(
      'enabled',
    );
    expect((await execOnNode('pi2', ['snap', 'list', 'docker'])).stdout).toMatch(/^docker .* held$/m);
    const again = await runProvision(['apply', '--inventory', upkeep, '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.report!.changed).toBe(0);

    const status = await runProvision(['status', '--inventory', upkeep]);
    expect(status.stdout).toMatch(/DISK FREE/);
    expect(status.stdout).toMatch(/pi2: .*free of .*Docker: images .*prune timer active; snaps: docker held/);

    // Old images nobody uses, and one a running container uses, on the apt and the snap node.
    for (const name of ['pi1', 'pi2']) {
      await seedImage(name, 'old-a:1');
      await seedImage(name, 'old-b:1');
      await seedImage(name, 'in-use:1');
      const run = await execOnNode(name, [
        'docker',
        'run',
        '-d',
        '--network',
        'none',
        'in-use:1',
        'sleep',
        '600',
      ]);
      expect(run.code, run.stderr).toBe(0);
    }
    await new Promise((done) => setTimeout(done, 2500));
    for (const name of ['pi1', 'pi2']) {
      const prune = await execOnNode(name, ['systemctl', 'start', `${PRUNE_UNIT}.service`]);
      expect(
        prune.code,
        prune.stderr + (await execOnNode(name, ['cat', `/var/log/${PRUNE_UNIT}.log`])).stdout,
      ).toBe(0);
      const images = (await execOnNode(name, ['docker', 'images', '--format', '{{.Repository}}:{{.Tag}}']))
        .stdout;
      expect(images).not.toMatch(/old-a|old-b/);
      expect(images).toContain('in-use:1');
      await execOnNode(name, ['sh', '-c', 'docker rm -f $(docker ps -aq)']);
    }
    await seedImage('pi1');
    await seedImage('pi2');

    // upgrade-snaps: a newer docker revision in the store; the held snap is refreshed by name, its hold stays.
    await execOnNode('pi2', [
      'sh',
      '-c',
      'mkdir -p /var/lib/snapd/testbed-store && echo 3300 > /var/lib/snapd/testbed-store/docker',
    ]);
    const pid2 = await nodeDockerPid('pi2');
    const upgrade = await runProvision(['upgrade-snaps', '--inventory', upkeep, '--json']);
    expect(upgrade.code, upgrade.stderr).toBe(0);
    const outcomes = (
      upgrade.report as unknown as {
        nodes: { name: string; outcome: { kind: string; refreshed?: string[] } }[];
      }
    ).nodes;
    expect(outcomes.map((n) => [n.name, n.outcome.kind, n.outcome.refreshed])).toEqual([
      ['pi1', 'none', undefined],
      ['pi2', 'refreshed', ['docker']],
      ['pi3', 'none', undefined],
    ]);
    expect(await nodeDockerPid('pi2')).not.toBe(pid2);
    expect((await execOnNode('pi2', ['snap', 'list', 'docker'])).stdout).toMatch(
      /^docker +\S+ +3300 .* held$/m,
    );

    const dropped = await runProvision(['apply', '--inventory', hostsInventory(), '--json']);
    expect(dropped.code, dropped.stderr).toBe(0);
    const steps = (name: string) =>
      dropped
        .report!.nodes.find((n) => n.name === name)!
        .changes.map((c) => c.step)
        .filter((k) => UPKEEP_STEPS.includes(k));
    expect(steps('pi1')).toEqual(['remove-prune-timer']);
    expect(steps('pi2')).toEqual(['remove-prune-timer', 'snap-unhold']);
    expect((await execOnNode('pi1', ['test', '-e', PRUNE_TIMER_FILE])).code).not.toBe(0);
    expect((await execOnNode('pi1', ['systemctl', 'is-active', `${PRUNE_UNIT}.timer`])).stdout.trim()).toBe(
      'inactive',
    );
    expect((await execOnNode('pi2', ['snap', 'list', 'docker'])).stdout).toMatch(/^docker .* -$/m);
  }, 180_000);

  it('one unreachable node: the others converge, exit 1, the report names it and why', async () => {
    const path = withInventory((inv) => inv.nodes.push({ name: 'pi-gone', host: '127.0.0.99', port: 2299 }));
    const r = await runProvision(['--inventory', path, '--json']);
    expect(r.code).toBe(1);
    const gone = r.report!.nodes.find((n) => n.name === 'pi-gone')!;
    expect(gone.ok).toBe(false);
    expect(gone.error).toMatch(/connection refused/);
    expect(r.report!.nodes.filter((n) => n.name !== 'pi-gone').every((n) => n.ok)).toBe(true);
    expect(r.stderr).toContain('pi-gone');
  });

  it('sudo that wants a password fails that node at once with a clear message, never a hang', async () => {
    const path = withInventory((inv) => (inv.nodes[0].user = NO_SUDO_USER));
    const r = await runProvision(['--inventory', path, '--json']);
    expect(r.code).toBe(1);
    expect(r.report!.nodes[0].error).toMatch(/sudo on .* needs a password for pinosudo/);
    expect(r.report!.nodes.slice(1).every((n) => n.ok)).toBe(true);
  });

  it('host keys are verified: a changed key or an unknown host is refused, never accepted', async () => {
    const known = readFileSync(inventory.ssh.knownHosts, 'utf8').split('\n').filter(Boolean);
    // OpenSSH's form: `host` for port 22, `[host]:port` otherwise.
    const of = (i: number) => {
      const n = fleet.nodes[i];
      return n.port === 22 ? `${n.host} ` : `[${n.host}]:${n.port} `;
    };
    const pi1Key = known
      .find((l) => l.startsWith(of(0)))!
      .split(' ')
      .slice(1)
      .join(' ');
    const swapped = known.map((l) => (l.startsWith(of(1)) ? `${l.split(' ')[0]} ${pi1Key}` : l));
    const withoutPi3 = known.filter((l) => !l.startsWith(of(2)));
    const kh = join(fleet.stateDir, 'known_hosts.tampered');
    writeFileSync(kh, `${swapped.filter((l) => withoutPi3.includes(l) || l.includes(pi1Key)).join('\n')}\n`);
    const r = await runProvision([
      '--inventory',
      withInventory((inv) => (inv.ssh.knownHosts = kh)),
      '--json',
    ]);
    expect(r.code).toBe(1);
    const byName = Object.fromEntries(r.report!.nodes.map((n) => [n.name, n]));
    expect(byName.pi1.ok).toBe(true);
    expect(byName.pi2.error).toMatch(/HOST KEY MISMATCH/);
    expect(byName.pi3.error).toMatch(/is not in .*known_hosts.tampered/);
  });

  it('--only works on the named nodes and leaves the others alone', async () => {
    const r = await runProvision(['--inventory', hostsInventory(), '--only', 'pi2', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.report!.nodes.map((n) => n.name)).toEqual(['pi2']);
    const bad = await runProvision(['--inventory', hostsInventory(), '--only', 'pi9']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--only: no node named "pi9"');
  });

  it('a daemon.json that is not JSON is never overwritten; only that node fails', async () => {
    const file = nodeFile('pi3', APT_JSON);
    const good = readFileSync(file, 'utf8');
    writeFileSync(file, '{"insecure-registries": [');
    try {
      const path = withInventory((inv) => (inv.gitlab.registry = [fleet.registry, '198.18.0.2:5002']));
      const r = await runProvision(['--inventory', path, '--json']);
      expect(r.code).toBe(1);
      const pi3 = r.report!.nodes.find((n) => n.name === 'pi3')!;
      expect(pi3.error).toMatch(/daemon\.json is not valid JSON/);
      expect(readFileSync(file, 'utf8')).toBe('{"insecure-registries": [');
      expect(r.report!.nodes.filter((n) => n.name !== 'pi3').every((n) => n.ok)).toBe(true);
    } finally {
      writeFileSync(file, good);
    }
  });

  it('a reload dockerd refuses puts the previous daemon.json back, keeps Docker running, and fails that node saying so', async () => {
    const file = nodeFile('pi1', APT_JSON);
    const good = readFileSync(file, 'utf8');
    // A key dockerd also gets as a flag (the testbed's --default-runtime runc-bnd): its reload fails, the daemon keeps running.
    const conflicting = `${JSON.stringify({ ...JSON.parse(good), 'default-runtime': 'runc' }, null, 2)}\n`;
    writeFileSync(file, conflicting);
    const pid = await nodeDockerPid('pi1');
    try {
      const path = withInventory((inv) => (inv.gitlab.registry = [fleet.registry, '198.18.0.2:5003']));
      const r = await runProvision(['--inventory', path, '--json', '--only', 'pi1']);
      expect(r.code, r.stderr).toBe(1);
      const pi1 = r.report!.nodes.find((n) => n.name === 'pi1')!;
      expect(pi1.error).toMatch(
        /dockerd did not take the new \/etc\/docker\/daemon\.json .*restored the previous file from \.runner-fleet\.bak and brought Docker back/,
      );
      expect(pi1.changes.map((c) => c.step)).toContain('restore');
      expect(readFileSync(file, 'utf8')).toBe(conflicting);
      expect(await nodeDockerPid('pi1')).toBe(pid);
      const info = await execOnNode('pi1', [
        'docker',
        'info',
        '--format',
        '{{json .RegistryConfig.IndexConfigs}}',
      ]);
      expect(JSON.parse(info.stdout)['198.18.0.2:5003']).toBeUndefined();
    } finally {
      writeFileSync(file, good);
      await execOnNode('pi1', ['systemctl', 'reload', 'docker']);
    }
  });
});

describe.runIf(canRun)("hosts: Docker from Docker's own packages", () => {
  afterAll(async () => {
    if (canRun) await down();
  });

  it('docker-ce with a running dockerd is installed Docker: no docker.io over it, its daemon.json, reloaded the apt way', async () => {
    const fleet = await up({ nodes: 1, kinds: ['apt'], services: servicesNamed([]) });
    const inventory = parse(readFileSync(fleet.inventory, 'utf8'));
    delete inventory.kubernetes;
    for (const k of ['accessToken', 'runnerToken', 'registrationToken']) delete inventory.gitlab[k];
    const path = fleet.inventory.replace(/\.yaml$/, '.docker-ce.yaml');
    writeFileSync(path, stringify(inventory));
    // The node's own package database (never the machine's): Docker's docker-ce where Debian's docker.io was.
    const status = nodeFile('pi1', '/var/lib/dpkg/status');
    const stanzas = readFileSync(status, 'utf8').split(/\n\n+/);
    const dockerIo = stanzas.findIndex((st) => /^Package: docker\.io$/m.test(st));
    expect(dockerIo).toBeGreaterThanOrEqual(0);
    stanzas[dockerIo] =
      'Package: docker-ce\nStatus: install ok installed\nPriority: optional\nSection: admin\nMaintainer: Docker <support@docker.com>\nArchitecture: amd64\nVersion: 5:27.3.1-1~debian.12~bookworm\nConflicts: docker, docker-engine, docker.io\nDescription: Docker: the open-source application container engine';
    writeFileSync(status, `${stanzas.filter(Boolean).join('\n\n')}\n\n`);
    const pid = await nodeDockerPid('pi1');
    expect(pid).toBeGreaterThan(0);

    const r = await runProvision(['--inventory', path, '--json']);
    expect(r.code, r.stderr).toBe(0);
    // Forwarding first (the node is a cluster node: placement cluster), then the record of runner-fleet's registry
    // entries, daemon.json, the reload.
    const all = r.report!.nodes[0].changes;
    expect(all[0].step).toBe('enable-forwarding');
    const changes = all.filter((c) => c.step !== 'enable-forwarding' && c.step !== 'pod-traffic-rules');
    expect(changes.map((c) => c.step)).toEqual(['write-file', 'write-file', 'reload-docker']);
    expect(changes[2].detail).toContain('systemctl reload docker');
    expect(await nodeDockerPid('pi1')).toBe(pid);
    expect(
      (await execOnNode('pi1', ['dpkg-query', '-W', '-f=${db:Status-Status}', 'docker.io'])).stdout,
    ).not.toBe('installed');
    expect(
      (await execOnNode('pi1', ['dpkg-query', '-W', '-f=${db:Status-Status}', 'docker-ce'])).stdout,
    ).toBe('installed');
    expect(JSON.parse(readFileSync(nodeFile('pi1', APT_JSON), 'utf8'))['insecure-registries']).toEqual([
      fleet.registry,
    ]);
    const info = await execOnNode('pi1', [
      'docker',
      'info',
      '--format',
      '{{json .RegistryConfig.IndexConfigs}}',
    ]);
    expect(JSON.parse(info.stdout)[fleet.registry]).toMatchObject({ Secure: false });
  });
});

describe('bad inventories exit 2, name the path, and contact no node', () => {
  let server: Server;
  let port = 0;
  let connections = 0;
  beforeAll(async () => {
    server = createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const good = () => ({
    gitlab: { url: 'http://127.0.0.1:1', registry: ['198.18.0.2:5000'] },
    ssh: { user: 'pi', identityFile: '/dev/null', knownHosts: '/dev/null' },
    nodes: [
      { name: 'pi1', host: '127.0.0.1', port },
      { name: 'pi2', host: '127.0.0.2', port },
    ],
  });

  const cases: [string, (inv: any) => void, string][] = [
    ['unknown key', (inv) => (inv.nodes[1].dokcer = 'apt'), 'nodes[1].dokcer: unknown key'],
    ['duplicate node name', (inv) => (inv.nodes[1].name = 'pi1'), 'nodes[1].name: duplicate node name "pi1"'],
    [
      'duplicate host',
      (inv) => (inv.nodes[1].host = '127.0.0.1'),
      'nodes[1].host: duplicate host 127.0.0.1:',
    ],
    ['bad docker', (inv) => (inv.nodes[1].docker = 'podman'), 'nodes[1].docker: expected apt | snap | auto'],
    [
      'bad executor',
      (inv) => (inv.runners = { executor: 'kubernetes' }),
      'runners.executor: expected shell | dind | dood',
    ],
    [
      'registry with a scheme',
      (inv) => (inv.gitlab.registry = ['http://198.18.0.2:5000']),
      'gitlab.registry[0]: expected host:port without a scheme',
    ],
    [
      'inline token',
      (inv) => (inv.gitlab.accessToken = 'glpat-0123456789abcdef'),
      'gitlab.accessToken: expected a reference',
    ],
    [
      'registry port dockerd refuses',
      (inv) => (inv.gitlab.registry = ['198.18.0.2:5000', 'reg.lan:99999']),
      'gitlab.registry[1]: invalid port "99999"',
    ],
    [
      'registry that is not an IPv6 address',
      (inv) => (inv.gitlab.registry = ['[..]:5000']),
      'gitlab.registry[0]: [..] is not an IPv6 address',
    ],
    [
      'registry port 0',
      (inv) => (inv.gitlab.registry = ['reg.lan:0']),
      'gitlab.registry[0]: invalid port "0"',
    ],
    [
      'one host spelled twice',
      (inv) => (
        (inv.nodes[0].host = 'localhost'),
        (inv.nodes[1].host = '127.0.0.1'),
        (inv.nodes[1].port = port)
      ),
      'nodes[1].host: duplicate host 127.0.0.1:',
    ],
    [
      'GitLab URL with a password',
      (inv) => (inv.gitlab.url = 'http://root:glpat-0123456789abcdef@127.0.0.1:1'),
      'gitlab.url: must not contain a user name or password',
    ],
    [
      "description over GitLab's limit",
      (inv) => (inv.runners = { description: 'd'.repeat(20_000_000) }),
      'runners.description: is 20000000 characters long; at most 1024 allowed',
    ],
    [
      'missing env token',
      (inv) => (inv.gitlab.accessToken = 'env:RUNNER_FLEET_TEST_UNSET'),
      'gitlab.accessToken: environment variable RUNNER_FLEET_TEST_UNSET is not set',
    ],
  ];

  it.each(cases)('%s', async (_name, mutate, message) => {
    const inv = good();
    mutate(inv);
    const path = join(import.meta.dirname, `.bad-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(path, stringify(inv));
    try {
      const r = await runProvision(['--inventory', path]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(message);
      expect(r.stderr).not.toContain('glpat-0123456789abcdef');
      expect(connections).toBe(0);
    } finally {
      (await import('node:fs')).rmSync(path, { force: true });
    }
  });

  it.each([['0x10'], ['1e1'], [' 5']])('--concurrency %j exits 2', async (value) => {
    const r = await runProvision([`--concurrency=${value}`, '--inventory', '/nonexistent.yaml']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--concurrency: expected a decimal integer');
  });

  it('an alias bomb or a file that is not UTF-8 exits 2', async () => {
    const bomb = `${stringify(good())}a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n`;
    for (const [text, message] of [
      [Buffer.from(bomb), /alias/i],
      [Buffer.concat([Buffer.from(stringify(good())), Buffer.from([0xff, 0xfe])]), /not valid UTF-8/],
    ] as const) {
      const path = join(import.meta.dirname, `.bad-${Math.random().toString(36).slice(2)}.yaml`);
      writeFileSync(path, text);
      try {
        const r = await runProvision(['--inventory', path]);
        expect(r.code).toBe(2);
        expect(r.stderr).toMatch(message);
        expect(connections).toBe(0);
      } finally {
        (await import('node:fs')).rmSync(path, { force: true });
      }
    }
  });

  it('--executor with a bad value exits 2', async () => {
    const r = await runProvision(['--executor', 'podman', '--inventory', '/nonexistent.yaml']);
    expect(r.code).toBe(2);
  });
});
