// Benchmark: runner-fleet's first converge and no-op rerun on the test fleet, against pyinfra and Ansible.
//
//   npm run build && npm run bench -- --write      regenerates bench/RESULTS.md, RESULTS.json and noop.svg: the
//                                                   user's whole no-op (3 nodes, GitLab and cluster), then 3, 10 and
//                                                   30 nodes on loopback and 30 nodes at 20 and 50 ms RTT, every
//                                                   default tool (see --help) on fresh fleets
//
// "First run" = the first `provision.ts apply` (or playbook run) on a fleet fresh from `testbed up`: apt nodes have
// docker.io running with no daemon.json, snap nodes the docker snap running with its default daemon.json, `none`
// nodes no Docker at all (kinds repeat apt, snap, none). Every tool's first run gets a fleet of its own.
// "No-op rerun" = the same command again right after, with nothing left to change.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { ProcessOutput } from 'zx';
import { sh } from '#testbed';
import {
  ANSIBLE_CORE_VERSION,
  ensureAnsible,
  runPlaybook,
  variants,
  writeAnsibleInventory,
  type AnsibleVariant,
} from './lib/ansible.js';
import {
  fleetStatus,
  freshFleet,
  sshdLogMark,
  teardown,
  type BenchFleet,
  type SshCounts,
} from './lib/fleet.js';
import { median, type Measured } from './lib/measure.js';
import { ensureToxiproxy, TOXIPROXY_VERSION, withLatency, type Latency } from './lib/latency.js';
import { reexecInOwnNetns } from './lib/netns.js';
import { measureFullNoop, type FullNoop } from './lib/full-noop.js';
import { nodeCpuMeter, type NodeCpuMeter } from './lib/node-cpu.js';
import { profileRunnerFleet, type Profile } from './lib/profile.js';
import { ensurePyinfra, PYINFRA_VERSION, runDeploy, writePyinfraInventory } from './lib/pyinfra.js';
import { renderPlot, renderResults } from './lib/results.js';
import type { BenchResult, NoopRun, RunSample, SizeResult, ToolName, ToolRun } from './lib/types.js';
import { REPO, runProvision } from './lib/runner-fleet.js';
import { DEFAULT_CONCURRENCY } from '../src/cli.js';

const ALL_TOOL_NAMES: ToolName[] = [
  'runner-fleet',
  'runner-fleet-compiled',
  'pyinfra',
  'ansible-default',
  'ansible-tuned',
  'ansible-fastest',
  'ansible-mitogen',
];
/** What `npm run bench` measures: both entries, pyinfra, and Ansible at its defaults and its fastest. */
const DEFAULT_TOOLS: ToolName[] = [
  'runner-fleet',
  'runner-fleet-compiled',
  'pyinfra',
  'ansible-default',
  'ansible-fastest',
];
/** Set (to a JSON file) when the full no-op was measured before the re-exec into the benchmark's namespace. */
const FULL_NOOP_ENV = 'RUNNER_FLEET_BENCH_FULL_NOOP';

function selectTools(values: { tools?: string; ansible?: boolean; peers?: boolean }): ToolName[] {
  if (values.tools) {
    const wanted = values.tools.split(',').map((t) => t.trim());
    const unknown = wanted.filter((t) => !ALL_TOOL_NAMES.includes(t as ToolName));
    if (unknown.length > 0)
      throw new Error(`--tools: ${unknown.join(', ')} not among ${ALL_TOOL_NAMES.join(', ')}`);
    return ALL_TOOL_NAMES.filter((t) => wanted.includes(t));
  }
  const extra: ToolName[] = [
    ...(values.ansible ? (['ansible-tuned'] as const) : []),
    ...(values.peers ? (['ansible-mitogen'] as const) : []),
  ];
  return ALL_TOOL_NAMES.filter((t) => DEFAULT_TOOLS.includes(t) || extra.includes(t));
}

function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

function sample(m: Measured, ok: boolean, changed: number, error?: string): RunSample {
  return {
    wallMs: m.wallMs,
    ok,
    changed,
    maxRssKb: m.maxRssKb,
    cpuS: m.cpuS,
    load1: m.load1,
    treePeakPssKb: m.treePeakPssKb,
    treePeakRssKb: m.treePeakRssKb,
    ...(error ? { error } : {}),
  };
}

async function runTool(
  tool: ToolName,
  fleet: BenchFleet,
  concurrency: number,
  noops: number,
  ansible: { bin: string; variant: AnsibleVariant; workDir: string } | undefined,
  pyinfra?: { bin: string; workDir: string },
  nodeCpu?: NodeCpuMeter,
): Promise<ToolRun> {
  const registries = fleet.inventory.gitlab.registries;
  const once = async (): Promise<{ s: RunSample; self?: { connections: number; roundTrips: number } }> => {
    if (tool === 'runner-fleet' || tool === 'runner-fleet-compiled') {
      const r = await runProvision(fleet.info.inventory, concurrency, {
        compiled: tool === 'runner-fleet-compiled',
      });
      return { s: sample(r.measured, r.ok, r.changed, r.error), self: r.ssh };
    }
    if (tool === 'pyinfra') {
      if (!pyinfra) throw new Error('pyinfra is not set up');
      const inv = writePyinfraInventory(pyinfra.workDir, fleet.inventory.nodes, registries);
      // Every node at once: pyinfra's fastest setting, and what runner-fleet does at --concurrency >= node count.
      const r = await runDeploy(pyinfra.bin, inv, fleet.inventory.nodes.length, pyinfra.workDir);
      return {
        s: sample(
          r.measured,
          r.ok,
          r.changed,
          r.ok ? undefined : ansibleFailure(`${r.measured.stdout}\n${r.measured.stderr}`),
        ),
      };
    }
    if (!ansible) throw new Error('ansible is not set up');
    const inv = writeAnsibleInventory(ansible.workDir, fleet.inventory.nodes);
    const r = await runPlaybook(ansible.bin, inv, registries, ansible.variant, ansible.workDir);
    return {
      s: sample(
        r.measured,
        r.ok,
        r.changed,
        r.ok ? undefined : ansibleFailure(`${r.measured.stdout}\n${r.measured.stderr}`),
      ),
    };
  };
  const first = await once();
  if (!first.s.ok) log(`${tool}: first run FAILED: ${first.s.error}`);
  const reruns: NoopRun[] = [];
  for (let i = 0; i < noops; i++) {
    const mark = sshdLogMark(fleet.info);
    const cpu0 = nodeCpu?.usedMs();
    const noop = await once();
    // The sessions' last processes exit (and are reaped) just after the tool does.
    if (nodeCpu) await new Promise((res) => setTimeout(res, 200));
    const nodeCpuMs =
      nodeCpu && cpu0 !== undefined
        ? nodeCpu.usedMs() - cpu0 - (nodeCpu.idlePerS * (noop.s.wallMs + 200)) / 1000
        : undefined;
    if (!noop.s.ok) log(`${tool}: no-op rerun FAILED: ${noop.s.error}`);
    if (noop.s.changed !== 0)
      log(`${tool}: the no-op rerun changed ${noop.s.changed} thing(s); it should change nothing`);
    reruns.push({
      sample: noop.s,
      ssh: Object.fromEntries(mark.count()),
      ...(nodeCpuMs !== undefined ? { nodeCpuMs } : {}),
      ...(noop.self ? { selfReported: noop.self } : {}),
    });
  }
  return { first: first.s, noops: reruns };
}

/** The `fatal:` lines of a playbook run, else its last lines. */
function ansibleFailure(text: string): string {
  const fatal = text.split('\n').filter((l) => /^fatal: |^ERROR! |^\[ERROR\]/.test(l));
  return (fatal.length > 0 ? fatal : text.trim().split('\n').slice(-12)).join('\n').slice(0, 2000);
}

/** `run`'s output (stdout and stderr: `ssh -V` writes to stderr) through `pattern`; 'unknown' if it fails. */
function versionOf(run: () => ProcessOutput, pattern: RegExp): string {
  try {
    const out = run().stdall;
    return pattern.exec(out)?.[1] ?? out.trim();
  } catch {
    return 'unknown';
  }
}

function machine(ansibleCore?: string): BenchResult['machine'] {
  const sync = sh({ sync: true });
  return {
    nproc: Number(sync`nproc`.stdout.trim()),
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: sync`uname -r`.stdout.trim(),
    cpu: cpus()[0]?.model ?? 'unknown',
    node: process.version,
    openssh: versionOf(() => sync`ssh -V`, /(OpenSSH_[^\s,]+)/),
    docker: versionOf(() => sync`dockerd --version`, /version ([^\s,]+)/),
    ...(ansibleCore ? { ansibleCore } : {}),
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sizes: { type: 'string', default: '3,10,30' },
      rtt: { type: 'string', default: '0,20,50' },
      'rtt-sizes': { type: 'string', default: '30' },
      'rtt-tools': { type: 'string', default: 'runner-fleet-compiled,pyinfra,ansible-fastest' },
      tools: { type: 'string' },
      runs: { type: 'string', default: '3' },
      'ansible-runs': { type: 'string', default: '1' },
      noops: { type: 'string', default: '3' },
      'ansible-noops': { type: 'string', default: '1' },
      // The tool's own default, so that the tables measure what a user runs.
      concurrency: { type: 'string', default: String(DEFAULT_CONCURRENCY) },
      'full-noop-runs': { type: 'string', default: '5' },
      ansible: { type: 'boolean', default: false },
      peers: { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      write: { type: 'boolean', default: false },
      json: { type: 'string' },
      keep: { type: 'boolean', default: false },
      down: { type: 'boolean', default: false },
      'from-json': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout
      .write(`Usage: npx tsx bench/converge.ts [--sizes 3,10,30] [--rtt 0,20,50] [--rtt-sizes 30] [--tools …] [--runs 3] [--noops 3] [--ansible [--ansible-runs 1] [--ansible-noops 1]] [--concurrency N] [--profile] [--write] [--json FILE] [--keep]
  --runs N    fresh fleets (first runs) per size for runner-fleet
  --noops K   no-op reruns after each first run (on the same fleet)
  Tools by default: runner-fleet (npx tsx), runner-fleet-compiled (node dist/provision.js), pyinfra
              (bench/pyinfra/deploy.py, --parallel = node count), ansible-default (the playbook in bench/ansible/ at
              Ansible's defaults) and ansible-fastest (forks = node count, strategy free, pipelining, no facts); the
              peers each on fresh fleets, --ansible-runs M of them per size with --ansible-noops reruns each
  --ansible   also ansible-tuned (forks = --concurrency, pipelining, ControlPersist)
  --peers     also ansible-mitogen
  --full-noop-runs N  the user's whole no-op (host phase, GitLab, cluster) on the slot's full 3-node test fleet,
              N reruns each through the compiled entry and npx tsx (default 5; 0: skip)
  --rtt 0,5,20  round-trip times in ms between the tools and the nodes (toxiproxy per node, bench/lib/latency.ts);
              the --rtt-sizes are measured at every RTT above 0 (default 0,20,50; 0: loopback)
  --rtt-sizes 3,30  the sizes measured at the RTTs above 0 (default 30)
  --rtt-tools a,b  the tools measured at the RTTs above 0 (default: runner-fleet-compiled,pyinfra,ansible-fastest)
  --tools a,b exactly these tools (any of ${ALL_TOOL_NAMES.join(', ')})
  --profile   break runner-fleet's no-op time down (start-up, connect, gather) on the largest size
  --write     write bench/RESULTS.md (keeping its hand-written analysis) and bench/RESULTS.json
  --keep      leave the last fleet up (state root /var/tmp/runner-fleet-bench, network namespace rf-bench)
  --down      only tear down a kept fleet
  --from-json FILE  render a run saved with --json (with --write: into bench/RESULTS.md) instead of running;
              a,b,c merges runs (a later file's runs of a tool at a size replace an earlier one's)
`);
    return;
  }
  if (values['from-json']) {
    // Re-render a saved run (e.g. after changing the tables), keeping the hand-written analysis. Several files
    // (comma-separated) are one result: the same size and RTT from two files put their tools' runs together.
    const saved = mergeResults(
      values['from-json'].split(',').map((f) => JSON.parse(readFileSync(f.trim(), 'utf8')) as BenchResult),
    );
    const markdown = renderResults(saved);
    process.stdout.write(`${markdown}\n`);
    if (values.write) {
      writeResults(join(REPO, 'bench', 'RESULTS.md'), markdown);
      writeFileSync(join(REPO, 'bench', 'noop.svg'), renderPlot(saved));
      // The raw samples behind the tables, as a measured run writes them.
      writeFileSync(join(REPO, 'bench', 'RESULTS.json'), `${JSON.stringify(saved, null, 2)}\n`);
    }
    return;
  }
  const sizes = values.sizes.split(',').map((s) => Number(s.trim()));
  const rtts = values.rtt.split(',').map((s) => Number(s.trim()));
  if (rtts.some((x) => !Number.isFinite(x) || x < 0 || x > 500))
    throw new Error('--rtt: milliseconds from 0 to 500, comma-separated');
  const rttSizes = values['rtt-sizes'].split(',').map((x) => Number(x.trim()));
  const rttTools = values['rtt-tools'].split(',').map((x) => x.trim());
  const runs = Number(values.runs);
  const ansibleRuns = Number(values['ansible-runs']);
  const noops = Number(values.noops);
  const ansibleNoops = Number(values['ansible-noops']);
  const concurrency = Number(values.concurrency);
  const fullNoopRuns = Number(values['full-noop-runs']);
  const positive = (x: number) => Number.isInteger(x) && x >= 1;
  if (
    [...sizes, ...rttSizes].some((n) => !Number.isInteger(n) || n < 1 || n > 200) ||
    ![runs, ansibleRuns, noops, ansibleNoops, concurrency].every(positive) ||
    !(Number.isInteger(fullNoopRuns) && fullNoopRuns >= 0)
  ) {
    throw new Error(
      '--sizes, --rtt-sizes: integers 1..200; --runs, --ansible-runs, --noops, --ansible-noops, --concurrency: positive integers',
    );
  }
  if (process.getuid?.() !== 0) throw new Error('the test fleet needs root');
  const tools = selectTools(values);
  const needsAnsible = tools.some((t) => t.startsWith('ansible-'));
  const needsPyinfra = tools.includes('pyinfra');
  if (tools.includes('runner-fleet-compiled') && !existsSync(join(REPO, 'dist', 'provision.js')))
    throw new Error('runner-fleet-compiled runs the compiled entry: npm run build first');
  // PyPI is reachable only outside the benchmark's network namespace: install first.
  if (needsAnsible) await ensureAnsible(log);
  if (needsPyinfra) ensurePyinfra(log);
  // Built outside too (the Go module proxy is not reachable from the benchmark's network namespace).
  if (rtts.some((x) => x > 0)) await ensureToxiproxy(log);
  // The user's whole no-op (GitLab and the cluster too) needs the slot's full test fleet, outside the namespace.
  if (fullNoopRuns > 0 && !values.down && !process.env[FULL_NOOP_ENV]) {
    const full = await measureFullNoop(fullNoopRuns, concurrency, log);
    const path = join(tmpdir(), `rf-bench-full-noop-${process.pid}.json`);
    writeFileSync(path, JSON.stringify(full));
    process.env[FULL_NOOP_ENV] = path;
  }
  const outside = await reexecInOwnNetns(log, { keep: Boolean(values.keep) && !values.down });
  if (outside !== undefined) {
    process.exitCode = outside;
    return;
  }
  if (values.down) {
    await teardown(log);
    return;
  }
  const t0 = performance.now();

  const ansibleBin = needsAnsible ? await ensureAnsible(log) : undefined;
  const ansibleVariants = variants(concurrency);
  const pyinfraBin = needsPyinfra ? ensurePyinfra(log) : undefined;
  const workDir = join(tmpdir(), `rf-bench-ansible-${process.pid}`);
  mkdirSync(workDir, { recursive: true });

  // What the run is and where it ran: the same for the partial saves and the final result, so asked for once.
  const machineInfo: BenchResult['machine'] = {
    ...machine(needsAnsible ? ANSIBLE_CORE_VERSION : undefined),
    ...(needsPyinfra ? { pyinfra: PYINFRA_VERSION } : {}),
    ...(rtts.some((x) => x > 0) ? { toxiproxy: TOXIPROXY_VERSION } : {}),
  };
  const settings: BenchResult['settings'] = {
    command: `npx tsx bench/converge.ts ${process.argv.slice(2).join(' ')}`,
    sizes,
    rtts,
    runs,
    ansibleRuns,
    noops,
    ansibleNoops,
    concurrency,
    ansible: needsAnsible,
    peers: needsPyinfra,
    tools,
    variants: ansibleVariants
      .filter((v) => tools.includes(v.name as ToolName))
      .map(({ name, describe }) => ({ name, describe })),
  };
  const results: SizeResult[] = [];
  // Saved after every tool's run, so a long run cut short keeps what it measured (render it with --from-json).
  const savePartial = () => {
    if (values.json)
      writeFileSync(
        values.json,
        `${JSON.stringify({ date: new Date().toISOString(), machine: machineInfo, settings, sizes: results.filter((x) => Object.keys(x.runs).length > 0), ...(process.env[FULL_NOOP_ENV] ? { fullNoop: JSON.parse(readFileSync(process.env[FULL_NOOP_ENV], 'utf8')) as FullNoop } : {}), totalMs: performance.now() - t0, partial: true }, null, 2)}\n`,
      );
  };
  try {
    for (const [rtt, n] of rtts.flatMap((r) => (r > 0 ? rttSizes : sizes).map((x) => [r, x] as const))) {
      const size: SizeResult = { nodes: n, ...(rtt > 0 ? { rttMs: rtt } : {}), runs: {}, upMs: [] };
      results.push(size);
      const at = rtt > 0 ? `, ${rtt} ms RTT` : '';
      const peerRuns = needsAnsible || needsPyinfra ? ansibleRuns : 0;
      for (let r = 0; r < Math.max(runs, peerRuns); r++) {
        for (const tool of tools) {
          if (r >= (tool.startsWith('runner-fleet') ? runs : peerRuns)) continue;
          if (rtt > 0 && !rttTools.includes(tool)) continue;
          log(`${n} nodes${at}, run ${r + 1}: ${tool}: fresh fleet`);
          const fresh = await freshFleet(n, () => {});
          size.upMs.push(fresh.upMs);
          const latency: Latency | undefined =
            rtt > 0 ? await withLatency(fresh, rtt, fresh.info.stateDir) : undefined;
          const fleet = latency?.fleet ?? fresh;
          const nodeCpu = await nodeCpuMeter(fresh.info);
          const variant = variants(concurrency, n).find((v) => v.name === tool);
          const run = await runTool(
            tool,
            fleet,
            concurrency,
            tool.startsWith('runner-fleet') ? noops : ansibleNoops,
            variant && ansibleBin ? { bin: ansibleBin, variant, workDir } : undefined,
            pyinfraBin ? { bin: pyinfraBin, workDir } : undefined,
            nodeCpu,
          ).finally(async () => {
            nodeCpu?.close();
            await latency?.stop();
          });
          (size.runs[tool] ??= []).push(run);
          const noopText = run.noops
            .map((x) => `${(x.sample.wallMs / 1000).toFixed(2)} s (changed ${x.sample.changed})`)
            .join(', ');
          log(
            `  first ${(run.first.wallMs / 1000).toFixed(2)} s (changed ${run.first.changed}); no-op ${noopText}; no-op ssh per node ${perNode(run.noops[0].ssh)}`,
          );
          savePartial();
          if (tool === 'runner-fleet' && r === 0 && !size.fleetMemory) {
            const st = fleetStatus();
            size.fleetMemory = {
              pssKb: st.total.pssKb,
              rssKb: st.total.rssKb,
              processes: st.nodes.reduce((a, x) => a + x.processes, 0),
            };
          }
        }
      }
      printSize(size);
    }
    let profile: Profile | undefined;
    if (values.profile) {
      const n = Math.max(...sizes);
      log(`profiling runner-fleet's no-op on ${n} nodes`);
      const fleet = await freshFleet(n, () => {});
      profile = await profileRunnerFleet(fleet, concurrency, log);
    }
    const result: BenchResult = {
      date: new Date().toISOString(),
      machine: machineInfo,
      settings,
      sizes: results,
      ...(profile ? { profile } : {}),
      ...(process.env[FULL_NOOP_ENV]
        ? { fullNoop: JSON.parse(readFileSync(process.env[FULL_NOOP_ENV], 'utf8')) as FullNoop }
        : {}),
      totalMs: performance.now() - t0,
    };
    const markdown = renderResults(result);
    process.stdout.write(`${markdown}\n`);
    if (values.json) writeFileSync(values.json, `${JSON.stringify(result, null, 2)}\n`);
    if (values.write) {
      writeResults(join(REPO, 'bench', 'RESULTS.md'), markdown);
      writeFileSync(join(REPO, 'bench', 'noop.svg'), renderPlot(result));
      // The raw samples, so the tables can be re-rendered (--from-json) and checked.
      writeFileSync(join(REPO, 'bench', 'RESULTS.json'), `${JSON.stringify(result, null, 2)}\n`);
    }
  } finally {
    if (!values.keep) await teardown(() => {}).catch((err: Error) => log(`teardown: ${err.message}`));
    rmSync(workDir, { recursive: true, force: true });
  }
}

/** Runs saved separately (--json) as one result: the first file's machine, every file's sizes and runs, the commands joined. */
function mergeResults(results: BenchResult[]): BenchResult {
  const [first, ...rest] = results;
  if (rest.length === 0) return first;
  const sizes: SizeResult[] = [];
  for (const r of results)
    for (const x of r.sizes) {
      const same = sizes.find((y) => y.nodes === x.nodes && (y.rttMs ?? 0) === (x.rttMs ?? 0));
      if (!same) {
        sizes.push(structuredClone(x));
        continue;
      }
      // A later file's runs of a tool at this size replace an earlier file's: a partial rerun updates the tables.
      for (const [tool, runs] of Object.entries(x.runs) as [ToolName, ToolRun[]][]) same.runs[tool] = runs;
      same.upMs = x.upMs;
      same.fleetMemory = x.fleetMemory ?? same.fleetMemory;
    }
  // The whole no-op, like a tool's runs, from the last file that measured it.
  const fullNoop = [...results].reverse().find((r) => r.fullNoop)?.fullNoop;
  return {
    ...first,
    machine: Object.assign({}, ...results.map((r) => r.machine)),
    settings: {
      ...first.settings,
      command: results.map((r) => r.settings.command).join('` and `'),
      sizes: [...new Set(results.flatMap((r) => r.settings.sizes))],
      rtts: [...new Set(results.flatMap((r) => r.settings.rtts ?? [0]))],
      variants: results
        .flatMap((r) => r.settings.variants)
        .filter((v, i, all) => all.findIndex((w) => w.name === v.name) === i),
    },
    sizes,
    ...(fullNoop ? { fullNoop } : {}),
    totalMs: results.reduce((a, r) => a + r.totalMs, 0),
  };
}

/** Everything below this line in RESULTS.md is written by hand and survives a rewrite. */
const KEPT = '<!-- Below: analysis written by hand; bench/converge.ts --write keeps it. -->';

function writeResults(path: string, markdown: string): void {
  let kept = `${KEPT}\n`;
  try {
    const old = readFileSync(path, 'utf8');
    const at = old.indexOf(KEPT);
    if (at >= 0) kept = old.slice(at);
  } catch {
    // first write
  }
  writeFileSync(path, `${markdown}\n${kept}`);
}

function perNode(counts: Record<string, SshCounts>): string {
  const c = Object.values(counts);
  const conn = c.map((x) => x.connections);
  const ses = c.map((x) => x.sessions);
  return `${median(conn)} connection(s), ${median(ses)} session(s) (max ${Math.max(...conn)}/${Math.max(...ses)})`;
}

function printSize(size: SizeResult): void {
  for (const [tool, runs] of Object.entries(size.runs)) {
    log(
      `${size.nodes} nodes ${tool}: median first ${(median(runs.map((r) => r.first.wallMs)) / 1000).toFixed(2)} s, no-op ${(median(runs.flatMap((r) => r.noops.map((x) => x.sample.wallMs))) / 1000).toFixed(2)} s`,
    );
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
