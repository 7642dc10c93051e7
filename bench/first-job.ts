// Benchmark: time to first job. On a fresh 3-node test fleet per executor, apply start → the first job's `success`,
// and the first job's duration against the second job's on the same node (pulls that apply did not make show there).
//
//   npx tsx bench/first-job.ts [--executors dood,dind,shell] [--provision DIR] [--label after] [--write]
//
// The job is queued at apply start on node pi1 (its tag): it waits in the GitLab stand-in until pi1's runner polls.
// Times come from the stand-in: queued, started (the runner took it), finished. `--provision DIR` runs DIR's
// provision.ts (e.g. an export of the commit before the pre-pull) to measure "before". The load average (1 min) is
// printed beside every number. With --write, the section between the first-job markers in bench/RESULTS.md is
// replaced (or appended below the hand-written part, which bench/converge.ts --write keeps).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { $ } from 'zx';
import { DEMO_PROJECT, demoDockerfile, down, up } from '#testbed';
import type { Executor } from '../src/inventory/types.js';
import { readInventory } from '../test/support/fleet.js';
import { REPO } from './lib/runner-fleet.js';
import { standinApi } from './lib/standin-api.js';

const { values: args } = parseArgs({
  options: {
    executors: { type: 'string', default: 'dood,dind,shell' },
    provision: { type: 'string', default: REPO },
    label: { type: 'string', default: 'with pre-pull' },
    /** save this run's results (JSON), e.g. the "before" run, for --compare */
    save: { type: 'string' },
    /** a run saved with --save, shown in the same table (its label in the first column) */
    compare: { type: 'string' },
    write: { type: 'boolean', default: false },
  },
});

export const START = '<!-- first-job: start (bench/first-job.ts --write replaces this section) -->';
export const END = '<!-- first-job: end -->';
const TARGET = 1.3;

interface JobView {
  status: string;
  queuedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  trace: string;
}

interface ExecutorResult {
  executor: Executor;
  /** which provision.ts: --label */
  label?: string;
  /** apply start → apply exit, and → the first job's success, s */
  apply: number;
  firstSuccess: number;
  /** started → finished on pi1, s */
  first: number;
  second: number;
  /** 1-minute load average when each number was taken */
  load: { apply: number; firstSuccess: number; first: number; second: number };
}

const load1 = () => loadavg()[0];

async function waitJob(base: string, id: number, timeoutMs = 900_000): Promise<JobView> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const j = await standinApi<JobView>(base, 'GET', `/_standin/jobs/${id}`);
    if (j.status === 'success') return j;
    if (j.status === 'failed' || j.status === 'canceled')
      throw new Error(`job ${id} ${j.status}:\n${j.trace.slice(-2000)}`);
    if (Date.now() > until) throw new Error(`job ${id} still ${j.status} after ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const seconds = (from: string, to: string) => (Date.parse(to) - Date.parse(from)) / 1000;

/** A job that needs the executor's images and nothing else: the job image (and for dind its service). */
function jobYaml(image: string): string {
  return stringify({ 'first-job': { image, tags: ['pi1'], script: ['echo first job'] } });
}

async function measure(executor: Executor): Promise<ExecutorResult> {
  const fleet = await up({
    nodes: 3,
    kinds: ['apt'],
    microk8s: true,
    log: (m) => process.stderr.write(`[testbed] ${m}\n`),
  });
  try {
    const base = readInventory(fleet.inventory);
    const url = base.gitlab.url as string;
    await standinApi(url, 'POST', '/_standin/projects', {
      path: DEMO_PROJECT,
      files: { Dockerfile: demoDockerfile(fleet.registry) },
    });
    const ciYaml = jobYaml(base.runners.dockerCliImage as string);
    const queue = async () =>
      (
        await standinApi<{ id: number }>(url, 'POST', '/_standin/jobs', {
          project: DEMO_PROJECT,
          ciYaml,
          job: 'first-job',
        })
      ).id;
    const tsx = join(REPO, 'node_modules', '.bin', 'tsx');
    const t0 = Date.now();
    const firstId = await queue();
    const applied = $({
      cwd: args.provision,
      quiet: true,
      nothrow: true,
    })`${tsx} ${join(args.provision, 'provision.ts')} --inventory ${fleet.inventory} --executor ${executor}`;
    const first = await waitJob(url, firstId);
    const firstSuccess = (Date.now() - t0) / 1000;
    const loadFirstSuccess = load1();
    const a = await applied;
    const apply = (Date.now() - t0) / 1000;
    const loadApply = load1();
    if (a.exitCode !== 0)
      throw new Error(`apply (${executor}) exit ${a.exitCode}:\n${a.stderr.slice(-2000)}`);
    const second = await waitJob(url, await queue());
    const loadSecond = load1();
    return {
      executor,
      apply,
      firstSuccess,
      first: seconds(first.startedAt!, first.finishedAt!),
      second: seconds(second.startedAt!, second.finishedAt!),
      load: { apply: loadApply, firstSuccess: loadFirstSuccess, first: loadFirstSuccess, second: loadSecond },
    };
  } finally {
    await down();
  }
}

function section(results: ExecutorResult[]): string {
  const n = (v: number, load: number) => `${v.toFixed(1)} s (load ${load.toFixed(1)})`;
  const rows = results.map((r) => {
    const ratio = r.first / r.second;
    return `| ${r.label ?? args.label} | ${r.executor} | ${n(r.firstSuccess, r.load.firstSuccess)} | ${n(r.apply, r.load.apply)} | ${n(r.first, r.load.first)} | ${n(r.second, r.load.second)} | ${ratio.toFixed(2)}× ${ratio <= TARGET ? 'met' : 'MISSED'} |`;
  });
  return [
    START,
    '## Time to first job',
    '',
    `Measured by \`npx tsx bench/first-job.ts${args.provision === REPO ? '' : ' --provision DIR'}\` on ${new Date().toISOString().slice(0, 16)}Z: a fresh`,
    '3-node test fleet per executor (apt Docker, microk8s layout, real kubelets and gitlab-runner 17.9.3, images in the',
    'test registry, pullPolicy [if-not-present]); a job queued at apply start for pi1 (image: the docker CLI image, `echo`).',
    `Job duration: the runner took it → it finished, from the GitLab stand-in. Target: first ≤ ${TARGET}× the second. Load:`,
    "the 1-minute load average when the number was taken (2 cores shared by the project's other work).",
    '',
    '| run | executor | apply start → first job success | apply start → apply exit | first job | second job | first ÷ second |',
    '|---|---|---|---|---|---|---|',
    ...rows,
    END,
  ].join('\n');
}

function writeSection(text: string): void {
  const path = join(REPO, 'bench', 'RESULTS.md');
  const old = existsSync(path) ? readFileSync(path, 'utf8') : '';
  const at = old.indexOf(START);
  const end = old.indexOf(END);
  const next =
    at >= 0 && end > at
      ? `${old.slice(0, at)}${text}${old.slice(end + END.length)}`
      : `${old.replace(/\n*$/, '\n\n')}${text}\n`;
  writeFileSync(path, next);
}

const results: ExecutorResult[] = [];
for (const executor of args.executors.split(',') as Executor[]) {
  const r = await measure(executor);
  process.stderr.write(
    `${executor}: first job success ${r.firstSuccess.toFixed(1)} s (load ${r.load.firstSuccess.toFixed(1)}), apply ${r.apply.toFixed(1)} s (load ${r.load.apply.toFixed(1)}), first job ${r.first.toFixed(1)} s (load ${r.load.first.toFixed(1)}), second ${r.second.toFixed(1)} s (load ${r.load.second.toFixed(1)})\n`,
  );
  results.push(r);
}
if (args.save) writeFileSync(args.save, JSON.stringify(results.map((r) => ({ ...r, label: args.label }))));
const compared = args.compare ? (JSON.parse(readFileSync(args.compare, 'utf8')) as ExecutorResult[]) : [];
const text = section([...compared, ...results]);
console.log(text);
if (args.write) writeSection(text);
