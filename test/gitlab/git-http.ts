// git's smart HTTP protocol (upload-pack and receive-pack, gitprotocol-http(5)) for the stand-in's repositories, served
// by Debian's real `git http-backend` (CGI), after authentication and access checks as GitLab makes them:
// lib/gitlab/auth.rb (find_for_git_client), app/controllers/repositories/git_http_client_controller.rb and
// lib/gitlab/git_access.rb.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';

export type GitService = 'git-upload-pack' | 'git-receive-pack';

/** The abilities a credential carries for git (Gitlab::Auth's *_authentication_abilities, git's part of them). */
export type GitAbility = 'download_code' | 'push_code' | 'build_download_code' | 'build_push_code';

export interface GitActor {
  kind: 'job' | 'access-token' | 'deploy-token';
  abilities: GitAbility[];
}

export interface GitReply {
  status: number;
  headers?: Record<string, string>;
  raw: Buffer;
}

/**
 * The smart-protocol request `file` (the path after `<project>.git/`) is, or null for anything else (the dumb
 * protocol's files stay with the caller). GitLab routes exactly these four (config/routes/git_http.rb).
 */
export function smartService(method: string, file: string, query: URLSearchParams): GitService | null {
  const service = query.get('service');
  if (
    method === 'GET' &&
    file === 'info/refs' &&
    (service === 'git-upload-pack' || service === 'git-receive-pack')
  )
    return service;
  if (method === 'POST' && (file === 'git-upload-pack' || file === 'git-receive-pack')) return file;
  return null;
}

/** Scope → git abilities of an access token (Gitlab::Auth#abilities_for_scopes; read_api is read-only API access). */
const SCOPE_ABILITIES: Record<string, GitAbility[]> = {
  api: ['download_code', 'push_code'],
  read_api: ['download_code'],
  read_repository: ['download_code'],
  write_repository: ['download_code', 'push_code'],
};

export const abilitiesForScopes = (scopes: string[]): GitAbility[] => [
  ...new Set(scopes.flatMap((s) => SCOPE_ABILITIES[s] ?? [])),
];

/** `Authorization: Basic …` as login and password, or undefined. */
export function basicCredentials(
  header: string | undefined,
): { login: string; password: string } | undefined {
  const b64 = /^Basic (.+)$/i.exec(header ?? '')?.[1];
  if (!b64) return undefined;
  const text = Buffer.from(b64, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon < 0) return undefined;
  return { login: text.slice(0, colon), password: text.slice(colon + 1) };
}

interface DeployToken {
  projectId: number;
  username: string;
  scopes: string[];
}

/**
 * Deploy tokens and project access tokens, per project. A deploy token authenticates only with its own username
 * (Gitlab::Auth#deploy_token_check); an access token with any login (personal_access_token_check ignores it).
 */
export class GitTokens {
  private readonly deploy = new Map<string, DeployToken>();
  private readonly project = new Map<string, { projectId: number; scopes: string[] }>();
  private next = 1;

  createDeployToken(projectId: number, scopes: string[]): { username: string; token: string } {
    const username = `gitlab+deploy-token-${this.next++}`;
    const token = `gldt-${randomBytes(15).toString('hex')}`;
    this.deploy.set(token, { projectId, username, scopes });
    return { username, token };
  }

  createProjectAccessToken(projectId: number, scopes: string[]): { username: string; token: string } {
    const token = `glpat-${randomBytes(15).toString('hex')}`;
    this.project.set(token, { projectId, scopes });
    return { username: `project_${projectId}_bot_${this.next++}`, token };
  }

  /** The actor for this project, or undefined when the credential is none of these tokens (or another project's). */
  actor(projectId: number, login: string, password: string): GitActor | undefined {
    const pat = this.project.get(password);
    if (pat?.projectId === projectId)
      return { kind: 'access-token', abilities: abilitiesForScopes(pat.scopes) };
    const dt = this.deploy.get(password);
    if (dt && dt.projectId === projectId && dt.username === login) {
      // DeployToken scopes: read_repository → download_code, write_repository → push_code too.
      const abilities: GitAbility[] = [];
      if (dt.scopes.includes('read_repository') || dt.scopes.includes('write_repository'))
        abilities.push('download_code');
      if (dt.scopes.includes('write_repository')) abilities.push('push_code');
      return { kind: 'deploy-token', abilities };
    }
    return undefined;
  }
}

const text = (status: number, body: string, headers: Record<string, string> = {}): GitReply => ({
  status,
  headers: { 'content-type': 'text/plain; charset=utf-8', ...headers },
  raw: Buffer.from(body),
});

/** git_http_client_controller.rb#render_challenge: what makes git send (or ask for) credentials. */
export const challenge = (): GitReply =>
  text(401, 'HTTP Basic: Access denied\n', { 'WWW-Authenticate': 'Basic realm="GitLab"' });

/**
 * Gitlab::GitAccess#check for one service, as far as the stand-in models it: the credential's abilities first
 * (check_authentication_abilities!), then push rights. A job token carries build_push_code, but pushing with it needs
 * the project's "allow Git push requests" job token setting, off by default (BuildAccess), so it is refused.
 */
export function accessDenied(actor: GitActor, service: GitService): GitReply | undefined {
  const has = (a: GitAbility) => actor.abilities.includes(a);
  if (service === 'git-upload-pack') {
    if (!has('download_code') && !has('build_download_code'))
      return text(403, 'You are not allowed to download code.');
    return undefined;
  }
  if (!has('push_code') && !has('build_push_code')) return text(403, 'You are not allowed to upload code.');
  if (actor.kind === 'job') return text(403, 'You are not allowed to push code to this project.');
  return undefined;
}

/** Request headers passed to the CGI as git http-backend reads them. */
function cgiEnv(
  repos: string,
  pathInfo: string,
  method: string,
  query: URLSearchParams,
  headers: IncomingHttpHeaders,
  body: Buffer,
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_PROJECT_ROOT: repos,
    GIT_HTTP_EXPORT_ALL: '1',
    // http.receivepack defaults to on only for an authenticated user: the checks above are that authentication.
    REMOTE_USER: 'standin',
    REQUEST_METHOD: method,
    PATH_INFO: pathInfo,
    QUERY_STRING: query.toString(),
    CONTENT_LENGTH: String(body.length),
    GATEWAY_INTERFACE: 'CGI/1.1',
  };
  if (headers['content-type']) env.CONTENT_TYPE = headers['content-type'];
  const encoding = headers['content-encoding'];
  if (typeof encoding === 'string') env.HTTP_CONTENT_ENCODING = encoding;
  const protocol = headers['git-protocol'];
  if (typeof protocol === 'string') env.GIT_PROTOCOL = protocol;
  return env;
}

/** Runs `git http-backend` for one request and turns its CGI answer into a reply. */
export async function httpBackend(opts: {
  /** the folder that holds `<group>/<project>.git` */
  repos: string;
  projectPath: string;
  file: string;
  method: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  body: Buffer;
}): Promise<GitReply> {
  const pathInfo = `/${opts.projectPath}.git/${opts.file}`;
  const env = cgiEnv(opts.repos, pathInfo, opts.method, opts.query, opts.headers, opts.body);
  const out = await new Promise<Buffer>((resolve, reject) => {
    const child = spawn('git', ['http-backend'], { env, cwd: join(opts.repos) });
    const chunks: Buffer[] = [];
    const errs: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.stderr.on('data', (c: Buffer) => errs.push(c));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0 || chunks.length > 0) resolve(Buffer.concat(chunks));
      else reject(new Error(`git http-backend exited ${code}: ${Buffer.concat(errs).toString().trim()}`));
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.body);
  });
  return parseCgi(out);
}

/** A CGI answer: header lines, a blank line, the body; `Status: 404 Not Found` sets the status (default 200). */
export function parseCgi(out: Buffer): GitReply {
  let end = out.indexOf('\r\n\r\n');
  let sep = 4;
  const lf = out.indexOf('\n\n');
  if (end < 0 || (lf >= 0 && lf < end)) {
    end = lf;
    sep = 2;
  }
  if (end < 0) return { status: 502, raw: Buffer.from('git http-backend gave no headers\n') };
  const headers: Record<string, string> = {};
  let status = 200;
  for (const line of out.subarray(0, end).toString('latin1').split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10) || 500;
    else headers[name] = value;
  }
  return { status, headers, raw: out.subarray(end + sep) };
}

/**
 * After a push: the dumb protocol's files brought up to date (jobs still fetch over it) and the new head of main,
 * which the stand-in's next pipeline runs on.
 */
export async function afterReceivePack(bare: string): Promise<string | undefined> {
  const git = (args: string[]) =>
    new Promise<string>((resolve, reject) => {
      const child = spawn('git', args, {
        cwd: bare,
        env: { PATH: process.env.PATH, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null' },
      });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.on('error', reject);
      child.on('close', (code) =>
        code === 0 ? resolve(out.trim()) : reject(new Error(`git ${args[0]}: ${code}`)),
      );
    });
  await git(['update-server-info']);
  return git(['rev-parse', '--verify', '--quiet', 'refs/heads/main']).catch(() => undefined);
}
