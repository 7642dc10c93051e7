// The metrics read status adds to a node's gather: run with sh against a real HTTP server, then judged and tabled.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { splitGatherOutput } from '../docker/facts.js';
import { hostFacts } from '../docker/facts.fixture.js';
import { parseInventory } from '../inventory/schema.js';
import { buildStatusReport, formatStatusTable, statusRow } from './health.js';
import { hostMetricsAddress, metricsGatherScript, metricsTarget, parseJobs } from './metrics.js';

// What gitlab-runner 17.9 serves: one gitlab_runner_jobs series per runner, state and stage, among many others.
const PAGE = `# HELP gitlab_runner_jobs The current number of running builds.
# TYPE gitlab_runner_jobs gauge
gitlab_runner_jobs{executor_stage="docker_run",runner="abc",state="running",stage="step_script",system_id="s_1"} 2
gitlab_runner_jobs{executor_stage="prepare_executor",runner="abc",state="running",stage="prepare",system_id="s_1"} 1
gitlab_runner_jobs_total{runner="abc",system_id="s_1"} 40
gitlab_runner_concurrent 3
`;

let server: Server;
let port = 0;
beforeAll(async () => {
  server = createServer((req, res) => (req.url === '/metrics' ? res.end(PAGE) : res.writeHead(404).end()));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

// Asynchronous: the server answering lives in this process.
const run = async (target: string | undefined) =>
  splitGatherOutput((await promisify(execFile)('sh', ['-c', metricsGatherScript(target)])).stdout).sections;

describe('metrics gather', () => {
  it('sums gitlab_runner_jobs over its series (not the _total counter)', async () => {
    expect(parseJobs(await run(metricsTarget('127.0.0.1', port)), 'x')).toEqual({ jobs: 3 });
  });

  it('says when nothing answers, and when there is nothing to ask', async () => {
    expect(parseJobs(await run(metricsTarget('127.0.0.1', 1)), '127.0.0.1:1')).toEqual({
      error: expect.stringMatching(/^the metrics endpoint 127\.0\.0\.1:1 did not answer/),
    });
    expect(parseJobs(await run(undefined), undefined)).toEqual({ error: 'no runner pod to ask' });
    expect(metricsTarget('fd00::5', 9252)).toBe('[fd00::5]:9252');
    // A host runner: where the node reaches its listener (a wildcard listener includes the loopback).
    expect(['127.0.0.1', '0.0.0.0', '::', '10.0.0.11'].map(hostMetricsAddress)).toEqual([
      '127.0.0.1',
      '127.0.0.1',
      '127.0.0.1',
      '10.0.0.11',
    ]);
    expect(() => metricsGatherScript("1.2.3.4:9252'; reboot; '")).toThrow(/not a metrics address/);
  });

  it('status shows a JOBS column, and an unanswered endpoint is a problem', async () => {
    const inv = parseInventory(
      'gitlab: {url: https://gitlab.lan, registry: r.lan:5000}\nnodes: [{name: pi1, host: h1}]\nrunners: {placement: host, executor: shell, metrics: {}}\n',
      '/tmp/i.yaml',
    );
    const docker = {
      version: '27.5.1',
      indexConfigs: { 'r.lan:5000': { Secure: false } },
      insecureCidrs: [],
    };
    const gathered = (sections: Map<string, string[]>) =>
      hostFacts({ docker, gathered: { sections, files: new Map() } });
    const good = statusRow(
      inv.nodes[0],
      inv,
      { facts: gathered(await run(metricsTarget('127.0.0.1', port))) },
      'n/a',
      { kind: 'n/a' },
      0,
    );
    expect(good).toMatchObject({ metrics: { jobs: 3 }, healthy: true });
    expect(formatStatusTable(buildStatusReport([good]), ['r.lan:5000'], 0).split('\n')[0]).toMatch(
      /GITLAB +JOBS +HEALTHY$/,
    );
    const bad = statusRow(
      inv.nodes[0],
      inv,
      { facts: gathered(await run(metricsTarget('127.0.0.1', 1))) },
      'n/a',
      { kind: 'n/a' },
      0,
      '127.0.0.1:1',
    );
    expect(bad.healthy).toBe(false);
    expect(bad.problems).toEqual([
      expect.stringMatching(/^metrics: the metrics endpoint 127\.0\.0\.1:1 did not answer/),
    ]);
  });
});
