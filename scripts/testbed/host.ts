// Prepares this machine for the test fleet, idempotently: apt packages, the `pi` user and its sudo rule, mount points.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { cacheRoot } from './paths.js';
import { NODE_MOUNTS } from './paths.js';
import { sh } from './procs.js';

/**
 * What the fleet runs for real. openssh-client brings ssh-keygen and the ssh client the tests use; curl is how the
 * gitlab-runner stand-in talks to GitLab.
 */
export const HOST_PACKAGES = [
  'openssh-server',
  'openssh-client',
  'sudo',
  'docker.io',
  'docker-registry',
  'busybox-static',
  'iproute2',
  'util-linux',
  'curl',
  // runc-bnd (the runtime wrapper for privileged containers) reads and edits OCI specs with these.
  'jq',
  'libcap2-bin',
  // each node's dockerd keeps its NAT in the node's network namespace.
  'iptables',
  // the cluster service's real nodes: containerd 1.6 + runc, bridge/host-local CNI plugins (/usr/lib/cni); openssl for the PKI.
  'containerd',
  'runc',
  'containernetworking-plugins',
  'openssl',
];

const SUDOERS = '/etc/sudoers.d/runner-fleet-testbed';
const SUDOERS_RULE =
  '# The runner-fleet test fleet: pi may run anything without a password, like on Raspberry Pi OS.\npi ALL=(ALL) NOPASSWD:ALL\n';

export async function ensureHost(log: (msg: string) => void = () => {}): Promise<void> {
  if (process.getuid?.() !== 0)
    throw new Error('the test fleet needs root (namespaces, mounts, a network namespace)');
  // The nodes run binaries and import images from the cache: it must not be under a path each node has its own of.
  const cache = resolve(cacheRoot());
  // An overlay shows the machine's files through; a plain mount hides them.
  const own = NODE_MOUNTS.filter((m) => !m.overlay);
  const hidden = own.find((m) => cache === m.path || cache.startsWith(`${m.path}/`));
  if (hidden)
    throw new Error(
      `RUNNER_FLEET_CACHE=${cache} is under ${hidden.path}, which every test node has its own of: the nodes could not see the binaries and images in it (use a path outside ${own.map((m) => m.path).join(', ')}, e.g. /var/tmp/runner-fleet-cache)`,
    );
  await ensurePackages(HOST_PACKAGES, log);
  await ensurePiUser(log);
  ensureSudoRule(log);
  // Every node mounts its own directory over these; the machine's are only mount points.
  for (const m of NODE_MOUNTS) {
    if (!existsSync(m.path)) {
      log(`creating mount point ${m.path}`);
      mkdirSync(m.path, { recursive: true });
    }
  }
}

async function ensurePackages(packages: string[], log: (msg: string) => void): Promise<void> {
  const res = await sh({ nothrow: true })`dpkg-query -W ${'-f=${Package} ${db:Status-Status}\n'} ${packages}`;
  const installed = new Set(
    res.stdout
      .split('\n')
      .filter((l) => l.endsWith(' installed'))
      .map((l) => l.split(' ')[0]),
  );
  const missing = packages.filter((p) => !installed.has(p));
  if (missing.length === 0) return;
  log(`installing ${missing.join(' ')}`);
  const apt = sh({ env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  await apt`apt-get update`;
  await apt`apt-get install -y --no-install-recommends ${missing}`;
}

/** Without a sudo rule: sudo would ask it for a password, so tests can pin that runner-fleet never waits for one. */
export const NO_SUDO_USER = 'pinosudo';

async function ensurePiUser(log: (msg: string) => void): Promise<void> {
  for (const user of ['pi', NO_SUDO_USER]) {
    if (!(await sh({ nothrow: true })`id -u ${user}`).ok) {
      log(`creating user ${user}`);
      await sh`useradd -m -s /bin/bash ${user}`;
    }
    // '*' allows key login; useradd's '!' makes sshd refuse the account as locked.
    const shadow = await sh`getent shadow ${user}`;
    if (shadow.stdout.split(':')[1] !== '*') await sh`usermod -p ${'*'} ${user}`;
  }
}

function ensureSudoRule(log: (msg: string) => void): void {
  if (existsSync(SUDOERS) && readFileSync(SUDOERS, 'utf8') === SUDOERS_RULE) return;
  log(`writing ${SUDOERS}`);
  // sudo ignores files with a '.' in their name, so the temporary one is never read half-written.
  const tmp = `${SUDOERS}.tmp`;
  writeFileSync(tmp, SUDOERS_RULE, { mode: 0o440 });
  renameSync(tmp, SUDOERS);
}
