// The local test fleet itself: a real sshd per node with its own view of the files, real dockerd, the registry, the stand-ins, a clean down.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadInventory } from '../src/inventory/schema.js';
import {
  down, execOnNode, getNode, nodeDockerPid, nodeFile, seedImage, startNodeSshd, status, stopNodeSshd, up, type FleetInfo,
} from '../scripts/testbed/fleet.js';
import { portOpen } from '../scripts/testbed/node.js';
import { slot } from '../scripts/testbed/paths.js';
import { processInfo, run } from '../scripts/testbed/procs.js';
import { REGISTRY_NETNS } from '../scripts/testbed/registry.js';
import { requireRoot } from './support/requireRoot.js';

const canRun = requireRoot('the test fleet suite (test/testbed.test.ts)');
const REPO = join(import.meta.dirname, '..');
const HTTPS_ERROR = 'server gave HTTP response to HTTPS client';

describe.runIf(canRun)('test fleet', () => {
  let fleet: FleetInfo;
  const node = (name: string) => fleet.nodes.find((n) => n.name === name)!;

  /** The real OpenSSH client, as pi, with host keys checked against `knownHosts`. */
  const ssh = (name: string, command: string, knownHosts = join(fleet.stateDir, 'known_hosts')) =>
    run('ssh', [
      '-i', join(fleet.stateDir, 'id_ed25519'), '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes',
      '-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'ConnectTimeout=5',
      '-p', String(node(name).port), `pi@${node(name).host}`, command,
    ], { check: false });
  const push = (name: string, tag: string) => ssh(name, `sudo -n docker tag bb:local ${fleet.registry}/${tag} && sudo -n docker push ${fleet.registry}/${tag}`);

  beforeAll(async () => {
    fleet = await up({ nodes: 3 });
  });

  afterAll(async () => {
    await down();
  });

  it('comes up as pi1 apt, pi2 snap, pi3 none with a valid inventory', () => {
    expect(fleet.nodes).toEqual([
      { name: 'pi1', host: `127.0.${slot()}.11`, port: 2201, docker: 'apt' },
      { name: 'pi2', host: `127.0.${slot()}.12`, port: 2202, docker: 'snap' },
      { name: 'pi3', host: `127.0.${slot()}.13`, port: 2203, docker: 'none' },
    ]);
    expect(fleet.registry).toBe(`198.18.${slot()}.2:5000`);
    const inv = loadInventory(fleet.inventory);
    expect(inv.gitlab.registries).toEqual([`198.18.${slot()}.2:5000`]);
    expect(inv.nodes.map((n) => [n.name, n.host, n.port, n.docker, n.identityFile, n.knownHosts])).toEqual(
      fleet.nodes.map((n) => [n.name, n.host, n.port, n.docker === 'none' ? 'auto' : n.docker, join(fleet.stateDir, 'id_ed25519'), join(fleet.stateDir, 'known_hosts')]),
    );
  });

  it('each node is a real sshd with a verified host key, and sudo sees the node\'s own /etc/docker', async () => {
    const hostJson = existsSync('/etc/docker/daemon.json') ? readFileSync('/etc/docker/daemon.json', 'utf8') : undefined;
    // Valid for dockerd: pi3's is read when apt-get starts its dockerd below.
    const own = (name: string) => `{"labels": ["testbed-node=${name}"]}\n`;
    for (const n of fleet.nodes) writeFileSync(nodeFile(n.name, '/etc/docker/daemon.json'), own(n.name));
    for (const n of fleet.nodes) {
      const r = await ssh(n.name, 'sudo -n cat /etc/docker/daemon.json');
      expect(r.stderr).not.toMatch(/Warning|added/);
      expect([r.code, r.stdout]).toEqual([0, own(n.name)]);
    }
    // The machine's own file is untouched.
    expect(existsSync('/etc/docker/daemon.json') ? readFileSync('/etc/docker/daemon.json', 'utf8') : undefined).toBe(hostJson);
    // A known_hosts naming pi1's key for pi2's address is refused: keys really are checked.
    const wrong = join(fleet.stateDir, 'known_hosts.wrong');
    const pi1Key = readFileSync(join(fleet.stateDir, 'known_hosts'), 'utf8').split('\n')[0].split(' ').slice(1).join(' ');
    writeFileSync(wrong, `[127.0.${slot()}.12]:2202 ${pi1Key}\n`);
    const refused = await ssh('pi2', 'true', wrong);
    expect(refused.code).toBe(255);
    expect(refused.stderr).toContain('Host key verification failed');
  });

  it('docker works on the apt and snap nodes; the none node has no Docker', async () => {
    for (const name of ['pi1', 'pi2']) {
      const r = await ssh(name, "sudo -n docker info --format '{{.ServerVersion}} {{.DockerRootDir}}'");
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.trim()).toMatch(name === 'pi1' ? / \/var\/lib\/docker$/ : / \/var\/snap\/docker\/common\/var-lib-docker$/);
    }
    const apt = await ssh('pi1', "dpkg-query -W -f='${db:Status-Status}' docker.io; sudo -n systemctl is-active docker");
    expect(apt.stdout).toBe('installedactive\n');
    const snap = await ssh('pi2', "dpkg-query -W -f='${db:Status-Status}' docker.io; snap list docker >/dev/null && echo snap; cat /var/snap/docker/current/config/daemon.json");
    expect(snap.stdout).toMatch(/^not-installedsnap\n/);
    expect(JSON.parse(snap.stdout.split('\n').slice(1).join('\n'))).toEqual({ 'log-level': 'error' });
    const none = await ssh('pi3', "dpkg-query -W -f='${db:Status-Status}' docker.io; snap list docker; sudo -n systemctl start docker");
    expect(none.stdout).toBe('not-installed');
    expect(none.stderr).toContain('error: no matching snaps installed');
    expect(none.stderr).toContain('Unit docker.service not found.');
    expect(none.code).toBe(5);
    expect(nodeDockerPid('pi3')).toBeUndefined();
  });

  it('a push to the registry fails with the HTTPS error before any configuration', async () => {
    await seedImage('pi1');
    await seedImage('pi2');
    for (const name of ['pi1', 'pi2']) {
      const r = await push(name, `before-${name}:1`);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(HTTPS_ERROR);
    }
  });

  it('stand-ins: apt reload is a SIGHUP (same dockerd), the snap restarts (new dockerd); both then push', async () => {
    const aptPid = nodeDockerPid('pi1');
    writeFileSync(nodeFile('pi1', '/etc/docker/daemon.json'), `{"insecure-registries": ["${fleet.registry}"]}\n`);
    expect((await ssh('pi1', 'sudo -n systemctl daemon-reload')).code).toBe(0);
    expect((await push('pi1', 'still-https:1')).stderr).toContain(HTTPS_ERROR);
    expect((await ssh('pi1', 'sudo -n systemctl reload docker')).code).toBe(0);
    expect(nodeDockerPid('pi1')).toBe(aptPid);
    const aptPush = await push('pi1', 'after-pi1:1');
    expect(aptPush.code, aptPush.stderr).toBe(0);

    const snapPid = nodeDockerPid('pi2');
    const snapJson = nodeFile('pi2', '/var/snap/docker/current/config/daemon.json');
    writeFileSync(snapJson, `{"log-level": "error", "insecure-registries": ["${fleet.registry}"]}\n`);
    const reload = await ssh('pi2', 'sudo -n systemctl reload snap.docker.dockerd');
    expect(reload.stderr).toContain('Job type reload is not applicable');
    const restart = await ssh('pi2', 'sudo -n snap restart docker');
    expect([restart.code, restart.stdout]).toEqual([0, 'Restarted.\n']);
    expect(nodeDockerPid('pi2')).not.toBe(snapPid);
    const snapPush = await push('pi2', 'after-pi2:1');
    expect(snapPush.code, snapPush.stderr).toBe(0);
  });

  it('apt-get install docker.io on the none node records the package and starts dockerd', async () => {
    const noYes = await ssh('pi3', 'sudo -n apt-get install docker.io </dev/null');
    expect(noYes.code).toBe(1);
    expect(noYes.stdout).toContain('Abort.');
    const r = await ssh('pi3', 'sudo -n apt-get install -y docker.io');
    expect(r.code, r.stderr).toBe(0);
    const after = await execOnNode('pi3', ['sh', '-c', "dpkg-query -W -f='${db:Status-Status}' docker.io; systemctl is-active docker"]);
    expect(after.stdout).toBe('installedactive\n');
    expect(nodeDockerPid('pi3')).toBeGreaterThan(0);
    // The other nodes' dpkg status is their own.
    expect((await execOnNode('pi2', ['dpkg-query', '-W', '-f=${db:Status-Status}', 'docker.io'])).stdout).toBe('not-installed');
  });

  it('stopNodeSshd makes a node unreachable and startNodeSshd brings it back', async () => {
    await stopNodeSshd('pi2');
    expect(await portOpen(`127.0.${slot()}.12`, 2202)).toBe(false);
    expect((await ssh('pi2', 'true')).code).toBe(255);
    await startNodeSshd('pi2');
    expect((await ssh('pi2', 'sudo -n snap services docker')).stdout).toMatch(/docker\.dockerd\s+enabled\s+active/);
  });

  it('the CLI: status --json reports memory per node, exec passes the exit code through', async () => {
    const st = await run('npx', ['tsx', 'scripts/testbed.ts', 'status', '--json'], { cwd: REPO });
    const parsed = JSON.parse(st.stdout) as ReturnType<typeof status>;
    expect(parsed.up).toBe(true);
    expect(parsed.nodes.map((n) => [n.name, n.installed])).toEqual([['pi1', 'apt'], ['pi2', 'snap'], ['pi3', 'apt']]);
    for (const n of parsed.nodes) expect(n.rssKb).toBeGreaterThan(0);
    const ex = await run('npx', ['tsx', 'scripts/testbed.ts', 'exec', 'pi1', '--', 'sh', '-c', 'cat /etc/docker/daemon.json; exit 7'], { cwd: REPO, check: false });
    expect(ex.code).toBe(7);
    expect(ex.stdout).toContain(fleet.registry);
  });

  it('down stops every process, removes the network namespace and the state root, and can run twice', async () => {
    const keepers = fleet.nodes.map((n) => getNode(n.name).keeperPid);
    const dockerds = fleet.nodes.map((n) => nodeDockerPid(n.name)).filter((p): p is number => p !== undefined);
    expect(dockerds.length).toBeGreaterThanOrEqual(2);
    const pids = [...keepers, ...dockerds];
    await down();
    for (const pid of pids) expect(processInfo(pid)).toBeUndefined();
    for (const n of fleet.nodes) expect(await portOpen(n.host, n.port)).toBe(false);
    expect((await run('ip', ['netns', 'list'])).stdout).not.toContain(REGISTRY_NETNS);
    expect(existsSync(fleet.stateDir)).toBe(false);
    expect(status().up).toBe(false);
    await down();
  });
});
