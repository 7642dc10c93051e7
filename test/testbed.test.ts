// The local test fleet itself: nodes in their own namespaces with a real sshd, dockerd and kubelet, the registry, the stand-ins, a clean down.
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadInventory } from '../src/inventory/schema.js';
import {
  clusterBinDir,
  down,
  ensureHost,
  execOnNode,
  type FleetInfo,
  getNode,
  hostsToml,
  listProcesses,
  machineFileHashes,
  MICROK8S_CERTS_D,
  net,
  nodeDockerPid,
  nodeFile,
  portOpen,
  processInfo,
  pushTestImages,
  REGISTRY_NETNS,
  resultOf,
  seedImage,
  servicesNamed,
  sh,
  slot,
  startNodeSshd,
  stateRoot,
  status,
  stopNodeSshd,
  sysctlValues,
  up,
} from '#testbed';
import { kubectl, kubectlJson } from './support/fleet.js';
import { requireRoot } from './support/requireRoot.js';

const canRun = requireRoot('the test fleet suite (test/testbed.test.ts)');

const REPO = join(import.meta.dirname, '..');
const HTTPS_ERROR = 'server gave HTTP response to HTTPS client';

describe.runIf(canRun)('test fleet', () => {
  let fleet: FleetInfo;
  const node = (name: string) => fleet.nodes.find((n) => n.name === name)!;

  /** The real OpenSSH client, as pi, with host keys checked against `knownHosts`. */
  const ssh = async (name: string, command: string, knownHosts = join(fleet.stateDir, 'known_hosts')) =>
    resultOf(
      await sh({ nothrow: true })`ssh ${[
        '-i',
        join(fleet.stateDir, 'id_ed25519'),
        '-o',
        'IdentitiesOnly=yes',
        '-o',
        'BatchMode=yes',
        '-o',
        'StrictHostKeyChecking=yes',
        '-o',
        `UserKnownHostsFile=${knownHosts}`,
        '-o',
        'ConnectTimeout=5',
        '-p',
        String(node(name).port),
        `pi@${node(name).host}`,
        command,
      ]}`,
    );
  const push = (name: string, tag: string) =>
    ssh(
      name,
      `sudo -n docker tag bb:local ${fleet.registry}/${tag} && sudo -n docker push ${fleet.registry}/${tag}`,
    );
  /** What `down` must leave as it found it. */
  let before: Awaited<ReturnType<typeof snapshot>>;
  const snapshot = async () => ({
    hashes: machineFileHashes(),
    sysctls: sysctlValues(),
    // Other slots' fleets add and remove their own forward guards meanwhile: only this slot's rules count.
    iptables: (await sh`iptables-save`).stdout
      .replace(/^#.*\n/gm, '')
      .split('\n')
      .filter(
        (l) => !/runner-fleet-testbed rfbr\d/.test(l) || l.includes(`runner-fleet-testbed ${net.bridge()}"`),
      )
      .join('\n'),
    links: (await sh`ip -br link`).stdout
      .split('\n')
      .filter((l) => l.startsWith(`rf${slot()}`) || l.startsWith(net.bridge()))
      .join('\n'),
    // Only ours: other work on the machine mounts and unmounts meanwhile.
    mounts: readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .filter(
        (l) =>
          l.includes(stateRoot()) ||
          l.includes(`/run/netns/rf${slot()}-`) ||
          l.includes(`/run/netns/${REGISTRY_NETNS} `),
      ),
  });
  let bin: string;
  let kubeconfig: string;
  const k = (args: string[]) => kubectl(bin, kubeconfig, args);

  beforeAll(async () => {
    // The one-time host setup (packages, the pi user) is not the fleet's doing; up and down must change nothing after it.
    await ensureHost();
    bin = await clusterBinDir();
    before = await snapshot();
    fleet = await up({ nodes: 3, microk8s: ['pi3'] });
    kubeconfig = (await import('yaml')).parse(readFileSync(fleet.inventory, 'utf8')).kubernetes
      .kubeconfig as string;
  });

  afterAll(async () => {
    await down();
  });

  it('comes up as pi1 apt, pi2 snap, pi3 none with a valid inventory', () => {
    expect(fleet.nodes).toEqual([
      { name: 'pi1', host: `198.18.${slot()}.11`, port: 22, docker: 'apt' },
      { name: 'pi2', host: `198.18.${slot()}.12`, port: 22, docker: 'snap' },
      { name: 'pi3', host: `198.18.${slot()}.13`, port: 22, docker: 'none', microk8s: true },
    ]);
    expect(fleet.registry).toBe(`198.18.${slot()}.2:5000`);
    const inv = loadInventory(fleet.inventory);
    expect(inv.gitlab.registries).toEqual([`198.18.${slot()}.2:5000`]);
    expect(inv.nodes.map((n) => [n.name, n.host, n.port, n.docker, n.identityFile, n.knownHosts])).toEqual(
      fleet.nodes.map((n) => [
        n.name,
        n.host,
        n.port,
        n.docker === 'none' ? 'auto' : n.docker,
        join(fleet.stateDir, 'id_ed25519'),
        join(fleet.stateDir, 'known_hosts'),
      ]),
    );
  });

  it("each node is a real sshd with a verified host key, and sudo sees the node's own /etc/docker", async () => {
    const hostJson = existsSync('/etc/docker/daemon.json')
      ? readFileSync('/etc/docker/daemon.json', 'utf8')
      : undefined;
    // Valid for dockerd: pi3's is read when apt-get starts its dockerd below.
    const own = (name: string) => `{"labels": ["testbed-node=${name}"]}\n`;
    for (const n of fleet.nodes) writeFileSync(nodeFile(n.name, '/etc/docker/daemon.json'), own(n.name));
    for (const n of fleet.nodes) {
      const r = await ssh(n.name, 'sudo -n cat /etc/docker/daemon.json');
      expect(r.stderr).not.toMatch(/Warning|added/);
      expect([r.code, r.stdout]).toEqual([0, own(n.name)]);
    }
    // The machine's own file is untouched.
    expect(
      existsSync('/etc/docker/daemon.json') ? readFileSync('/etc/docker/daemon.json', 'utf8') : undefined,
    ).toBe(hostJson);
    // A known_hosts naming pi1's key for pi2's address is refused: keys really are checked.
    const wrong = join(fleet.stateDir, 'known_hosts.wrong');
    const pi1Key = readFileSync(join(fleet.stateDir, 'known_hosts'), 'utf8')
      .split('\n')[0]
      .split(' ')
      .slice(1)
      .join(' ');
    writeFileSync(wrong, `198.18.${slot()}.12 ${pi1Key}\n`);
    const refused = await ssh('pi2', 'true', wrong);
    expect(refused.code).toBe(255);
    expect(refused.stderr).toContain('Host key verification failed');
  });

  it('each node has its own network, UTS and mount namespaces, its address on the bridge and its own /tmp', async () => {
    const host = readlinkSync('/proc/self/ns/net');
    const seen = new Set<string>();
    for (const n of fleet.nodes) {
      const keeper = getNode(n.name).keeperPid;
      const ns = readlinkSync(`/proc/${keeper}/ns/net`);
      expect(ns).not.toBe(host);
      seen.add(ns);
      const r = await ssh(
        n.name,
        `hostname; ip -4 -o addr show eth0; ip route show default; echo x > /tmp/mine-${n.name}; ls /tmp`,
      );
      expect(r.code, r.stderr).toBe(0);
      const [hostname, addr, route, ...tmp] = r.stdout.trim().split('\n');
      expect(hostname).toBe(n.name);
      expect(addr).toContain(`inet ${n.host}/24`);
      expect(route).toContain(`default via ${net.hostAddr()}`);
      // Its own file, and no other node's. The node's own daemons may write there too (a containerd that its
      // dockerd judged unhealthy under load leaves containerd.PID.stacks.log).
      expect(tmp).toContain(`mine-${n.name}`);
      expect(tmp.filter((f) => f.startsWith('mine'))).toEqual([`mine-${n.name}`]);
    }
    expect(seen.size).toBe(fleet.nodes.length);
    // The machine's own /tmp did not get the nodes' files.
    for (const n of fleet.nodes) expect(existsSync(`/tmp/mine-${n.name}`)).toBe(false);
    // Nothing of a node listens on the machine's loopback.
  });

  it('docker works on the apt and snap nodes; the none node has no Docker', async () => {
    for (const name of ['pi1', 'pi2']) {
      const r = await ssh(name, "sudo -n docker info --format '{{.ServerVersion}} {{.DockerRootDir}}'");
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.trim()).toMatch(
        name === 'pi1' ? / \/var\/lib\/docker$/ : / \/var\/snap\/docker\/common\/var-lib-docker$/,
      );
    }
    const apt = await ssh(
      'pi1',
      "dpkg-query -W -f='${db:Status-Status}' docker.io; sudo -n systemctl is-active docker",
    );
    expect(apt.stdout).toBe('installedactive\n');
    const snap = await ssh(
      'pi2',
      "dpkg-query -W -f='${db:Status-Status}' docker.io; snap list docker >/dev/null && echo snap; cat /var/snap/docker/current/config/daemon.json",
    );
    expect(snap.stdout).toMatch(/^not-installedsnap\n/);
    expect(JSON.parse(snap.stdout.split('\n').slice(1).join('\n'))).toEqual({ 'log-level': 'error' });
    const none = await ssh(
      'pi3',
      "dpkg-query -W -f='${db:Status-Status}' docker.io; snap list docker; sudo -n systemctl start docker",
    );
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
    writeFileSync(
      nodeFile('pi1', '/etc/docker/daemon.json'),
      `{"insecure-registries": ["${fleet.registry}"]}\n`,
    );
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
    const after = await execOnNode('pi3', [
      'sh',
      '-c',
      "dpkg-query -W -f='${db:Status-Status}' docker.io; systemctl is-active docker",
    ]);
    expect(after.stdout).toBe('installedactive\n');
    expect(nodeDockerPid('pi3')).toBeGreaterThan(0);
    // The other nodes' dpkg status is their own.
    expect(
      (await execOnNode('pi2', ['dpkg-query', '-W', '-f=${db:Status-Status}', 'docker.io'])).stdout,
    ).toBe('not-installed');
  });

  it('a container on a node reaches the registry and the host; privileged containers run (runc-bnd)', async () => {
    const probe = `wget -qO- http://${fleet.registry}/v2/ && echo registry-ok; wget -qO- http://${net.hostAddr()}:1/ 2>&1 | grep -q refused && echo host-ok`;
    for (const name of ['pi1', 'pi2']) {
      const r = await execOnNode(name, ['docker', 'run', '--rm', 'bb:local', 'sh', '-c', probe]);
      expect(r.stdout, r.stderr).toBe('{}registry-ok\nhost-ok\n');
    }
    const priv = await execOnNode('pi1', [
      'docker',
      'run',
      '--rm',
      '--privileged',
      'bb:local',
      'sh',
      '-c',
      'mkdir -p /m && mount -t tmpfs none /m && echo privileged-ok',
    ]);
    expect(priv.stdout, priv.stderr).toBe('privileged-ok\n');
    const info = await execOnNode('pi1', ['docker', 'info', '--format', '{{.Driver}} {{.DefaultRuntime}}']);
    expect(info.stdout.trim()).toBe('overlay2 runc-bnd');
  });

  it("apt-get fails closed when the node's own dpkg status is not mounted", async () => {
    const src = join(REPO, 'scripts', 'testbed', 'repository', 'signing-key.asc');
    writeFileSync(nodeFile('pi2', '/etc/gl.asc'), readFileSync(src));
    mkdirSync(nodeFile('pi2', '/etc/apt/sources.list.d'), { recursive: true });
    writeFileSync(
      nodeFile('pi2', '/etc/apt/sources.list.d/gl.list'),
      'deb [signed-by=/etc/gl.asc] https://packages.gitlab.com/runner/gitlab-runner/debian bookworm main\n',
    );
    expect((await execOnNode('pi2', ['apt-get', 'update'])).code).toBe(0);
    const hash = machineFileHashes()['/var/lib/dpkg/status'];
    // The overlay gone (what a rename of the machine's status file used to do to the old file bind), then the
    // machine's directory bound in its place: both are refused.
    const gone = await execOnNode('pi2', [
      'sh',
      '-c',
      'umount -l /var/lib/dpkg && apt-get install -y gitlab-runner',
    ]);
    expect([gone.code, gone.stderr]).toEqual([100, expect.stringContaining('not mounted')]);
    const same = await execOnNode('pi2', [
      'sh',
      '-c',
      'mount --bind /var/lib/dpkg /var/lib/dpkg && apt-get install -y gitlab-runner',
    ]);
    expect([same.code, same.stderr]).toEqual([100, expect.stringContaining("the machine's own file")]);
    expect(machineFileHashes()['/var/lib/dpkg/status']).toBe(hash);
  });

  it('stopNodeSshd makes a node unreachable and startNodeSshd brings it back', async () => {
    await stopNodeSshd('pi2');
    expect(await portOpen(`198.18.${slot()}.12`, 22)).toBe(false);
    expect((await ssh('pi2', 'true')).code).toBe(255);
    await startNodeSshd('pi2');
    expect((await ssh('pi2', 'sudo -n snap services docker')).stdout).toMatch(
      /docker\.dockerd\s+enabled\s+active/,
    );
  });

  it('the CLI: status --json reports memory per node, exec passes the exit code through', async () => {
    const st = await sh({ cwd: REPO })`npx tsx scripts/testbed.ts status --json`;
    const parsed = JSON.parse(st.stdout) as ReturnType<typeof status>;
    expect(parsed.up).toBe(true);
    expect(parsed.nodes.map((n) => [n.name, n.installed])).toEqual([
      ['pi1', 'apt'],
      ['pi2', 'snap'],
      ['pi3', 'apt'],
    ]);
    for (const n of parsed.nodes) expect(n.rssKb).toBeGreaterThan(0);
    const ex = await sh({
      cwd: REPO,
      nothrow: true,
    })`npx tsx scripts/testbed.ts exec pi1 -- sh -c ${'cat /etc/docker/daemon.json; exit 7'}`;
    expect(ex.exitCode).toBe(7);
    expect(ex.stdout).toContain(fleet.registry);
  });

  describe('the cluster', () => {
    const image = () => `${fleet.registry}/runner-fleet/base:1`;
    const pod = (name: string, node: string) =>
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: 'default' },
        spec: {
          nodeName: node,
          terminationGracePeriodSeconds: 1,
          containers: [
            {
              name: 'main',
              image: image(),
              command: ['sh', '-c', `echo hello from ${node}; exec sleep 3600`],
            },
          ],
        },
      });
    const apply = async (json: string) =>
      void (await sh({
        stdio: 'pipe',
        input: json,
      })`${join(bin, 'kubectl')} --kubeconfig ${kubeconfig} apply -f -`);
    const waitPod = async (name: string, until: (p: any) => boolean, timeoutMs = 60_000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const p = kubectlJson(bin, kubeconfig, ['get', 'pod', name]);
        if (until(p)) return p;
        if (Date.now() > deadline) throw new Error(`pod ${name}: ${JSON.stringify(p.status)}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    };

    it('every fleet node is a Ready real kubelet, registered under its inventory name; kwok has only edge-extra', () => {
      const nodes = kubectlJson(bin, kubeconfig, ['get', 'nodes']).items as any[];
      for (const n of fleet.nodes) {
        const obj = nodes.find((x) => x.metadata.name === n.name);
        expect(obj.status.nodeInfo.kubeletVersion).toBe('v1.36.3');
        expect(obj.metadata.annotations?.['kwok.x-k8s.io/node']).toBeUndefined();
        expect(obj.status.addresses).toContainEqual({ type: 'InternalIP', address: n.host });
        expect(obj.status.conditions.find((c: any) => c.type === 'Ready').status).toBe('True');
        expect(obj.spec.taints ?? []).toEqual([]);
      }
      expect(
        nodes.filter((x) => x.metadata.annotations?.['kwok.x-k8s.io/node']).map((x) => x.metadata.name),
      ).toEqual(['edge-extra']);
    });

    it('a pod from the registry runs on the nodes that trust it; logs and exec work', async () => {
      await pushTestImages(fleet.registry, undefined, ['base']);
      for (const n of ['pi1', 'pi2']) await apply(pod(`hello-${n}`, n));
      // Each node forwards nothing at first, as a fresh Pi; its dockerd turned forwarding on and set FORWARD to DROP,
      // which cuts pod traffic. runner-fleet's apply undoes that; this suite applies nothing, so it lets
      // the pods forward itself.
      for (const n of ['pi1', 'pi2'])
        for (const dir of ['-i', '-o']) {
          const r = await execOnNode(n, ['iptables', '-w', '-I', 'FORWARD', dir, 'cni0', '-j', 'ACCEPT']);
          expect(r.code, r.stderr).toBe(0);
        }
      for (const n of ['pi1', 'pi2']) {
        await waitPod(`hello-${n}`, (p) => p.status.phase === 'Running');
        expect(k(['logs', `hello-${n}`])).toBe(`hello from ${n}\n`);
        expect(
          k(['exec', `hello-${n}`, '--', 'sh', '-c', `wget -qO- http://${fleet.registry}/v2/; hostname`]),
        ).toBe(`{}hello-${n}\n`);
      }
    });

    it('on a microk8s node the pull fails until a hosts.toml is in its certs.d, then succeeds', async () => {
      await apply(pod('hello-pi3', 'pi3'));
      const failing = await waitPod('hello-pi3', (p) =>
        ['ErrImagePull', 'ImagePullBackOff'].includes(
          p.status.containerStatuses?.[0]?.state?.waiting?.reason,
        ),
      );
      expect(failing.status.containerStatuses[0].state.waiting.message).toContain(
        'http: server gave HTTP response to HTTPS client',
      );
      const dir = nodeFile('pi3', `${MICROK8S_CERTS_D.replace('/current/', '/7000/')}/${fleet.registry}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'hosts.toml'), hostsToml(fleet.registry));
      await waitPod('hello-pi3', (p) => p.status.phase === 'Running', 120_000);
      expect(k(['logs', 'hello-pi3'])).toBe('hello from pi3\n');
    });
  });

  it('down stops every process, removes namespaces, links, mounts, cgroups, restores sysctls, and can run twice', async () => {
    const keepers = fleet.nodes.map((n) => getNode(n.name).keeperPid);
    const dockerds = fleet.nodes
      .map((n) => nodeDockerPid(n.name))
      .filter((p): p is number => p !== undefined);
    expect(dockerds.length).toBeGreaterThanOrEqual(2);
    const netns = new Set(keepers.map((p) => readlinkSync(`/proc/${p}/ns/net`)));
    const mntns = new Set(keepers.map((p) => readlinkSync(`/proc/${p}/ns/mnt`)));
    const pids = [...keepers, ...dockerds];
    await down();
    for (const pid of pids) expect(processInfo(pid)).toBeUndefined();
    expect(listProcesses().filter((p) => netns.has(p.netns) || mntns.has(p.mntns))).toEqual([]);
    // (No connection attempt: with the bridge gone, 198.18.s.x would be routed out of this machine.)
    const nsList = (await sh`ip netns list`).stdout;
    expect(nsList).not.toMatch(new RegExp(`^${REGISTRY_NETNS}( |$)`, 'm')); // this slot's, not another fleet's
    expect(nsList).not.toMatch(new RegExp(`^rf${slot()}-pi`, 'm'));
    expect(existsSync(fleet.stateDir)).toBe(false);
    expect(status().up).toBe(false);
    const after = await snapshot();
    expect(after).toEqual(before);
    for (const h of readdirSync('/sys/fs/cgroup')) {
      if (h === 'unified') continue;
      expect(readdirSync(`/sys/fs/cgroup/${h}`).filter((c) => c.startsWith(`rf${slot()}-pi`))).toEqual([]);
    }
    await down();
  });

  it('an up with other --services stops what the running fleet started (its cluster too); so does down', async () => {
    await up({ nodes: 1, kinds: ['none'] });
    const plane = JSON.parse(
      readFileSync(join(stateRoot(), 'services', 'cluster', 'k8s', 'pids.json'), 'utf8'),
    ) as { component: string; pid: number }[];
    const kubelet = listProcesses().find(
      (p) => p.comm === 'kubelet' && p.cmdline.includes(`${stateRoot()}/pi1/`),
    );
    await up({ nodes: 1, kinds: ['none'], services: servicesNamed([]) });
    for (const r of plane) expect(processInfo(r.pid), r.component).toBeUndefined();
    expect(kubelet).toBeDefined();
    expect(processInfo(kubelet!.pid)).toBeUndefined();
    await down({ services: servicesNamed([]) });
    expect(status().up).toBe(false);
    expect(await snapshot()).toEqual(before);
  });
});
