// The GitLab adapter against the stand-in over HTTP: each endpoint, GitLab's error text in ApiError, never a token.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { GitlabApi } from '../../src/gitlab/api.js';
import { ApiError } from '../../src/errors.js';
import { redact } from '../../src/secrets.js';
import { startGitlabStandin, type GitlabStandin } from './standin.js';

let gl: GitlabStandin;
let api: GitlabApi;

beforeAll(async () => {
  gl = await startGitlabStandin();
  api = new GitlabApi({ url: `${gl.url}/`, timeoutSeconds: 5, retryDelayMs: 10 });
});
afterAll(() => gl.close());
beforeEach(() => gl.reset());

async function failure(p: Promise<unknown>): Promise<ApiError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ApiError);
    return err as ApiError;
  }
  throw new Error('expected a failure');
}

describe('GitlabApi', () => {
  it("reads GitLab's clock from the Date of one HEAD, whatever its status", async () => {
    const near = (at: number) => expect(Math.abs(at - Date.now())).toBeLessThan(2000);
    const clock = await api.serverClock();
    near(clock!.date);
    near(clock!.receivedAt);
    await fetch(`${gl.url}/_standin/clock`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ offsetSeconds: -3600 }),
    });
    const skewed = await api.serverClock();
    near(skewed!.date + 3600_000);
    expect(gl.state.calls.at(-1)).toMatchObject({ method: 'HEAD', path: '/api/v4/version' });
    await expect(
      new GitlabApi({ url: 'http://127.0.0.1:1', timeoutSeconds: 2 }).serverClock(),
    ).rejects.toThrow(/HEAD \/version/);
  });

  it('creates with an access token, verifies, updates, lists and deletes', async () => {
    const created = await api.createUserRunner(gl.tokens.accessToken, {
      runner_type: 'instance_type',
      description: 'pi-1',
      tag_list: ['arm64', 'pi-1'],
      run_untagged: false,
    });
    expect(created).toEqual({ id: 2, token: expect.stringMatching(/^glrt-/), tokenExpiresAt: null });
    // A token GitLab hands out is redacted from then on.
    expect(redact(`x ${created.token} y`)).toBe('x [REDACTED] y');

    expect(await api.verifyRunner(created.token, 's_aaaaaaaaaaaa')).toMatchObject({ id: 2 });
    expect((await api.listRunnerManagers(gl.tokens.accessToken, 2)).map((m) => m.system_id)).toEqual([
      's_aaaaaaaaaaaa',
    ]);

    const updated = await api.updateRunner(gl.tokens.accessToken, 2, {
      tag_list: ['arm64', 'pi-1', 'gpu'],
      maximum_timeout: null,
    });
    expect(updated.tag_list).toEqual(['arm64', 'pi-1', 'gpu']);
    expect((await api.getRunner(gl.tokens.accessToken, 2)).description).toBe('pi-1');
    expect((await api.listAllRunners(gl.tokens.accessToken, { tagList: ['gpu'] })).map((r) => r.id)).toEqual([
      2,
    ]);

    await api.deleteRunnerManager(created.token, 's_aaaaaaaaaaaa');
    await api.deleteRunnerByToken(created.token);
    expect(gl.state.runners.map((r) => r.id)).toEqual([1]);
    await api.deleteRunnerById(gl.tokens.accessToken, 1);
    expect(gl.state.runners).toEqual([]);
  });

  it('registers with a legacy registration token and redacts the prefix-less token it gets back', async () => {
    const creds = await api.registerRunner(gl.tokens.registrationToken, {
      description: 'legacy',
      tag_list: ['a'],
    });
    expect(creds.token).not.toMatch(/^glrt-/);
    expect(redact(`token=${creds.token}`)).toBe('token=[REDACTED]');
  });

  it("turns GitLab's error bodies into ApiError with status and GitLab's own words", async () => {
    const unauthorized = await failure(
      api.createUserRunner('glpat-doesnotexist1', { runner_type: 'instance_type' }),
    );
    expect(unauthorized.status).toBe(401);
    expect(unauthorized.message).toBe('GitLab POST /user/runners: 401 Unauthorized');

    const scope = await failure(
      api.createUserRunner(gl.tokens.accessTokenNoScope, { runner_type: 'instance_type' }),
    );
    expect(scope.status).toBe(403);
    expect(scope.message).toContain('insufficient_scope');
    // GitLab names every scope registered for the endpoint (user_runners.rb, then API::API).
    expect(scope.message).toContain('needs scope: create_runner api read_api');

    const bad = await failure(api.createUserRunner(gl.tokens.accessToken, { runner_type: 'project_type' }));
    expect(bad.status).toBe(400);

    gl.setRegistrationTokens(false);
    const gone = await failure(api.registerRunner(gl.tokens.registrationToken, {}));
    expect(gone.status).toBe(410);
    expect(gone.message).toContain('410 Gone - runner registration disallowed');

    expect((await failure(api.verifyRunner('glrt-notarealtoken'))).status).toBe(403);
    expect((await failure(api.deleteRunnerManager(gl.tokens.runnerToken, 's_000000000000'))).status).toBe(
      404,
    );
    for (const err of [unauthorized, scope, bad, gone]) {
      for (const t of Object.values(gl.tokens)) expect(err.message).not.toContain(t);
    }
  });

  it('redacts a token even when the server echoes it back', async () => {
    const token = 'plain-legacy-token-0123456789';
    const echo: typeof fetch = async (_url, init) =>
      new Response(
        JSON.stringify({
          message: `403 Forbidden - token ${JSON.parse(String(init?.body)).token} is not valid`,
        }),
        { status: 403 },
      );
    const err = await failure(
      new GitlabApi({ url: gl.url, timeoutSeconds: 5, fetch: echo }).deleteRunnerByToken(token),
    );
    expect(err.message).toBe('GitLab DELETE /runners: 403 Forbidden - token [REDACTED] is not valid');
  });

  it('sends tokens in the body, never in the URL', async () => {
    const urls: string[] = [];
    const spy: typeof fetch = (url, init) => {
      urls.push(String(url));
      return fetch(url, init);
    };
    const spied = new GitlabApi({ url: gl.url, timeoutSeconds: 5, fetch: spy });
    await spied.verifyRunner(gl.tokens.runnerToken, 's_bbbbbbbbbbbb');
    await spied.deleteRunnerManager(gl.tokens.runnerToken, 's_bbbbbbbbbbbb');
    for (const u of urls) expect(u).not.toContain(gl.tokens.runnerToken);
  });

  it('times out with status 0 and names the setting', async () => {
    gl.setDelay(1500);
    try {
      const slow = new GitlabApi({ url: gl.url, timeoutSeconds: 1, retries: 0 });
      const err = await failure(slow.verifyRunner(gl.tokens.runnerToken));
      expect(err.status).toBe(0);
      expect(err.message).toContain('no answer within 1s (gitlab.timeout)');
    } finally {
      gl.setDelay(0);
    }
  });

  it('reports an unreachable GitLab, and retries only what is safe to repeat', async () => {
    const closed = await startGitlabStandin();
    await closed.close();
    const err = await failure(
      new GitlabApi({ url: closed.url, timeoutSeconds: 2, retryDelayMs: 10 }).verifyRunner('glrt-xxxxxxxxxx'),
    );
    expect(err.status).toBe(0);
    expect(err.message).toBe(`GitLab POST /runners/verify: cannot reach ${closed.url} (ECONNREFUSED)`);

    gl.failNext({ path: '/api/v4/runners/verify', status: 503 });
    await api.verifyRunner(gl.tokens.runnerToken);
    gl.failNext({ path: '/api/v4/user/runners', status: 503 });
    expect(
      (await failure(api.createUserRunner(gl.tokens.accessToken, { runner_type: 'instance_type' }))).status,
    ).toBe(503);
    expect(gl.calls({ path: '/api/v4/user/runners' })).toHaveLength(1);
  });

  it('follows pagination of /runners/all', async () => {
    for (let i = 0; i < 104; i++)
      await api.createUserRunner(gl.tokens.accessToken, { runner_type: 'instance_type', tag_list: ['many'] });
    expect(await api.listAllRunners(gl.tokens.accessToken, { tagList: ['many'] })).toHaveLength(104);
    expect(gl.calls({ path: '/api/v4/runners/all' })).toHaveLength(2);
  });

  it('refuses a 200 that is not JSON (a web page instead of the API)', async () => {
    const html: typeof fetch = async () => new Response('<html>sign in</html>', { status: 200 });
    const err = await failure(
      new GitlabApi({ url: gl.url, timeoutSeconds: 5, fetch: html }).verifyRunner('glrt-xxxxxxxxxx'),
    );
    expect(err.message).toContain('not JSON');
  });
});
