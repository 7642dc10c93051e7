// The local test fleet's API: up, down, status, and the helpers tests use to run commands on nodes and poke at them.
import { createHash } from 'node:crypto';
import {
  appendFileSync,
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { ensureHost } from './host.js';
import { buildImageTar } from './image.js';
import { writeInventory } from './inventory.js';
import { removeNodeCgroups, restoreSysctls } from './kubelet.js';
import { createBridge, joinLan, netnsId, removeLan, slotNodeNetns } from './network.js';
import {
  dockerdPid,
  execInNode,
  logTail,
  nodeLan,
  planNodes,
  prepareNodeDir,
  readDpkgViews,
  sshdPid,
  startNamespace,
  startSshd,
  stopSshd,
  type NodeInfo,
  type NodeRecord,
} from './node.js';
import {
  NODE_KINDS,
  ROOT_MARKER,
  files,
  nodeDir,
  nodeFile as nodePath,
  slot,
  stateRoot,
  type NodeKind,
} from './paths.js';
import {
  listProcesses,
  memoryOf,
  mountNamespace,
  processInfo,
  processesOf,
  sh,
  terminate,
  type RunResult,
} from './procs.js';
import { DEFAULT_SERVICES } from './catalog.js';
import {
  recordedDaemons,
  serviceContext,
  startPrepares,
  type InventoryFields,
  type Prepared,
  type TestbedService,
} from './services.js';
import { checkOwner, claimSlot, takeoverNote } from './slot-owner.js';
import { removeStateRoot } from './state-root.js';

export type { NodeInfo, NodeKind, TestbedService, InventoryFields };
export { NODE_KINDS };

export interface UpOptions {
  /** default: as many as kinds */
  nodes?: number;
  /** repeated in order over the nodes; default apt, snap, none */
  kinds?: NodeKind[];
  /** nodes that get the microk8s snap's layout and CLI stand-in: true for all, or names; default none */
  microk8s?: boolean | string[];
  /** default DEFAULT_SERVICES (the registry); started in order after the nodes */
  services?: TestbedService[];
  log?: (msg: string) => void;
  /** take the slot over even if another live process owns it (see slot-owner.ts) */
  force?: boolean;
}

export interface FleetInfo {
  /** the inventory YAML, ready for provision.ts */
  inventory: string;
  /** host:port of the test registry */
  registry: string;
  nodes: NodeInfo[];
  /** the state root (not in `up --json`): a place for a test's own scratch files, removed by down */
  stateDir: string;
}

/** testbed.json: what up started, so that any later process can find it. */
interface FleetState extends FleetInfo {
  version: 1;
  nodes: NodeRecord[];
  services: string[];
}

const quiet = (): void => {};

function readState(root = stateRoot()): FleetState | undefined {
  try {
    return JSON.parse(readFileSync(files.state(root), 'utf8')) as FleetState;
  } catch {
    return undefined;
  }
}

function saveState(state: FleetState, root: string): void {
  // rename: a reader never sees half a file
  writeFileSync(`${files.state(root)}.tmp`, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(`${files.state(root)}.tmp`, files.state(root));
}

/** Runs fn over items, at most `limit` at a time; the first failure wins, after the others settle. */
async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  const errors: unknown[] = [];
  const worker = async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
      try {
        await fn(item);
      } catch (err) {
        errors.push(err);
        queue.length = 0;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (errors.length > 0) throw errors[0];
}

/**
 * Brings the fleet up from nothing. An existing fleet (same state root) is torn down first, so every
 * up starts clean and a failed up leaves nothing running. This process becomes the slot's owner: an up or down
 * from another live process refuses (SlotBusyError) unless forced.
 */
export async function up(opts: UpOptions = {}): Promise<FleetInfo> {
  const log = opts.log ?? quiet;
  const lap = upTimer();
  const kinds = opts.kinds ?? [...NODE_KINDS];
  const withMicrok8s = (name: string) =>
    opts.microk8s === true || (Array.isArray(opts.microk8s) && opts.microk8s.includes(name));
  const planned = planNodes(opts.nodes ?? kinds.length, kinds).map((n) =>
    withMicrok8s(n.name) ? { ...n, microk8s: true } : n,
  );
  const services = opts.services ?? DEFAULT_SERVICES;
  const root = stateRoot();

  const takeover = takeoverNote(claimSlot(root, 'bring a fleet up', opts.force));
  if (takeover) log(takeover);
  await down({ services, log });
  await ensureHost(log);
  mkdirSync(root, { recursive: true });
  // pi's sshd session reads authorized_keys as pi: the path must be traversable.
  chmodSync(root, 0o755);
  writeFileSync(join(root, ROOT_MARKER), 'state of scripts/testbed.ts; `down` removes this directory\n');
  // down removed the lock with the root: claim again (another process may have claimed it meanwhile).
  claimSlot(root, 'bring a fleet up', opts.force);
  const state: FleetState = {
    version: 1,
    inventory: files.inventory(root),
    registry: '',
    nodes: [],
    services: [],
    stateDir: root,
  };

  let prepared: Prepared | undefined;
  try {
    // Builds start now and overlap everything below; each service's start waits for its own.
    prepared = startPrepares(services, log);
    await sh`ssh-keygen -q -t ed25519 -N ${''} -C runner-fleet-testbed -f ${files.identity(root)}`;
    writeFileSync(files.authorizedKeys(root), readFileSync(`${files.identity(root)}.pub`), { mode: 0o644 });
    const dpkg = readDpkgViews();
    mkdirSync(join(root, 'host'), { recursive: true });
    writeFileSync(files.dockerIoStanza(root), dpkg.dockerStanza);
    const own = statSync('/var/lib/dpkg/status');
    writeFileSync(files.machineDpkgStatus(root), `${own.dev}:${own.ino}\n`);
    mkdirSync(join(root, 'image'), { recursive: true });
    await buildImageTar(files.imageTar(root));
    lap('host');

    log(`starting ${planned.length} node(s)`);
    const t0 = Date.now();
    await createBridge();
    await joinLan(planned.map(nodeLan));
    const t1 = Date.now();
    const phase = { dir: 0, ns: 0, sshd: 0 };
    await pool(planned, 8, async (node) => {
      let t = Date.now();
      const lap = (k: keyof typeof phase) => {
        phase[k] += Date.now() - t;
        t = Date.now();
      };
      await prepareNodeDir(node, root, dpkg);
      lap('dir');
      const record: NodeRecord = { ...node, ...(await startNamespace(node, root)) };
      lap('ns');
      state.nodes.push(record);
      await startSshd(record, root);
      lap('sshd');
    });
    log(
      `LAN ${t1 - t0} ms; nodes ${Date.now() - t1} ms (summed over workers: dirs ${phase.dir} ms, namespaces ${phase.ns} ms, sshd ${phase.sshd} ms)`,
    );
    lap('nodes');
    const order = (n: NodeInfo) => planned.findIndex((p) => p.name === n.name);
    state.nodes.sort((a, b) => order(a) - order(b));
    saveState(state, root);
    writeKnownHosts(state.nodes, root);

    // The starting point of each kind, installed through the stand-ins as a person would have.
    const withDocker = state.nodes.filter((n) => n.docker !== 'none');
    log(`starting dockerd on ${withDocker.map((n) => n.name).join(', ') || 'no node'}`);
    await pool(withDocker, 4, async (node) => {
      const argv = node.docker === 'apt' ? ['systemctl', 'start', 'docker'] : ['snap', 'install', 'docker'];
      const res = await execInNode(node, argv);
      if (res.code !== 0) {
        const log = nodePath(
          node.name,
          node.docker === 'apt' ? '/var/log/docker.log' : '/var/log/snap.docker.dockerd.log',
          root,
        );
        throw new Error(
          `${node.name}: \`${argv.join(' ')}\` exited ${res.code}: ${res.stderr.trim()}\n${logTail(log)}`,
        );
      }
    });

    lap('dockerd');
    const fields = await startServices(services, { root, state, log, prepared, lap });
    const inventoryText = writeInventory(
      state.inventory,
      { nodes: planned, identityFile: files.identity(root), knownHosts: files.knownHosts(root) },
      fields,
    );
    const registries = fields.flatMap((f) =>
      Array.isArray(f.gitlab?.registry) ? (f.gitlab.registry as string[]) : [],
    );
    state.registry = registries.at(-1) ?? '';
    saveState(state, root);
    log(`inventory ${state.inventory} (${inventoryText.split('\n').length} lines)`);
    return info(state);
  } catch (err) {
    log(`up failed, tearing down: ${(err as Error).message.split('\n')[0]}`);
    await prepared?.abort();
    await down({ services, log }).catch((e: Error) => log(`down after failed up: ${e.message}`));
    throw err;
  }
}

interface StartServicesContext {
  root: string;
  state: FleetState;
  log: (msg: string) => void;
  prepared: Prepared;
  lap: (step: string) => void;
}

/**
 * Starts the services, each as soon as the ones it needs are running (`after`; by default every service listed
 * before it), so independent ones overlap (the cluster's control plane and kubelets, the GitLab stand-in, the image
 * pushes). Every start settles before this returns or throws: a failed up never tears down a service mid-start.
 * The fields come back in the services' order, as the inventory merges them.
 */
async function startServices(
  services: TestbedService[],
  c: StartServicesContext,
): Promise<InventoryFields[]> {
  // A service waits only for services listed before it: one it needs that comes later is a mistake in the list.
  services.forEach((service, i) => {
    const later = (service.after ?? []).filter((name) => services.slice(i + 1).some((s) => s.name === name));
    if (later.length > 0)
      throw new Error(
        `service ${service.name} needs ${later.join(', ')}, listed after it: list them before it`,
      );
  });
  for (const service of services) c.state.services.push(service.name);
  saveState(c.state, c.root);
  const started = new Map<string, Promise<InventoryFields>>();
  const starts = services.map((service, i) => {
    const needs = service.after ?? services.slice(0, i).map((s) => s.name);
    const waits = needs.flatMap((name) => started.get(name) ?? []);
    const start = Promise.all(waits).then(async () => {
      const ctx = serviceContext(service, c.root, c.state.nodes, c.log);
      mkdirSync(ctx.dir, { recursive: true });
      const fields = await service.start(ctx, await c.prepared.result(service));
      c.lap(`service ${service.name}`);
      return fields;
    });
    started.set(service.name, start);
    return start;
  });
  const settled = await Promise.allSettled(starts);
  const failed = settled.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((r) => (r as PromiseFulfilledResult<InventoryFields>).value);
}

/**
 * With RUNNER_FLEET_TESTBED_TIMES=FILE, each step of up() and down() appends `slot step ms` to FILE: where a test run's
 * fleet time goes, per suite (the tests bring fleets up without a log).
 */
function upTimer(): (step: string) => void {
  const file = process.env.RUNNER_FLEET_TESTBED_TIMES;
  let t = Date.now();
  return (step) => {
    if (!file) return;
    const now = Date.now();
    appendFileSync(file, `${slot()} ${step} ${now - t}\n`);
    t = now;
  };
}

function info(state: FleetState): FleetInfo {
  return {
    inventory: state.inventory,
    registry: state.registry,
    nodes: state.nodes.map(({ name, host, port, docker, microk8s }) => ({
      name,
      host,
      port,
      docker,
      ...(microk8s ? { microk8s } : {}),
    })),
    stateDir: state.stateDir,
  };
}

function writeKnownHosts(nodes: NodeRecord[], root: string): void {
  const lines = nodes.map((n) => {
    const [type, key] = readFileSync(join(nodeDir(n.name, root), 'ssh_host_ed25519_key.pub'), 'utf8')
      .trim()
      .split(/\s+/);
    // OpenSSH writes the default port without brackets.
    return `${n.port === 22 ? n.host : `[${n.host}]:${n.port}`} ${type} ${key}`;
  });
  writeFileSync(files.knownHosts(root), `${lines.join('\n')}\n`);
}

/**
 * Stops everything up started (services, then every process in every node's namespace, containers
 * included) and removes the state root. Safe to call when nothing is up, and twice.
 */
export async function down(
  opts: { services?: TestbedService[]; log?: (msg: string) => void; force?: boolean } = {},
): Promise<void> {
  const log = opts.log ?? quiet;
  const root = stateRoot();
  const takeover = takeoverNote(checkOwner(root, 'take the fleet down', opts.force));
  if (takeover) log(takeover);
  const state = readState(root);
  const errors: string[] = [];
  const nodes = state?.nodes ?? [];

  // Every service this fleet started (testbed.json), and every known one: an `up` with other --services than the
  // running fleet must not leave the first one's cluster running. stop() is safe when a service is not running.
  const stopping = [...DEFAULT_SERVICES];
  for (const s of opts.services ?? []) if (!stopping.includes(s)) stopping.push(s);
  const lap = upTimer();
  for (const service of stopping.reverse()) {
    try {
      await service.stop(serviceContext(service, root, nodes, log));
    } catch (err) {
      errors.push(`${service.name}: ${(err as Error).message}`);
    }
    lap(`down: service ${service.name}`);
  }

  const hostNs = mountNamespace('self');
  const procs = listProcesses();
  const namespaces = new Set(nodes.map((n) => n.mntns));
  // Whatever runs in a node's network namespace is the node's too, whatever mount namespace it made for itself.
  for (const name of new Set([...nodes.map((n) => n.netns).filter(Boolean), ...slotNodeNetns()])) {
    const id = netnsId(name);
    if (id) namespaces.add(id);
  }
  // Also what a lost or older testbed.json does not list: any namespace whose processes name the state root.
  for (const p of procs) if (p.cmdline.includes(`${root}/`) && p.mntns !== hostNs) namespaces.add(p.mntns);
  if (hostNs) namespaces.delete(hostNs);
  const victims = new Set(processesOf(namespaces, procs).map((p) => p.pid));
  const servicesDir = files.services(root);
  if (existsSync(servicesDir))
    for (const d of readdirSync(servicesDir))
      for (const pid of recordedDaemons(join(servicesDir, d))) victims.add(pid);
  victims.delete(process.pid);
  if (victims.size > 0) {
    log(`stopping ${victims.size} process(es)`);
    // dockerd gets a moment to stop its containers and containerd; the rest is killed after it.
    await terminate([...victims], 3000);
  }
  lap('down: processes');
  // The namespaces go once nothing holds them; their veths with them.
  await removeLan();
  // What the cluster service's stop could not remove while processes still ran.
  const cgroupsLeft = removeNodeCgroups();
  if (cgroupsLeft.length > 0) errors.push(`cgroups still in use: ${cgroupsLeft.join(', ')}`);
  restoreSysctls();
  lap('down: links, cgroups, sysctls');

  if (removeStateRoot(root, log) === 'foreign')
    errors.push(
      `${root} exists but is not a test fleet state root (no ${ROOT_MARKER}, and files up does not make); not removing it: delete it by hand if it is yours`,
    );
  if (errors.length > 0) throw new Error(`down: ${errors.join('; ')}`);
}

/** sha256 of the machine's own files that no node may ever write, recorded at up: a node that wrote the machine's own file would pass tests while breaking the machine. */
export const MACHINE_FILES = ['/var/lib/dpkg/status', '/etc/passwd', '/etc/group', '/etc/shadow'];

export function machineFileHashes(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of MACHINE_FILES) {
    out[f] = existsSync(f) ? createHash('sha256').update(readFileSync(f)).digest('hex') : 'missing';
  }
  return out;
}

export interface NodeStatus extends NodeInfo {
  /** what is installed now: apt if dpkg says docker.io is, snap if the docker snap is, else none */
  installed: NodeKind;
  sshdPid?: number;
  dockerdPid?: number;
  processes: number;
  rssKb: number;
  pssKb: number;
}

export interface FleetStatus {
  up: boolean;
  stateRoot: string;
  inventory?: string;
  registry?: string;
  services: string[];
  nodes: NodeStatus[];
  total: { rssKb: number; pssKb: number };
}

export function status(): FleetStatus {
  const root = stateRoot();
  const state = readState(root);
  if (!state) return { up: false, stateRoot: root, services: [], nodes: [], total: { rssKb: 0, pssKb: 0 } };
  const procs = listProcesses();
  const nodes = state.nodes.map((n): NodeStatus => {
    const mine = processesOf(new Set([n.mntns]), procs).map((p) => p.pid);
    return {
      name: n.name,
      host: n.host,
      port: n.port,
      docker: n.docker,
      installed: installedKind(n.name, root),
      sshdPid: sshdPid(n, root),
      dockerdPid: nodeDockerPid(n.name),
      processes: mine.length,
      ...memoryOf(mine),
    };
  });
  return {
    up: nodes.length > 0 && nodes.every((n) => n.processes > 0),
    stateRoot: root,
    inventory: state.inventory,
    registry: state.registry,
    services: state.services,
    nodes,
    total: { rssKb: sum(nodes.map((n) => n.rssKb)), pssKb: sum(nodes.map((n) => n.pssKb)) },
  };
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

function installedKind(name: string, root: string): NodeKind {
  try {
    const status = readFileSync(nodePath(name, '/var/lib/dpkg/status', root), 'utf8');
    if (/^Package: docker\.io\nStatus: install ok installed$/m.test(status)) return 'apt';
    if (readdirSync(nodePath(name, '/var/lib/snapd/snaps', root)).some((f) => /^docker_\d+\.snap$/.test(f)))
      return 'snap';
  } catch {
    // node directory gone
  }
  return 'none';
}

/** The running node, or an error that says why not. */
export function getNode(name: string): NodeRecord {
  const state = readState();
  if (!state) throw new Error(`the test fleet is not up (no ${files.state()})`);
  const node = state.nodes.find((n) => n.name === name);
  if (!node) throw new Error(`no node named ${name} (nodes: ${state.nodes.map((n) => n.name).join(', ')})`);
  if (processInfo(node.keeperPid)?.mntns !== node.mntns)
    throw new Error(`node ${name} is not running (its namespace is gone)`);
  return node;
}

/** The fleet that is up, as up returned it. */
export function fleetInfo(): FleetInfo {
  const state = readState();
  if (!state) throw new Error(`the test fleet is not up (no ${files.state()})`);
  return info(state);
}

/** Runs argv as root inside the node (its mount namespace, PATH with the stand-ins first). Never rejects on exit codes. */
export function execOnNode(
  name: string,
  argv: string[],
  opts: { input?: string | Buffer } = {},
): Promise<RunResult> {
  return execInNode(getNode(name), argv, opts);
}

/** Host path of `absPath` as the node sees it (e.g. /etc/docker/daemon.json → <state>/pi1/etc-docker/daemon.json). */
export function nodeFile(name: string, absPath: string): string {
  return nodePath(name, absPath);
}

/** PID of the node's running dockerd (apt's or the snap's), if any. */
export function nodeDockerPid(name: string): number | undefined {
  return dockerdPid(name, stateRoot());
}

/** Stops the node's dockerd behind its service manager's back, as a crash or an admin's kill would. */
export async function stopNodeDockerd(name: string): Promise<void> {
  const pid = nodeDockerPid(name);
  if (pid !== undefined) await terminate([pid], 20_000);
}

/** Stops the node's listening sshd (open sessions continue), so the node is unreachable over SSH. */
export async function stopNodeSshd(name: string): Promise<void> {
  await stopSshd(getNode(name), stateRoot());
}

export async function startNodeSshd(name: string): Promise<void> {
  await startSshd(getNode(name), stateRoot());
}

/** Imports the busybox test image into the node's dockerd as `tag`. */
export async function seedImage(name: string, tag = 'bb:local'): Promise<void> {
  const res = await execOnNode(name, ['docker', 'import', '-', tag], {
    input: readFileSync(files.imageTar()),
  });
  if (res.code !== 0)
    throw new Error(`${name}: docker import failed (exit ${res.code}): ${res.stderr.trim()}`);
}
