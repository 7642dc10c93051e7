// The extension point of `up`: what a service is (it starts once the nodes run and adds inventory fields). The list
// of services is in catalog.ts, so that each service's own module can import this one.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NodeRecord } from './node.js';
import { processInfo, spawnDaemon } from './procs.js';

/**
 * Inventory YAML fields a service contributes, in the file's own shape (src/inventory/schema.ts).
 * Objects merge key by key over the base inventory; a list or a scalar replaces what was there.
 */
export interface InventoryFields {
  gitlab?: Record<string, unknown>;
  ssh?: Record<string, unknown>;
  kubernetes?: Record<string, unknown>;
  runners?: Record<string, unknown>;
}

export interface ServiceContext {
  stateRoot: string;
  /** `<state>/services/<name>`, created before start; removed with the state root */
  dir: string;
  /** the fleet's nodes (running when start is called; on stop, what testbed.json recorded, maybe none) */
  nodes: NodeRecord[];
  log: (msg: string) => void;
  /**
   * Starts a detached process (stdio to `<dir>/<label>.log`) and records it, so `down` kills it even if
   * the service's own stop cannot. Returns its PID.
   */
  spawnDaemon: (
    label: string,
    cmd: string,
    args: string[],
    opts?: { env?: NodeJS.ProcessEnv; cwd?: string },
  ) => number;
}

/** What a service's prepare step gets: it runs before any node exists. */
export interface PrepareContext {
  log: (msg: string) => void;
  /** aborted when `up` fails: a prepare step stops the processes it started */
  signal: AbortSignal;
}

/** P: what prepare hands to start. */
export interface TestbedService<P = unknown> {
  name: string;
  /**
   * The services whose start this one's start needs finished (by name; those not in the fleet are not waited for).
   * Default: every service listed before it, one after the other. Services that need nothing of each other start
   * side by side.
   */
  after?: string[];
  /**
   * Optional: work that needs no running node or earlier service (builds into the cache, image layers), started
   * when `up` begins so that it overlaps the nodes' start and the services before this one. `start` gets its result.
   */
  prepare?(ctx: PrepareContext): Promise<P>;
  start(ctx: ServiceContext, prepared?: P): Promise<InventoryFields>;
  /** Must be safe to call when the service is not running, or twice. */
  stop(ctx: ServiceContext): Promise<void>;
}

/** The prepare steps of an `up`, started together; each service's start waits for its own. */
export interface Prepared {
  /** what the service's prepare resolved to (undefined without one); rejects as it did */
  result(service: TestbedService): Promise<unknown>;
  /** aborts every prepare step and waits until each has settled */
  abort(): Promise<void>;
}

export function startPrepares(services: TestbedService[], log: (msg: string) => void): Prepared {
  const controller = new AbortController();
  const running = new Map<TestbedService, Promise<unknown>>();
  for (const service of services) {
    if (!service.prepare) continue;
    const p = service.prepare({ log, signal: controller.signal });
    // Awaited by the service's start, or settled by abort: never an unhandled rejection meanwhile.
    p.catch(() => {});
    running.set(service, p);
  }
  return {
    result: async (service) => running.get(service),
    async abort() {
      controller.abort();
      await Promise.allSettled(running.values());
    },
  };
}

const PIDS = 'daemons.pids';

export function serviceContext(
  service: TestbedService,
  stateRoot: string,
  nodes: NodeRecord[],
  log: (msg: string) => void,
): ServiceContext {
  const dir = join(stateRoot, 'services', service.name);
  return {
    stateRoot,
    dir,
    nodes,
    log,
    spawnDaemon(label, cmd, args, opts = {}) {
      const pid = spawnDaemon(cmd, args, { log: join(dir, `${label}.log`), ...opts });
      const start = processInfo(pid)?.startTime ?? 0;
      writeFileSync(join(dir, PIDS), `${pid} ${start} ${label}\n`, { flag: 'a' });
      return pid;
    },
  };
}

/** PIDs a service started through its context that are still the same processes. */
export function recordedDaemons(dir: string): number[] {
  let text: string;
  try {
    text = readFileSync(join(dir, PIDS), 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .map((l) => l.split(' ').map(Number))
    .filter(([pid, start]) => pid > 0 && processInfo(pid)?.startTime === start)
    .map(([pid]) => pid);
}
