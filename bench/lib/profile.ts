// Where runner-fleet's no-op time goes: process start-up (node, tsx, npx, imports), SSH connect, the gather round trip.
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BenchFleet } from './fleet.js';
import { measure, median } from './measure.js';
import { REPO, runProvision } from './runner-fleet.js';

export interface Stat {
  median: number;
  max: number;
}

export interface Profile {
  nodes: number;
  concurrency: number;
  /** medians of 5 runs, ms */
  startup: {
    node: number;
    tsxEmpty: number;
    npxTsxEmpty: number;
    provisionHelpTsx: number;
    provisionHelpNpx: number;
  };
  /** a fresh tsx process importing what provision.ts imports, one package at a time (bench/lib/import-cost.ts) */
  imports: { beforeMs: number; steps: { name: string; ms: number; rssMiB: number }[] };
  /** the converge loop re-run inside this process (no start-up): per node and in total, ms */
  inProcess: { importMs: number; totalMs: number; connect: Stat; gather: Stat; nodeTotal: Stat };
  /** one node, sequential, one connection, medians of 7 round trips, ms */
  roundTrip: { shTrue: number; sudoTrue: number; gatherScript: number; dockerInfo: number };
  /** `npx tsx provision.ts apply` no-op on the same fleet, median of 3, ms */
  noopWallMs: number;
  /** no-op wall, ms, medians of 5 alternating runs: as is, and with TCP_NODELAY on every socket (bench/lib/nodelay.mjs) */
  noDelay: { nodes: number; asIs: number; noDelay: number }[];
}

const stat = (xs: number[]): Stat => ({ median: median(xs), max: Math.max(...xs) });

async function medianWall(argv: string[], times: number): Promise<number> {
  const walls: number[] = [];
  for (let i = 0; i < times; i++) walls.push((await measure(argv, { cwd: REPO })).wallMs);
  return median(walls);
}

export async function profileRunnerFleet(
  fleet: BenchFleet,
  concurrency: number,
  log: (msg: string) => void,
): Promise<Profile> {
  const empty = join(tmpdir(), 'rf-bench-empty.ts');
  writeFileSync(empty, 'export {};\n');
  const startup = {
    node: await medianWall(['node', '-e', '0'], 5),
    tsxEmpty: await medianWall(['node_modules/.bin/tsx', empty], 5),
    npxTsxEmpty: await medianWall(['npx', '--no-install', 'tsx', empty], 5),
    provisionHelpTsx: await medianWall(['node_modules/.bin/tsx', 'provision.ts', '--help'], 5),
    provisionHelpNpx: await medianWall(['npx', '--no-install', 'tsx', 'provision.ts', '--help'], 5),
  };
  const cost = await measure(['node_modules/.bin/tsx', 'bench/lib/import-cost.ts'], { cwd: REPO });
  const parsed = JSON.parse(cost.stdout) as {
    before: number;
    steps: { name: string; ms: number; rssMiB: number }[];
  };
  const imports = { beforeMs: parsed.before, steps: parsed.steps };
  log(
    `start-up: node ${startup.node.toFixed(0)} ms, tsx ${startup.tsxEmpty.toFixed(0)} ms, npx tsx ${startup.npxTsxEmpty.toFixed(0)} ms, npx tsx provision.ts --help ${startup.provisionHelpNpx.toFixed(0)} ms`,
  );

  // Converge first, so that what follows is the no-op path.
  await runProvision(fleet.info.inventory, concurrency);
  const walls: number[] = [];
  for (let i = 0; i < 3; i++)
    walls.push((await runProvision(fleet.info.inventory, concurrency)).measured.wallMs);

  // ssh2 leaves Nagle's algorithm on: what would TCP_NODELAY save? Alternating, so load drifts hit both alike.
  const withNoDelay = {
    ...process.env,
    NODE_OPTIONS:
      `${process.env.NODE_OPTIONS ?? ''} --import ${join(REPO, 'bench', 'lib', 'nodelay.mjs')}`.trim(),
  };
  const noDelay: Profile['noDelay'] = [];
  const subsets =
    fleet.inventory.nodes.length > 3
      ? [fleet.inventory.nodes.slice(0, 3).map((n) => n.name), undefined]
      : [undefined];
  for (const only of subsets) {
    const asIs: number[] = [];
    const nd: number[] = [];
    for (let i = 0; i < 5; i++) {
      asIs.push((await runProvision(fleet.info.inventory, concurrency, { only })).measured.wallMs);
      nd.push(
        (await runProvision(fleet.info.inventory, concurrency, { only, env: withNoDelay })).measured.wallMs,
      );
    }
    noDelay.push({
      nodes: only?.length ?? fleet.inventory.nodes.length,
      asIs: median(asIs),
      noDelay: median(nd),
    });
  }

  const t0 = performance.now();
  const { connectNode } = await import('../../src/ssh.js');
  const { gatherFacts } = await import('../../src/docker/docker-converge.js');
  const { mapPool } = await import('../../src/pool.js');
  const importMs = performance.now() - t0;
  const registries = fleet.inventory.gitlab.registries;

  const connect: number[] = [];
  const gather: number[] = [];
  const nodeTotal: number[] = [];
  const t1 = performance.now();
  await mapPool(fleet.inventory.nodes, concurrency, async (node) => {
    const a = performance.now();
    const conn = await connectNode(node);
    const b = performance.now();
    try {
      await gatherFacts(conn, registries);
    } finally {
      conn.close();
    }
    const c = performance.now();
    connect.push(b - a);
    gather.push(c - b);
    nodeTotal.push(c - a);
  });
  const totalMs = performance.now() - t1;

  const node = fleet.inventory.nodes[0];
  const conn = await connectNode(node);
  const { gatherScript, DOCKER_INFO } = await import('../../src/docker/facts.js');
  const rt = async (script: string, sudo: boolean) => {
    const xs: number[] = [];
    for (let i = 0; i < 7; i++) {
      const a = performance.now();
      await conn.exec(script, { sudo });
      xs.push(performance.now() - a);
    }
    return median(xs);
  };
  const roundTrip = {
    shTrue: await rt('true', false),
    sudoTrue: await rt('true', true),
    gatherScript: await rt(gatherScript(registries), true),
    dockerInfo: await rt(DOCKER_INFO, true),
  };
  conn.close();

  return {
    nodes: fleet.inventory.nodes.length,
    concurrency,
    startup,
    imports,
    inProcess: {
      importMs,
      totalMs,
      connect: stat(connect),
      gather: stat(gather),
      nodeTotal: stat(nodeTotal),
    },
    roundTrip,
    noopWallMs: median(walls),
    noDelay,
  };
}
