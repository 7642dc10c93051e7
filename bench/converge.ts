// Benchmark: runner-fleet's first converge and no-op rerun on the test fleet, optionally against Ansible.
//
//   npm run bench                                   3 and 10 nodes, runner-fleet only: 3 fresh fleets, 3 no-op reruns each
//   npx tsx bench/converge.ts --sizes 3,10,30 --runs 3 --ansible --profile --write
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
import { profileRunnerFleet, type Profile } from './lib/profile.js';
import { ensurePyinfra, PYINFRA_VERSION, runDeploy, writePyinfraInventory } from './lib/pyinfra.js';
import { renderPlot, renderResults } from './lib/results.js';
import type { BenchResult, NoopRun, RunSample, SizeResult, ToolName, ToolRun } from './lib/types.js';
import { REPO, runProvision } from './lib/runner-fleet.js';

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
    const noop = await once();
    if (!noop.s.ok) log(`${tool}: no-op rerun FAILED: ${noop.s.error}`);
    if (noop.s.changed !== 0)
      log(`${tool}: the no-op rerun changed ${noop.s.changed} thing(s); it should change nothing`);
    reruns.push({
      sample: noop.s,
      ssh: Object.fromEntries(mark.count()),
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
      sizes: { type: 'string', default: '3,10' },
      rtt: { type: 'string', default: '0' },
      'rtt-sizes': { type: 'string' },
      tools: { type: 'string' },
      runs: { type: 'string', default: '3' },
      'ansible-runs': { type: 'string', default: '1' },
      noops: { type: 'string', default: '3' },
      'ansible-noops': { type: 'string', default: '1' },
      concurrency: { type: 'string', default: '10' },
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
      .write(`Usage: npx tsx bench/converge.ts [--sizes 3,10] [--rtt 0,5] [--tools …] [--runs 3] [--noops 3] [--ansible [--ansible-runs 1] [--ansible-noops 1]] [--concurrency 10] [--profile] [--write] [--json FILE] [--keep]
  --runs N    fresh fleets (first runs) per size for runner-fleet
  --noops K   no-op reruns after each first run (on the same fleet)
  --ansible   also run the Ansible playbook in bench/ansible/ (default settings, and tuned), each on fresh fleets;
              --ansible-runs M of them per size, each with --ansible-noops reruns (Ansible at 30 nodes
              takes 2-4 minutes per run on 2 cores)
  --peers     also run pyinfra (bench/pyinfra/deploy.py, --parallel = node count) and ansible-fastest (forks = node
              count, strategy free, pipelining, no facts), each on fresh fleets, --ansible-runs/--ansible-noops as Ansible
  --rtt 0,5,20  round-trip times in ms between the tools and the nodes (toxiproxy per node, bench/lib/latency.ts);
              every size is measured at every RTT (default 0: loopback)
  --rtt-sizes 3,30  the sizes measured at the RTTs above 0 (default: --sizes)
  --tools a,b only these of the selected tools (e.g. runner-fleet,runner-fleet-compiled,pyinfra for large fleets)
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
  const rttSizes = values['rtt-sizes'] ? values['rtt-sizes'].split(',').map((x) => Number(x.trim())) : sizes;
  const runs = Number(values.runs);
  const ansibleRuns = Number(values['ansible-runs']);
  const noops = Number(values.noops);
  const ansibleNoops = Number(values['ansible-noops']);
  const concurrency = Number(values.concurrency);
  const positive = (x: number) => Number.isInteger(x) && x >= 1;
  if (
    [...sizes, ...rttSizes].some((n) => !Number.isInteger(n) || n < 1 || n > 200) ||
    ![runs, ansibleRuns, noops, ansibleNoops, concurrency].every(positive)
  ) {
    throw new Error(
      '--sizes, --rtt-sizes: integers 1..200; --runs, --ansible-runs, --noops, --ansible-noops, --concurrency: positive integers',
    );
  }
  if (process.getuid?.() !== 0) throw new Error('the test fleet needs root');
  // PyPI is reachable only outside the benchmark's network namespace: install first.
  if (values.ansible || values.peers) await ensureAnsible(log);
  if (values.peers) ensurePyinfra(log);
  // Built outside too (the Go module proxy is not reachable from the benchmark's network namespace).
  if (rtts.some((x) => x > 0)) await ensureToxiproxy(log);
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

  const tools: ToolName[] = ['runner-fleet'];
  let ansibleBin: string | undefined;
  const ansibleVariants = variants(concurrency);
  let pyinfraBin: string | undefined;
  if (values.peers) {
    if (!existsSync(join(REPO, 'dist', 'provision.js')))
      throw new Error('--peers also runs the compiled entry: npm run build first');
    pyinfraBin = ensurePyinfra(log);
    tools.push('runner-fleet-compiled', 'pyinfra');
  }
  if (values.ansible || values.peers) ansibleBin = await ensureAnsible(log);
  if (values.ansible) tools.push('ansible-default', 'ansible-tuned');
  if (values.peers) tools.push('ansible-fastest', 'ansible-mitogen');
  if (values.tools) {
    const wanted = values.tools.split(',').map((t) => t.trim());
    const unknown = wanted.filter((t) => !tools.includes(t as ToolName));
    if (unknown.length > 0)
      throw new Error(`--tools: ${unknown.join(', ')} not among the selected tools (${tools.join(', ')})`);
    tools.splice(0, tools.length, ...tools.filter((t) => wanted.includes(t)));
  }
  const workDir = join(tmpdir(), `rf-bench-ansible-${process.pid}`);
  mkdirSync(workDir, { recursive: true });

  // What the run is and where it ran: the same for the partial saves and the final result, so asked for once.
  const machineInfo: BenchResult['machine'] = {
    ...machine(values.ansible || values.peers ? ANSIBLE_CORE_VERSION : undefined),
    ...(values.peers ? { pyinfra: PYINFRA_VERSION } : {}),
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
    ansible: Boolean(values.ansible),
    peers: Boolean(values.peers),
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
        `${JSON.stringify({ date: new Date().toISOString(), machine: machineInfo, settings, sizes: results.filter((x) => Object.keys(x.runs).length > 0), totalMs: performance.now() - t0, partial: true }, null, 2)}\n`,
      );
  };
  try {
    for (const [rtt, n] of rtts.flatMap((r) => (r > 0 ? rttSizes : sizes).map((x) => [r, x] as const))) {
      const size: SizeResult = { nodes: n, ...(rtt > 0 ? { rttMs: rtt } : {}), runs: {}, upMs: [] };
      results.push(size);
      const at = rtt > 0 ? `, ${rtt} ms RTT` : '';
      const peerRuns = values.ansible || values.peers ? ansibleRuns : 0;
      for (let r = 0; r < Math.max(runs, peerRuns); r++) {
        for (const tool of tools) {
          if (r >= (tool.startsWith('runner-fleet') ? runs : peerRuns)) continue;
          log(`${n} nodes${at}, run ${r + 1}: ${tool}: fresh fleet`);
          const fresh = await freshFleet(n, () => {});
          size.upMs.push(fresh.upMs);
          const latency: Latency | undefined =
            rtt > 0 ? await withLatency(fresh, rtt, fresh.info.stateDir) : undefined;
          const fleet = latency?.fleet ?? fresh;
          const variant = variants(concurrency, n).find((v) => v.name === tool);
          const run = await runTool(
            tool,
            fleet,
            concurrency,
            tool.startsWith('runner-fleet') ? noops : ansibleNoops,
            variant && ansibleBin ? { bin: ansibleBin, variant, workDir } : undefined,
            pyinfraBin ? { bin: pyinfraBin, workDir } : undefined,
          ).finally(() => latency?.stop());
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
