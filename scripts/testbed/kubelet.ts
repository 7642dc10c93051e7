// Real Kubernetes nodes: containerd (Debian's 1.6) and a real kubelet inside each fleet node's namespaces.
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  rmdirSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { enterNode, logTail, nodeLan, type NodeRecord } from './node.js';
import { nodeDir, nodeFile, slot } from './paths.js';
import { isAlive, listProcesses, processInfo, sh, sleep, spawnDaemon, terminate, waitFor } from './procs.js';

/** The sandbox image, imported into each node's containerd (never pulled). */
export interface PauseImage {
  ociArchive: string;
  ref: string;
}

export interface KubeletSetup {
  /** dir with kubelet and crictl */
  binDir: string;
  /** the cluster CA (kubelet client authentication) */
  caFile: string;
  /** the node's kubeconfig (client cert system:node:<name>) */
  kubeconfig: string;
  pause: PauseImage;
  /** host:port of the test registry: non-microk8s nodes get a hosts.toml for it */
  registry: string;
}

/** The node's CNI configuration (cluster.ts setNodeReady parks it to make the node NotReady). */
export const CNI_CONFLIST = '10-testbed.conflist';

/**
 * containerd's CNI conf_dir: in the node's state directory, not in its /etc overlay, because containerd watches it
 * with inotify, which does not see changes made from this machine to an overlay's upper directory.
 */
export function cniConfDir(node: Pick<NodeRecord, 'name'>, root: string): string {
  return join(k8sDir(node, root), 'net.d');
}

/** Pod network inside every node: each node has its own network namespace, so they all use the same range. */
export const POD_SUBNET = '10.244.0.0/24';
/** The certs.d microk8s's containerd reads (as the node sees it), where runner-fleet writes hosts.toml. */
export const MICROK8S_CERTS_D = '/var/snap/microk8s/current/args/certs.d';
export const CERTS_D = '/etc/containerd/certs.d';
/**
 * Not /run/containerd/containerd.sock: dockerd 20.10 takes a containerd it finds there as its own, and the node's
 * dockerd must not depend on the cluster service. microk8s's containerd listens where the snap puts it.
 */
export function containerdSocket(node: Pick<NodeRecord, 'microk8s'>): string {
  return node.microk8s
    ? '/var/snap/microk8s/common/run/containerd.sock'
    : '/run/testbed-containerd/containerd.sock';
}

/** The cgroup every pod of the node lives under, in every v1 hierarchy (cgroupfs driver). */
export function cgroupRoot(node: Pick<NodeRecord, 'name'>): string {
  return `/rf${slot()}-${node.name}`;
}

/** Files of the node's cluster side, as the host sees them. */
function k8sDir(node: Pick<NodeRecord, 'name'>, root: string): string {
  return join(nodeDir(node.name, root), 'k8s');
}

export function containerdToml(node: NodeRecord, root: string, setup: KubeletSetup): string {
  const d = k8sDir(node, root);
  const certsD = node.microk8s ? MICROK8S_CERTS_D : CERTS_D;
  const sock = containerdSocket(node);
  return `# containerd of test node ${node.name} (scripts/testbed/kubelet.ts)
version = 2
root = "/var/lib/containerd"
state = "${sock.replace(/\/[^/]+$/, '')}/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "${sock}"
[plugins."io.containerd.internal.v1.opt"]
  path = "${d}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${setup.pause.ref}"
  # This machine withholds CAP_SYS_RESOURCE: runc cannot give a sandbox oom_score_adj -998 ("can't get final
  # child's PID from pipe"); clamp to containerd's own value.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # privileged pods need their capabilities trimmed to this machine's bounding set (see runc-bnd)
        BinaryName = "/usr/local/sbin/runc-bnd"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${cniConfDir(node, root)}"
  [plugins."io.containerd.grpc.v1.cri".registry]
    # re-read on every pull: a hosts.toml written here later applies at once
    config_path = "${certsD}"
`;
}

/** Bridge + host-local inside the node's network namespace; ipMasq, so pods reach the LAN as the node's address. */
export function cniConflist(node: NodeRecord): string {
  return `${JSON.stringify(
    {
      cniVersion: '0.4.0',
      name: `testbed-${node.name}`,
      plugins: [
        {
          type: 'bridge',
          bridge: 'cni0',
          isGateway: true,
          ipMasq: true,
          hairpinMode: true,
          ipam: { type: 'host-local', ranges: [[{ subnet: POD_SUBNET }]], routes: [{ dst: '0.0.0.0/0' }] },
        },
      ],
    },
    null,
    2,
  )}\n`;
}

export function kubeletYaml(node: NodeRecord, root: string, setup: KubeletSetup): string {
  const d = k8sDir(node, root);
  return `# kubelet of test node ${node.name} (scripts/testbed/kubelet.ts)
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://${containerdSocket(node)}
# no systemd here, and containerd 1.6 has no RuntimeConfig RPC: this value is what is used
cgroupDriver: cgroupfs
cgroupRoot: ${cgroupRoot(node)}
# the machine is cgroup v1; kubelet >= 1.35 refuses it unless told
failCgroupV1: false
failSwapOn: false
address: ${nodeLan(node).addr}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
podLogsDir: ${d}/pod-logs
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: ${setup.caFile}}
authorization: {mode: Webhook}
resolvConf: /etc/resolv.conf
maxPods: 30
# Secret and ConfigMap volume updates reach pods within seconds, not a minute
syncFrequency: 10s
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%, imagefs.inodesFree: 1%}
`;
}

/** `registry.config_path` entry that lets containerd pull from the plain-HTTP test registry. */
export function hostsToml(registry: string): string {
  return `# Written by the test fleet: the test registry speaks plain HTTP.\nserver = "http://${registry}"\n\n[host."http://${registry}"]\n  capabilities = ["pull", "resolve"]\n`;
}

const V1_SKIP = new Set(['unified']);

function hierarchies(): string[] {
  try {
    return readdirSync('/sys/fs/cgroup').filter(
      (h) => !V1_SKIP.has(h) && statSync(join('/sys/fs/cgroup', h)).isDirectory(),
    );
  } catch {
    return [];
  }
}

/** cgroupfs driver: the cgroup root must exist in every v1 hierarchy first (cpuset's with cpus and mems filled in). */
function makeCgroupRoot(node: NodeRecord): void {
  for (const h of hierarchies()) {
    const dir = join('/sys/fs/cgroup', h, cgroupRoot(node));
    mkdirSync(dir, { recursive: true });
    if (h === 'cpuset') {
      for (const f of ['cpuset.cpus', 'cpuset.mems'])
        writeFileSync(join(dir, f), readFileSync(join('/sys/fs/cgroup', h, f)));
    }
  }
}

function rmdirTree(dir: string): void {
  let entries: string[];
  try {
    entries = readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
  } catch {
    return;
  }
  for (const e of entries) rmdirTree(join(dir, e));
  try {
    rmdirSync(dir);
  } catch {
    // still has processes: the fleet's down kills them and sweeps again
  }
}

/** Removes this slot's node cgroups (rf<s>-pi<i>) in every hierarchy; what still holds processes stays. */
export function removeNodeCgroups(): string[] {
  const left: string[] = [];
  const re = new RegExp(`^rf${slot()}-pi\\d+$`);
  for (const h of hierarchies()) {
    let names: string[];
    try {
      names = readdirSync(join('/sys/fs/cgroup', h)).filter((n) => re.test(n));
    } catch {
      continue;
    }
    for (const n of names) {
      rmdirTree(join('/sys/fs/cgroup', h, n));
      if (existsSync(join('/sys/fs/cgroup', h, n))) left.push(join(h, n));
    }
  }
  return left;
}

interface Pidfile {
  pid: number;
  start: number;
}

function writePid(file: string, pid: number): void {
  writeFileSync(file, `${pid} ${processInfo(pid)?.startTime ?? 0}\n`);
}

function readPid(file: string): number | undefined {
  try {
    const [pid, start] = readFileSync(file, 'utf8').trim().split(' ').map(Number) as [number, number];
    const p: Pidfile = { pid, start };
    return processInfo(p.pid)?.startTime === p.start ? p.pid : undefined;
  } catch {
    return undefined;
  }
}

function nodeRun(node: NodeRecord, argv: string[]) {
  return sh({ nothrow: true, cwd: '/' })`nsenter ${enterNode(node)} ${argv}`;
}

/** Starts containerd (pause imported) and the kubelet inside the node; returns once both run (not yet Ready). */
export async function startNodeKubelet(node: NodeRecord, root: string, setup: KubeletSetup): Promise<void> {
  const d = k8sDir(node, root);
  for (const sub of ['', 'opt', 'pod-logs']) mkdirSync(join(d, sub), { recursive: true, mode: 0o750 });
  writeFileSync(join(d, 'containerd.toml'), containerdToml(node, root, setup));
  writeFileSync(join(d, 'kubelet.yaml'), kubeletYaml(node, root, setup));
  const netd = cniConfDir(node, root);
  mkdirSync(netd, { recursive: true });
  writeFileSync(join(netd, CNI_CONFLIST), cniConflist(node));
  // microk8s nodes: certs.d (from the snap's layout) stays as runner-fleet leaves it; before converge a pull fails.
  if (!node.microk8s) {
    const dir = nodeFile(node.name, `${CERTS_D}/${setup.registry}`, root);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'hosts.toml'), hostsToml(setup.registry));
  }
  makeCgroupRoot(node);

  const sock = containerdSocket(node);
  const containerd = spawnDaemon(
    'nsenter',
    [...enterNode(node), 'containerd', '--config', join(d, 'containerd.toml')],
    { log: join(d, 'containerd.log') },
  );
  writePid(join(d, 'containerd.pid'), containerd);
  const ctr = (...args: string[]) => nodeRun(node, ['ctr', '-a', sock, ...args]);
  const up = await waitFor(async () => !isAlive(containerd) || (await ctr('version')).ok, 30_000, 100);
  if (!up || !isAlive(containerd))
    throw new Error(`${node.name}: containerd did not start:\n${logTail(join(d, 'containerd.log'))}`);
  const imported = await ctr('-n', 'k8s.io', 'images', 'import', '--no-unpack=false', setup.pause.ociArchive);
  if (!imported.ok)
    throw new Error(`${node.name}: importing the pause image failed: ${imported.stderr.trim()}`);

  const kubelet = spawnDaemon(
    'nsenter',
    [
      ...enterNode(node),
      join(setup.binDir, 'kubelet'),
      `--config=${join(d, 'kubelet.yaml')}`,
      `--kubeconfig=${setup.kubeconfig}`,
      '--root-dir=/var/lib/kubelet',
      `--cert-dir=/var/lib/kubelet/pki`,
      `--hostname-override=${node.name}`,
      `--node-ip=${nodeLan(node).addr}`,
      '--v=1',
    ],
    { log: join(d, 'kubelet.log') },
  );
  writePid(join(d, 'kubelet.pid'), kubelet);
  await sleep(200);
  if (!isAlive(kubelet))
    throw new Error(`${node.name}: kubelet exited at once:\n${logTail(join(d, 'kubelet.log'))}`);
}

export function kubeletPid(node: Pick<NodeRecord, 'name'>, root: string): number | undefined {
  return readPid(join(k8sDir(node, root), 'kubelet.pid'));
}

/**
 * Stops the node's cluster side in the order a clean shutdown needs: the kubelet first (it would restart what
 * is removed), then every pod sandbox through containerd (CNI DEL frees addresses and masquerade rules), then
 * containerd and the shims it leaves behind; then the node's cgroups.
 */
export async function stopNodeKubelet(
  node: NodeRecord,
  root: string,
  crictl: string | undefined,
): Promise<void> {
  const d = k8sDir(node, root);
  const kubelet = readPid(join(d, 'kubelet.pid'));
  if (kubelet !== undefined) await terminate([kubelet], 10_000);
  const containerd = readPid(join(d, 'containerd.pid'));
  if (containerd !== undefined && crictl && isAlive(node.keeperPid)) {
    // zx's timeout TERMs the whole tree (shell, nsenter, crictl): a wedged CNI DEL must not hold `down` forever.
    await sh({
      nothrow: true,
      timeout: '60s',
    })`nsenter ${enterNode(node)} ${crictl} -r ${`unix://${containerdSocket(node)}`} rmp -af`;
  }
  if (containerd !== undefined) await terminate([containerd], 10_000);
  // Shims outlive containerd by design; they are the node's (its mount namespace).
  const shims = listProcesses()
    .filter((p) => p.mntns === node.mntns && p.comm.startsWith('containerd-shim'))
    .map((p) => p.pid);
  await terminate(shims, 5000);
}

/**
 * The kubelet rewrites these machine-wide sysctls at start (vm.overcommit_memory, kernel.panic, ...). One file
 * for the whole machine, written by the first fleet that starts kubelets and restored by the last one to stop.
 */
const SYSCTLS = [
  'vm/overcommit_memory',
  'vm/panic_on_oom',
  'kernel/panic',
  'kernel/panic_on_oops',
  'kernel/keys/root_maxkeys',
  'kernel/keys/root_maxbytes',
];
const SYSCTLS_FILE = '/var/tmp/runner-fleet-testbed-sysctls.orig';

export function saveSysctls(): void {
  if (existsSync(SYSCTLS_FILE)) return;
  const values = SYSCTLS.map((k) => `${k}=${readFileSync(`/proc/sys/${k}`, 'utf8').trim()}`);
  writeFileSync(SYSCTLS_FILE, `${values.join('\n')}\n`);
}

/** Restores what saveSysctls saved, once no test-fleet kubelet of any slot runs any more. */
export function restoreSysctls(): void {
  if (!existsSync(SYSCTLS_FILE)) return;
  const others = listProcesses().some(
    (p) => p.comm === 'kubelet' && p.cmdline.includes('--hostname-override=pi'),
  );
  if (others) return;
  for (const line of readFileSync(SYSCTLS_FILE, 'utf8').split('\n').filter(Boolean)) {
    const [k, v] = line.split('=');
    try {
      writeFileSync(`/proc/sys/${k}`, v);
    } catch {
      // read-only here: nothing was changed either
    }
  }
  rmSync(SYSCTLS_FILE, { force: true });
}

export function sysctlValues(): Record<string, string> {
  return Object.fromEntries(SYSCTLS.map((k) => [k, readFileSync(`/proc/sys/${k}`, 'utf8').trim()]));
}
