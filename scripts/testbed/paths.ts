// Where the test fleet keeps its state, and how a path as a node sees it maps to a path on this machine.
import { homedir } from 'node:os';
import { join, posix } from 'node:path';

export type NodeKind = 'apt' | 'snap' | 'none';
export const NODE_KINDS: readonly NodeKind[] = ['apt', 'snap', 'none'];

/** The checkout this folder is in. */
export const REPO = join(import.meta.dirname, '..', '..');

/**
 * Builds and downloads the fleet reuses across runs (binaries, image layers, Go caches): $RUNNER_FLEET_CACHE, else
 * ~/.cache/runner-fleet. Outside the checkout, so that worktrees share it. scripts/*.sh read the same variable.
 */
export function cacheRoot(): string {
  return process.env.RUNNER_FLEET_CACHE ?? join(homedir(), '.cache', 'runner-fleet');
}

/**
 * RUNNER_FLEET_TESTBED_SLOT (0-9, default 0) lets several fleets run side by side on one machine (parallel
 * work, the benchmark): slot s uses bridge rfbr<s> and 198.18.s.0/24 for its nodes and registry, netns names rf<s>-pi<i>,
 * and its own state root.
 */
export function slot(): number {
  const raw = process.env.RUNNER_FLEET_TESTBED_SLOT ?? '0';
  const n = Number(raw);
  if (!/^[0-9]$/.test(raw)) throw new Error(`RUNNER_FLEET_TESTBED_SLOT: expected 0 to 9, got ${raw}`);
  return n;
}

export function stateRoot(): string {
  const root =
    process.env.RUNNER_FLEET_TESTBED ?? `/var/tmp/runner-fleet-testbed${slot() ? `-${slot()}` : ''}`;
  // Each node mounts its own /tmp before /run: a state root under /tmp would be hidden from the mounts after it.
  if (root === '/tmp' || root.startsWith('/tmp/'))
    throw new Error(
      `RUNNER_FLEET_TESTBED: ${root} is under /tmp, which every node mounts privately; use /var/tmp`,
    );
  return root;
}

/** The fleet's LAN (PLAN.md): the host is .1 on the bridge, the registry .2, node i is .(10+i). */
export const net = {
  bridge: () => `rfbr${slot()}`,
  prefix: () => `198.18.${slot()}`,
  hostAddr: () => `198.18.${slot()}.1`,
  nodeAddr: (index: number) => `198.18.${slot()}.${10 + index}`,
  nodeNetns: (index: number) => `rf${slot()}-pi${index}`,
  /** the host end of node i's veth pair (the other end is eth0 inside the node); at most 15 characters */
  nodeLink: (index: number) => `rf${slot()}v${index}`,
};

/** Present in a state root we made; `down` removes only a directory that has it. */
export const ROOT_MARKER = '.runner-fleet-testbed';

export const files = {
  /** what up started, for any later process (down, status, exec) */
  state: (root = stateRoot()) => join(root, 'testbed.json'),
  /** the ready inventory (the README points here) */
  inventory: (root = stateRoot()) => join(root, 'fleet.yaml'),
  identity: (root = stateRoot()) => join(root, 'id_ed25519'),
  authorizedKeys: (root = stateRoot()) => join(root, 'authorized_keys'),
  knownHosts: (root = stateRoot()) => join(root, 'known_hosts'),
  imageTar: (root = stateRoot()) => join(root, 'image', 'bb.tar'),
  /** `dev:ino` of the machine's own /var/lib/dpkg/status at up: the stand-ins refuse to write a file that is it */
  machineDpkgStatus: (root = stateRoot()) => join(root, 'host', 'machine-dpkg-status'),
  /** the host's real docker.io stanza from /var/lib/dpkg/status, what apt-get "installs" */
  dockerIoStanza: (root = stateRoot()) => join(root, 'host', 'docker.io.stanza'),
  services: (root = stateRoot()) => join(root, 'services'),
};

export function nodeDir(name: string, root = stateRoot()): string {
  return join(root, name);
}

export interface NodeMount {
  path: string;
  from: string;
  /** the directory's mode (default 0755) */
  mode?: number;
  /**
   * an overlay: the machine's directory shows through, and whatever the node writes lands in `<from>/upper` (useradd,
   * usermod, apt's sources and gitlab-runner's files in /etc; home directories; the binaries packages install)
   */
  overlay?: boolean;
}

/**
 * The node's private view of the file system: each entry is bind-mounted from `<state>/<node>/<from>` (or, for
 * overlays, layered over the machine's directory) at `path` inside the node's mount namespace, in this order.
 * Everything else is the machine's own, shared by all nodes.
 */
export const NODE_MOUNTS: readonly NodeMount[] = [
  // First: the binds below /etc go on top of it.
  { path: '/etc', from: 'etc', overlay: true },
  { path: '/home', from: 'home', overlay: true },
  { path: '/usr/bin', from: 'usr-bin', overlay: true },
  { path: '/etc/docker', from: 'etc-docker' },
  { path: '/var/lib/docker', from: 'var-lib-docker' },
  { path: '/var/snap', from: 'var-snap' },
  { path: '/snap', from: 'snap' },
  { path: '/var/lib/snapd', from: 'var-lib-snapd' },
  { path: '/var/log', from: 'var-log' },
  { path: '/var/cache/apt/archives', from: 'apt-archives' },
  { path: '/var/lib/apt/lists', from: 'apt-lists' },
  // An overlay on the directory, not a bind on the file: dpkg on the machine replaces its status file by rename,
  // and the kernel then detaches every mount on the old file in every namespace (the node saw, and apt-get
  // appended to, the machine's own file). /var/lib/dpkg itself is never renamed.
  { path: '/var/lib/dpkg', from: 'dpkg', overlay: true },
  { path: '/usr/local/sbin', from: 'sbin' },
  // The cluster service's containerd and kubelet keep their state at their default places, per node.
  { path: '/var/lib/kubelet', from: 'var-lib-kubelet' },
  { path: '/var/lib/containerd', from: 'var-lib-containerd' },
  { path: '/var/lib/cni', from: 'var-lib-cni' },
  // runner-fleet's per-node runner identity (the runner pods' hostPath, host runners' state): each Pi has its own disk.
  { path: '/var/lib/runner-fleet', from: 'var-lib-runner-fleet' },
  // Tools that upload through /tmp must not race between nodes.
  { path: '/tmp', from: 'tmp', mode: 0o1777 },
  // Last, so that a state root under /run is still reachable while the mounts above are made.
  { path: '/run', from: 'run' },
];

/** The PATH of every command on a node: the stand-ins in /usr/local/sbin come first, like sudo's secure_path. */
export const NODE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * Host path of `absPath` as node `name` sees it, e.g. `/etc/docker/daemon.json` →
 * `<state>/pi1/etc-docker/daemon.json`. A path outside the node's own mounts is the machine's, returned as is.
 * Under an overlay it is the node's own layer (`/etc/gitlab-runner/config.toml` → `<state>/pi1/etc/upper/gitlab-runner/
 * config.toml`), where what the node wrote is: a file the node never touched is not there (it reads the machine's).
 */
export function nodeFile(name: string, absPath: string, root = stateRoot()): string {
  if (!posix.isAbsolute(absPath)) throw new Error(`nodeFile: expected an absolute path, got ${absPath}`);
  let p = posix.normalize(absPath);
  // Debian: /var/run is a symlink to /run.
  if (p === '/var/run' || p.startsWith('/var/run/')) p = p.slice('/var'.length);
  let best: (typeof NODE_MOUNTS)[number] | undefined;
  for (const m of NODE_MOUNTS) {
    if ((p === m.path || p.startsWith(`${m.path}/`)) && (!best || m.path.length > best.path.length)) best = m;
  }
  if (!best) return p;
  return join(nodeDir(name, root), best.from, best.overlay ? 'upper' : '', p.slice(best.path.length));
}
