// Benchmark: what the dind executor's per-job Docker-in-Docker service costs, on the real runner.
//
//   npx tsx bench/dind-startup.ts [--runs 5] [--write]
//
// Brings up a 1-node test fleet (real kubelet, real gitlab-runner 17.9.3 in its pod), provisions `--executor dind`
// twice: runners.dindService `runner` (config.toml starts the dind service for every job) and `job` (only jobs that
// declare it get one). For each it times, alternating, a job that needs no Docker (`echo`) and the ci-snippet job
// that builds and pushes (which declares its own dind service). Times come from the GitLab stand-in: queued →
// started (the runner took it) → finished. Writes bench/DIND.md with --write.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { $ } from 'zx';
import { DEMO_PROJECT, demoDockerfile, down, up } from '#testbed';
import { readInventory, writeVariant } from '../test/support/fleet.js';
import { median } from './lib/measure.js';
import { REPO } from './lib/runner-fleet.js';
import { standinApi } from './lib/standin-api.js';

const { values: args } = parseArgs({
  options: { runs: { type: 'string', default: '5' }, write: { type: 'boolean', default: false } },
});
const RUNS = Number(args.runs);

interface JobView {
  status: string;
  queuedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  trace: string;
}

/** Seconds from queued to finished, and the part before the script (service start-up, pulls, clone). */
async function timeJob(
  base: string,
  ciYaml: string,
  job: string,
): Promise<{ total: number; toScript: number }> {
  const { id } = await standinApi<{ id: number }>(base, 'POST', '/_standin/jobs', {
    project: DEMO_PROJECT,
    ciYaml,
    job,
  });
  for (;;) {
    const j = await standinApi<JobView>(base, 'GET', `/_standin/jobs/${id}`);
    if (j.status === 'success' || j.status === 'failed' || j.status === 'canceled') {
      if (j.status !== 'success') throw new Error(`job ${id} ${j.status}:\n${j.trace.slice(-2000)}`);
      const total = (Date.parse(j.finishedAt!) - Date.parse(j.queuedAt)) / 1000;
      // The runner prints the step_script section once services are up and the repository is checked out.
      const m = /section_start:(\d+):step_script/.exec(j.trace);
      const start = /section_start:(\d+):prepare_executor/.exec(j.trace);
      const toScript = m && start ? Number(m[1]) - Number(start[1]) : NaN;
      return { total, toScript };
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

const fleet = await up({
  nodes: 1,
  kinds: ['apt'],
  microk8s: true,
  log: (m) => process.stderr.write(`[testbed] ${m}\n`),
});
const rows: string[] = [];
try {
  const base = readInventory(fleet.inventory);
  const url = base.gitlab.url as string;
  await standinApi(url, 'POST', '/_standin/projects', {
    path: DEMO_PROJECT,
    files: { Dockerfile: demoDockerfile(fleet.registry) },
  });
  const tsx = join(REPO, 'node_modules', '.bin', 'tsx');
  const snippet = (
    await $({
      cwd: REPO,
      quiet: true,
    })`${tsx} provision.ts ci-snippet --inventory ${fleet.inventory} --executor dind`
  ).stdout;
  const echoJob = stringify({
    'no-docker': {
      image: base.runners.dockerCliImage,
      tags: ['pi1'],
      script: ['echo this job needs no Docker'],
    },
  });
  const results: Record<string, Record<string, { total: number; toScript: number }[]>> = {};
  for (const mode of ['runner', 'job'] as const) {
    const inv = writeVariant(fleet.inventory, base, (d) => (d.runners.dindService = mode));
    await $({ cwd: REPO, quiet: true })`${tsx} provision.ts --inventory ${inv} --executor dind`;
    results[mode] = { 'no-docker': [], 'build+push': [] };
    // One warm-up each: the first pull of every image is not what a busy runner pays.
    await timeJob(url, echoJob, 'no-docker');
    await timeJob(url, snippet, 'build-image');
    for (let i = 0; i < RUNS; i++) {
      results[mode]['no-docker'].push(await timeJob(url, echoJob, 'no-docker'));
      results[mode]['build+push'].push(await timeJob(url, snippet, 'build-image'));
    }
  }
  rows.push(
    '| dindService | job | median queued → finished | median executor start → script |',
    '|---|---|---|---|',
  );
  for (const [mode, jobs] of Object.entries(results)) {
    for (const [job, samples] of Object.entries(jobs)) {
      rows.push(
        `| ${mode} | ${job} | ${median(samples.map((s) => s.total)).toFixed(1)} s | ${median(samples.map((s) => s.toScript)).toFixed(0)} s |`,
      );
    }
  }
} finally {
  await down();
}
const text = [
  '# dind: a Docker-in-Docker service for every job, or only for jobs that ask',
  '',
  `Measured by \`npx tsx bench/dind-startup.ts --runs ${RUNS}\` on the test fleet (1 real node, real gitlab-runner 17.9.3,`,
  `Debian dockerd 20.10 as the dind service, vfs storage), ${new Date().toISOString().slice(0, 10)}; ${RUNS} runs each after one warm-up.`,
  '',
  ...rows,
  '',
].join('\n');
console.log(text);
if (args.write) writeFileSync(join(REPO, 'bench', 'DIND.md'), text);
