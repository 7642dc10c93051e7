// The REAL gitlab-runner 17.9.3 (shell executor) against the stand-in: it polls, takes a job, clones the project over
// git HTTP with its job token, streams the trace (masking a masked variable), reports success or the failure reason,
// and its manager row (its system_id) shows it. Proof that the stand-in speaks what the runner speaks.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findGitlabRunner, requireGitlabRunner } from '../support/gitlabRunner.js';
import { startGitlabStandin, type GitlabStandin, type StandinJobView } from './standin.js';

const enabled = requireGitlabRunner('real gitlab-runner against the GitLab stand-in');
const SYSTEM_ID = 's_standinreal1';

describe.runIf(enabled)('real gitlab-runner 17.9.3 against the stand-in', () => {
  let gl: GitlabStandin;
  let dir: string;
  let runner: ChildProcess | undefined;
  let log = '';
  let runnerId = 0;
  let config = '';
  let configLines: (token: string, expiry?: { obtainedAt: string; expiresAt: string }) => string = () => '';

  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(gl.url + path, {
      method,
      headers: { 'content-type': 'application/json', 'PRIVATE-TOKEN': gl.tokens.accessToken },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };

  const waitForJob = async (id: number, ms: number): Promise<StandinJobView> => {
    const until = Date.now() + ms;
    for (;;) {
      const view = (await (await fetch(`${gl.url}/_standin/jobs/${id}`)).json()) as StandinJobView;
      if (['success', 'failed', 'canceled'].includes(view.status)) return view;
      if (Date.now() > until)
        throw new Error(`job ${id} still ${view.status} after ${ms} ms; runner log:\n${log}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rf-real-runner-'));
    gl = await startGitlabStandin({ stateDir: join(dir, 'gitlab') });
    // A runner made the 17.x way: POST /user/runners with an access token, then a config.toml with its glrt- token.
    const created = await api('POST', '/api/v4/user/runners', {
      runner_type: 'instance_type',
      description: 'real-runner-test',
      tag_list: ['standin-real'],
      run_untagged: false,
    });
    expect(created.status).toBe(201);
    runnerId = created.body.id;
    const configDir = join(dir, 'config');
    mkdirSync(configDir);
    mkdirSync(join(dir, 'builds'));
    mkdirSync(join(dir, 'cache'));
    config = join(configDir, 'config.toml');
    configLines = (token, expiry) =>
      [
        'concurrent = 1',
        'check_interval = 1',
        'log_level = "info"',
        'shutdown_timeout = 10',
        '',
        '[[runners]]',
        '  name = "real-runner-test"',
        `  url = "${gl.url}"`,
        `  id = ${runnerId}`,
        `  token = "${token}"`,
        ...(expiry
          ? [`  token_obtained_at = ${expiry.obtainedAt}`, `  token_expires_at = ${expiry.expiresAt}`]
          : []),
        '  executor = "shell"',
        '  shell = "bash"',
        `  builds_dir = "${join(dir, 'builds')}"`,
        `  cache_dir = "${join(dir, 'cache')}"`,
        '',
      ].join('\n');
    writeFileSync(config, configLines(created.body.token), { mode: 0o600 });
    // The runner reads its system_id from .runner_system_id beside config.toml (common/system_id_state.go).
    writeFileSync(join(configDir, '.runner_system_id'), `${SYSTEM_ID}\n`, { mode: 0o600 });
    const workDir = join(dir, 'work');
    mkdirSync(workDir);
    runner = spawn(findGitlabRunner().path!, ['run', '--config', config, '--working-directory', workDir], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, HOME: workDir },
    });
    runner.stdout!.on('data', (d) => (log += d));
    runner.stderr!.on('data', (d) => (log += d));
    // Wait for its first poll: the manager row of its system_id appears.
    const until = Date.now() + 60_000;
    while (!gl.state.managers.some((m) => m.systemId === SYSTEM_ID && m.contactedAt)) {
      if (runner.exitCode !== null) throw new Error(`gitlab-runner exited ${runner.exitCode}:\n${log}`);
      if (Date.now() > until) throw new Error(`gitlab-runner never polled:\n${log}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }, 90_000);

  afterAll(async () => {
    if (runner && runner.exitCode === null) {
      const exited = new Promise<void>((r) => runner!.once('exit', () => r()));
      runner.kill('SIGQUIT'); // graceful stop (commands/multi.go)
      const killed = setTimeout(() => runner!.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(killed);
    }
    await gl?.close();
    rmSync(dir, { recursive: true, force: true });
  }, 40_000);

  it('runs a job: clones the project, masks a masked variable, reports success; its manager shows the contact', async () => {
    const before = (await api('GET', `/api/v4/runners/${runnerId}/managers`)).body.find(
      (m: { system_id: string }) => m.system_id === SYSTEM_ID,
    );
    expect(before).toMatchObject({
      version: '17.9.3',
      platform: 'linux',
      architecture: 'amd64',
      ip_address: '127.0.0.1',
    });
    const project = await (
      await fetch(`${gl.url}/_standin/projects`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ path: 'ci/probe', files: { Dockerfile: 'FROM base-from-the-clone\n' } }),
      })
    ).json();
    const ciYaml = [
      'probe:',
      '  tags: [standin-real]',
      '  script:',
      '    - cat Dockerfile',
      '    - echo "secret is $SECRET"',
      '    - echo "sha $CI_COMMIT_SHA"',
      '  after_script:',
      '    - echo after-ran',
      '',
    ].join('\n');
    const queued = await fetch(`${gl.url}/_standin/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        project: 'ci/probe',
        ciYaml,
        job: 'probe',
        variables: { SECRET: { value: 'sup3r-s3cret-value', masked: true } },
      }),
    });
    expect(queued.status).toBe(201);
    const { id } = (await queued.json()) as { id: number };
    const done = await waitForJob(id, 90_000);
    expect(done.status, `${done.trace}\n--- runner log ---\n${log}`).toBe('success');
    expect(done).toMatchObject({ runnerId, systemId: SYSTEM_ID, failureReason: null });
    expect(done.trace).toContain('FROM base-from-the-clone');
    expect(done.trace).toContain('secret is [MASKED]');
    expect(done.trace).not.toContain('sup3r-s3cret-value');
    expect(done.trace).toContain(`sha ${project.sha}`);
    expect(done.trace).toContain('after-ran');
    expect(done.trace).toContain('Job succeeded');
    const after = (await api('GET', `/api/v4/runners/${runnerId}/managers`)).body.find(
      (m: { system_id: string }) => m.system_id === SYSTEM_ID,
    );
    expect(Date.parse(after.contacted_at)).toBeGreaterThan(Date.parse(before.contacted_at));
    expect((await api('GET', `/api/v4/runners/${runnerId}`)).body.contacted_at).not.toBeNull();
  }, 120_000);

  it('a failing script ends failed with the runner failure reason script_failure and the exit code', async () => {
    const queued = await fetch(`${gl.url}/_standin/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        project: 'ci/probe',
        ciYaml: 'boom:\n  tags: [standin-real]\n  script:\n    - echo going-down\n    - exit 3\n',
        job: 'boom',
      }),
    });
    const { id } = (await queued.json()) as { id: number };
    const done = await waitForJob(id, 90_000);
    expect(done, `${done.trace}\n--- runner log ---\n${log}`).toMatchObject({
      status: 'failed',
      failureReason: 'script_failure',
      exitCode: 3,
    });
    expect(done.trace).toContain('going-down');
  }, 120_000);

  it('rotates its own token through POST /runners/reset_authentication_token when config.toml says it expires', async () => {
    // A fresh token that expires in 12 s; the runner resets at 75 % of the interval (commands/multi.go nextRunnerToReset).
    gl.setRunnerTokenExpiration(12);
    const reset = await api('POST', `/api/v4/runners/${runnerId}/reset_authentication_token`);
    expect(reset.status).toBe(201);
    const first = reset.body as { token: string; token_expires_at: string };
    writeFileSync(
      config,
      configLines(first.token, { obtainedAt: new Date().toISOString(), expiresAt: first.token_expires_at }),
      { mode: 0o600 },
    );
    const until = Date.now() + 40_000;
    const current = () => gl.state.runners.find((r) => r.id === runnerId)!.token;
    while (current() === first.token) {
      if (Date.now() > until) throw new Error(`the runner never reset its token:\n${log}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(
      gl.calls({ method: 'POST', path: '/api/v4/runners/reset_authentication_token' }).map((c) => c.status),
    ).toContain(201);
    // It saved the new token and keeps polling with it.
    const saved = async () => readFileSync(config, 'utf8').includes(`token = "${current()}"`);
    while (!(await saved())) {
      if (Date.now() > until)
        throw new Error(`config.toml never got the new token:\n${readFileSync(config, 'utf8')}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    // A poll already in flight with the old token may still get 403; the ones after it must succeed.
    const polls = gl.calls({ method: 'POST', path: '/api/v4/jobs/request' }).length;
    while (
      !gl
        .calls({ method: 'POST', path: '/api/v4/jobs/request' })
        .slice(polls)
        .some((c) => c.status === 204)
    ) {
      if (Date.now() > until) throw new Error(`the runner stopped polling after the reset:\n${log}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    gl.setRunnerTokenExpiration(null);
  }, 60_000);
});
