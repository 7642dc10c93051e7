// The extension point of `up`: services that start once the nodes run (registry, GitLab stand-in, test cluster) and add inventory fields.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NodeRecord } from './node.js';
import { processInfo, spawnDaemon } from './procs.js';
import { clusterService, gitlabService } from './extra-services.js';
import { gitlabRunnerPackageService } from './gitlab-runner.js';
import { imagesService } from './images-service.js';
import { registryService } from './registry.js';
import { fluxService } from './flux.js';
import { sealedSecretsService } from './sealed-secrets.js';

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
   * Optional: work that needs no running node or earlier service (builds into the cache, image layers), started
   * when `up` begins so that it overlaps the nodes' start and the services before this one. `start` gets its result.
   */
  prepare?(ctx: PrepareContext): Promise<P>;
  start(ctx: ServiceContext, prepared?: P): Promise<InventoryFields>;
  /** Must be safe to call when the service is not running, or twice. */
  stop(ctx: ServiceContext): Promise<void>;
}

/** What `up` starts unless told otherwise, in this order (`down` stops them in reverse). */
export const DEFAULT_SERVICES: TestbedService[] = [
  registryService,
  imagesService,
  gitlabRunnerPackageService,
  gitlabService,
  clusterService,
];

/** Started only when named (`--services …,sealed-secrets,flux`), after the default ones they need. */
export const OPTIONAL_SERVICES: TestbedService[] = [sealedSecretsService, fluxService];

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

const ALWAYS_ON = ['registry', gitlabRunnerPackageService.name];

/**
 * `--services registry,gitlab`: a lighter fleet (the benchmark needs no cluster). The registry is always on, and so is
 * the gitlab-runner package (it starts nothing: it only hands the nodes' apt-get the real binary).
 */
export function servicesNamed(names: string[]): TestbedService[] {
  const known = [...DEFAULT_SERVICES, ...OPTIONAL_SERVICES];
  const unknown = names.filter((n) => !known.some((s) => s.name === n));
  if (unknown.length > 0)
    throw new Error(`unknown service ${unknown.join(', ')} (known: ${known.map((s) => s.name).join(', ')})`);
  return known.filter((s) => ALWAYS_ON.includes(s.name) || names.includes(s.name));
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
