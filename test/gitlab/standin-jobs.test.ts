// The stand-in's job side over HTTP, as gitlab-runner 17.9.3 calls it: queue, payload, status updates, trace
// ranges, managers and their contacted_at, token expiry and reset, and the project repositories over git HTTP.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startGitlabStandin, type GitlabStandin } from './standin.js';

const run = promisify(execFile);
let gl: GitlabStandin;

beforeAll(async () => {
  // A persist interval of 0–0 ms would write every contact; 1 h never does within a test: the default here is GitLab's.
  // Workhorse holds a poll for 1 s here, not Omnibus' 50 s.
  gl = await startGitlabStandin({ longPollingSeconds: 1 });
});
afterAll(() => gl.close());
beforeEach(() => gl.reset());

interface Res {
  status: number;
  body: any;
  text: string;
  headers: Headers;
}

async function call(
  method: string,
  path: string,
  opts: { json?: unknown; headers?: Record<string, string>; body?: string } = {},
): Promise<Res> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  let body = opts.body;
  if (opts.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.json);
  }
  const res = await fetch(gl.url + path, { method, headers, body });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: res.status, body: parsed, text, headers: res.headers };
}

const INFO = {
  name: 'gitlab-runner',
  version: '17.9.3',
  revision: 'f6927248',
  platform: 'linux',
  architecture: 'amd64',
  executor: 'shell',
  features: { trace_checksum: true },
};
const CI = `
variables:
  GLOBAL: g
build:
  stage: build
  image: { name: "reg/job:1", entrypoint: [""] }
  services:
    - reg/db:1
    - name: reg/dind:1
      alias: docker
      command: ["--insecure-registry=reg"]
      variables: { DOCKER_TLS_CERTDIR: "" }
  variables:
    LOCAL: l
  before_script: [echo before]
  script:
    - cat Dockerfile
  after_script: [echo after]
tagged:
  tags: [arm64]
  script: [echo tagged]
`;

async function project(path = 'group/app', files: Record<string, string> = { Dockerfile: 'FROM base\n' }) {
  const res = await call('POST', '/_standin/projects', { json: { path, files } });
  expect(res.status).toBe(201);
  return res.body as { path: string; repoUrl: string; sha: string };
}

async function queue(job: string, variables?: Record<string, unknown>, ciYaml = CI) {
  const res = await call('POST', '/_standin/jobs', {
    json: { project: 'group/app', ciYaml, job, variables },
  });
  expect(res.status, res.text).toBe(201);
  return res.body.id as number;
}

const request = (token: string, extra: Record<string, unknown> = {}) =>
  call('POST', '/api/v4/jobs/request', {
    json: { token, system_id: 's_000000000001', info: INFO, ...extra },
  });

async function createRunner(body: Record<string, unknown>) {
  const res = await call('POST', '/api/v4/user/runners', {
    json: { runner_type: 'instance_type', ...body },
    headers: { 'PRIVATE-TOKEN': gl.tokens.accessToken },
  });
  expect(res.status).toBe(201);
  return res.body as { id: number; token: string; token_expires_at: string | null };
}

describe('projects and the job queue controls', () => {
  it('POST /_standin/projects makes a git repository on main; a second POST commits on top', async () => {
    const p = await project();
    expect(p).toMatchObject({
      path: 'group/app',
      repoUrl: `${gl.url}/group/app.git`,
      sha: expect.stringMatching(/^[0-9a-f]{40}$/),
    });
    const again = await project('group/app', { 'b.txt': 'b' });
    expect(again.sha).not.toBe(p.sha);
    expect((await call('POST', '/_standin/projects', { json: { path: 'noslash' } })).status).toBe(400);
    expect(
      (await call('POST', '/_standin/projects', { json: { path: 'g/p', files: { '../x': 'y' } } })).status,
    ).toBe(400);
  });

  it('POST /_standin/jobs parses the job, refuses unsupported keys by name, needs a known project', async () => {
    await project();
    expect(
      (await call('POST', '/_standin/jobs', { json: { project: 'nope/x', ciYaml: CI, job: 'build' } }))
        .status,
    ).toBe(404);
    const bad = await call('POST', '/_standin/jobs', {
      json: { project: 'group/app', ciYaml: 'j:\n  script: [x]\n  rules: []\n  artifacts: {}\n', job: 'j' },
    });
    expect(bad).toMatchObject({ status: 400, body: { error: 'jobs:j: unsupported keys: rules, artifacts' } });
    expect(
      (
        await call('POST', '/_standin/jobs', {
          json: { project: 'group/app', ciYaml: 'include: x\nj:\n  script: [x]\n', job: 'j' },
        })
      ).body.error,
    ).toBe('unsupported keys: include');
    expect(
      (await call('POST', '/_standin/jobs', { json: { project: 'group/app', ciYaml: CI, job: 'missing' } }))
        .status,
    ).toBe(400);
    expect(
      (
        await call('POST', '/_standin/jobs', {
          json: {
            project: 'group/app',
            ciYaml: CI,
            job: 'build',
            variables: { S: { value: 'short', masked: true } },
          },
        })
      ).status,
    ).toBe(400);
    const id = await queue('build');
    const view = await call('GET', `/_standin/jobs/${id}`);
    expect(view.body).toEqual({
      id,
      name: 'build',
      project: 'group/app',
      pipelineId: expect.any(Number),
      status: 'pending',
      runnerId: null,
      systemId: null,
      failureReason: null,
      exitCode: null,
      trace: '',
      queuedAt: expect.any(String),
      startedAt: null,
      finishedAt: null,
    });
    expect((await call('GET', '/_standin/jobs')).body.map((j: { id: number }) => j.id)).toEqual([id]);
    expect(JSON.stringify(view.body)).not.toContain(gl.jobs[0].token);
  });
});

describe('POST /jobs/request', () => {
  it('403 for a bad token; 204 with X-GitLab-Last-Update; the same last_update is held by Workhorse, Rails never sees it', async () => {
    expect((await request('glrt-wrong', { last_update: 'x' })).status).toBe(403);
    const first = await request(gl.tokens.runnerToken);
    expect(first.status).toBe(204);
    expect(first.headers.get('gitlab-ci-builds-polling')).toBe('yes');
    const lu = first.headers.get('x-gitlab-last-update');
    expect(lu).toMatch(/^[0-9a-f]{32}$/);
    const contacted = gl.state.managers[0].contactedAt;
    await new Promise((r) => setTimeout(r, 20));
    const t0 = Date.now();
    const second = await request(gl.tokens.runnerToken, { last_update: lu });
    // register.go's Timeout: 204 with no X-GitLab-Last-Update after the polling duration, and no heartbeat.
    expect(second.status).toBe(204);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect(second.headers.get('gitlab-ci-builds-polling')).toBe('yes');
    expect(second.headers.get('x-gitlab-last-update')).toBeNull();
    expect(gl.state.managers[0].contactedAt).toBe(contacted);
  });

  it('Workhorse: a queue that changes during the hold ends it at once (204, the runner asks again); a changed one goes to Rails', async () => {
    await project();
    const lu = (await request(gl.tokens.runnerToken)).headers.get('x-gitlab-last-update');
    const held = request(gl.tokens.runnerToken, { last_update: lu });
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    await queue('build');
    const seen = await held;
    expect(seen.status).toBe(204);
    expect(Date.now() - t0).toBeLessThan(800);
    const contacted = gl.state.managers[0].contactedAt;
    await new Promise((r) => setTimeout(r, 20));
    const got = await request(gl.tokens.runnerToken, { last_update: lu });
    expect(got.status).toBe(201);
    expect(gl.state.managers[0].contactedAt).not.toBe(contacted);
  });

  it('with long polling off, Rails answers the same last_update from the queue value (runner_queue_value_latest?)', async () => {
    const direct = await startGitlabStandin({ longPollingSeconds: 0 });
    try {
      const req = (extra: Record<string, unknown>) =>
        fetch(`${direct.url}/api/v4/jobs/request`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ token: direct.tokens.runnerToken, ...extra }),
        });
      const lu = (await req({})).headers.get('x-gitlab-last-update');
      const again = await req({ last_update: lu });
      expect(again.status).toBe(204);
      expect(again.headers.get('x-gitlab-last-update')).toBe(lu);
      expect(again.headers.get('gitlab-ci-builds-polling')).toBeNull();
    } finally {
      await direct.close();
    }
  });

  it('a queued job ticks the queue, so a runner holding the old last_update gets it: 201 with the payload', async () => {
    const p = await project();
    const lu = (await request(gl.tokens.runnerToken)).headers.get('x-gitlab-last-update');
    const id = await queue('build', { SECRET: { value: 'hunter2hunter2', masked: true }, PLAIN: 'p' });
    const res = await request(gl.tokens.runnerToken, { last_update: lu });
    expect(res.status).toBe(201);
    expect(res.headers.get('content-type')).toBe('application/json');
    const job = res.body;
    const token = gl.jobs[0].token;
    expect(job).toMatchObject({
      id,
      token,
      allow_git_fetch: true,
      job_info: {
        id,
        name: 'build',
        stage: 'build',
        project_id: 1,
        project_name: 'app',
        project_full_path: 'group/app',
        project_jobs_running_on_instance_runners_count: '0',
      },
      git_info: {
        repo_url: `${gl.url.replace('http://', `http://gitlab-ci-token:${token}@`)}/group/app.git`,
        ref: 'main',
        sha: p.sha,
        before_sha: '0'.repeat(40),
        ref_type: 'branch',
        refspecs: [
          `+refs/pipelines/${job.job_info.pipeline_id}:refs/pipelines/${job.job_info.pipeline_id}`,
          '+refs/heads/*:refs/remotes/origin/*',
          '+refs/tags/*:refs/tags/*',
        ],
        depth: 0,
      },
      runner_info: { timeout: 3600 },
      steps: [
        {
          name: 'script',
          script: ['echo before', 'cat Dockerfile'],
          timeout: 3600,
          when: 'on_success',
          allow_failure: false,
        },
        { name: 'after_script', script: ['echo after'], timeout: 3600, when: 'always', allow_failure: true },
      ],
      image: { name: 'reg/job:1', entrypoint: [''] },
      services: [
        { name: 'reg/db:1', alias: null },
        {
          name: 'reg/dind:1',
          alias: 'docker',
          command: ['--insecure-registry=reg'],
          variables: [{ key: 'DOCKER_TLS_CERTDIR', value: '', public: true, masked: false }],
        },
      ],
      cache: [],
      credentials: [],
      dependencies: [],
      features: {
        trace_sections: true,
        failure_reasons: expect.arrayContaining(['script_failure', 'runner_system_failure']),
      },
    });
    const vars = Object.fromEntries(
      (job.variables as { key: string; value: string }[]).map((v) => [v.key, v]),
    );
    expect(vars.CI_JOB_TOKEN).toEqual({ key: 'CI_JOB_TOKEN', value: token, public: false, masked: true });
    expect(vars.SECRET).toEqual({ key: 'SECRET', value: 'hunter2hunter2', public: false, masked: true });
    for (const [k, v] of Object.entries({
      CI_JOB_ID: String(id),
      CI_PROJECT_PATH: 'group/app',
      CI_COMMIT_SHA: p.sha,
      CI_COMMIT_SHORT_SHA: p.sha.slice(0, 8),
      CI_COMMIT_REF_NAME: 'main',
      CI_SERVER_URL: gl.url,
      CI_JOB_NAME: 'build',
      CI_PIPELINE_ID: String(job.job_info.pipeline_id),
      GITLAB_CI: 'true',
      CI: 'true',
      GLOBAL: 'g',
      LOCAL: 'l',
      PLAIN: 'p',
      CI_RUNNER_TAGS: '["shared"]',
    }))
      expect(vars[k]?.value, k).toBe(v);
    expect(vars.CI_REPOSITORY_URL.value).toBe(job.git_info.repo_url);
    expect(vars.CI_PROJECT_DIR).toBeUndefined(); // the runner sets it
    expect(gl.jobView(id)).toMatchObject({
      status: 'running',
      runnerId: 1,
      systemId: 's_000000000001',
      startedAt: expect.any(String),
    });
    expect((await request(gl.tokens.runnerToken)).status).toBe(204);
  });

  it('matches like RegisterJobService: tags covered, untagged only on run_untagged runners, paused runners take nothing', async () => {
    await project();
    const untaggedOnly = await createRunner({ tag_list: ['amd64'], run_untagged: false });
    const arm = await createRunner({ tag_list: ['arm64', 'pi'], run_untagged: false, paused: true });
    const tagged = await queue('tagged');
    expect((await request(untaggedOnly.token)).status).toBe(204);
    const paused = await request(arm.token);
    expect(paused.status).toBe(204);
    expect(paused.headers.get('x-gitlab-last-update')).toBeTruthy();
    // unpausing through the API ticks the runner's queue
    expect(
      (
        await call('PUT', `/api/v4/runners/${arm.id}`, {
          json: { paused: false },
          headers: { 'PRIVATE-TOKEN': gl.tokens.accessToken },
        })
      ).status,
    ).toBe(200);
    const got = await request(arm.token, { last_update: paused.headers.get('x-gitlab-last-update') });
    expect(got.status).toBe(201);
    expect(got.body.id).toBe(tagged);
    const untagged = await queue('build');
    expect((await request(untaggedOnly.token)).status).toBe(204);
    expect((await request(gl.tokens.runnerToken)).body.id).toBe(untagged);
  });
});

describe('job updates and the trace', () => {
  async function runningJob() {
    await project();
    const id = await queue('build');
    const res = await request(gl.tokens.runnerToken);
    expect(res.status).toBe(201);
    return { id, token: res.body.token as string };
  }

  it('PATCH /jobs/:id/trace: JOB-TOKEN, Content-Range, 202 with Range and update interval, 416 with the real Range', async () => {
    const { id, token } = await runningJob();
    const patch = (start: number, text: string, t = token, range = true) =>
      call('PATCH', `/api/v4/jobs/${id}/trace?debug_trace=false`, {
        body: text,
        headers: {
          'content-type': 'text/plain',
          'JOB-TOKEN': t,
          ...(range ? { 'Content-Range': `${start}-${start + text.length - 1}` } : {}),
        },
      });
    expect((await patch(0, 'x', 'wrong')).status).toBe(403);
    expect(await patch(0, 'x', token, false)).toMatchObject({
      status: 400,
      body: { message: '400 Missing header Content-Range' },
    });
    const ok = await patch(0, 'hello ');
    expect(ok.status).toBe(202);
    expect(ok.headers.get('range')).toBe('0-6');
    expect(ok.headers.get('job-status')).toBe('running');
    expect(ok.headers.get('x-gitlab-trace-update-interval')).toBe('60');
    const gap = await patch(10, 'lost');
    expect(gap).toMatchObject({ status: 416, body: { message: '416 Range Not Satisfiable' } });
    expect(gap.headers.get('range')).toBe('0-6');
    // someone watching the log: GitLab asks for patches every 3 s
    await call('GET', `/_standin/jobs/${id}`);
    const watched = await patch(6, 'world');
    expect(watched.headers.get('range')).toBe('0-11');
    expect(watched.headers.get('x-gitlab-trace-update-interval')).toBe('3');
    expect(gl.jobView(id)!.trace).toBe('hello world');
  });

  it('PUT /jobs/:id: job token in the body, Job-Status header, failure_reason and exit_code; 403 once finished', async () => {
    const { id, token } = await runningJob();
    const put = (body: Record<string, unknown>) =>
      call('PUT', `/api/v4/jobs/${id}`, { json: { info: INFO, ...body } });
    expect((await put({ token: 'nope', state: 'running' })).status).toBe(403);
    expect(await put({ state: 'running' })).toMatchObject({
      status: 400,
      body: { error: 'token is missing' },
    });
    const touch = await put({ token, state: 'running', output: { checksum: 'crc32:00000000', bytesize: 0 } });
    expect(touch.status).toBe(200);
    expect(touch.headers.get('job-status')).toBe('running');
    expect((await put({ token, state: 'bogus' })).status).toBe(400);
    const failed = await put({ token, state: 'failed', failure_reason: 'script_failure', exit_code: 3 });
    expect(failed.status).toBe(200);
    expect(failed.headers.get('job-status')).toBe('failed');
    expect(gl.jobView(id)).toMatchObject({
      status: 'failed',
      failureReason: 'script_failure',
      exitCode: 3,
      finishedAt: expect.any(String),
    });
    const after = await put({ token, state: 'success' });
    expect(after).toMatchObject({
      status: 403,
      body: { message: '403 Forbidden - Job is not processing on runner' },
    });
    expect(after.headers.get('job-status')).toBe('failed');
  });

  it('an unknown failure_reason becomes unknown_failure; cancel ends a job, and the runner then gets 403 Job-Status canceled', async () => {
    const { id, token } = await runningJob();
    expect((await call('POST', `/_standin/jobs/${id}/cancel`)).body.status).toBe('canceled');
    const res = await call('PATCH', `/api/v4/jobs/${id}/trace`, {
      body: 'x',
      headers: { 'JOB-TOKEN': token, 'Content-Range': '0-0' },
    });
    expect(res.status).toBe(403);
    expect(res.headers.get('job-status')).toBe('canceled');
    const id2 = await queue('build');
    const job2 = (await request(gl.tokens.runnerToken)).body;
    await call('PUT', `/api/v4/jobs/${id2}`, {
      json: { token: job2.token, state: 'failed', failure_reason: 'made_up' },
    });
    expect(gl.jobView(id2)!.failureReason).toBe('unknown_failure');
  });
});

describe('runner managers and contacted_at', () => {
  const managers = async (id = 1) =>
    (
      await call('GET', `/api/v4/runners/${id}/managers`, {
        headers: { 'PRIVATE-TOKEN': gl.tokens.accessToken },
      })
    ).body;

  it('jobs/request makes and refreshes the manager of its system_id with info, ip and contacted_at', async () => {
    await request(gl.tokens.runnerToken);
    const runnerFirst = gl.state.runners[0].contactedAt!;
    const [m] = await managers();
    expect(m).toEqual({
      id: 1,
      system_id: 's_000000000001',
      version: '17.9.3',
      revision: 'f6927248',
      platform: 'linux',
      architecture: 'amd64',
      created_at: expect.any(String),
      contacted_at: expect.any(String),
      ip_address: '127.0.0.1',
      status: 'online',
      job_execution_status: 'idle',
    });
    await new Promise((r) => setTimeout(r, 5));
    await request(gl.tokens.runnerToken);
    const [again] = await managers();
    expect(Date.parse(again.contacted_at)).toBeGreaterThan(Date.parse(m.contacted_at));
    // The API shows the cached value; the database column keeps the first write for 40–55 minutes.
    expect(gl.state.managers[0].contactedAtPersisted).toBe(m.contacted_at);
    expect(Date.parse(gl.state.runners[0].contactedAt!)).toBeGreaterThan(Date.parse(runnerFirst));
    expect(gl.state.runners[0].contactedAtPersisted).toBe(runnerFirst);
  });

  it('verify with a glrt- token makes the manager without contacted_at; calls without system_id use <legacy>', async () => {
    await call('POST', '/api/v4/runners/verify', {
      json: { token: gl.tokens.runnerToken, system_id: 's_000000000009' },
    });
    expect(await managers()).toMatchObject([
      { system_id: 's_000000000009', contacted_at: null, status: 'never_contacted' },
    ]);
    expect(gl.state.runners[0].contactedAt).toBeNull();
    await call('POST', '/api/v4/jobs/request', { json: { token: gl.tokens.runnerToken } });
    expect((await managers()).map((m: { system_id: string }) => m.system_id)).toEqual([
      's_000000000009',
      '<legacy>',
    ]);
  });

  it('a short persist interval writes the column on every contact', async () => {
    const quick = await startGitlabStandin({ contactedAtPersistEveryMs: [0, 0] });
    try {
      const req = () =>
        fetch(`${quick.url}/api/v4/jobs/request`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ token: quick.tokens.runnerToken, system_id: 's_000000000001' }),
        });
      await req();
      await new Promise((r) => setTimeout(r, 5));
      await req();
      expect(quick.state.managers[0].contactedAtPersisted).toBe(quick.state.managers[0].contactedAt);
    } finally {
      await quick.close();
    }
  });

  it('PUT and PATCH of a running job count as contact of its runner and manager', async () => {
    await project();
    const id = await queue('build');
    const job = (await request(gl.tokens.runnerToken)).body;
    expect((await managers())[0].job_execution_status).toBe('active');
    const before = gl.state.managers[0].contactedAt!;
    await new Promise((r) => setTimeout(r, 5));
    await call('PUT', `/api/v4/jobs/${id}`, { json: { token: job.token, state: 'success' } });
    expect(Date.parse(gl.state.managers[0].contactedAt!)).toBeGreaterThan(Date.parse(before));
    expect((await managers())[0].job_execution_status).toBe('idle');
  });
});

describe('runner token expiry and reset', () => {
  it('tokens get token_expires_at when an interval is set; an expired token is 403 everywhere', async () => {
    expect(
      (await call('POST', '/_standin/runner-token-expiration', { json: { seconds: 3600 } })).status,
    ).toBe(204);
    const r = await createRunner({});
    expect(Date.parse(r.token_expires_at!) - Date.now()).toBeGreaterThan(3590_000);
    expect(
      (await call('POST', '/api/v4/runners/verify', { json: { token: r.token } })).body.token_expires_at,
    ).toBe(r.token_expires_at);
    expect((await call('POST', `/_standin/runners/${r.id}/expire-token`)).status).toBe(204);
    expect((await call('POST', '/api/v4/runners/verify', { json: { token: r.token } })).status).toBe(403);
    expect((await request(r.token)).status).toBe(403);
    expect(
      (await call('POST', '/api/v4/runners/reset_authentication_token', { json: { token: r.token } })).status,
    ).toBe(403);
  });

  it('POST /runners/reset_authentication_token rotates: 201 {token, token_expires_at}; the old token is dead', async () => {
    const plain = await call('POST', '/api/v4/runners/reset_authentication_token', {
      json: { token: gl.tokens.runnerToken },
    });
    expect(plain.status).toBe(201);
    expect(plain.body).toEqual({ token: expect.stringMatching(/^glrt-/) }); // no expiry: no token_expires_at (ResetTokenResult)
    expect((await request(gl.tokens.runnerToken)).status).toBe(403);
    expect((await request(plain.body.token)).status).toBe(204);
    gl.setRunnerTokenExpiration(60);
    const rotated = await call('POST', '/api/v4/runners/reset_authentication_token', {
      json: { token: plain.body.token },
    });
    expect(rotated.body).toEqual({
      token: expect.stringMatching(/^glrt-/),
      token_expires_at: expect.any(String),
    });
    const pat = await call('POST', '/api/v4/runners/1/reset_authentication_token', {
      headers: { 'PRIVATE-TOKEN': gl.tokens.accessToken },
    });
    expect(pat.status).toBe(201);
    expect(pat.body.token).not.toBe(rotated.body.token);
  });
});

describe('git over HTTP', () => {
  it('clones with gitlab-ci-token and the token of a running job of the project; 401 otherwise', async () => {
    const p = await project('group/app', { Dockerfile: 'FROM base\n', 'dir/f.txt': 'deep\n' });
    await queue('build');
    const job = (await request(gl.tokens.runnerToken)).body;
    const dir = mkdtempSync(join(tmpdir(), 'rf-standin-clone-'));
    const env = {
      ...process.env,
      GIT_TERMINAL_PROMPT: '0',
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_GLOBAL: '/dev/null',
    };
    await run('git', ['clone', '--quiet', job.git_info.repo_url, join(dir, 'ok')], { env });
    expect(readFileSync(join(dir, 'ok', 'dir/f.txt'), 'utf8')).toBe('deep\n');
    const { stdout } = await run('git', ['-C', join(dir, 'ok'), 'ls-remote', 'origin'], { env });
    expect(stdout).toContain(`${p.sha}\trefs/pipelines/${job.job_info.pipeline_id}`);
    expect((await call('GET', '/group/app.git/info/refs')).status).toBe(401);
    expect((await call('GET', '/group/app.git/info/refs')).headers.get('www-authenticate')).toBe(
      'Basic realm="GitLab"',
    );
    expect(
      (
        await call('GET', '/group/app.git/config', {
          headers: {
            authorization: `Basic ${Buffer.from(`gitlab-ci-token:${job.token}`).toString('base64')}`,
          },
        })
      ).status,
    ).toBe(404);
    await call('PUT', `/api/v4/jobs/${job.id}`, { json: { token: job.token, state: 'success' } });
    await expect(
      run('git', ['clone', '--quiet', job.git_info.repo_url, join(dir, 'late')], { env }),
    ).rejects.toThrow();
  });
});
