// One test node: its directory, its namespaces (network, mount, UTS; held by a keeper process), its real sshd, and running commands inside it.
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE_MOUNTS, NODE_PATH, files, net, nodeDir, nodeFile, type NodeKind } from './paths.js';
import {
  isAlive,
  mountNamespace,
  processInfo,
  resultOf,
  sh,
  spawnDaemon,
  terminate,
  waitFor,
  type RunResult,
} from './procs.js';

const STANDINS = join(dirname(fileURLToPath(import.meta.url)), 'standins');
/** What the package-repository stand-in serves (its key, the gitlab-runner stand-in binary); described in scripts/testbed/README.md. */
const REPOSITORY = join(dirname(fileURLToPath(import.meta.url)), 'repository');
/** The microk8s snap's layout and CLI stand-in, only for nodes started with `microk8s: true`. */
const MICROK8S = join(dirname(fileURLToPath(import.meta.url)), 'microk8s');
/** As the node sees it: `dev:ino` of the machine's own /var/lib/dpkg/status (see files.machineDpkgStatus). */
export const MACHINE_DPKG_STATUS = '/var/cache/apt/archives/testbed-machine-dpkg-status';
export const MICROK8S_REVISION = '7000';

export interface NodeInfo {
  name: string;
  host: string;
  port: number;
  /** what is installed when the fleet comes up */
  docker: NodeKind;
  /** the node has the microk8s snap's layout (/var/snap/microk8s, args/certs.d) and a `microk8s` stand-in */
  microk8s?: boolean;
}

/** A started node, as recorded in testbed.json. */
export interface NodeRecord extends NodeInfo {
  /** the process holding the node's namespaces open */
  keeperPid: number;
  /** `mnt:[…]` of its mount namespace: identifies every process of the node */
  mntns: string;
  /** its named network namespace (/run/netns/<netns>) and the host end of its veth pair */
  netns: string;
  link: string;
}

/** Node i (from 1) is pi<i> on 198.18.<slot>.(10+i):22 in network namespace rf<slot>-pi<i>; kinds repeat in order. */
export function planNodes(count: number, kinds: readonly NodeKind[]): NodeInfo[] {
  if (!Number.isInteger(count) || count < 1 || count > 200)
    throw new Error(`--nodes: expected 1 to 200, got ${count}`);
  if (kinds.length === 0) throw new Error('--kinds: expected at least one of apt, snap, none');
  return Array.from({ length: count }, (_, k) => ({
    name: `pi${k + 1}`,
    host: net.nodeAddr(k + 1),
    port: 22,
    docker: kinds[k % kinds.length],
  }));
}

/**
 * A fresh Pi (Raspberry Pi OS / Debian 12) forwards nothing. A new network namespace does not start from that:
 * with net.core.devconf_inherit_init_net=0 it copies this machine's IPv4 settings, so a node would inherit
 * whatever this machine has. Set explicitly, before anything starts in the node.
 */
export const FRESH_PI_SYSCTLS: Readonly<Record<string, string>> = {
  'net.ipv4.ip_forward': '0',
  'net.ipv6.conf.all.forwarding': '0',
};

/**
 * What microk8s's kubelite wrapper (microk8s-resources/wrappers/run-kubelite-with-args) sets at every start: IPv4
 * and IPv6 forwarding on (with its default CNI), bridge-nf-call-iptables on. It also appends FORWARD ACCEPT rules
 * for its pod CIDR; those are rules, not sysctls, and belong to the cluster the node joins, not to the node.
 */
export const MICROK8S_SYSCTLS: Readonly<Record<string, string>> = {
  'net.ipv4.conf.all.forwarding': '1',
  'net.ipv6.conf.all.forwarding': '1',
  'net.bridge.bridge-nf-call-iptables': '1',
};

/**
 * The sysctls a node's network namespace gets at creation, in the order they are written: a fresh Pi's, then what
 * microk8s sets if the node plays one (as at boot: the kernel's defaults, then the snap's services).
 */
export function nodeSysctls(node: Pick<NodeInfo, 'microk8s'>): Record<string, string> {
  return { ...FRESH_PI_SYSCTLS, ...(node.microk8s ? MICROK8S_SYSCTLS : {}) };
}

/** The node's place on the fleet LAN, with the sysctls its namespace starts with. */
export function nodeLan(node: NodeInfo): {
  netns: string;
  link: string;
  addr: string;
  sysctls: Record<string, string>;
} {
  const index = Number(/^pi(\d+)$/.exec(node.name)?.[1]);
  if (!Number.isInteger(index) || index < 1) throw new Error(`nodeLan: not a fleet node name: ${node.name}`);
  return {
    netns: net.nodeNetns(index),
    link: net.nodeLink(index),
    addr: node.host,
    sysctls: nodeSysctls(node),
  };
}

/** The host's dpkg status, with and without its docker.io stanza, and that stanza. */
export interface DpkgViews {
  withDocker: string;
  withoutDocker: string;
  dockerStanza: string;
}

export function readDpkgViews(): DpkgViews {
  const text = readFileSync('/var/lib/dpkg/status', 'utf8');
  const stanzas = text.split(/\n{2,}/).filter((s) => s.trim() !== '');
  const isDocker = (s: string) => /^Package: docker\.io$/m.test(s);
  const dockerStanza = stanzas.find(isDocker);
  if (!dockerStanza || !/^Status: install ok installed$/m.test(dockerStanza)) {
    throw new Error('docker.io is not installed on this machine (dpkg status has no installed docker.io)');
  }
  const join2 = (list: string[]) => list.map((s) => `${s.replace(/\n+$/, '')}\n\n`).join('');
  return {
    withDocker: join2(stanzas),
    withoutDocker: join2(stanzas.filter((s) => !isDocker(s))),
    dockerStanza: `${dockerStanza.replace(/\n+$/, '')}\n`,
  };
}

/** Lays out `<state>/<node>/`: mount sources, dpkg status, stand-ins, host key, sshd_config. */
export async function prepareNodeDir(node: NodeInfo, root: string, dpkg: DpkgViews): Promise<void> {
  const dir = nodeDir(node.name, root);
  for (const m of NODE_MOUNTS) {
    if (m.overlay)
      for (const d of ['upper', 'work']) mkdirSync(join(dir, m.from, d), { recursive: true, mode: 0o755 });
    else {
      mkdirSync(join(dir, m.from), { recursive: true, mode: 0o755 });
      // mkdir's mode is masked by the umask (and the sticky bit dropped): set it exactly.
      chmodSync(join(dir, m.from), m.mode ?? 0o755);
    }
  }
  // Privilege separation directory: sshd wants it root-owned and not group/world writable.
  mkdirSync(join(dir, 'run', 'sshd'), { recursive: true, mode: 0o755 });
  writeFileSync(
    nodeFile(node.name, '/var/lib/dpkg/status', root),
    node.docker === 'apt' ? dpkg.withDocker : dpkg.withoutDocker,
  );
  writeFileSync(nodeFile(node.name, '/var/cache/apt/archives/docker.io.stanza', root), dpkg.dockerStanza);
  // What the stand-ins compare the node's status file with before they write it: never the machine's own.
  copyFileSync(files.machineDpkgStatus(root), nodeFile(node.name, MACHINE_DPKG_STATUS, root));
  // Its own name, and one that resolves (sudo warns about a hostname it cannot resolve).
  writeFileSync(nodeFile(node.name, '/etc/hostname', root), `${node.name}\n`);
  writeFileSync(
    nodeFile(node.name, '/etc/hosts', root),
    `${readFileSync('/etc/hosts', 'utf8').trimEnd()}\n${node.host} ${node.name}\n`,
  );
  for (const f of readdirSync(STANDINS)) {
    const to = join(dir, 'sbin', f);
    copyFileSync(join(STANDINS, f), to);
    chmodSync(to, 0o755);
  }
  // The apt-get stand-in reads the repository stand-in from here, as apt would download it.
  const repo = nodeFile(node.name, '/var/cache/apt/archives/testbed-repository', root);
  mkdirSync(repo, { recursive: true, mode: 0o755 });
  for (const f of readdirSync(REPOSITORY)) copyFileSync(join(REPOSITORY, f), join(repo, f));
  if (node.microk8s) prepareMicrok8s(dir);
  const hostKey = join(dir, 'ssh_host_ed25519_key');
  if (!existsSync(hostKey)) await sh`ssh-keygen -q -t ed25519 -N ${''} -C ${node.name} -f ${hostKey}`;
  writeFileSync(join(dir, 'sshd_config'), sshdConfig(node, hostKey, root));
}

/** What `snap install microk8s` leaves that runner-fleet looks at: /var/snap/microk8s/current/args (certs.d) and the CLI. */
function prepareMicrok8s(dir: string): void {
  const snapDir = join(dir, 'var-snap', 'microk8s');
  mkdirSync(join(snapDir, MICROK8S_REVISION, 'args', 'certs.d'), { recursive: true, mode: 0o755 });
  copyFileSync(
    join(MICROK8S, 'containerd-template.toml'),
    join(snapDir, MICROK8S_REVISION, 'args', 'containerd-template.toml'),
  );
  if (!existsSync(join(snapDir, 'current'))) symlinkSync(MICROK8S_REVISION, join(snapDir, 'current'));
  copyFileSync(join(MICROK8S, 'microk8s'), join(dir, 'sbin', 'microk8s'));
  chmodSync(join(dir, 'sbin', 'microk8s'), 0o755);
}

function sshdConfig(node: NodeInfo, hostKey: string, root: string): string {
  return [
    `# Test node ${node.name}: a real OpenSSH server inside the node's mount namespace. Written by scripts/testbed.`,
    `Port ${node.port}`,
    // The node's own address, inside its network namespace.
    `ListenAddress ${node.host}`,
    `HostKey ${hostKey}`,
    // As the node sees it: <state>/<node>/run/sshd.pid.
    'PidFile /run/sshd.pid',
    `AuthorizedKeysFile ${files.authorizedKeys(root)}`,
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    // The key files live under the state root, not in a home directory sshd would check.
    'StrictModes no',
    'MaxSessions 10',
    // Without PAM, /etc/environment is not read: this puts the stand-ins first, as sudo's secure_path does.
    `SetEnv PATH=${NODE_PATH}`,
    'Subsystem sftp /usr/lib/openssh/sftp-server',
    '',
  ].join('\n');
}

function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The machine's cgroup mounts (/proc/self/mounts lines under /sys/fs/cgroup), to make again in a fresh sysfs. */
function cgroupMounts(): { path: string; type: string; opts: string }[] {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter(
      ([, path, type]) => path?.startsWith('/sys/fs/cgroup') && ['tmpfs', 'cgroup', 'cgroup2'].includes(type),
    )
    .map(([, path, type, opts]) => ({ path, type, opts }));
}

/**
 * Starts the keeper (a `sleep` in the node's network namespace and in a new private mount and UTS namespace,
 * named after the node so it can be found again), then sets the namespace up: hostname, a sysfs of its own
 * network namespace with the cgroup hierarchies mounted again, the node's directories.
 */
export async function startNamespace(
  node: NodeInfo,
  root: string,
): Promise<{ keeperPid: number; mntns: string; netns: string; link: string }> {
  const dir = nodeDir(node.name, root);
  const lan = nodeLan(node);
  const hostNs = mountNamespace('self');
  const keeperPid = spawnDaemon(
    'nsenter',
    [
      `--net=/run/netns/${lan.netns}`,
      '--',
      'unshare',
      '--mount',
      '--uts',
      '--propagation',
      'private',
      'bash',
      '-c',
      'exec -a "$0" sleep infinity',
      `runner-fleet-testbed-node ${dir}`,
    ],
    { log: join(dir, 'keeper.log') },
  );
  let mntns: string | undefined;
  const ready = await waitFor(
    () => {
      const p = processInfo(keeperPid);
      if (p?.comm === 'sleep' && p.mntns !== hostNs) mntns = p.mntns;
      return mntns !== undefined || !isAlive(keeperPid);
    },
    10_000,
    20,
  );
  if (!ready || !mntns)
    throw new Error(`${node.name}: the namespace keeper did not start (see ${join(dir, 'keeper.log')})`);
  const mount = (m: (typeof NODE_MOUNTS)[number]) =>
    m.overlay
      ? [
          `mount -t overlay overlay -o ${shq(`lowerdir=${m.path},upperdir=${join(dir, m.from, 'upper')},workdir=${join(dir, m.from, 'work')}`)} ${shq(m.path)}`,
          // An overlay shows the directory without what is mounted below it (a container's /etc/hosts, say): put those back.
          `for sub in $(awk -v p=${shq(`${m.path}/`)} 'index($5, p) == 1 { print $5 }' /proc/1/mountinfo); do mount --bind "/proc/1/root$sub" "$sub" || true; done`,
        ]
      : [`mount --bind ${shq(join(dir, m.from))} ${shq(m.path)}`];
  const script = [
    'set -e',
    `hostname ${shq(node.name)}`,
    // Copies of every named network namespace came along with the mount namespace; holding them would keep other
    // nodes' namespaces (and their veths) alive after they are deleted.
    'if mountpoint -q /run/netns; then umount -R -l /run/netns; fi',
    // The machine's sysfs shows the machine's network devices; a fresh one shows this namespace's (docker0, cni0).
    // Its /sys/fs/cgroup is empty: mount the hierarchies again, as they are on the machine.
    'mount -t sysfs sysfs /sys',
    ...cgroupMounts().flatMap((m) => [
      `mkdir -p ${shq(m.path)}`,
      `mount -t ${m.type} -o ${shq(m.opts)} ${m.type === 'tmpfs' ? 'tmpfs' : 'cgroup'} ${shq(m.path)}`,
    ]),
    ...NODE_MOUNTS.flatMap(mount),
  ].join('\n');
  await sh`nsenter ${enterNode({ keeperPid })} sh -c ${script}`;
  return { keeperPid, mntns, netns: lan.netns, link: lan.link };
}

/** Whether something accepts TCP connections on host:port (1 s timeout). */
export function portOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    sock.setTimeout(1000);
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => {
      sock.destroy();
      resolve(false);
    });
    sock.once('timeout', () => {
      sock.destroy();
      resolve(false);
    });
  });
}

/** The last lines of a log file, for error messages. */
export function logTail(path: string, lines = 15): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** The node's listening sshd, from its pidfile. */
export function sshdPid(node: NodeInfo, root: string): number | undefined {
  try {
    const pid = Number(readFileSync(nodeFile(node.name, '/run/sshd.pid', root), 'utf8').trim());
    return processInfo(pid)?.comm === 'sshd' ? pid : undefined;
  } catch {
    return undefined;
  }
}

export async function startSshd(node: NodeRecord, root: string): Promise<void> {
  if (sshdPid(node, root) !== undefined) return;
  const dir = nodeDir(node.name, root);
  const log = join(dir, 'sshd.log');
  // sshd re-executes itself for each connection, so it needs its absolute path.
  const pid = spawnDaemon(
    'nsenter',
    [...enterNode(node), '/usr/sbin/sshd', '-D', '-f', join(dir, 'sshd_config'), '-E', log],
    { log: join(dir, 'sshd.out') },
  );
  const up = await waitFor(async () => !isAlive(pid) || (await portOpen(node.host, node.port)), 10_000, 50);
  if (!up || !isAlive(pid)) {
    throw new Error(
      `${node.name}: sshd did not start on ${node.host}:${node.port}:\n${logTail(log)}\n${logTail(join(dir, 'sshd.out'))}`,
    );
  }
}

export async function stopSshd(node: NodeInfo, root: string): Promise<void> {
  const pid = sshdPid(node, root);
  if (pid === undefined) return;
  // Only the listener: open sessions go on, as with `systemctl stop ssh`.
  await terminate([pid], 5000);
  await waitFor(async () => !(await portOpen(node.host, node.port)), 5000, 50);
}

/** nsenter's arguments (up to `--`) that put a command into the node: its mount, network and UTS namespaces. */
export function enterNode(node: Pick<NodeRecord, 'keeperPid'>): string[] {
  return ['--target', String(node.keeperPid), '--mount', '--net', '--uts', '--'];
}

/** Runs argv as root inside the node's namespaces, with the node's PATH and a clean environment. */
export function nodeCommand(
  node: NodeRecord,
  argv: string[],
  env: Record<string, string> = {},
): [string, string[]] {
  const vars = Object.entries({ PATH: NODE_PATH, HOME: '/root', LANG: 'C.UTF-8', ...env }).map(
    ([k, v]) => `${k}=${v}`,
  );
  return ['nsenter', [...enterNode(node), 'env', '-i', ...vars, ...argv]];
}

export async function execInNode(
  node: NodeRecord,
  argv: string[],
  opts: { input?: string | Buffer } = {},
): Promise<RunResult> {
  const [cmd, args] = nodeCommand(node, argv);
  const input = opts.input === undefined ? {} : { input: opts.input, stdio: 'pipe' as const };
  return resultOf(await sh({ cwd: '/', nothrow: true, ...input })`${cmd} ${args}`);
}

/** The node's running dockerd (apt's pidfile, else the snap's), if any. */
export function dockerdPid(name: string, root: string): number | undefined {
  for (const pidfile of ['/run/docker.pid', '/run/snap.docker/docker.pid']) {
    try {
      const pid = Number(readFileSync(nodeFile(name, pidfile, root), 'utf8').trim());
      if (processInfo(pid)?.comm === 'dockerd') return pid;
    } catch {
      // no pidfile
    }
  }
  return undefined;
}
