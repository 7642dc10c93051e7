// The stand-in's smart HTTP: real git clones and pushes through git http-backend, with GitLab's credentials and refusals.
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accessDenied, basicCredentials, parseCgi, smartService } from './git-http.js';
import { startGitlabStandin, type GitlabStandin } from './standin.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'rf-git-http-'));
let gl: GitlabStandin;

const GIT_ENV = {
  ...process.env,
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_TERMINAL_PROMPT: '0',
  GIT_AUTHOR_NAME: 't',
  GIT_AUTHOR_EMAIL: 't@example.invalid',
  GIT_COMMITTER_NAME: 't',
  GIT_COMMITTER_EMAIL: 't@example.invalid',
};
async function git(args: string[], cwd?: string): Promise<{ code: number; out: string }> {
  try {
    const r = await run('git', args, { cwd, env: GIT_ENV });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? 1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

async function control(path: string, json: unknown) {
  const res = await fetch(`${gl.url}/_standin/${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(json),
  });
  expect(res.status).toBe(201);
  return (await res.json()) as { username: string; token: string };
}

const urlWith = (user: string, token: string) =>
  `${gl.url.replace('://', `://${encodeURIComponent(user)}:${encodeURIComponent(token)}@`)}/ops/fleet.git`;

beforeAll(async () => {
  gl = await startGitlabStandin({ tokensDir: join(dir, 'tokens') });
  await control('projects', { path: 'ops/fleet', files: { 'README.md': 'fleet\n' } }).catch(() => undefined);
});
afterAll(() => gl.close());

describe('smart HTTP (git http-backend behind GitLab auth)', () => {
  it('a project access token with write_repository clones and pushes; the project head moves', async () => {
    const pat = await control('git-tokens', {
      project: 'ops/fleet',
      kind: 'project',
      scopes: ['write_repository'],
    });
    const work = join(dir, 'rw');
    // protocol.version=0: the smart protocol as go-git (Flux) speaks it; the default v2 goes through the same CGI.
    expect((await git(['-c', 'protocol.version=0', 'clone', urlWith('x', pat.token), work])).code).toBe(0);
    writeFileSync(join(work, 'a.yaml'), 'a: 1\n');
    await git(['add', 'a.yaml'], work);
    await git(['commit', '-m', 'a'], work);
    const push = await git(['push', 'origin', 'HEAD:main'], work);
    expect(push.code, push.out).toBe(0);
    const head = (await git(['rev-parse', 'HEAD'], work)).out.trim();
    const again = join(dir, 'again');
    expect((await git(['clone', urlWith('x', pat.token), again])).code).toBe(0);
    expect((await git(['rev-parse', 'HEAD'], again)).out.trim()).toBe(head);
  });

  it('a read-only deploy token clones but cannot push; wrong credentials are 401 with a Basic challenge', async () => {
    const dt = await control('git-tokens', {
      project: 'ops/fleet',
      kind: 'deploy',
      scopes: ['read_repository'],
    });
    const work = join(dir, 'ro');
    expect((await git(['clone', urlWith(dt.username, dt.token), work])).code).toBe(0);
    writeFileSync(join(work, 'b.yaml'), 'b: 1\n');
    await git(['add', 'b.yaml'], work);
    await git(['commit', '-m', 'b'], work);
    const push = await git(['push', 'origin', 'HEAD:main'], work);
    expect(push.code).not.toBe(0);
    expect(push.out).toMatch(/403/);
    // A deploy token authenticates only under its own username.
    expect((await git(['clone', urlWith('someone', dt.token), join(dir, 'x')])).out).toMatch(
      /Authentication failed|401/,
    );
    const res = await fetch(`${gl.url}/ops/fleet.git/info/refs?service=git-upload-pack`);
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Basic realm="GitLab"');
  });

  it('refusals as GitAccess words them', () => {
    expect(
      accessDenied({ kind: 'job', abilities: ['build_download_code', 'build_push_code'] }, 'git-upload-pack'),
    ).toBeUndefined();
    expect(
      accessDenied(
        { kind: 'job', abilities: ['build_download_code', 'build_push_code'] },
        'git-receive-pack',
      )?.raw.toString(),
    ).toBe('You are not allowed to push code to this project.');
    expect(
      accessDenied(
        { kind: 'deploy-token', abilities: ['download_code'] },
        'git-receive-pack',
      )?.raw.toString(),
    ).toBe('You are not allowed to upload code.');
    expect(accessDenied({ kind: 'access-token', abilities: [] }, 'git-upload-pack')?.status).toBe(403);
    expect(
      accessDenied({ kind: 'access-token', abilities: ['download_code', 'push_code'] }, 'git-receive-pack'),
    ).toBeUndefined();
  });

  it('routes only the four smart requests; parses CGI answers and Basic credentials', () => {
    const q = (s: string) => new URLSearchParams(s);
    expect(smartService('GET', 'info/refs', q('service=git-upload-pack'))).toBe('git-upload-pack');
    expect(smartService('GET', 'info/refs', q('service=git-receive-pack'))).toBe('git-receive-pack');
    expect(smartService('GET', 'info/refs', q(''))).toBeNull();
    expect(smartService('POST', 'git-receive-pack', q(''))).toBe('git-receive-pack');
    expect(smartService('GET', 'git-upload-pack', q(''))).toBeNull();
    const r = parseCgi(Buffer.from('Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope'));
    expect(r).toMatchObject({ status: 404, headers: { 'Content-Type': 'text/plain' } });
    expect(r.raw.toString()).toBe('nope');
    expect(basicCredentials(`Basic ${Buffer.from('u:p:q').toString('base64')}`)).toEqual({
      login: 'u',
      password: 'p:q',
    });
    expect(basicCredentials('Bearer x')).toBeUndefined();
  });
});
