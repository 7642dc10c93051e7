// Rebuilds a BenchResult (wall times, changes, sshd counts) from bench/converge.ts's stderr log, for a run cut short
// before it wrote its JSON. CPU, memory and load are not in the log: they come out as NaN.
//   npx tsx bench/from-log.ts LOG OUT-PREFIX [COMMAND]   → OUT-PREFIX.json, .md (tables; NaN where unknown), .svg
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { BenchResult, NoopRun, RunSample, SizeResult, ToolName } from './lib/types.js';
import { renderPlot, renderResults } from './lib/results.js';

const USAGE = 'usage: npx tsx bench/from-log.ts LOG OUT-PREFIX [COMMAND]\n';
const { values, positionals } = parseArgs({
  options: { help: { type: 'boolean', short: 'h' } },
  allowPositionals: true,
  strict: true,
});
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
if (positionals.length < 2 || positionals.length > 3) {
  process.stderr.write(USAGE);
  process.exit(2);
}
const [logPath, out, command] = positionals;
const lines = readFileSync(logPath, 'utf8').split('\n');
const sizes: SizeResult[] = [];
const sample = (wallS: number, changed: number): RunSample => ({
  wallMs: wallS * 1000,
  ok: true,
  changed,
  maxRssKb: NaN,
  cpuS: NaN,
  load1: NaN,
  treePeakPssKb: NaN,
  treePeakRssKb: NaN,
});
for (let i = 0; i < lines.length; i++) {
  const head = /^\[bench\] (\d+) nodes, run \d+: ([\w-]+): fresh fleet$/.exec(lines[i]);
  const body =
    /^\[bench\] +first ([\d.]+) s \(changed (\d+)\); no-op (.*); no-op ssh per node (\d+) connection\(s\), (\d+) session\(s\)/.exec(
      lines[i + 1] ?? '',
    );
  if (!head || !body) continue;
  const n = Number(head[1]);
  let size = sizes.find((x) => x.nodes === n);
  if (!size) sizes.push((size = { nodes: n, runs: {}, upMs: [] }));
  // per-node median counts, the only ones in the log, given to every node
  const ssh = Object.fromEntries(
    Array.from({ length: n }, (_, k) => [
      `pi${k + 1}`,
      { connections: Number(body[4]), sessions: Number(body[5]) },
    ]),
  );
  const noops: NoopRun[] = [...body[3].matchAll(/([\d.]+) s \(changed (\d+)\)/g)].map((m) => ({
    sample: sample(Number(m[1]), Number(m[2])),
    ssh,
  }));
  (size.runs[head[2] as ToolName] ??= []).push({ first: sample(Number(body[1]), Number(body[2])), noops });
}
const result = {
  date: new Date().toISOString(),
  machine: {
    nproc: 2,
    memoryGiB: 23.5,
    kernel: '6.18.44-fc-v669',
    cpu: 'AMD EPYC',
    node: process.version,
    openssh: 'OpenSSH_9.2p1',
    docker: '20.10.24+dfsg1',
    ansibleCore: '2.19.14',
    pyinfra: '3.10.0',
  },
  settings: {
    command: command ?? '',
    sizes: sizes.map((x) => x.nodes),
    runs: 1,
    ansibleRuns: 1,
    noops: 3,
    ansibleNoops: 2,
    concurrency: 10,
    ansible: false,
    peers: true,
    variants: [
      { name: 'ansible-mitogen', describe: 'ansible-fastest with mitogen (strategy mitogen_free)' },
      {
        name: 'ansible-fastest',
        describe: 'forks = node count, strategy free, pipelining on, ControlPersist 60s, fact gathering off',
      },
    ],
  },
  sizes,
  totalMs: NaN,
} satisfies BenchResult;
writeFileSync(`${out}.json`, `${JSON.stringify(result, null, 2)}\n`);
writeFileSync(`${out}.md`, renderResults(result));
writeFileSync(`${out}.svg`, renderPlot(result));
