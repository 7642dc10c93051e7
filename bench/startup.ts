// Start-up benchmark: time from spawn to the first SSH connect, and to exit for `--help`, per way
// of running runner-fleet; N alternating runs, medians. Needs a fleet up (the inventory it writes) for `plan`.
//
//   npm run build && npx tsx bench/startup.ts --inventory /var/tmp/runner-fleet-testbed-5/fleet.yaml --runs 15
//
// How: every node process of a run preloads bench/lib/startup-trace.mjs (NODE_OPTIONS=--import), which appends its
// start time (performance.timeOrigin) and the time of its first TCP connect to a file. Times are epoch ms, so the
// spawn, npx's node, tsx's cli, tsx's child and the connect line up on one axis. The preload costs each process
// about 1 ms (it is in every variant alike). `plan` does the same SSH work as a no-op `apply` and changes nothing.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { $ } from 'zx';
import { median } from './lib/measure.js';
import { REPO } from './lib/runner-fleet.js';

const TRACE_PRELOAD = join(REPO, 'bench', 'lib', 'startup-trace.mjs');

export interface Variant {
  name: string;
  argv: string[];
  /** until the first TCP connect (plan), or until exit (--help, node -e 0) */
  until: 'connect' | 'exit';
}

export interface TraceLine {
  pid: number;
  ppid: number;
  what: 'start' | 'connect';
  t: number;
  argv?: string[];
}

export interface StartupSample {
  /** spawn → first connect or exit, ms */
  ms: number;
  /** spawn → each node process's start, in the order they started, then the connect: where the time goes */
  marks: { what: string; ms: number }[];
  load1: number;
}

function variants(inventory: string | undefined): Variant[] {
  const plan = inventory ? ['plan', '--inventory', inventory, '--quiet'] : [];
  const v: Variant[] = [
    { name: '`node -e 0`', argv: ['node', '-e', '0'], until: 'exit' },
    {
      name: '`npx tsx provision.ts --help`',
      argv: ['npx', '--no-install', 'tsx', 'provision.ts', '--help'],
      until: 'exit',
    },
    { name: '`node dist/provision.js --help`', argv: ['node', 'dist/provision.js', '--help'], until: 'exit' },
  ];
  if (inventory) {
    v.push(
      {
        name: '`npx tsx provision.ts plan` → first SSH connect',
        argv: ['npx', '--no-install', 'tsx', 'provision.ts', ...plan],
        until: 'connect',
      },
      {
        name: '`node_modules/.bin/tsx provision.ts plan` → first SSH connect',
        argv: ['node_modules/.bin/tsx', 'provision.ts', ...plan],
        until: 'connect',
      },
      {
        name: '`node dist/provision.js plan` → first SSH connect',
        argv: ['node', 'dist/provision.js', ...plan],
        until: 'connect',
      },
    );
  }
  return v;
}

async function runOnce(v: Variant, dir: string, i: number): Promise<StartupSample> {
  const trace = join(dir, `trace-${i}`);
  const load1 = loadavg()[0];
  const t0 = performance.timeOrigin + performance.now();
  // Through zx like every local program; bash execs the last command, so the child is the measured process.
  const out = await $({
    cwd: REPO,
    nothrow: true,
    quiet: true,
    env: {
      ...process.env,
      RF_STARTUP_TRACE: trace,
      NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${TRACE_PRELOAD}`.trim(),
    },
  })`${v.argv} </dev/null >/dev/null`;
  const code = out.exitCode ?? 1;
  if (code !== 0 && v.until !== 'connect')
    throw new Error(`${v.argv.join(' ')}: exit ${code}: ${out.stderr.slice(-500)}`);
  const tEnd = performance.timeOrigin + performance.now();
  const lines: TraceLine[] = existsSync(trace)
    ? readFileSync(trace, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as TraceLine)
    : [];
  const marks = lines.map((l) => ({
    what: l.what === 'connect' ? 'first TCP connect' : `node starts: ${(l.argv ?? []).join(' ')}`,
    ms: l.t - t0,
  }));
  let ms = tEnd - t0;
  if (v.until === 'connect') {
    const c = lines.find((l) => l.what === 'connect');
    if (!c) throw new Error(`${v.argv.join(' ')}: exit ${code}, never connected`);
    ms = c.t - t0;
  }
  return { ms, marks, load1 };
}

export interface StartupResult {
  date: string;
  runs: number;
  variants: { name: string; argv: string[]; samples: StartupSample[] }[];
}

export function renderStartup(r: StartupResult): string {
  const rows = r.variants.map((v) => {
    const ms = v.samples.map((s) => s.ms);
    return `| ${v.name} | ${median(ms).toFixed(0)} | ${Math.min(...ms).toFixed(0)}–${Math.max(...ms).toFixed(0)} | ${ms.length} |`;
  });
  const out = [`| command | median ms | min–max | n |`, `| --- | --- | --- | --- |`, ...rows, ''];
  // Where the time goes: the medians of each process's start and the connect, for the variants with more than one process.
  for (const v of r.variants) {
    const withMarks = v.samples.filter((s) => s.marks.length > 1);
    if (withMarks.length === 0 || !v.name.includes('→')) continue;
    const k = Math.min(...withMarks.map((s) => s.marks.length));
    const steps: string[] = [];
    let prev = 0;
    for (let j = 0; j < k; j++) {
      const at = median(withMarks.map((s) => s.marks[j].ms));
      steps.push(`${(at - prev).toFixed(0)} ms → ${withMarks[0].marks[j].what} (at ${at.toFixed(0)})`);
      prev = at;
    }
    out.push(`${v.name}: ${steps.join('; ')}.`, '');
  }
  const loads = r.variants.flatMap((v) => v.samples.map((s) => s.load1));
  out.push(
    `1-minute load average during the runs: median ${median(loads).toFixed(2)}, max ${Math.max(...loads).toFixed(2)}.`,
  );
  return out.join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      inventory: { type: 'string' },
      runs: { type: 'string', default: '10' },
      json: { type: 'string' },
    },
  });
  const runs = Number(values.runs);
  if (!existsSync(join(REPO, 'dist', 'provision.js')))
    throw new Error('dist/provision.js is missing: npm run build first');
  const dir = mkdtempSync(join(tmpdir(), 'rf-startup-'));
  const vs = variants(values.inventory);
  const result: StartupResult = {
    date: new Date().toISOString(),
    runs,
    variants: vs.map((v) => ({ name: v.name, argv: v.argv, samples: [] })),
  };
  try {
    // One warm-up each (tsx's transform cache, the page cache), then alternating rounds so that load drifts hit all alike.
    for (const v of vs) await runOnce(v, dir, -1);
    let i = 0;
    for (let r = 0; r < runs; r++) {
      for (const [j, v] of vs.entries()) result.variants[j].samples.push(await runOnce(v, dir, i++));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const md = renderStartup(result);
  process.stdout.write(`${md}\n`);
  if (values.json) {
    const { writeFileSync } = await import('node:fs');
    writeFileSync(values.json, `${JSON.stringify(result, null, 2)}\n`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`startup: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
