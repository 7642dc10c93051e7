// GitLab stand-in for tests: the documented runner API (status codes, fields, error bodies) on node:http, plus /_standin/ controls.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export type RunnerType = 'instance_type' | 'group_type' | 'project_type';
export type AccessLevel = 'not_protected' | 'ref_protected';

export interface StandinRunner {
  id: number;
  /** the runner authentication token; null once deleted server-side (/_standin/runners/:id/delete-token) */
  token: string | null;
  runnerType: RunnerType;
  groupId: number | null;
  projectId: number | null;
  description: string;
  tagList: string[];
  runUntagged: boolean;
  locked: boolean;
  accessLevel: AccessLevel;
  maximumTimeout: number | null;
  paused: boolean;
  maintenanceNote: string | null;
  createdVia: 'user' | 'registration' | 'preset';
  createdAt: string;
  contactedAt: string | null;
  tokenExpiresAt: string | null;
}

export interface StandinManager {
  id: number;
  runnerId: number;
  systemId: string;
  createdAt: string;
  contactedAt: string;
}

/** One API call as the stand-in saw it: never a body, query string or header, so never a token. */
export interface StandinCall {
  method: string;
  path: string;
  status: number;
  at: string;
}

export interface StandinState {
  registrationTokensEnabled: boolean;
  runners: StandinRunner[];
  managers: StandinManager[];
  calls: StandinCall[];
}

export interface StandinTokens {
  /** scopes create_runner + manage_runner, administrator: can create, update, list and delete runners */
  accessToken: string;
  /** scope create_runner only: can create runners but not update them (as on GitLab) */
  accessTokenCreateOnly: string;
  /** scope read_api: POST /user/runners answers 403 */
  accessTokenNoScope: string;
  /** the instance's legacy registration token */
  registrationToken: string;
  /** glrt- token of the pre-created instance runner (#1), for runner-token (shared) mode */
  runnerToken: string;
}

/** Token file names in tokensDir: reference them as `file:<tokensDir>/<name>`. */
export const TOKEN_FILES: Record<keyof StandinTokens, string> = {
  accessToken: 'access-token',
  accessTokenCreateOnly: 'access-token-create-only',
  accessTokenNoScope: 'access-token-no-scope',
  registrationToken: 'registration-token',
  runnerToken: 'runner-token',
};

export interface FailRule {
  method?: string;
  /** exact API path, e.g. /api/v4/user/runners */
  path: string;
  status: number;
  /** how many matching calls fail (default 1) */
  times?: number;
  /** only calls whose description (create/update) contains this */
  descriptionIncludes?: string;
}

export interface StandinOptions {
  port?: number;
  host?: string;
  /** write one file per token here (mode 0600); existing files are reused so a restart keeps the tokens */
  tokensDir?: string;
  registrationTokensEnabled?: boolean;
  /** delay every API answer (timeout tests) */
  delayMs?: number;
}

export interface GitlabStandin {
  url: string;
  port: number;
  /** live state: read it in tests, or GET /_standin/state from another process */
  readonly state: StandinState;
  tokens: StandinTokens;
  /** absolute token file paths when tokensDir was given */
  tokenFiles?: Record<keyof StandinTokens, string>;
  close(): Promise<void>;
  reset(): void;
  setRegistrationTokens(enabled: boolean): void;
  /** the runner keeps existing but its token stops working (as after a token reset by someone else) */
  deleteRunnerToken(id: number): void;
  /** the runner disappears (as if deleted in the UI) */
  deleteRunner(id: number): void;
  failNext(rule: FailRule): void;
  /** calls to the API (not /_standin/), optionally filtered */
  calls(filter?: { method?: string; path?: string | RegExp }): StandinCall[];
  setDelay(ms: number): void;
}

type Params = Record<string, unknown>;

interface AccessToken {
  scopes: string[];
  admin: boolean;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown> | null,
  ) {
    super(`HTTP ${status}`);
  }
}

// GitLab's error shapes: Grape validation → {error}, render_api_error! → {message}.
const badRequest = (error: string) => new HttpError(400, { error });
const unauthorized = () => new HttpError(401, { message: '401 Unauthorized' });
const forbidden = (reason?: string) => new HttpError(403, { message: reason ? `403 Forbidden - ${reason}` : '403 Forbidden' });
const notFound = (what?: string) => new HttpError(404, { message: what ? `404 ${what} Not Found` : '404 Not Found' });
const insufficientScope = (scope: string) =>
  new HttpError(403, {
    error: 'insufficient_scope',
    error_description: 'The request requires higher privileges than provided by the access token.',
    scope,
  });

const RUNNER_TYPES: RunnerType[] = ['instance_type', 'group_type', 'project_type'];
const ACCESS_LEVELS: AccessLevel[] = ['not_protected', 'ref_protected'];
const RUNNER_FIELDS = ['description', 'paused', 'active', 'tag_list', 'run_untagged', 'locked', 'access_level', 'maximum_timeout', 'maintenance_note'];

const randomToken = (prefix: string, n = 20) => prefix + randomBytes(n).toString('base64url').slice(0, n);

function loadOrMakeTokens(dir: string | undefined): StandinTokens {
  const fresh: StandinTokens = {
    accessToken: randomToken('glpat-'),
    accessTokenCreateOnly: randomToken('glpat-'),
    accessTokenNoScope: randomToken('glpat-'),
    registrationToken: randomToken('GR1348941'),
    runnerToken: randomToken('glrt-'),
  };
  if (!dir) return fresh;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const key of Object.keys(TOKEN_FILES) as (keyof StandinTokens)[]) {
    const file = join(dir, TOKEN_FILES[key]);
    if (existsSync(file) && readFileSync(file, 'utf8').trim()) fresh[key] = readFileSync(file, 'utf8').trim();
    else writeFileSync(file, `${fresh[key]}\n`, { mode: 0o600 });
  }
  return fresh;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 1024 * 1024) throw new HttpError(413, { message: '413 Request Entity Too Large' });
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Grape merges query string and body; the body may be JSON, urlencoded or multipart (curl --form). */
function parseParams(req: IncomingMessage, url: URL, body: string): Params {
  const params: Params = {};
  const addForm = (key: string, value: string) => {
    if (key.endsWith('[]')) {
      const k = key.slice(0, -2);
      params[k] = [...((params[k] as string[] | undefined) ?? []), value];
    } else params[key] = value;
  };
  url.searchParams.forEach((v, k) => addForm(k, v));
  const type = (req.headers['content-type'] ?? '').toLowerCase();
  if (!body.trim()) return params;
  if (type.startsWith('application/json')) {
    let data: unknown;
    try {
      data = JSON.parse(body);
    } catch {
      throw badRequest('The provided content-type \'application/json\' body is not valid JSON');
    }
    if (!data || typeof data !== 'object' || Array.isArray(data)) throw badRequest('body must be a JSON object');
    Object.assign(params, data);
  } else if (type.startsWith('multipart/form-data')) {
    const boundary = /boundary="?([^";]+)"?/.exec(type)?.[1];
    if (!boundary) throw badRequest('multipart body without boundary');
    for (const part of body.split(`--${boundary}`)) {
      const m = /^\r\n([\s\S]*?)\r\n\r\n([\s\S]*)\r\n$/.exec(part);
      const name = m && /name="([^"]+)"/.exec(m[1])?.[1];
      if (m && name) addForm(name, m[2]);
    }
  } else {
    new URLSearchParams(body).forEach((v, k) => addForm(k, v));
  }
  return params;
}

// Grape's coercions, with its messages for values that do not coerce.
function str(p: Params, key: string): string | undefined {
  const v = p[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' && typeof v !== 'number') throw badRequest(`${key} is invalid`);
  return String(v);
}

function bool(p: Params, key: string): boolean | undefined {
  const v = p[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string' && ['true', '1', 't', 'yes'].includes(v.toLowerCase())) return true;
  if (typeof v === 'string' && ['false', '0', 'f', 'no'].includes(v.toLowerCase())) return false;
  if (v === 1 || v === 0) return v === 1;
  throw badRequest(`${key} is invalid`);
}

function int(p: Params, key: string): number | null | undefined {
  if (!(key in p)) return undefined;
  const v = p[key];
  if (v === null || v === '') return null;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : NaN;
  if (!Number.isInteger(n)) throw badRequest(`${key} is invalid`);
  return n;
}

/** tag_list: an array, or a comma-separated string (CommaSeparatedToArray). */
function tags(p: Params): string[] | undefined {
  const v = p.tag_list;
  if (v === undefined || v === null) return undefined;
  const list = Array.isArray(v) ? v.flatMap((t) => String(t).split(',')) : typeof v === 'string' ? v.split(',') : null;
  if (!list) throw badRequest('tag_list is invalid');
  return [...new Set(list.map((t) => t.trim()).filter(Boolean))];
}

function oneOf<T extends string>(p: Params, key: string, values: readonly T[]): T | undefined {
  const v = str(p, key);
  if (v === undefined) return undefined;
  if (!values.includes(v as T)) throw badRequest(`${key} does not have a valid value`);
  return v as T;
}

export async function startGitlabStandin(opts: StandinOptions = {}): Promise<GitlabStandin> {
  const tokens = loadOrMakeTokens(opts.tokensDir);
  const accessTokens = new Map<string, AccessToken>([
    [tokens.accessToken, { scopes: ['create_runner', 'manage_runner'], admin: true }],
    [tokens.accessTokenCreateOnly, { scopes: ['create_runner'], admin: true }],
    [tokens.accessTokenNoScope, { scopes: ['read_api'], admin: true }],
  ]);
  let delayMs = opts.delayMs ?? 0;
  let failRules: (FailRule & { left: number })[] = [];
  const state: StandinState = { registrationTokensEnabled: opts.registrationTokensEnabled ?? true, runners: [], managers: [], calls: [] };
  let nextRunnerId = 1;
  let nextManagerId = 1;

  const now = () => new Date().toISOString();

  const reset = () => {
    state.registrationTokensEnabled = opts.registrationTokensEnabled ?? true;
    state.runners.length = 0;
    state.managers.length = 0;
    state.calls.length = 0;
    failRules = [];
    nextRunnerId = 1;
    nextManagerId = 1;
    // The runner an administrator made in the UI, whose glrt- token every node shares in runner-token mode.
    state.runners.push(
      newRunner({ runnerType: 'instance_type', description: 'shared runner made in the UI', tagList: ['shared'], createdVia: 'preset', runUntagged: true }, tokens.runnerToken),
    );
  };

  function newRunner(fields: Partial<StandinRunner> & Pick<StandinRunner, 'runnerType' | 'createdVia'>, token: string): StandinRunner {
    return {
      id: nextRunnerId++,
      token,
      groupId: null,
      projectId: null,
      description: '',
      tagList: [],
      runUntagged: true,
      locked: false,
      accessLevel: 'not_protected',
      maximumTimeout: null,
      paused: false,
      maintenanceNote: null,
      createdAt: now(),
      contactedAt: null,
      tokenExpiresAt: null,
      ...fields,
    };
  }

  const runnerByToken = (p: Params): StandinRunner => {
    const token = str(p, 'token');
    if (!token) throw badRequest('token is missing');
    const runner = state.runners.find((r) => r.token !== null && r.token === token);
    if (!runner) throw forbidden();
    return runner;
  };

  const accessFor = (req: IncomingMessage, scopes: string[]): AccessToken => {
    const header = req.headers['private-token'];
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const value = (Array.isArray(header) ? header[0] : header) ?? bearer;
    const token = value ? accessTokens.get(value) : undefined;
    if (!token) throw unauthorized();
    if (!token.scopes.some((s) => s === 'api' || scopes.includes(s))) throw insufficientScope(['api', ...scopes].join(' '));
    return token;
  };

  const runnerById = (idText: string): StandinRunner => {
    const runner = state.runners.find((r) => r.id === Number(idText));
    if (!runner) throw notFound('Runner');
    return runner;
  };

  /** Runner attributes shared by create and update; undefined means "not given". */
  const runnerAttributes = (p: Params): Partial<StandinRunner> => {
    if (p.active !== undefined && p.paused !== undefined) throw badRequest('active, paused are mutually exclusive');
    const out: Partial<StandinRunner> = {};
    const description = str(p, 'description');
    if (description !== undefined) out.description = description;
    const paused = bool(p, 'paused');
    const active = bool(p, 'active');
    if (paused !== undefined) out.paused = paused;
    if (active !== undefined) out.paused = !active;
    const tagList = tags(p);
    if (tagList !== undefined) out.tagList = tagList;
    const runUntagged = bool(p, 'run_untagged');
    if (runUntagged !== undefined) out.runUntagged = runUntagged;
    const locked = bool(p, 'locked');
    if (locked !== undefined) out.locked = locked;
    const accessLevel = oneOf(p, 'access_level', ACCESS_LEVELS);
    if (accessLevel !== undefined) out.accessLevel = accessLevel;
    const maximumTimeout = int(p, 'maximum_timeout');
    if (maximumTimeout !== undefined) {
      if (maximumTimeout !== null && maximumTimeout < 600) throw new HttpError(400, { message: { maximum_timeout: ['needs to be at least 10 minutes'] } });
      out.maximumTimeout = maximumTimeout;
    }
    const note = str(p, 'maintenance_note');
    if (note !== undefined) out.maintenanceNote = note;
    return out;
  };

  const status = (r: StandinRunner) => (r.paused ? 'paused' : r.contactedAt ? 'online' : 'never_contacted');

  const summary = (r: StandinRunner) => ({
    id: r.id,
    description: r.description,
    ip_address: null,
    active: !r.paused,
    paused: r.paused,
    is_shared: r.runnerType === 'instance_type',
    runner_type: r.runnerType,
    name: null,
    online: Boolean(r.contactedAt),
    status: status(r),
  });

  const details = (r: StandinRunner) => ({
    ...summary(r),
    architecture: null,
    platform: null,
    contacted_at: r.contactedAt,
    maintenance_note: r.maintenanceNote,
    projects: r.projectId ? [{ id: r.projectId }] : [],
    groups: r.groupId ? [{ id: r.groupId }] : [],
    revision: null,
    tag_list: r.tagList,
    version: null,
    run_untagged: r.runUntagged,
    locked: r.locked,
    access_level: r.accessLevel,
    maximum_timeout: r.maximumTimeout,
  });

  const registration = (r: StandinRunner) => ({ id: r.id, token: r.token, token_expires_at: r.tokenExpiresAt });

  const touchManager = (runner: StandinRunner, systemId: string | undefined) => {
    if (!systemId) return;
    const existing = state.managers.find((m) => m.runnerId === runner.id && m.systemId === systemId);
    if (existing) existing.contactedAt = now();
    else state.managers.push({ id: nextManagerId++, runnerId: runner.id, systemId, createdAt: now(), contactedAt: now() });
  };

  const removeRunner = (runner: StandinRunner) => {
    state.runners.splice(state.runners.indexOf(runner), 1);
    for (let i = state.managers.length - 1; i >= 0; i--) if (state.managers[i].runnerId === runner.id) state.managers.splice(i, 1);
  };

  type Reply = { status: number; body?: unknown; headers?: Record<string, string> };

  async function api(req: IncomingMessage, method: string, path: string, p: Params, url: URL): Promise<Reply> {
    let m: RegExpExecArray | null;
    if (method === 'POST' && path === '/api/v4/user/runners') {
      accessFor(req, ['create_runner']);
      const runnerType = oneOf(p, 'runner_type', RUNNER_TYPES);
      if (!runnerType) throw badRequest('runner_type is missing, runner_type does not have a valid value');
      const groupId = int(p, 'group_id');
      const projectId = int(p, 'project_id');
      if (runnerType === 'group_type' && !groupId) throw new HttpError(400, { message: '400 Bad request - group_id is required for group_type runners' });
      if (runnerType === 'project_type' && !projectId) throw new HttpError(400, { message: '400 Bad request - project_id is required for project_type runners' });
      const attrs = runnerAttributes(p);
      const runner = newRunner(
        {
          runnerType,
          groupId: runnerType === 'group_type' ? groupId! : null,
          projectId: runnerType === 'project_type' ? projectId! : null,
          createdVia: 'user',
          ...attrs,
        },
        randomToken('glrt-'),
      );
      state.runners.push(runner);
      return { status: 201, body: registration(runner) };
    }
    if (method === 'POST' && path === '/api/v4/runners') {
      const token = str(p, 'token');
      if (token === undefined) throw badRequest('token is missing');
      // As RegisterRunnerService: with registration disallowed any presented token gets 410, valid or not.
      if (token && !state.registrationTokensEnabled) throw new HttpError(410, { message: '410 Gone - runner registration disallowed' });
      if (token !== tokens.registrationToken) throw forbidden('invalid token supplied');
      const attrs = runnerAttributes(p);
      // Runners registered with a registration token get a token without the glrt- prefix.
      const runner = newRunner({ runnerType: 'instance_type', createdVia: 'registration', ...attrs }, randomBytes(15).toString('hex'));
      state.runners.push(runner);
      return { status: 201, body: registration(runner) };
    }
    if (method === 'POST' && path === '/api/v4/runners/verify') {
      const runner = runnerByToken(p);
      const systemId = str(p, 'system_id');
      touchManager(runner, systemId);
      // A runner created in the UI (glrt-) is not "contacted" by verify, only when it asks for jobs.
      if (runner.createdVia === 'registration') runner.contactedAt = now();
      return { status: 200, body: registration(runner) };
    }
    if (method === 'DELETE' && path === '/api/v4/runners') {
      removeRunner(runnerByToken(p));
      return { status: 204 };
    }
    if (method === 'DELETE' && path === '/api/v4/runners/managers') {
      const runner = runnerByToken(p);
      const systemId = str(p, 'system_id');
      if (!systemId) throw badRequest('system_id is missing');
      const i = state.managers.findIndex((mg) => mg.runnerId === runner.id && mg.systemId === systemId);
      if (i < 0) throw notFound('Runner manager not found');
      state.managers.splice(i, 1);
      return { status: 204 };
    }
    if (method === 'POST' && path === '/api/v4/jobs/request') {
      const runner = runnerByToken(p);
      runner.contactedAt = now();
      touchManager(runner, str(p, 'system_id'));
      return { status: 204 };
    }
    if (method === 'GET' && path === '/api/v4/runners/all') {
      const token = accessFor(req, ['read_api', 'manage_runner']);
      if (!token.admin) throw forbidden();
      const wanted = tags(p) ?? [];
      const type = oneOf(p, 'type', RUNNER_TYPES);
      const list = state.runners.filter((r) => wanted.every((t) => r.tagList.includes(t)) && (!type || r.runnerType === type));
      const perPage = Math.min(100, Math.max(1, Number(url.searchParams.get('per_page') ?? 20) || 20));
      const page = Math.max(1, Number(url.searchParams.get('page') ?? 1) || 1);
      const slice = list.slice((page - 1) * perPage, page * perPage);
      const hasNext = page * perPage < list.length;
      return {
        status: 200,
        body: slice.map(summary),
        headers: { 'x-page': String(page), 'x-per-page': String(perPage), 'x-total': String(list.length), 'x-next-page': hasNext ? String(page + 1) : '' },
      };
    }
    if ((m = /^\/api\/v4\/runners\/(\d+)\/managers$/.exec(path)) && method === 'GET') {
      accessFor(req, ['read_api', 'manage_runner']);
      const runner = runnerById(m[1]);
      return {
        status: 200,
        body: state.managers
          .filter((mg) => mg.runnerId === runner.id)
          .map((mg) => ({ id: mg.id, system_id: mg.systemId, version: null, revision: null, platform: null, architecture: null, created_at: mg.createdAt, contacted_at: mg.contactedAt, ip_address: null, status: 'online', job_execution_status: 'idle' })),
      };
    }
    if ((m = /^\/api\/v4\/runners\/(\d+)$/.exec(path))) {
      if (method === 'GET') {
        accessFor(req, ['read_api', 'manage_runner']);
        return { status: 200, body: details(runnerById(m[1])) };
      }
      if (method === 'PUT') {
        accessFor(req, ['manage_runner']);
        const runner = runnerById(m[1]);
        if (!RUNNER_FIELDS.some((f) => f in p)) throw badRequest(`${RUNNER_FIELDS.join(', ')} are missing, at least one parameter must be provided`);
        Object.assign(runner, runnerAttributes(p));
        return { status: 200, body: details(runner) };
      }
      if (method === 'DELETE') {
        accessFor(req, ['manage_runner']);
        removeRunner(runnerById(m[1]));
        return { status: 204 };
      }
    }
    throw notFound();
  }

  function control(method: string, path: string, p: Params): Reply {
    let m: RegExpExecArray | null;
    if (method === 'GET' && path === '/_standin/state') return { status: 200, body: state };
    if (method === 'POST' && path === '/_standin/reset') {
      reset();
      return { status: 204 };
    }
    if (method === 'POST' && (m = /^\/_standin\/registration-tokens\/(enable|disable)$/.exec(path))) {
      state.registrationTokensEnabled = m[1] === 'enable';
      return { status: 204 };
    }
    if (method === 'POST' && (m = /^\/_standin\/runners\/(\d+)\/delete-token$/.exec(path))) {
      runnerById(m[1]).token = null;
      return { status: 204 };
    }
    if (method === 'DELETE' && (m = /^\/_standin\/runners\/(\d+)$/.exec(path))) {
      removeRunner(runnerById(m[1]));
      return { status: 204 };
    }
    if (method === 'POST' && path === '/_standin/fail') {
      const rule = p as unknown as FailRule;
      if (typeof rule.path !== 'string' || !Number.isInteger(Number(rule.status))) throw badRequest('path and status are required');
      failRules.push({ ...rule, status: Number(rule.status), left: Number(rule.times ?? 1) });
      return { status: 204 };
    }
    if (method === 'POST' && path === '/_standin/delay') {
      delayMs = Number(p.ms ?? 0);
      return { status: 204 };
    }
    throw notFound();
  }

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://standin');
    const method = (req.method ?? 'GET').toUpperCase();
    const path = url.pathname;
    const isControl = path.startsWith('/_standin/');
    let reply: Reply;
    try {
      const body = await readBody(req);
      const params = parseParams(req, url, body);
      if (isControl) reply = control(method, path, params);
      else {
        if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
        const rule = failRules.find(
          (r) =>
            r.left > 0 &&
            r.path === path &&
            (!r.method || r.method.toUpperCase() === method) &&
            (!r.descriptionIncludes || String(params.description ?? '').includes(r.descriptionIncludes)),
        );
        if (rule) {
          rule.left--;
          throw new HttpError(rule.status, { message: `${rule.status} injected by the stand-in` });
        }
        reply = await api(req, method, path, params, url);
      }
    } catch (err) {
      reply = err instanceof HttpError ? { status: err.status, body: err.body ?? undefined } : { status: 500, body: { message: '500 Internal Server Error' } };
    }
    if (!isControl) state.calls.push({ method, path, status: reply.status, at: now() });
    if (res.destroyed) return;
    const headers: Record<string, string> = { ...(reply.headers ?? {}) };
    if (reply.body !== undefined && reply.status !== 204) {
      headers['content-type'] = 'application/json';
      res.writeHead(reply.status, headers).end(JSON.stringify(reply.body));
    } else res.writeHead(reply.status, headers).end();
  };

  reset();
  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  return {
    url,
    port,
    state,
    tokens,
    tokenFiles: opts.tokensDir
      ? (Object.fromEntries(Object.entries(TOKEN_FILES).map(([k, f]) => [k, join(opts.tokensDir!, f)])) as Record<keyof StandinTokens, string>)
      : undefined,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
    reset,
    setRegistrationTokens(enabled) {
      state.registrationTokensEnabled = enabled;
    },
    deleteRunnerToken(id) {
      runnerById(String(id)).token = null;
    },
    deleteRunner(id) {
      removeRunner(runnerById(String(id)));
    },
    failNext(rule) {
      failRules.push({ ...rule, left: rule.times ?? 1 });
    },
    calls(filter = {}) {
      return state.calls.filter(
        (c) =>
          (!filter.method || c.method === filter.method.toUpperCase()) &&
          (!filter.path || (typeof filter.path === 'string' ? c.path === filter.path : filter.path.test(c.path))),
      );
    },
    setDelay(ms) {
      delayMs = ms;
    },
  };
}
