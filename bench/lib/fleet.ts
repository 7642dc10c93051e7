// The benchmark's test fleet: a fresh fleet per "first run", sshd logs at VERBOSE, and per-node SSH counts from those logs.
import {
  closeSync,
  copyFileSync,
  existsSync,
  linkSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { loadInventory } from '../../src/inventory/schema.js';
import type { Inventory } from '../../src/inventory/types.js';
import { mapPool } from '../../src/pool.js';
import {
  down,
  type FleetInfo,
  type FleetStatus,
  nodeDir,
  nodeFile,
  portOpen,
  REGISTRY,
  signal,
  sshdPid,
  stateRoot,
  status,
  type TestbedService,
  up,
  waitFor,
  slot,
} from '#testbed';

/** The benchmark's own state root, so it never tears down a fleet someone else brought up under the default one. */
export const BENCH_STATE_ROOT = `/var/tmp/runner-fleet-bench${slot() ? `-${slot()}` : ''}`;

export interface BenchFleet {
  info: FleetInfo;
  inventory: Inventory;
  upMs: number;
}

/**
 * The host phase never talks to the registry: it only lists it in daemon.json and checks `docker info`. So the
 * benchmark names the test registry's address without starting it (its network namespace has a fixed, global
 * name that a test fleet may be using right now).
 */
const registryAddressOnly: TestbedService = {
  name: 'registry-address',
  async start() {
    return { gitlab: { registry: [REGISTRY] } };
  },
  async stop() {},
};

/**
 * The testbed starts sshd at its default LogLevel INFO, which logs each authenticated connection but not each
 * session. VERBOSE adds "Starting session: …" per exec/subsystem channel: what we count as a round trip.
 * sshd re-reads its config when it re-executes itself on SIGHUP; open sessions are untouched.
 */
async function verboseSshdLogs(info: FleetInfo): Promise<void> {
  const root = stateRoot();
  // Twenty at a time, each given a minute: at 200 nodes on 2 cores, all at once with 10 s each timed out.
  await mapPool(info.nodes, 20, async (node) => {
    const config = join(nodeDir(node.name, root), 'sshd_config');
    const text = readFileSync(config, 'utf8');
    if (!/^LogLevel VERBOSE$/m.test(text))
      writeFileSync(
        config,
        `${text}# Added by bench/: one log line per session, to count round trips.\nLogLevel VERBOSE\n`,
      );
    const pid = sshdPid(node, root);
    if (pid === undefined) throw new Error(`${node.name}: sshd is not running`);
    const log = join(nodeDir(node.name, root), 'sshd.log');
    const before = statSync(log).size;
    signal(pid, 'SIGHUP');
    // Back when the re-executed listener logs that it listens again.
    const ok = await waitFor(() => readTail(log, before).includes('Server listening'), 60_000, 20);
    if (!ok || !(await portOpen(node.host, node.port)))
      throw new Error(`${node.name}: sshd did not come back after SIGHUP`);
  });
}

function readTail(path: string, from: number): string {
  const fd = openSync(path, 'r');
  try {
    const size = statSync(path).size;
    if (size <= from) return '';
    const buf = Buffer.alloc(size - from);
    readSync(fd, buf, 0, buf.length, from);
    return buf.toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/**
 * Since the testbed gives each node its own /var/lib/apt/lists, filled only by its `apt-get update` stand-in (the
 * GitLab runner repository), python-apt on a node knows no Debian package and Ansible's apt module answers "No
 * package matching 'docker.io' is available". A real Pi has its distribution's lists, so each node gets the
 * machine's (hard links: no copy). The apt-get stand-in still does the "install".
 */
function seedAptLists(info: FleetInfo): void {
  const host = '/var/lib/apt/lists';
  const lists = readdirSync(host).filter((f) => f.endsWith('_InRelease') || f.includes('_Packages'));
  for (const node of info.nodes) {
    const dir = nodeFile(node.name, host);
    for (const f of lists) {
      const to = join(dir, f);
      if (existsSync(to)) continue;
      try {
        linkSync(join(host, f), to);
      } catch {
        copyFileSync(join(host, f), to); // another file system
      }
    }
  }
}

/** Brings up a fresh fleet of `n` nodes; call only inside the benchmark's own network namespace (netns.ts). */
export async function freshFleet(n: number, log: (msg: string) => void): Promise<BenchFleet> {
  if (!process.env.RUNNER_FLEET_BENCH_NETNS)
    throw new Error('the benchmark fleet runs only inside its own network namespace (bench/lib/netns.ts)');
  process.env.RUNNER_FLEET_TESTBED = BENCH_STATE_ROOT;
  const t0 = performance.now();
  const info = await up({ nodes: n, services: [registryAddressOnly], log });
  const upMs = performance.now() - t0;
  await verboseSshdLogs(info);
  seedAptLists(info);
  const inventory = loadInventory(info.inventory);
  return { info, inventory, upMs };
}

export async function teardown(log: (msg: string) => void): Promise<void> {
  process.env.RUNNER_FLEET_TESTBED = BENCH_STATE_ROOT;
  await down({ services: [registryAddressOnly], log });
}

export function fleetStatus(): FleetStatus {
  process.env.RUNNER_FLEET_TESTBED = BENCH_STATE_ROOT;
  return status();
}

export interface SshCounts {
  /** authenticated connections ("Accepted publickey for …") */
  connections: number;
  /** sessions sshd started ("Starting session: command|subsystem …"): one per remote command or sftp transfer */
  sessions: number;
}

/** Remembers where every node's sshd log ends now; `count()` reads only what was appended since. */
export function sshdLogMark(info: FleetInfo): { count(): Map<string, SshCounts> } {
  const root = stateRoot();
  const logs = info.nodes.map((n) => ({ name: n.name, path: join(nodeDir(n.name, root), 'sshd.log') }));
  const offsets = new Map(logs.map((l) => [l.name, statSync(l.path).size]));
  return {
    count() {
      const out = new Map<string, SshCounts>();
      for (const l of logs) {
        const text = readTail(l.path, offsets.get(l.name) ?? 0);
        out.set(l.name, {
          connections: (text.match(/Accepted publickey for /g) ?? []).length,
          sessions: (text.match(/Starting session: /g) ?? []).length,
        });
      }
      return out;
    },
  };
}
