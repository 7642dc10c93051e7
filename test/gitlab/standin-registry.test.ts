// The stand-in's container registry side: the job's CI_REGISTRY* variables and credentials, and GET /jwt/auth's tokens.
import { createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGitlabStandin, type GitlabStandin } from './standin.js';
import { REGISTRY_ISSUER, REGISTRY_SERVICE, libtrustKeyId } from './standin-registry.js';

const REGISTRY = 'registry.test:5050';
const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const CI = 'build:\n  script: [echo hi]\n';

let gl: GitlabStandin;
let off: GitlabStandin;

beforeAll(async () => {
  gl = await startGitlabStandin({
    registry: { hostPort: REGISTRY, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() },
  });
  off = await startGitlabStandin();
});
afterAll(async () => {
  await gl.close();
  await off.close();
});

const post = (g: GitlabStandin, path: string, json: unknown) =>
  fetch(g.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(json),
  });

/** A project, a job in it, and that job taken by the preset runner: the payload gitlab-runner would get. */
async function runningJob(g: GitlabStandin, path: string) {
  expect((await post(g, '/_standin/projects', { path, files: { Dockerfile: 'FROM x\n' } })).status).toBe(201);
  expect((await post(g, '/_standin/jobs', { project: path, ciYaml: CI, job: 'build' })).status).toBe(201);
  const res = await post(g, '/api/v4/jobs/request', {
    token: g.tokens.runnerToken,
    system_id: 's_000000000001',
  });
  expect(res.status).toBe(201);
  const payload = (await res.json()) as any;
  const vars = Object.fromEntries(
    (payload.variables as { key: string; value: string }[]).map((v) => [v.key, v]),
  );
  return { payload, vars, token: payload.token as string, id: payload.id as number };
}

const auth = (query: string, basic?: string) =>
  fetch(`${gl.url}/jwt/auth?${query}`, {
    headers: basic ? { authorization: `Basic ${Buffer.from(basic).toString('base64')}` } : {},
  });

function decode(token: string) {
  const [h, p, sig] = token.split('.');
  const ok = verify('sha256', Buffer.from(`${h}.${p}`), publicKey, Buffer.from(sig, 'base64url'));
  return {
    ok,
    header: JSON.parse(Buffer.from(h, 'base64url').toString()),
    claims: JSON.parse(Buffer.from(p, 'base64url').toString()),
  };
}

describe("GitLab's container registry in the stand-in", () => {
  it('a job sees CI_REGISTRY and the lowercased CI_REGISTRY_IMAGE, and gets the registry credentials', async () => {
    const { payload, vars, token } = await runningJob(gl, 'MyTeam/App');
    expect(vars.CI_PROJECT_PATH.value).toBe('MyTeam/App');
    expect(vars.CI_REGISTRY).toEqual({ key: 'CI_REGISTRY', value: REGISTRY, public: true, masked: false });
    expect(vars.CI_REGISTRY_IMAGE.value).toBe(`${REGISTRY}/myteam/app`);
    expect(vars.CI_REGISTRY_USER.value).toBe('gitlab-ci-token');
    expect(vars.CI_REGISTRY_PASSWORD).toEqual({
      key: 'CI_REGISTRY_PASSWORD',
      value: token,
      public: false,
      masked: true,
    });
    expect(payload.credentials).toEqual([
      { type: 'registry', url: REGISTRY, username: 'gitlab-ci-token', password: token },
    ]);
  });

  it('without a registry: no CI_REGISTRY*, no credentials (the job token variables stay)', async () => {
    const { payload, vars } = await runningJob(off, 'MyTeam/App');
    expect(vars.CI_REGISTRY).toBeUndefined();
    expect(vars.CI_REGISTRY_IMAGE).toBeUndefined();
    expect(vars.CI_REGISTRY_USER.value).toBe('gitlab-ci-token');
    expect(payload.credentials).toEqual([]);
  });

  it("/jwt/auth: a running job's token may push and pull its own project only, in a token the registry can check", async () => {
    gl.reset();
    const { token, id } = await runningJob(gl, 'MyTeam/App');
    // docker login: no scope, the job's credentials.
    const login = await auth(
      `account=gitlab-ci-token&client_id=docker&offline_token=true&service=${REGISTRY_SERVICE}`,
      `gitlab-ci-token:${token}`,
    );
    expect(login.status).toBe(200);
    const loginToken = decode(((await login.json()) as { token: string }).token);
    expect(loginToken.ok).toBe(true);
    expect(loginToken.header).toEqual({ alg: 'RS256', kid: libtrustKeyId(createPublicKey(privateKey)) });
    expect(loginToken.header.kid).toMatch(/^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$/);
    expect(loginToken.claims).toMatchObject({ iss: REGISTRY_ISSUER, aud: REGISTRY_SERVICE, access: [] });
    expect(loginToken.claims.exp - loginToken.claims.iat).toBe(300);

    // docker push: both scopes in one request, as Docker sends them; another project gets nothing.
    const push = await auth(
      `service=${REGISTRY_SERVICE}&scope=repository:myteam/app:push,pull&scope=repository:other/app:pull`,
      `gitlab-ci-token:${token}`,
    );
    const claims = decode(((await push.json()) as { token: string }).token).claims;
    expect(claims.access).toEqual([{ type: 'repository', name: 'myteam/app', actions: ['push', 'pull'] }]);

    // Wrong credentials, and the same token once the job is over: 401, as GitLab answers.
    expect((await auth(`service=${REGISTRY_SERVICE}`, 'gitlab-ci-token:glcbt-wrong')).status).toBe(401);
    await fetch(`${gl.url}/_standin/jobs/${id}/cancel`, { method: 'POST' });
    expect((await auth(`service=${REGISTRY_SERVICE}`, `gitlab-ci-token:${token}`)).status).toBe(401);
    // Anonymous with nothing to ask for: 403; an unknown service: 404.
    expect((await auth(`service=${REGISTRY_SERVICE}`)).status).toBe(403);
    expect((await auth('service=other')).status).toBe(404);
    // Anonymous with a scope: a token without access (the projects are private).
    const anon = await auth(`service=${REGISTRY_SERVICE}&scope=repository:myteam/app:pull`);
    expect(decode(((await anon.json()) as { token: string }).token).claims.access).toEqual([]);
  });
});
