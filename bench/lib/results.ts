// Renders a benchmark result as the Markdown of bench/RESULTS.md: tables, targets, profile, method.
import type { BenchResult, NoopRun, RunSample, SizeResult, ToolName, ToolRun } from './types.js';
import { median } from './measure.js';

const s = (ms: number) => (ms / 1000).toFixed(2);
const mib = (kb: number) => (kb / 1024).toFixed(0);

function range(xs: number[]): string {
  return `${s(median(xs))} (${s(Math.min(...xs))}–${s(Math.max(...xs))})`;
}

const noopsOf = (runs: ToolRun[]): NoopRun[] => runs.flatMap((r) => r.noops);

const rttOf = (size: SizeResult): number => size.rttMs ?? 0;
/** "30 nodes" on loopback, "30 nodes, 5 ms RTT" through the latency proxies. */
const label = (size: SizeResult): string =>
  `${size.nodes} nodes${rttOf(size) > 0 ? `, ${rttOf(size)} ms RTT` : ''}`;
const byRttThenNodes = (a: SizeResult, b: SizeResult) => rttOf(a) - rttOf(b) || a.nodes - b.nodes;

function perNode(runs: ToolRun[], key: 'connections' | 'sessions'): { mean: number; max: number } {
  // Every no-op rerun, every node: the mean per node and the worst node.
  const all = noopsOf(runs).flatMap((r) => Object.values(r.ssh).map((c) => c[key]));
  return { mean: all.reduce((a, b) => a + b, 0) / Math.max(1, all.length), max: Math.max(...all) };
}

function okText(samples: RunSample[]): string {
  const bad = samples.filter((x) => !x.ok).length;
  return bad === 0 ? '' : ` ⚠ ${bad} failed`;
}

function noopMedian(size: SizeResult, tool: ToolName): number | undefined {
  const runs = size.runs[tool];
  return runs ? median(noopsOf(runs).map((r) => r.sample.wallMs)) : undefined;
}

function sizeTable(size: SizeResult): string {
  const rf = noopMedian(size, 'runner-fleet');
  const rows = Object.entries(size.runs).map(([tool, runs]) => {
    const firsts = runs.map((r) => r.first.wallMs);
    const noopSamples = noopsOf(runs).map((r) => r.sample);
    const noops = noopSamples.map((x) => x.wallMs);
    const conn = perNode(runs, 'connections');
    const ses = perNode(runs, 'sessions');
    const ratio = rf !== undefined ? (median(noops) / rf).toFixed(1) : '–';
    const firstRatio = size.runs['runner-fleet']
      ? (median(firsts) / median(size.runs['runner-fleet'].map((r) => r.first.wallMs))).toFixed(1)
      : '–';
    const all = [...runs.map((r) => r.first), ...noopSamples];
    const changed = median(runs.map((r) => r.first.changed));
    const noopChanged = Math.max(...noopSamples.map((x) => x.changed));
    const cpu = median(noopSamples.map((x) => x.cpuS)).toFixed(2);
    return `| ${tool} | ${range(firsts)} [${firsts.length}]${okText(runs.map((r) => r.first))} | ${firstRatio}× | ${range(noops)} [${noops.length}]${okText(noopSamples)} | ${ratio}× | ${cpu} | ${conn.mean.toFixed(2)} (max ${conn.max}) | ${ses.mean.toFixed(2)} (max ${ses.max}) | ${changed} / ${noopChanged} | ${mib(Math.max(...all.map((x) => x.maxRssKb)))} | ${mib(Math.max(...all.map((x) => x.treePeakPssKb)))} |`;
  });
  const loads = Object.values(size.runs).flatMap((runs) => [
    ...runs.map((r) => r.first.load1),
    ...noopsOf(runs).map((x) => x.sample.load1),
  ]);
  return [
    `### ${label(size)}`,
    '',
    '| tool | first run, s: median (min–max) [n] | first ÷ rf | no-op rerun, s: median (min–max) [n] | no-op ÷ rf | no-op CPU s, tool side | no-op SSH connections per node | no-op sessions (round trips) per node | changes first / no-op | max RSS largest process, MiB | peak PSS whole tool tree, MiB |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
    '',
    `1-minute load average when each run started (other work on this machine): median ${median(loads).toFixed(2)}, max ${Math.max(...loads).toFixed(2)}.`,
    '',
    size.fleetMemory
      ? `Fleet after runner-fleet's first converge: ${mib(size.fleetMemory.pssKb)} MiB PSS (${mib(size.fleetMemory.rssKb)} MiB RSS summed) in ${size.fleetMemory.processes} processes (sshd, dockerd, containerd of every node). \`testbed up\` took ${range(size.upMs)} s.`
      : '',
    '',
  ].join('\n');
}

function selfReportedCheck(size: SizeResult): string {
  const runs = size.runs['runner-fleet'];
  if (!runs) return '';
  const reruns = noopsOf(runs);
  const disagree = reruns.filter((r) => {
    const log = Object.values(r.ssh).reduce(
      (a, c) => ({ connections: a.connections + c.connections, sessions: a.sessions + c.sessions }),
      { connections: 0, sessions: 0 },
    );
    return (
      !r.selfReported ||
      r.selfReported.connections !== log.connections ||
      r.selfReported.roundTrips !== log.sessions
    );
  });
  const sessions = reruns.map((r) => Object.values(r.ssh).reduce((a, c) => a + c.sessions, 0));
  return `- ${label(size)}: ${reruns.length - disagree.length} of ${reruns.length} no-op reruns agree (sshd logs ${Math.min(...sessions)}–${Math.max(...sessions)} sessions in all)`;
}

interface Target {
  name: string;
  value: string;
  pass: boolean | undefined;
  /** why this machine cannot decide the target: shown as context, never as missed */
  context?: string;
}

function targets(r: BenchResult): Target[] {
  // The size targets are on loopback; the latency ones below name their RTT.
  const sizes = r.sizes.filter((x) => rttOf(x) === 0).sort((a, b) => a.nodes - b.nodes);
  const out: Target[] = [];
  fullNoopTargets(r, out);
  cpuTargets(r, out);
  if (sizes.length === 0) return latencyTargets(r, out);
  const small = sizes[0];
  const large = sizes[sizes.length - 1];
  const rfLarge = noopMedian(large, 'runner-fleet');
  const ansibleBest = Math.min(...ANSIBLE_TOOLS.map((t) => noopMedian(large, t) ?? Infinity));
  out.push({
    name: `no-op rerun at ${large.nodes} nodes ≥ 10× faster than Ansible's best`,
    value:
      Number.isFinite(ansibleBest) && rfLarge
        ? `Ansible best ${s(ansibleBest)} s ÷ runner-fleet ${s(rfLarge)} s = ${(ansibleBest / rfLarge).toFixed(1)}×`
        : 'not measured (ansible-default and ansible-fastest were not in --tools)',
    pass: Number.isFinite(ansibleBest) && rfLarge ? ansibleBest / rfLarge >= 10 : undefined,
  });
  // Both entries run the same code: either one's no-op reruns count.
  const rfRuns = sizes.flatMap((x) => [
    ...(x.runs['runner-fleet'] ?? []),
    ...(x.runs['runner-fleet-compiled'] ?? []),
  ]);
  const perNode = noopsOf(rfRuns).flatMap((x) => Object.values(x.ssh));
  const maxConn = Math.max(...perNode.map((c) => c.connections));
  const maxSes = Math.max(...perNode.map((c) => c.sessions));
  out.push({
    name: '≤ 1 connection and ≤ 2 round trips per node on a no-op rerun',
    value:
      perNode.length > 0
        ? `worst node over all sizes and runs: ${maxConn} connection(s), ${maxSes} session(s)`
        : 'not measured (no runner-fleet no-op rerun)',
    pass: perNode.length > 0 ? maxConn <= 1 && maxSes <= 2 : undefined,
  });
  const rfSmall = noopMedian(small, 'runner-fleet');
  // Targets: 30 nodes at most 3× the smallest; 200 nodes at most 4×.
  const scaling = [
    ...sizes
      .filter((x) => x !== small && x.nodes <= 30)
      .slice(-1)
      .map((x) => ({ x, limit: 3 })),
    ...sizes
      .filter((x) => x.nodes > 30)
      .slice(-1)
      .map((x) => ({ x, limit: 4 })),
  ];
  if (scaling.length === 0)
    out.push({
      name: 'no-op at the largest size ≤ 3× the smallest',
      value: 'needs two sizes',
      pass: undefined,
    });
  for (const { x, limit } of scaling) {
    const big = noopMedian(x, 'runner-fleet');
    const undecidable = x.nodes > UNDECIDABLE_ABOVE;
    out.push({
      name: `no-op at ${x.nodes} nodes ≤ ${limit}× no-op at ${small.nodes} nodes`,
      value:
        rfSmall && big ? `${s(big)} s ÷ ${s(rfSmall)} s = ${(big / rfSmall).toFixed(2)}×` : 'not measured',
      pass: rfSmall && big && !undecidable ? big / rfSmall <= limit : undefined,
      ...(undecidable
        ? {
            context: `${x.nodes} test nodes' sshd, sudo and dockerd share this machine's ${r.machine.nproc} cores with the tool (the nodes' side of every no-op, in the CPU per node table, runs on the same cores), so this measures the machine, not the tool; real Pis each bring their own CPU`,
          }
        : {}),
    });
  }
  // Target: faster than pyinfra at every size, through either entry.
  for (const rf of ['runner-fleet', 'runner-fleet-compiled'] as const) {
    const pairs = sizes
      .map((x) => ({ n: x.nodes, rf: noopMedian(x, rf), py: noopMedian(x, 'pyinfra') }))
      .filter((x) => x.rf !== undefined && x.py !== undefined);
    if (pairs.length === 0) continue;
    out.push({
      name: `${rf}: no-op rerun faster than pyinfra at every size`,
      value: pairs.map((x) => `${x.n}: pyinfra ÷ rf = ${(x.py! / x.rf!).toFixed(2)}×`).join('; '),
      pass: pairs.every((x) => x.rf! < x.py!),
    });
  }
  return latencyTargets(r, out);
}

/** Target: at least 3× faster than pyinfra at 30 nodes with 5 ms RTT; every other RTT measured is shown too. */
function latencyTargets(r: BenchResult, out: Target[]): Target[] {
  roundsTargets(r, out);
  for (const x of r.sizes.filter((z) => rttOf(z) > 0).sort(byRttThenNodes)) {
    const py = noopMedian(x, 'pyinfra');
    for (const rf of ['runner-fleet', 'runner-fleet-compiled'] as const) {
      const mine = noopMedian(x, rf);
      if (mine === undefined || py === undefined) continue;
      const goal = x.nodes === 30 && rttOf(x) === 5;
      out.push({
        name: `${rf}: no-op at ${label(x)}${goal ? ' ≥ 3×' : ''} faster than pyinfra`,
        value: `pyinfra ${s(py)} s ÷ ${s(mine)} s = ${(py / mine).toFixed(2)}×`,
        pass: goal ? py / mine >= 3 : py > mine,
      });
    }
  }
  return out;
}

/** Above this many test nodes on one shared machine, the scaling targets measure the machine (see targets()). */
const UNDECIDABLE_ABOVE = 30;

const ANSIBLE_TOOLS = ['ansible-default', 'ansible-tuned', 'ansible-fastest', 'ansible-mitogen'] as const;
const ALL_TOOLS: ToolName[] = ['runner-fleet', 'runner-fleet-compiled', 'pyinfra', ...ANSIBLE_TOOLS];

/** No-op medians per size and tool, and each as a multiple of runner-fleet's (npx tsx) and compiled entry's. */
function scalingTable(r: BenchResult): string {
  const sizes = [...r.sizes].sort(byRttThenNodes);
  const withRtt = sizes.some((x) => rttOf(x) > 0);
  const tools = ALL_TOOLS.filter((t) => sizes.some((x) => x.runs[t]));
  const cell = (x: SizeResult, t: ToolName) => {
    const v = noopMedian(x, t);
    if (v === undefined) return '–';
    const rf = noopMedian(x, 'runner-fleet');
    const rfc = noopMedian(x, 'runner-fleet-compiled');
    const ratios = [
      rf && t !== 'runner-fleet' ? `${(v / rf).toFixed(2)}× rf` : '',
      rfc && t !== 'runner-fleet-compiled' ? `${(v / rfc).toFixed(2)}× rf-compiled` : '',
    ].filter(Boolean);
    return `${s(v)}${ratios.length ? ` (${ratios.join(', ')})` : ''}`;
  };
  const first = (x: SizeResult) => (withRtt ? `${rttOf(x)} ms | ${x.nodes}` : `${x.nodes}`);
  return [
    `| ${withRtt ? 'RTT | ' : ''}nodes | ${tools.join(' | ')} |`,
    `| ${withRtt ? '--- | ' : ''}--- | ${tools.map(() => '---').join(' | ')} |`,
    ...sizes.map((x) => `| ${first(x)} | ${tools.map((t) => cell(x, t)).join(' | ')} |`),
  ].join('\n');
}

/**
 * Rounds of latency a tool paid: (no-op wall at an RTT − no-op wall on loopback at the same size) ÷ RTT. The floor
 * per node is an SSH handshake plus one command: a few rounds, paid once when every node runs at the same time.
 */
function rounds(
  r: BenchResult,
  x: SizeResult,
  tool: ToolName,
): { extraMs: number; rounds: number } | undefined {
  const base = r.sizes.find((z) => z.nodes === x.nodes && rttOf(z) === 0);
  const at = noopMedian(x, tool);
  const zero = base ? noopMedian(base, tool) : undefined;
  if (at === undefined || zero === undefined) return undefined;
  return { extraMs: at - zero, rounds: (at - zero) / rttOf(x) };
}

/**
 * Wall time decides nothing when the machine's run queue is several times its cores: the tool then waits for a
 * core, not for the network or its own work. Such targets show as context (CPU is reported beside them).
 */
function overloaded(r: BenchResult, loads: number[]): string | undefined {
  const load = median(loads);
  return load > 2 * r.machine.nproc
    ? `load ${load.toFixed(1)} on ${r.machine.nproc} cores when these runs started: wall time measured the run queue, not the tool; decide it on an idle machine`
    : undefined;
}

const noopLoads = (x: SizeResult, tool: ToolName): number[] =>
  noopsOf(x.runs[tool] ?? []).map((n) => n.sample.load1);

/** Target: runner-fleet ≤ 7 rounds at 50 ms, and pyinfra's extra time ≥ 3× runner-fleet's there. */
function roundsTargets(r: BenchResult, out: Target[]): void {
  for (const x of r.sizes.filter((z) => rttOf(z) === 50).sort(byRttThenNodes)) {
    const rf = rounds(r, x, 'runner-fleet-compiled');
    const py = rounds(r, x, 'pyinfra');
    if (rf)
      out.push({
        name: `runner-fleet-compiled: ≤ 7 rounds of latency at ${label(x)}`,
        value: `(${s(noopMedian(x, 'runner-fleet-compiled')!)} − ${s(noopMedian(x, 'runner-fleet-compiled')! - rf.extraMs)}) s ÷ 50 ms = ${rf.rounds.toFixed(1)} rounds`,
        ...decided(r, rf.rounds <= 7, [
          ...noopLoads(x, 'runner-fleet-compiled'),
          ...r.sizes
            .filter((z) => z.nodes === x.nodes && rttOf(z) === 0)
            .flatMap((z) => noopLoads(z, 'runner-fleet-compiled')),
        ]),
      });
    if (rf && py)
      out.push({
        name: `pyinfra's extra time at ${label(x)} ≥ 3× runner-fleet-compiled's`,
        value: `${s(py.extraMs)} s ÷ ${s(rf.extraMs)} s = ${(py.extraMs / rf.extraMs).toFixed(1)}×`,
        ...decided(r, rf.extraMs > 0 && py.extraMs >= 3 * rf.extraMs, [
          ...noopLoads(x, 'pyinfra'),
          ...noopLoads(x, 'runner-fleet-compiled'),
        ]),
      });
  }
}

function decided(r: BenchResult, pass: boolean, loads: number[]): Pick<Target, 'pass' | 'context'> {
  const context = overloaded(r, loads);
  return context ? { pass: undefined, context } : { pass };
}

function roundsTable(r: BenchResult): string {
  const sized = r.sizes.filter((x) => rttOf(x) > 0).sort(byRttThenNodes);
  if (sized.length === 0) return '';
  const tools = ALL_TOOLS.filter((t) => sized.some((x) => rounds(r, x, t)));
  const cell = (x: SizeResult, t: ToolName) => {
    const v = rounds(r, x, t);
    return v ? `${v.rounds.toFixed(1)} (+${s(v.extraMs)} s)` : '–';
  };
  return [
    '### Rounds of latency paid',
    '',
    '(no-op wall at the RTT − no-op wall on loopback, same size) ÷ RTT, medians; in brackets the extra time itself.',
    '',
    `| RTT | nodes | ${tools.join(' | ')} |`,
    `| --- | --- | ${tools.map(() => '---').join(' | ')} |`,
    ...sized.map((x) => `| ${rttOf(x)} ms | ${x.nodes} | ${tools.map((t) => cell(x, t)).join(' | ')} |`),
    '',
  ].join('\n');
}

/** CPU per node on a no-op rerun: the tool's own (its process tree) and the nodes' (cpuacct cgroup of every node). */
function cpuPerNodeTable(r: BenchResult): string {
  const sizes = r.sizes.filter((x) => rttOf(x) === 0).sort(byRttThenNodes);
  const tools = ALL_TOOLS.filter((t) => sizes.some((x) => x.runs[t]));
  if (tools.length === 0) return '';
  const cell = (x: SizeResult, t: ToolName) => {
    const runs = x.runs[t];
    if (!runs) return '–';
    const noops = noopsOf(runs);
    const tool = (median(noops.map((n) => n.sample.cpuS)) * 1000) / x.nodes;
    const node = noops.flatMap((n) => (n.nodeCpuMs === undefined ? [] : [n.nodeCpuMs]));
    const load = Math.max(...noops.map((n) => n.sample.load1));
    return `${tool.toFixed(1)} / ${node.length ? (median(node) / x.nodes).toFixed(1) : '–'} (load ≤ ${load.toFixed(1)})`;
  };
  const marginal = (t: ToolName) => {
    const pts = sizes.flatMap((x) =>
      x.runs[t] ? [{ n: x.nodes, cpu: median(noopsOf(x.runs[t]!).map((n) => n.sample.cpuS)) * 1000 }] : [],
    );
    if (pts.length < 2) return '–';
    const [a, b] = [pts[0], pts[pts.length - 1]];
    return ((b.cpu - a.cpu) / (b.n - a.n)).toFixed(1);
  };
  return [
    '### CPU per node on a no-op rerun',
    '',
    "ms of CPU per node: tool side (the tool's process tree, GNU time's %U + %S, ÷ nodes) / node side (every node's sshd, sudo, scripts, `docker info` and dockerd: one cpuacct cgroup holding all the nodes' processes, less their idle rate; the kernel's softirq network work is not in it), medians; load = the highest 1-minute load average when those runs started. Last row: the tool's marginal CPU per node, (CPU at the largest size − CPU at the smallest) ÷ (node difference), which leaves out the fixed start-up.",
    '',
    `| nodes | ${tools.join(' | ')} |`,
    `| --- | ${tools.map(() => '---').join(' | ')} |`,
    ...sizes.map((x) => `| ${x.nodes} | ${tools.map((t) => cell(x, t)).join(' | ')} |`),
    `| marginal, tool side | ${tools.map(marginal).join(' | ')} |`,
    '',
  ].join('\n');
}

/** What a user's rerun costs, GitLab and the cluster included. */
function fullNoopSection(r: BenchResult): string {
  const f = r.fullNoop;
  if (!f) return '';
  const row = (name: string, xs: { wallMs: number; cpuS: number; load1: number; ok: boolean }[]) => {
    const bad = xs.filter((x) => !x.ok).length;
    return `| ${name} | ${range(xs.map((x) => x.wallMs))} [${xs.length}]${bad ? ` ⚠ ${bad} failed` : ''} | ${median(xs.map((x) => x.cpuS)).toFixed(2)} | ${median(xs.map((x) => x.load1)).toFixed(2)} (max ${Math.max(...xs.map((x) => x.load1)).toFixed(2)}) |`;
  };
  const npxMs = median(f.npx.map((x) => x.wallMs)) - median(f.tsxBin.map((x) => x.wallMs));
  return `## The user's whole no-op: host phase, GitLab and the cluster (${f.nodes} nodes)

The peers above do only the host phase. A user's rerun also checks the runner records on GitLab and the cluster
(namespace, ServiceAccount, config Secret, DaemonSet, node labels): here on the full test fleet of \`testbed up\`
(GitLab stand-in, a real kube-apiserver and kubelets), converged once, then rerun alternately through both entries.

| command | no-op wall, s: median (min–max) [n] | CPU s, tool side (median) | 1-minute load when started: median (max) |
| --- | --- | --- | --- |
${row('`node dist/provision.js apply` (compiled)', f.compiled)}
${row('`npx tsx provision.ts apply`', f.tsx)}
${row('`npx --no-install tsx --version`', f.npx)}
${row('`node_modules/.bin/tsx --version`', f.tsxBin)}

\`npx\` itself costs ~${s(npxMs)} s before the tool starts (npm's exec: the two rows above, median ÷ median), so
\`npm run build\` once and then \`node dist/provision.js\` (the \`runner-fleet\` bin) start that much sooner, and skip
tsx's compile-on-load as well. Targets: compiled ≤ 0.6 s, npx tsx ≤ 1.5 s (npx included); see the targets table.
`;
}

function fullNoopTargets(r: BenchResult, out: Target[]): void {
  const f = r.fullNoop;
  if (!f) return;
  for (const [name, xs, limit] of [
    ['compiled', f.compiled, 600],
    ['npx tsx', f.tsx, 1500],
  ] as const) {
    const wall = median(xs.map((x) => x.wallMs));
    const load = median(xs.map((x) => x.load1));
    out.push({
      name: `the whole no-op at ${f.nodes} nodes (host, GitLab, cluster), ${name} ≤ ${s(limit)} s`,
      value: `${s(wall)} s wall, ${median(xs.map((x) => x.cpuS)).toFixed(2)} s CPU (load ${load.toFixed(1)})`,
      ...decided(
        r,
        wall <= limit,
        xs.map((x) => x.load1),
      ),
    });
  }
}

/** Target: the tool's CPU per node at 30 nodes, through the compiled entry. */
function cpuTargets(r: BenchResult, out: Target[]): void {
  const x = r.sizes.find((z) => z.nodes === 30 && rttOf(z) === 0);
  const runs = x?.runs['runner-fleet-compiled'];
  if (!x || !runs) return;
  const noops = noopsOf(runs);
  const perNode = (median(noops.map((n) => n.sample.cpuS)) * 1000) / x.nodes;
  out.push({
    name: 'runner-fleet-compiled: tool CPU ≤ 3 ms per node on the no-op at 30 nodes',
    value: `${perNode.toFixed(1)} ms per node (${median(noops.map((n) => n.sample.cpuS)).toFixed(2)} s ÷ 30; load ≤ ${Math.max(...noops.map((n) => n.sample.load1)).toFixed(1)})`,
    pass: perNode <= 3,
  });
}

const COLOURS: Record<ToolName, string> = {
  'runner-fleet': '#1f77b4',
  'runner-fleet-compiled': '#17becf',
  pyinfra: '#2ca02c',
  'ansible-default': '#d62728',
  'ansible-tuned': '#ff7f0e',
  'ansible-fastest': '#9467bd',
  'ansible-mitogen': '#8c564b',
};

/**
 * bench/noop.svg: no-op rerun (median) against node count, one line per tool, both axes logarithmic (node counts
 * and tools span two orders of magnitude). Plain SVG text: no plotting dependency.
 */
export function renderPlot(r: BenchResult): string {
  const W = 720;
  let H = 420;
  const L = 70;
  const R = 190;
  const T = 30;
  const B = 50;
  const sizes = [...r.sizes].sort(byRttThenNodes);
  const rtts = [...new Set(sizes.map(rttOf))];
  // One line per tool and RTT: solid on loopback, dashed (shorter dashes for longer RTTs) through the proxies.
  const series = rtts
    .flatMap((rtt, k) =>
      ALL_TOOLS.map((t) => ({
        t,
        rtt,
        dash: k === 0 && rtt === 0 ? '' : ['8 4', '4 3', '2 2', '1 2'][Math.min(3, rtt === 0 ? k - 1 : k)],
        pts: sizes
          .filter((x) => rttOf(x) === rtt)
          .flatMap((x) => (noopMedian(x, t) === undefined ? [] : [{ n: x.nodes, ms: noopMedian(x, t)! }])),
      })),
    )
    .filter((x) => x.pts.length > 0);
  // Room for the legend: one row per line.
  H = Math.max(H, T + 20 + series.length * 20);
  const all = series.flatMap((x) => x.pts);
  if (all.length === 0) return '';
  const nMin = Math.min(...all.map((p) => p.n));
  const nMax = Math.max(nMin * 2, ...all.map((p) => p.n));
  const yMin = 10 ** Math.floor(Math.log10(Math.min(...all.map((p) => p.ms / 1000))));
  const yMax = 10 ** Math.ceil(Math.log10(Math.max(...all.map((p) => p.ms / 1000))));
  const x = (n: number) =>
    L + ((Math.log(n) - Math.log(nMin)) / (Math.log(nMax) - Math.log(nMin))) * (W - L - R);
  const y = (sec: number) =>
    H - B - ((Math.log(sec) - Math.log(yMin)) / (Math.log(yMax) - Math.log(yMin))) * (H - T - B);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${L}" y="18" font-size="14">No-op rerun, median seconds, against node count (${r.date.slice(0, 10)}, log–log)</text>`,
  ];
  for (let d = yMin; d <= yMax * 1.0001; d *= 10) {
    for (const m of [1, 2, 5]) {
      const v = d * m;
      if (v > yMax * 1.0001) break;
      parts.push(
        `<line x1="${L}" x2="${W - R}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#ddd"/>`,
        `<text x="${L - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${v >= 1 ? v.toFixed(0) : v.toFixed(1)}</text>`,
      );
    }
  }
  for (const n of [...new Set(sizes.map((z) => z.nodes))]) {
    parts.push(
      `<line x1="${x(n).toFixed(1)}" x2="${x(n).toFixed(1)}" y1="${T}" y2="${H - B}" stroke="#eee"/>`,
      `<text x="${x(n).toFixed(1)}" y="${H - B + 16}" text-anchor="middle">${n}</text>`,
    );
  }
  parts.push(
    `<text x="${(L + W - R) / 2}" y="${H - 12}" text-anchor="middle">nodes</text>`,
    `<text x="16" y="${(T + H - B) / 2}" transform="rotate(-90 16 ${(T + H - B) / 2})" text-anchor="middle">seconds</text>`,
  );
  parts.push(
    `<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#888"/>`,
  );
  series.forEach((sr, i) => {
    const c = COLOURS[sr.t];
    const dash = sr.dash ? ` stroke-dasharray="${sr.dash}"` : '';
    parts.push(
      `<polyline fill="none" stroke="${c}" stroke-width="2"${dash} points="${sr.pts.map((p) => `${x(p.n).toFixed(1)},${y(p.ms / 1000).toFixed(1)}`).join(' ')}"/>`,
    );
    for (const p of sr.pts)
      parts.push(`<circle cx="${x(p.n).toFixed(1)}" cy="${y(p.ms / 1000).toFixed(1)}" r="3" fill="${c}"/>`);
    parts.push(
      `<line x1="${W - R + 15}" x2="${W - R + 35}" y1="${T + 10 + i * 20}" y2="${T + 10 + i * 20}" stroke="${c}" stroke-width="2"${dash}/>`,
      `<text x="${W - R + 40}" y="${T + 14 + i * 20}">${sr.t}${sr.rtt > 0 ? ` @${sr.rtt} ms` : ''}</text>`,
    );
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

function profileSection(r: BenchResult): string {
  const p = r.profile;
  if (!p) return '';
  const f = (x: number) => x.toFixed(0);
  return `## Where runner-fleet's no-op time goes (${p.nodes} nodes, --concurrency ${p.concurrency})

| part | ms |
| --- | --- |
| \`node -e 0\` | ${f(p.startup.node)} |
| \`tsx empty.ts\` (node_modules/.bin) | ${f(p.startup.tsxEmpty)} |
| \`npx tsx empty.ts\` | ${f(p.startup.npxTsxEmpty)} |
| \`tsx provision.ts --help\` (start-up + every import, no SSH) | ${f(p.startup.provisionHelpTsx)} |
| \`npx tsx provision.ts --help\` | ${f(p.startup.provisionHelpNpx)} |
${p.imports.steps.map((x) => `| fresh tsx process: import ${x.name} (RSS after: ${x.rssMiB.toFixed(0)} MiB) | ${f(x.ms)} |`).join('\n')}
| fresh tsx process: from process start to the first line of the script | ${f(p.imports.beforeMs)} |
| in process: connect, per node median (max) | ${f(p.inProcess.connect.median)} (${f(p.inProcess.connect.max)}) |
| in process: gather round trip, per node median (max) | ${f(p.inProcess.gather.median)} (${f(p.inProcess.gather.max)}) |
| in process: all ${p.nodes} nodes, connect + gather, ${p.concurrency} at a time | ${f(p.inProcess.totalMs)} |
| one node alone: \`sh -s\` with \`true\` | ${f(p.roundTrip.shTrue)} |
| one node alone: \`sudo -n sh -s\` with \`true\` | ${f(p.roundTrip.sudoTrue)} |
| one node alone: the gather script | ${f(p.roundTrip.gatherScript)} |
| one node alone: \`docker info\` only | ${f(p.roundTrip.dockerInfo)} |
| the whole no-op, \`npx tsx provision.ts apply\` (median of 3) | ${f(p.noopWallMs)} |
${(p.noDelay ?? []).map((x) => `| no-op on ${x.nodes} nodes: as is → with TCP_NODELAY on every socket (bench/lib/nodelay.mjs; medians of 5, alternating) | ${f(x.asIs)} → ${f(x.noDelay)} |`).join('\n')}
`;
}

export function renderResults(r: BenchResult): string {
  const m = r.machine;
  const t = targets(r);
  const mark = (x: Target) =>
    x.context ? `context: ${x.context}` : x.pass === undefined ? '–' : x.pass ? 'met' : '**missed**';
  return `# runner-fleet converge benchmark: results

Written by \`${r.settings.command}\` on ${r.date.slice(0, 10)} (${r.date}), in ${s(r.totalMs)} s.

Machine: ${m.nproc} cores (${m.cpu}), ${m.memoryGiB} GiB, Linux ${m.kernel}; Node ${m.node}; ${m.openssh}; dockerd ${m.docker}${m.ansibleCore ? `; ansible-core ${m.ansibleCore}` : ''}.
The fleet runs on the same machine as the tool: every node's sshd, sudo, \`docker info\` and (for Ansible) the remote Python share these ${m.nproc} cores.

## Targets

| target | measured | |
| --- | --- | --- |
${t.map((x) => `| ${x.name} | ${x.value} | ${mark(x)} |`).join('\n')}

## Results

runner-fleet: \`npx tsx provision.ts apply --inventory … --json --concurrency ${r.settings.concurrency} --quiet\`.
${r.settings.peers ? `runner-fleet-compiled: the same through \`node dist/provision.js apply …\` (\`npm run build\`).\npyinfra${m.pyinfra ? ` ${m.pyinfra}` : ''}: \`pyinfra -y --sudo --parallel <node count> inventory.py bench/pyinfra/deploy.py\` (the playbook's work; facts decide, so a no-op runs no operation).\n` : ''}${r.settings.variants.map((v) => `${v.name}: \`ansible-playbook bench/ansible/converge.yml\`, ${v.describe}.`).join('\n')}

### No-op rerun against node count

![no-op rerun against node count](noop.svg)

${scalingTable(r)}

${roundsTable(r)}
${cpuPerNodeTable(r)}
${r.sizes.map(sizeTable).join('\n')}
SSH counts cross-checked against runner-fleet's own \`--json\` \`ssh\` counters (no-op reruns, all nodes):
${r.sizes.map(selfReportedCheck).filter(Boolean).join('\n')}

${fullNoopSection(r)}
${profileSection(r)}
## Method

- **Fleet**: \`scripts/testbed\` through its API (\`up\`/\`down\`/\`status\`), state root \`/var/tmp/runner-fleet-bench\`,
  inside a network namespace of the benchmark's own (\`rf-bench\`), so the end-to-end tests' fleet on the same
  addresses is never touched. Real sshd per node on 198.18.s.(10+i):22 in the node's own network, mount and UTS namespaces (a veth on the slot's bridge), real
  dockerd per node, stand-ins only for apt-get/snap/systemctl. Kinds repeat apt, snap, none. The registry is named
  (\`198.18.0.2:5000\`) but not started: the host phase only writes it into daemon.json and reads \`docker info\`.
  After \`up\` the benchmark (1) raises every node's sshd to \`LogLevel VERBOSE\` (SIGHUP) and (2) hard-links the
  machine's Debian apt lists into each node's \`/var/lib/apt/lists\`, which the testbed leaves without them, so that
  Ansible's apt module can see docker.io as a Pi would (the apt-get stand-in still does the install).
- **First run**: the first converge on a fleet fresh from \`up\` (apt nodes: docker.io running, no daemon.json; snap
  nodes: docker snap running, default \`{"log-level": "error"}\`; none nodes: no Docker, so it is installed through
  the apt-get stand-in and dockerd started). Every tool and every run gets a fleet of its own (down + up).
  **No-op rerun**: the same command again straight after on that fleet (runner-fleet ${r.settings.noops}×, Ansible
  ${r.settings.ansibleNoops}× per fleet); it must report 0 changes. Fresh fleets per size: runner-fleet ${r.settings.runs},
  each Ansible variant ${r.settings.ansible ? r.settings.ansibleRuns : 0} (Ansible at 30 nodes takes minutes per run; the
  whole benchmark must stay under ~25 minutes). [n] in the tables is the number of samples behind a median.
- **Wall time**: from spawn to exit of the whole command (\`npx tsx provision.ts …\` / \`ansible-playbook …\`),
  so interpreter start-up is included for both.
- **SSH counts**: each node's sshd log, raised to \`LogLevel VERBOSE\` by the benchmark after \`up\` (SIGHUP).
  A connection is an \`Accepted publickey for\` line; a round trip is a \`Starting session:\` line, i.e. one
  exec or subsystem (sftp) channel. The same lines are counted for both tools. Ansible's ssh ControlMasters are
  closed after every run (\`ssh -O exit\`, own ControlPath folder per run), so each run starts cold, like
  runner-fleet, which keeps nothing between runs.
- **Memory**: \`/usr/bin/time\` %M is the max RSS of the largest single process of the tool's tree (wait4
  semantics, not a sum). "Peak PSS whole tool tree" samples every 100 ms the summed PSS (smaps_rollup) of every
  process carrying the run's environment tag: the tool and all its children, including daemonised ssh masters;
  the remote side (sshd sessions, sudo, python on the nodes) is not included. Fleet memory: \`testbed status\`
  (PSS of every process in each node's mount namespace and their descendants).
${
  r.sizes.some((x) => rttOf(x) > 0)
    ? `- **Latency** (rows with an RTT): this kernel has no \`sch_netem\`, so toxiproxy${m.toxiproxy ? ` ${m.toxiproxy}` : ''} (built from Go modules) runs a
  proxy per node on 127.0.0.1 in front of its sshd, with a \`latency\` toxic of half the RTT on each direction and a
  tenth of the RTT as jitter. Every tool reaches every node through its proxy (the inventory and known_hosts are
  rewritten for it), so each pays the same delay per exchange; what differs is how many exchanges each waits on.
`
    : ''
}- Medians over the runs; ratios are median ÷ median.
`;
}
