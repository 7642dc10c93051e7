// Network latency for the benchmark: this kernel has no sch_netem, so `tc netem` is not an option.
// Instead toxiproxy (github.com/Shopify/toxiproxy, built from Go modules and cached like the test cluster's
// binaries) sits between every tool and every node's sshd: one proxy per node, with a `latency` toxic on each
// direction of half the round-trip time (whole milliseconds; a tenth of it as jitter). Every tool reaches the nodes through the same
// proxies, so each pays the same delay per packet exchange: what costs a tool is how many round trips it waits on.
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { $ } from 'zx';
import { loadInventory } from '../../src/inventory/schema.js';
import { cacheRoot, isAlive, spawnDaemon, terminate, waitFor } from '#testbed';
import type { BenchFleet } from './fleet.js';

/** Pinned: the newest toxiproxy the Go module proxy served when this was written. */
export const TOXIPROXY_VERSION = 'v2.5.0';
const CACHE = cacheRoot();
export const TOXIPROXY_BIN = join(CACHE, 'bin', `toxiproxy-${TOXIPROXY_VERSION}`);
/** The proxies listen on loopback in the benchmark's own network namespace, node i on FIRST_PORT + i. */
const FIRST_PORT = 21000;
const API_PORT = 20999;
const API = `http://127.0.0.1:${API_PORT}`;

/** Builds toxiproxy's server once (outside the benchmark's network namespace: the Go module proxy is out there). */
export async function ensureToxiproxy(log: (msg: string) => void): Promise<string> {
  if (existsSync(TOXIPROXY_BIN)) return TOXIPROXY_BIN;
  log(`building toxiproxy ${TOXIPROXY_VERSION} from Go modules into ${TOXIPROXY_BIN}`);
  const work = join(CACHE, 'src', `toxiproxy-${TOXIPROXY_VERSION}`);
  mkdirSync(work, { recursive: true });
  const env = {
    ...process.env,
    GOMODCACHE: process.env.GOMODCACHE ?? join(CACHE, 'gomod'),
    GOCACHE: process.env.GOCACHE ?? join(CACHE, 'gobuild'),
    GOFLAGS: '-mod=mod',
    CGO_ENABLED: '0',
    GOBIN: join(work, 'bin'),
  };
  await $({
    cwd: work,
    env,
    stdio: 'inherit',
  })`go install -trimpath github.com/Shopify/toxiproxy/v2/cmd/server@${TOXIPROXY_VERSION}`;
  mkdirSync(join(CACHE, 'bin'), { recursive: true });
  await $`install -m 0755 ${join(work, 'bin', 'server')} ${TOXIPROXY_BIN}`;
  return TOXIPROXY_BIN;
}

async function api(method: string, path: string, body: unknown): Promise<void> {
  const res = await fetch(`${API}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`toxiproxy ${method} ${path}: ${res.status} ${await res.text()}`);
}

export interface Latency {
  rttMs: number;
  /** the fleet as the tools see it: every node at its proxy */
  fleet: BenchFleet;
  stop(): Promise<void>;
}

/**
 * Starts toxiproxy with a proxy per node and `rttMs` of round-trip latency, and returns the fleet rewritten to reach
 * each node through its proxy: the inventory file (runner-fleet reads it), the parsed inventory (the peers' inventories
 * are made from it) and known_hosts, which gets each node's host key under its proxy's `[127.0.0.1]:port` name.
 */
export async function withLatency(fleet: BenchFleet, rttMs: number, stateDir: string): Promise<Latency> {
  const log = join(stateDir, 'toxiproxy.log');
  const pid = spawnDaemon(TOXIPROXY_BIN, ['-host', '127.0.0.1', '-port', String(API_PORT)], { log });
  const up = await waitFor(
    async () => {
      try {
        return (await fetch(`${API}/version`)).ok;
      } catch {
        return false;
      }
    },
    10_000,
    50,
  );
  if (!up || !isAlive(pid)) {
    await terminate([pid], 3000);
    throw new Error(`toxiproxy did not start (see ${log})`);
  }
  try {
    return await proxyEveryNode(fleet, rttMs, stateDir, pid);
  } catch (err) {
    // Nothing left behind when a proxy cannot be set up.
    await terminate([pid], 3000);
    throw err;
  }
}

async function proxyEveryNode(
  fleet: BenchFleet,
  rttMs: number,
  stateDir: string,
  pid: number,
): Promise<Latency> {
  const nodes = fleet.inventory.nodes;
  const knownHosts = nodes[0].knownHosts;
  const keys = new Map(
    readFileSync(knownHosts, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => [l.split(' ')[0], l.split(' ').slice(1).join(' ')] as const),
  );
  const ports = new Map<string, number>();
  for (const [i, n] of nodes.entries()) {
    const port = FIRST_PORT + i;
    ports.set(n.name, port);
    await api('POST', '/proxies', {
      name: n.name,
      listen: `127.0.0.1:${port}`,
      upstream: `${n.host}:${n.port}`,
      enabled: true,
    });
    // toxiproxy takes whole milliseconds: an odd RTT puts the extra one on the way back.
    for (const [stream, ms] of [
      ['upstream', Math.floor(rttMs / 2)],
      ['downstream', rttMs - Math.floor(rttMs / 2)],
    ] as const)
      await api('POST', `/proxies/${n.name}/toxics`, {
        name: `latency-${stream}`,
        type: 'latency',
        stream,
        toxicity: 1,
        attributes: { latency: ms, jitter: Math.round(rttMs / 10) },
      });
    const key = keys.get(n.host) ?? keys.get(`[${n.host}]:${n.port}`);
    if (!key) throw new Error(`${n.name}: no host key for ${n.host} in ${knownHosts}`);
    appendFileSync(knownHosts, `[127.0.0.1]:${port} ${key}\n`);
  }
  // The inventory file with every node at its proxy.
  const doc = parse(readFileSync(fleet.info.inventory, 'utf8')) as { nodes: Record<string, unknown>[] };
  for (const n of doc.nodes) {
    n.host = '127.0.0.1';
    n.port = ports.get(String(n.name));
  }
  const inventoryPath = join(stateDir, `fleet-rtt-${rttMs}ms.yaml`);
  writeFileSync(inventoryPath, stringify(doc));
  const proxied: BenchFleet = {
    ...fleet,
    info: { ...fleet.info, inventory: inventoryPath },
    inventory: loadInventory(inventoryPath),
  };
  return {
    rttMs,
    fleet: proxied,
    async stop() {
      await terminate([pid], 3000);
    },
  };
}
