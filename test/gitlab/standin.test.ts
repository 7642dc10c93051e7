// The stand-in answers like GitLab's documented runner API: status codes, error bodies, JSON and form bodies, a token-free log.
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startGitlabStandin, type GitlabStandin } from './standin.js';

let gl: GitlabStandin;
const dir = mkdtempSync(join(tmpdir(), 'rf-standin-'));

beforeAll(async () => {
  gl = await startGitlabStandin({ tokensDir: join(dir, 'tokens') });
});
afterAll(() => gl.close());
beforeEach(() => gl.reset());

async function call(
  method: string,
  path: string,
  opts: { token?: string; json?: unknown; form?: Record<string, string> } = {},
) {
  const headers: Record<string, string> = {};
  if (opts.token) headers['PRIVATE-TOKEN'] = opts.token;
  let body: string | undefined;
  if (opts.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.json);
  } else if (opts.form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(opts.form).toString();
  }
  const res = await fetch(gl.url + path, { method, headers, body });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

describe('GitLab stand-in', () => {
  it('writes each token to its own 0600 file', () => {
    expect(readFileSync(gl.tokenFiles!.accessToken, 'utf8').trim()).toBe(gl.tokens.accessToken);
    // GitLab 17.9's shape for a runner created in the UI: glrt-, the partition prefix t1_ (instance), 20 characters.
    expect(readFileSync(gl.tokenFiles!.runnerToken, 'utf8').trim()).toMatch(/^glrt-t1_[A-Za-z0-9_-]{20}$/);
    expect(statSync(gl.tokenFiles!.registrationToken).mode & 0o777).toBe(0o600);
  });

  it('POST /user/runners: 401, 403 without create_runner, 400 for bad input, 201 with a glrt- token', async () => {
    expect(
      (await call('POST', '/api/v4/user/runners', { json: { runner_type: 'instance_type' } })).status,
    ).toBe(401);
    expect(
      (
        await call('POST', '/api/v4/user/runners', {
          token: 'glpat-unknown123',
          json: { runner_type: 'instance_type' },
        })
      ).status,
    ).toBe(401);
    const noScope = await call('POST', '/api/v4/user/runners', {
      token: gl.tokens.accessTokenNoScope,
      json: { runner_type: 'instance_type' },
    });
    expect(noScope).toMatchObject({ status: 403, body: { error: 'insufficient_scope' } });
    const missing = await call('POST', '/api/v4/user/runners', { token: gl.tokens.accessToken, json: {} });
    expect(missing).toMatchObject({
      status: 400,
      body: { error: expect.stringContaining('runner_type is missing') },
    });
    expect(
      (
        await call('POST', '/api/v4/user/runners', {
          token: gl.tokens.accessToken,
          json: { runner_type: 'bogus' },
        })
      ).status,
    ).toBe(400);
    expect(
      (
        await call('POST', '/api/v4/user/runners', {
          token: gl.tokens.accessToken,
          json: { runner_type: 'group_type' },
        })
      ).status,
    ).toBe(400);
    expect(
      (
        await call('POST', '/api/v4/user/runners', {
          token: gl.tokens.accessToken,
          json: { runner_type: 'project_type' },
        })
      ).status,
    ).toBe(400);

    const created = await call('POST', '/api/v4/user/runners', {
      token: gl.tokens.accessTokenCreateOnly,
      form: {
        runner_type: 'group_type',
        group_id: '9',
        description: 'pi',
        tag_list: 'arm64, pi ,arm64',
        run_untagged: 'false',
        maximum_timeout: '3600',
      },
    });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({
      id: 2,
      token: expect.stringMatching(/^glrt-t2_[A-Za-z0-9_-]{20}$/), // t2_: a group runner
      token_expires_at: null,
    });
    expect(gl.state.runners[1]).toMatchObject({
      runnerType: 'group_type',
      groupId: 9,
      tagList: ['arm64', 'pi'],
      runUntagged: false,
      maximumTimeout: 3600,
    });
  });

  it('POST /runners: 403 for a bad registration token, 410 when registration tokens are disabled', async () => {
    expect(await call('POST', '/api/v4/runners', { json: { token: 'nope' } })).toMatchObject({
      status: 403,
      body: { message: '403 Forbidden - invalid token supplied' },
    });
    expect((await call('POST', '/api/v4/runners', { json: {} })).status).toBe(400);
    const ok = await call('POST', '/api/v4/runners', {
      json: { token: gl.tokens.registrationToken, tag_list: ['a', 'b'] },
    });
    expect(ok.status).toBe(201);
    // Registered with the instance's registration token: no glrt-, the instance runner's partition prefix.
    expect(ok.body.token).toMatch(/^t1_[A-Za-z0-9_-]{20}$/);
    expect((await call('POST', '/_standin/registration-tokens/disable')).status).toBe(204);
    expect(
      await call('POST', '/api/v4/runners', { json: { token: gl.tokens.registrationToken } }),
    ).toMatchObject({
      status: 410,
      body: { message: '410 Gone - runner registration disallowed' },
    });
  });

  it('verify creates or refreshes a manager per system_id; DELETE /runners/managers removes one; DELETE /runners the runner', async () => {
    const token = gl.tokens.runnerToken;
    expect(
      (await call('POST', '/api/v4/runners/verify', { json: { token: 'glrt-wrongwrong' } })).status,
    ).toBe(403);
    expect(
      await call('POST', '/api/v4/runners/verify', { json: { token, system_id: 's_000000000001' } }),
    ).toMatchObject({ status: 200, body: { id: 1, token } });
    await call('POST', '/api/v4/runners/verify', { form: { token, system_id: 's_000000000001' } });
    await call('POST', '/api/v4/runners/verify', { form: { token, system_id: 's_000000000002' } });
    const managers = await call('GET', '/api/v4/runners/1/managers', { token: gl.tokens.accessToken });
    expect(managers.body.map((m: { system_id: string }) => m.system_id)).toEqual([
      's_000000000001',
      's_000000000002',
    ]);

    expect(
      (await call('DELETE', '/api/v4/runners/managers', { json: { token, system_id: 's_unknown' } })).status,
    ).toBe(404);
    expect((await call('DELETE', '/api/v4/runners/managers', { json: { token } })).status).toBe(400);
    expect(
      (await call('DELETE', `/api/v4/runners/managers?token=${token}&system_id=s_000000000001`)).status,
    ).toBe(204);
    expect(gl.state.managers.map((m) => m.systemId)).toEqual(['s_000000000002']);

    expect((await call('DELETE', '/api/v4/runners', { json: { token: 'bad-token-x' } })).status).toBe(403);
    expect((await call('DELETE', '/api/v4/runners', { form: { token } })).status).toBe(204);
    expect(gl.state.runners).toEqual([]);
    expect(gl.state.managers).toEqual([]);
  });

  it('PUT /runners/:id updates settings; needs manage_runner; GET and /runners/all read them back', async () => {
    const put = (token: string, body: unknown) => call('PUT', '/api/v4/runners/1', { token, json: body });
    expect((await put(gl.tokens.accessTokenCreateOnly, { description: 'x' })).status).toBe(403);
    expect((await put(gl.tokens.accessToken, {})).status).toBe(400);
    expect(
      (await call('PUT', '/api/v4/runners/99', { token: gl.tokens.accessToken, json: { locked: true } }))
        .status,
    ).toBe(404);
    const res = await put(gl.tokens.accessToken, {
      description: 'new',
      tag_list: 'x,y',
      run_untagged: false,
      locked: true,
      access_level: 'ref_protected',
      maximum_timeout: 7200,
      paused: true,
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      id: 1,
      description: 'new',
      tag_list: ['x', 'y'],
      run_untagged: false,
      locked: true,
      access_level: 'ref_protected',
      maximum_timeout: 7200,
      paused: true,
    });
    expect((await put(gl.tokens.accessToken, { access_level: 'everyone' })).status).toBe(400);
    expect((await call('GET', '/api/v4/runners/1', { token: gl.tokens.accessToken })).body).toMatchObject({
      description: 'new',
      tag_list: ['x', 'y'],
    });

    for (let i = 0; i < 3; i++)
      await call('POST', '/api/v4/user/runners', {
        token: gl.tokens.accessToken,
        json: { runner_type: 'instance_type', tag_list: ['x'] },
      });
    const page1 = await call('GET', '/api/v4/runners/all?tag_list=x&per_page=2', {
      token: gl.tokens.accessToken,
    });
    expect(page1.body).toHaveLength(2);
    expect(page1.headers.get('x-next-page')).toBe('2');
    expect(
      (await call('GET', '/api/v4/runners/all?tag_list=x,y', { token: gl.tokens.accessToken })).body.map(
        (r: { id: number }) => r.id,
      ),
    ).toEqual([1]);
  });

  it('controls: delete a token or a runner server-side, inject a failure, reset', async () => {
    const token = gl.tokens.runnerToken;
    expect((await call('POST', '/_standin/runners/1/delete-token')).status).toBe(204);
    expect((await call('POST', '/api/v4/runners/verify', { json: { token } })).status).toBe(403);
    expect(gl.state.runners).toHaveLength(1);
    expect((await call('DELETE', '/_standin/runners/1')).status).toBe(204);
    expect(gl.state.runners).toHaveLength(0);
    await call('POST', '/_standin/reset');
    await call('POST', '/_standin/fail', { json: { path: '/api/v4/runners/verify', status: 503 } });
    expect((await call('POST', '/api/v4/runners/verify', { json: { token } })).status).toBe(503);
    expect((await call('POST', '/api/v4/runners/verify', { json: { token } })).status).toBe(200);
    const state = await call('GET', '/_standin/state');
    expect(state.body.runners[0].id).toBe(1);
  });

  it('logs method, path and status of every call, and no token anywhere in the log', async () => {
    await call('DELETE', `/api/v4/runners?token=${gl.tokens.runnerToken}`);
    await call('POST', '/api/v4/user/runners', {
      token: gl.tokens.accessToken,
      json: { runner_type: 'instance_type' },
    });
    expect(gl.calls()).toEqual([
      { method: 'DELETE', path: '/api/v4/runners', status: 204, at: expect.any(String) },
      { method: 'POST', path: '/api/v4/user/runners', status: 201, at: expect.any(String) },
    ]);
    const log = JSON.stringify(gl.state.calls);
    for (const t of Object.values(gl.tokens)) expect(log).not.toContain(t);
  });

  it('scopes per route as lib/api/ci/runners.rb: manage_runner only with an :id, so never GET /runners/all', async () => {
    const noList = gl.tokens.accessTokenNoList;
    expect(await call('GET', '/api/v4/runners/all', { token: noList })).toMatchObject({
      status: 403,
      body: {
        error: 'insufficient_scope',
        error_description: 'The request requires higher privileges than provided by the access token.',
        scope: 'manage_runner api read_api',
      },
    });
    expect((await call('GET', '/api/v4/runners/1', { token: noList })).status).toBe(200);
    expect((await call('GET', '/api/v4/runners/all', { token: gl.tokens.accessToken })).status).toBe(200);
    // read_api is for GET and HEAD only.
    expect(
      (
        await call('PUT', '/api/v4/runners/1', {
          token: gl.tokens.accessTokenNoScope,
          json: { locked: true },
        })
      ).body,
    ).toMatchObject({ error: 'insufficient_scope' });
  });

  it('Admin Mode: an administrator token without admin_mode is no administrator; with it, it is', async () => {
    gl.setAdminMode(true);
    const token = gl.tokens.accessToken;
    expect(await call('GET', '/api/v4/runners/all', { token })).toMatchObject({
      status: 403,
      body: { message: '403 Forbidden' },
    });
    expect(
      await call('POST', '/api/v4/user/runners', { token, json: { runner_type: 'instance_type' } }),
    ).toMatchObject({ status: 403, body: { message: '403 Forbidden - Insufficient permissions' } });
    // Instance runners are readable by everyone signed in, changeable by administrators only.
    expect((await call('GET', '/api/v4/runners/1', { token })).status).toBe(200);
    expect(await call('PUT', '/api/v4/runners/1', { token, json: { locked: true } })).toMatchObject({
      status: 403,
      body: { message: '403 Forbidden - No access granted' },
    });
    expect((await call('DELETE', '/api/v4/runners/1', { token })).status).toBe(403);
    const admin = gl.tokens.accessTokenAdminMode;
    expect((await call('GET', '/api/v4/runners/all', { token: admin })).status).toBe(200);
    expect((await call('DELETE', '/api/v4/runners/1', { token: admin })).status).toBe(204);
  });

  it('a failure rule with truncate does the call and answers with half of its body', async () => {
    gl.failNext({ method: 'POST', path: '/api/v4/user/runners', status: 201, truncate: true });
    const res = await fetch(`${gl.url}/api/v4/user/runners`, {
      method: 'POST',
      headers: { 'PRIVATE-TOKEN': gl.tokens.accessToken, 'content-type': 'application/json' },
      body: JSON.stringify({ runner_type: 'instance_type' }),
    });
    expect(res.status).toBe(201);
    const text = await res.text();
    expect(text.startsWith('{"id":')).toBe(true);
    expect(() => JSON.parse(text) as unknown).toThrow();
    expect(gl.state.runners).toHaveLength(2);
  });
});
