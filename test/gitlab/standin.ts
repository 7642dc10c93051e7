// GitLab stand-in for tests: GitLab's runner and job API (status codes, fields, headers, side effects) on node:http,
// git repositories over git's dumb HTTP protocol, plus /_standin/ controls. The one stand-in the project accepts.
//
// Followed upstream (read, not copied; GitLab Rails of the 17.9 era, gitlab-runner v17.9.3):
// - registration, verify, delete, managers: lib/api/ci/runner.rb, lib/api/user_runners.rb, lib/api/ci/runners.rb.
// - authentication and heartbeats: lib/api/ci/helpers/runner.rb (authenticate_runner!: runner heartbeat, then the
//   manager for system_id, or '<legacy>' without one; verify with a glrt- token updates no contacted_at;
//   authenticate_job!: job token from `token` or the JOB-TOKEN header, 403 unless the job runs, heartbeats).
// - contacted_at: app/models/ci/runner.rb and ci/runner_manager.rb #heartbeat: every heartbeat lands in the Redis
//   cache that the API reads (cached_attr_reader), the database column only when it is older than a random
//   40–55 minutes (persist_cached_data?, UPDATE_CONTACT_COLUMN_EVERY; configurable: contactedAtPersistEveryMs).
// - job queue: lib/api/ci/runner.rb POST /jobs/request (X-GitLab-Last-Update: Ci::Runner#ensure_runner_queue_value,
//   runner_queue_value_latest?, tick_runner_queue when a matching job is queued or the runner changes),
//   app/services/ci/register_job_service.rb + Gitlab::Ci::Matching::RunnerMatcher (tags, run_untagged, paused).
// - job payload: lib/api/entities/ci/job_request/*.rb, app/presenters/ci/build_runner_presenter.rb (standin-jobs.ts).
// - job update: app/services/ci/update_build_state_service.rb (live trace off, GitLab's default: 200 at once),
//   trace: app/services/ci/append_build_trace_service.rb (416 with Range when the offset is not the trace size).
// - token expiry: Ci::Runner#compute_token_expiration (runner_token_expiration_interval), TokenAuthenticatable
//   (an expired token finds no runner: 403), POST /runners/reset_authentication_token (Entities::Ci::ResetTokenResult:
//   token_expires_at only when the token expires).
// - the runner side it must satisfy: gitlab-runner v17.9.3 common/network.go, network/gitlab.go, network/client.go,
//   network/trace.go, network/remote_job_state_response.go, network/patch_response.go.
// - container registry (opts.registry): CI_REGISTRY/CI_REGISTRY_IMAGE and the job's registry credentials
//   (standin-jobs.ts), GET /jwt/auth that the registry's token challenge sends Docker to (standin-registry.ts).
// Left out: artifacts and cache uploads, job timeouts enforced by GitLab, fair scheduling across projects, live trace
// chunks (202 on final update), canceling (a canceled job is canceled at once), the dependency proxy, trace limits.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CiConfigError, parseCiJob } from './standin-ci.js';
import { commitFiles, dumbHttpFile, repoDir, writePipelineRef } from './standin-git.js';
import {
  abilitiesForScopes,
  accessDenied,
  afterReceivePack,
  basicCredentials,
  challenge,
  GitTokens,
  httpBackend,
  smartService,
  type GitActor,
  type GitService,
} from './git-http.js';
import { fullAccessToken, registryAuth, registrySigner } from './standin-registry.js';
import {
  jobPayload,
  type JobStatus,
  type JobVariableInput,
  runnerMatchesJob,
  type StandinJob,
  type StandinProject,
  FAILURE_REASONS,
} from './standin-jobs.js';

export type { JobStatus, StandinJob, StandinProject } from './standin-jobs.js';

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
  /** what the API shows: GitLab's Redis-cached value, set by every heartbeat */
  contactedAt: string | null;
  /** the database column: written only when older than contactedAtPersistEveryMs (persist_cached_data?) */
  contactedAtPersisted: string | null;
  tokenExpiresAt: string | null;
  /** X-GitLab-Last-Update: the runner's queue value (Redis runner:build_queue:<token>, 1 hour) */
  queueValue: string | null;
  queueValueExpiresAt: number;
}

export interface StandinManager {
  id: number;
  runnerId: number;
  /** system_id, or '<legacy>' for calls without one (LEGACY_SYSTEM_XID) */
  systemId: string;
  createdAt: string;
  /** API-visible (cached) contact time; null until a heartbeat that counts (verify with a glrt- token does not) */
  contactedAt: string | null;
  contactedAtPersisted: string | null;
  version: string | null;
  revision: string | null;
  platform: string | null;
  architecture: string | null;
  executor: string | null;
  ipAddress: string | null;
  config: Record<string, unknown> | null;
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
  /** ApplicationSetting admin_mode: admin API calls need a token with the admin_mode scope */
  adminMode: boolean;
  /** runner_token_expiration_interval: seconds a new or reset runner token lives; null: forever */
  runnerTokenExpirationSeconds: number | null;
  runners: StandinRunner[];
  managers: StandinManager[];
  projects: StandinProject[];
  calls: StandinCall[];
  // Jobs are not here: the live records carry tokens and traces (GitlabStandin.jobs); GET /_standin/state adds
  // `jobs: StandinJobView[]`.
}

/** GET /_standin/jobs/:id: a job as the lead's testbed sees it (never its token). */
export interface StandinJobView {
  id: number;
  name: string;
  project: string;
  pipelineId: number;
  status: JobStatus;
  runnerId: number | null;
  systemId: string | null;
  failureReason: string | null;
  exitCode: number | null;
  trace: string;
  queuedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface StandinTokens {
  /** scopes create_runner + manage_runner + read_api, administrator: can create, update, list and delete runners */
  accessToken: string;
  /** scopes create_runner + manage_runner, administrator: everything but GET /runners/all (no :id, so no manage_runner) */
  accessTokenNoList: string;
  /** accessToken's scopes plus admin_mode: what an administrator's token needs once Admin Mode is on */
  accessTokenAdminMode: string;
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
  accessTokenNoList: 'access-token-no-list',
  accessTokenAdminMode: 'access-token-admin-mode',
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
  /** do the call, then answer `status` with the first half of its JSON body (a proxy that cut the answer) */
  truncate?: boolean;
}

export interface StandinOptions {
  port?: number;
  host?: string;
  /** write one file per token here (mode 0600); existing files are reused so a restart keeps the tokens */
  tokensDir?: string;
  registrationTokensEnabled?: boolean;
  /** delay every API answer (timeout tests) */
  delayMs?: number;
  /** git repositories live here (default: a new temporary directory, removed on close) */
  stateDir?: string;
  /** GitLab's runner_token_expiration_interval in seconds: new and reset runner tokens expire after it */
  runnerTokenExpirationSeconds?: number | null;
  /** [min, max] ms: contacted_at reaches the database column only when older than a random value in it; GitLab: 40–55 min */
  contactedAtPersistEveryMs?: [number, number];
  /** URL jobs see as CI_SERVER_URL and clone from (default: the URL the stand-in listens on) */
  externalUrl?: string;
  /**
   * GitLab's container registry (gitlab.yml `registry`): its host:port (CI_REGISTRY) and the PEM key GitLab signs its
   * tokens with (`registry.key`; the registry trusts the matching certificate). Without it the registry is off.
   */
  registry?: { hostPort: string; keyPem: string };
  /**
   * Also serve HTTPS with this certificate and key (PEM) on `port` (0: any), as a GitLab whose certificate comes from
   * a private CA; the HTTPS URL is then what jobs see (unless externalUrl says otherwise). The plain-HTTP listener
   * stays, for the tests' own /_standin calls (Node's fetch cannot be told about a private CA).
   */
  tls?: { cert: string; key: string; port?: number };
}

export interface GitlabStandin {
  url: string;
  /** the HTTPS URL, when `tls` was given */
  tlsUrl?: string;
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
  setRunnerTokenExpiration(seconds: number | null): void;
  /** GitLab's Admin Mode setting: administrators' tokens act as administrators only with the admin_mode scope */
  setAdminMode(enabled: boolean): void;
  /** job records with token and trace (tests only) */
  readonly jobs: StandinJob[];
  jobView(id: number): StandinJobView | undefined;
  stateDir: string;
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
    /** headers GitLab sends with this error (Job-Status on 403, Range on 416) */
    readonly headers?: Record<string, string>,
  ) {
    super(`HTTP ${status}`);
  }
}

// GitLab's error shapes: Grape validation → {error}, render_api_error! → {message}.
const badRequest = (error: string) => new HttpError(400, { error });
const unauthorized = () => new HttpError(401, { message: '401 Unauthorized' });
const forbidden = (reason?: string) =>
  new HttpError(403, { message: reason ? `403 Forbidden - ${reason}` : '403 Forbidden' });
const notFound = (what?: string) =>
  new HttpError(404, { message: what ? `404 ${what} Not Found` : '404 Not Found' });
const insufficientScope = (scope: string) =>
  new HttpError(403, {
    error: 'insufficient_scope',
    error_description: 'The request requires higher privileges than provided by the access token.',
    scope,
  });

/** A scope an endpoint class registers with allow_access_with_scope, and the condition it carries. */
interface ScopeRule {
  scope: string;
  when: (call: { method: string; hasId: boolean }) => boolean;
}

/** lib/api/api.rb: registered on API::API, so on every route: `api` always, `read_api` for GET and HEAD. */
const API_RB_SCOPES: ScopeRule[] = [
  { scope: 'api', when: () => true },
  { scope: 'read_api', when: (c) => c.method === 'GET' || c.method === 'HEAD' },
];

/**
 * The scopes each endpoint file the stand-in serves with an access token adds to API_RB_SCOPES. runners.rb allows
 * manage_runner only when the request has an :id under /api/v4/runners/ (so never on GET /runners/all);
 * user_runners.rb allows create_runner on POST. APIGuard (lib/api/api_guard.rb) accepts a token holding any rule
 * whose condition holds; a refusal is 403 insufficient_scope naming every scope registered for the endpoint and
 * API::API, conditions or not (Gitlab::Auth::AuthFinders#validate_and_save_access_token!).
 */
const ENDPOINT_SCOPES: Record<'lib/api/ci/runners.rb' | 'lib/api/user_runners.rb', ScopeRule[]> = {
  'lib/api/ci/runners.rb': [{ scope: 'manage_runner', when: (c) => c.hasId }],
  'lib/api/user_runners.rb': [{ scope: 'create_runner', when: (c) => c.method === 'POST' }],
};
type EndpointFile = keyof typeof ENDPOINT_SCOPES;

const RUNNER_TYPES: RunnerType[] = ['instance_type', 'group_type', 'project_type'];
const ACCESS_LEVELS: AccessLevel[] = ['not_protected', 'ref_protected'];
const RUNNER_FIELDS = [
  'description',
  'paused',
  'active',
  'tag_list',
  'run_untagged',
  'locked',
  'access_level',
  'maximum_timeout',
  'maintenance_note',
];

const randomToken = (prefix: string, n = 20) => prefix + randomBytes(n).toString('base64url').slice(0, n);

/** Devise.friendly_token, GitLab's token body: 20 URL-safe base64 characters, with l I O 0 read as s x y z. */
const friendlyToken = () =>
  randomBytes(15)
    .toString('base64url')
    .replace(/[lIO0]/g, (c) => ({ l: 's', I: 'x', O: 'y', '0': 'z' })[c]!);

/** Ci::Runner runner_type enum values, which the token's partition prefix spells in hex. */
const RUNNER_TYPE_IDS: Record<RunnerType, number> = { instance_type: 1, group_type: 2, project_type: 3 };

/**
 * A runner authentication token as GitLab 17.9 makes it (Ci::Runner#prefix_for_new_and_legacy_runner): the
 * partition prefix `t<runner_type in hex>_`, after CREATED_RUNNER_TOKEN_PREFIX `glrt-` unless the runner was
 * registered with a registration token, then Devise.friendly_token. E.g. `glrt-t1_…` (POST /user/runners, instance)
 * and `t1_…` (POST /runners). Routable tokens (`glrt-t2_<base64>.01.<crc>`, feature flag routable_runner_token for
 * group and project runners) are off by default in 17.9 and not made here.
 */
export function runnerAuthToken(runnerType: RunnerType, registered: boolean): string {
  return `${registered ? '' : 'glrt-'}t${RUNNER_TYPE_IDS[runnerType].toString(16)}_${friendlyToken()}`;
}

function loadOrMakeTokens(dir: string | undefined): StandinTokens {
  const fresh: StandinTokens = {
    accessToken: randomToken('glpat-'),
    accessTokenNoList: randomToken('glpat-'),
    accessTokenAdminMode: randomToken('glpat-'),
    accessTokenCreateOnly: randomToken('glpat-'),
    accessTokenNoScope: randomToken('glpat-'),
    registrationToken: randomToken('GR1348941'),
    runnerToken: runnerAuthToken('instance_type', false),
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

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    // The runner's trace patches are at most 1 MiB (maxTracePatchSize default) plus headroom; JSON bodies far less.
    if (size > 8 * 1024 * 1024) throw new HttpError(413, { message: '413 Request Entity Too Large' });
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
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
      throw badRequest("The provided content-type 'application/json' body is not valid JSON");
    }
    if (!data || typeof data !== 'object' || Array.isArray(data))
      throw badRequest('body must be a JSON object');
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
  const list = Array.isArray(v)
    ? v.flatMap((t) => String(t).split(','))
    : typeof v === 'string'
      ? v.split(',')
      : null;
  if (!list) throw badRequest('tag_list is invalid');
  return [...new Set(list.map((t) => t.trim()).filter(Boolean))];
}

function oneOf<T extends string>(p: Params, key: string, values: readonly T[]): T | undefined {
  const v = str(p, key);
  if (v === undefined) return undefined;
  if (!values.includes(v as T)) throw badRequest(`${key} does not have a valid value`);
  return v as T;
}

/** Ci::Runner::ONLINE_CONTACT_TIMEOUT: online when contacted within the last 2 hours. */
const ONLINE_CONTACT_TIMEOUT_MS = 2 * 3600 * 1000;
/** Ci::Runner::RUNNER_QUEUE_EXPIRY_TIME: the queue value (X-GitLab-Last-Update) lives 1 hour. */
const RUNNER_QUEUE_EXPIRY_MS = 3600 * 1000;
/** Ci::Runner::UPDATE_CONTACT_COLUMN_EVERY, and the same for runner managers. */
const UPDATE_CONTACT_COLUMN_EVERY_MS: [number, number] = [40 * 60 * 1000, 55 * 60 * 1000];
/** API::Ci::Helpers::Runner::LEGACY_SYSTEM_XID: the manager of calls without system_id. */
const LEGACY_SYSTEM_XID = '<legacy>';
/** Gitlab::Ci::Trace: UPDATE_FREQUENCY_DEFAULT 60 s, UPDATE_FREQUENCY_WHEN_BEING_WATCHED 3 s, WATCH_FLAG_TTL 10 s. */
const TRACE_UPDATE_DEFAULT_S = 60;
const TRACE_UPDATE_WATCHED_S = 3;
const TRACE_WATCH_TTL_MS = 10_000;
/** HasStatus::COMPLETED_STATUSES (the ones the stand-in has): a job in one of them is over. */
const FINISHED: JobStatus[] = ['success', 'failed', 'canceled'];
/** masked CI/CD variables: at least 8 characters, one line, no spaces (Ci::Maskable's validation, roughly). */
const MASKABLE = /^[^\s]{8,}$/;

export async function startGitlabStandin(opts: StandinOptions = {}): Promise<GitlabStandin> {
  const tokens = loadOrMakeTokens(opts.tokensDir);
  const signer = opts.registry ? registrySigner(opts.registry.hostPort, opts.registry.keyPem) : null;
  const accessTokens = new Map<string, AccessToken>([
    [tokens.accessToken, { scopes: ['create_runner', 'manage_runner', 'read_api'], admin: true }],
    [tokens.accessTokenNoList, { scopes: ['create_runner', 'manage_runner'], admin: true }],
    [
      tokens.accessTokenAdminMode,
      { scopes: ['create_runner', 'manage_runner', 'read_api', 'admin_mode'], admin: true },
    ],
    [tokens.accessTokenCreateOnly, { scopes: ['create_runner'], admin: true }],
    [tokens.accessTokenNoScope, { scopes: ['read_api'], admin: true }],
  ]);
  const ownStateDir = !opts.stateDir;
  const stateDir = opts.stateDir ?? mkdtempSync(join(tmpdir(), 'rf-standin-state-'));
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const persistEvery = opts.contactedAtPersistEveryMs ?? UPDATE_CONTACT_COLUMN_EVERY_MS;
  let delayMs = opts.delayMs ?? 0;
  /** how far the `Date` of API answers is moved from this machine's clock: a skewed node, as GitLab sees it */
  let clockOffsetSeconds = 0;
  let failRules: (FailRule & { left: number })[] = [];
  const state: StandinState = {
    registrationTokensEnabled: opts.registrationTokensEnabled ?? true,
    adminMode: false,
    runnerTokenExpirationSeconds: opts.runnerTokenExpirationSeconds ?? null,
    runners: [],
    managers: [],
    projects: [],
    calls: [],
  };
  const jobs: StandinJob[] = [];
  let nextRunnerId = 1;
  let nextManagerId = 1;
  let nextProjectId = 1;
  let nextJobId = 1;
  let nextPipelineId = 1;
  const namespaces = new Map<string, number>();
  let serverUrl = '';

  const now = () => new Date().toISOString();

  const tokenExpiry = () =>
    state.runnerTokenExpirationSeconds
      ? new Date(Date.now() + state.runnerTokenExpirationSeconds * 1000).toISOString()
      : null;

  const reset = () => {
    clockOffsetSeconds = 0;
    state.adminMode = false;
    state.registrationTokensEnabled = opts.registrationTokensEnabled ?? true;
    state.runnerTokenExpirationSeconds = opts.runnerTokenExpirationSeconds ?? null;
    state.runners.length = 0;
    state.managers.length = 0;
    state.projects.length = 0;
    state.calls.length = 0;
    jobs.length = 0;
    namespaces.clear();
    rmSync(join(stateDir, 'repos'), { recursive: true, force: true });
    failRules = [];
    nextRunnerId = 1;
    nextManagerId = 1;
    nextProjectId = 1;
    nextJobId = 1;
    nextPipelineId = 1;
    // The runner an administrator made in the UI, whose glrt- token every node shares in runner-token mode.
    state.runners.push(
      newRunner(
        {
          runnerType: 'instance_type',
          description: 'shared runner made in the UI',
          tagList: ['shared'],
          createdVia: 'preset',
          runUntagged: true,
        },
        tokens.runnerToken,
      ),
    );
  };

  function newRunner(
    fields: Partial<StandinRunner> & Pick<StandinRunner, 'runnerType' | 'createdVia'>,
    token: string,
  ): StandinRunner {
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
      contactedAtPersisted: null,
      // Ci::Runner: the token field's expires_at is computed when the token is made (compute_token_expiration).
      tokenExpiresAt: tokenExpiry(),
      queueValue: null,
      queueValueExpiresAt: 0,
      ...fields,
    };
  }

  /** persist_cached_data?: the column is written when empty or older than a random age in the configured range. */
  const shouldPersist = (persisted: string | null) => {
    if (!persisted) return true;
    const maxAge = persistEvery[0] + Math.random() * (persistEvery[1] - persistEvery[0]);
    return Date.now() - Date.parse(persisted) >= maxAge;
  };

  /** Ci::Runner#heartbeat: contacted_at into the cache always, into the column when due. */
  const heartbeatRunner = (runner: StandinRunner) => {
    const at = now();
    runner.contactedAt = at;
    if (shouldPersist(runner.contactedAtPersisted)) runner.contactedAtPersisted = at;
  };

  /** Ci::Runner#ensure_manager: find or create the manager row of (runner, system_xid). */
  const ensureManager = (runner: StandinRunner, systemId: string): StandinManager => {
    let manager = state.managers.find((m) => m.runnerId === runner.id && m.systemId === systemId);
    if (!manager) {
      manager = {
        id: nextManagerId++,
        runnerId: runner.id,
        systemId,
        createdAt: now(),
        contactedAt: null,
        contactedAtPersisted: null,
        version: null,
        revision: null,
        platform: null,
        architecture: null,
        executor: null,
        ipAddress: null,
        config: null,
      };
      state.managers.push(manager);
    }
    return manager;
  };

  interface RunnerDetails {
    version?: string;
    revision?: string;
    platform?: string;
    architecture?: string;
    executor?: string;
    config?: Record<string, unknown>;
    ipAddress: string;
  }

  /** Ci::RunnerManager#heartbeat: the details always, contacted_at only when update_contacted_at. */
  const heartbeatManager = (manager: StandinManager, details: RunnerDetails, updateContactedAt: boolean) => {
    manager.ipAddress = details.ipAddress;
    for (const key of ['version', 'revision', 'platform', 'architecture', 'executor'] as const)
      if (details[key] !== undefined) manager[key] = details[key]!;
    if (details.config !== undefined) manager.config = details.config;
    if (updateContactedAt) {
      const at = now();
      manager.contactedAt = at;
      if (shouldPersist(manager.contactedAtPersisted)) manager.contactedAtPersisted = at;
    }
  };

  const clientIp = (req: IncomingMessage) => (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');

  /** get_runner_details_from_request: name/version/revision/platform/architecture/executor and config.gpus from info. */
  const runnerDetails = (req: IncomingMessage, p: Params): RunnerDetails => {
    const details: RunnerDetails = { ipAddress: clientIp(req) };
    const info = p.info;
    if (info && typeof info === 'object' && !Array.isArray(info)) {
      const i = info as Record<string, unknown>;
      for (const key of ['version', 'revision', 'platform', 'architecture', 'executor'] as const)
        if (typeof i[key] === 'string') details[key] = i[key] as string;
      const config = i.config && typeof i.config === 'object' ? (i.config as Record<string, unknown>) : {};
      details.config = typeof config.gpus === 'string' ? { gpus: config.gpus } : {};
    }
    return details;
  };

  /** TokenAuthenticatable#find_by_token: an unknown or expired token finds no runner. */
  const findRunner = (token: string | undefined): StandinRunner | undefined => {
    if (!token) return undefined;
    const runner = state.runners.find((r) => r.token !== null && r.token === token);
    if (!runner) return undefined;
    if (runner.tokenExpiresAt && Date.parse(runner.tokenExpiresAt) <= Date.now()) return undefined;
    return runner;
  };

  const runnerByToken = (p: Params): StandinRunner => {
    const token = str(p, 'token');
    if (!token) throw badRequest('token is missing');
    const runner = findRunner(token);
    if (!runner) throw forbidden();
    return runner;
  };

  /**
   * authenticate_runner!(ensure_runner_manager:, update_contacted_at:): 403 for an unknown token, the runner's
   * heartbeat, then the manager of system_id (or '<legacy>') with the request's details.
   */
  const authenticateRunner = (
    req: IncomingMessage,
    p: Params,
    opt: { ensureManager?: boolean; updateContactedAt?: boolean } = {},
  ) => {
    const runner = runnerByToken(p);
    const update = opt.updateContactedAt ?? true;
    if (update) heartbeatRunner(runner);
    if (opt.ensureManager === false) return { runner, manager: null };
    const manager = ensureManager(runner, str(p, 'system_id') ?? LEGACY_SYSTEM_XID);
    heartbeatManager(manager, runnerDetails(req, p), update);
    return { runner, manager };
  };

  /** ensure_runner_queue_value: the current value, a new one when none is set or it expired. */
  const ensureQueueValue = (runner: StandinRunner) => {
    if (!runner.queueValue || runner.queueValueExpiresAt <= Date.now()) {
      runner.queueValue = randomBytes(16).toString('hex');
      runner.queueValueExpiresAt = Date.now() + RUNNER_QUEUE_EXPIRY_MS;
    }
    return runner.queueValue;
  };

  /** tick_runner_queue: a new value, so a runner presenting the old last_update asks the queue again. */
  const tickQueue = (runner: StandinRunner) => {
    runner.queueValue = randomBytes(16).toString('hex');
    runner.queueValueExpiresAt = Date.now() + RUNNER_QUEUE_EXPIRY_MS;
  };

  /**
   * The access token of the request, checked against its endpoint file's scope rules. `admin` is what
   * current_user.can_admin_all_resources? says: with Admin Mode on, an administrator's token counts as one only with
   * the admin_mode scope (APIGuard#bypass_session_for_admin_mode?). The stand-in's token users own every group and
   * project, so only instance runners need an administrator.
   */
  const accessFor = (req: IncomingMessage, file: EndpointFile, hasId = false): AccessToken => {
    const header = req.headers['private-token'];
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const value = (Array.isArray(header) ? header[0] : header) ?? bearer;
    const token = value ? accessTokens.get(value) : undefined;
    if (!token) throw unauthorized();
    const rules = [...ENDPOINT_SCOPES[file], ...API_RB_SCOPES];
    const call = { method: (req.method ?? 'GET').toUpperCase(), hasId };
    if (!rules.some((r) => r.when(call) && token.scopes.includes(r.scope)))
      throw insufficientScope(rules.map((r) => r.scope).join(' '));
    const admin = token.admin && (!state.adminMode || token.scopes.includes('admin_mode'));
    return { ...token, admin };
  };

  /** authenticate_update_runner! / authenticate_delete_runner! in runners.rb, for the stand-in's owners. */
  const mayChange = (token: AccessToken, runner: StandinRunner) => {
    if (runner.runnerType === 'instance_type' && !token.admin) throw forbidden('No access granted');
  };

  const runnerById = (idText: string): StandinRunner => {
    const runner = state.runners.find((r) => r.id === Number(idText));
    if (!runner) throw notFound('Runner');
    return runner;
  };

  /** Runner attributes shared by create and update; undefined means "not given". */
  const runnerAttributes = (p: Params): Partial<StandinRunner> => {
    if (p.active !== undefined && p.paused !== undefined)
      throw badRequest('active, paused are mutually exclusive');
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
      if (maximumTimeout !== null && maximumTimeout < 600)
        throw new HttpError(400, { message: { maximum_timeout: ['needs to be at least 10 minutes'] } });
      out.maximumTimeout = maximumTimeout;
    }
    const note = str(p, 'maintenance_note');
    if (note !== undefined) out.maintenanceNote = note;
    return out;
  };

  const online = (contactedAt: string | null) =>
    contactedAt !== null && Date.now() - Date.parse(contactedAt) < ONLINE_CONTACT_TIMEOUT_MS;

  // Ci::Runner#deprecated_rest_status (REST v4 `status`): never_contacted, paused, online or offline.
  const status = (r: StandinRunner) =>
    !r.contactedAt ? 'never_contacted' : r.paused ? 'paused' : online(r.contactedAt) ? 'online' : 'offline';

  const summary = (r: StandinRunner) => ({
    id: r.id,
    description: r.description,
    ip_address: null,
    active: !r.paused,
    paused: r.paused,
    is_shared: r.runnerType === 'instance_type',
    runner_type: r.runnerType,
    name: null,
    online: online(r.contactedAt),
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

  const registration = (r: StandinRunner) => ({
    id: r.id,
    token: r.token,
    token_expires_at: r.tokenExpiresAt,
  });

  /** Entities::Ci::ResetTokenResult: token, and token_expires_at only when the token expires (expirable?). */
  const resetResult = (r: StandinRunner) => ({
    token: r.token,
    ...(r.tokenExpiresAt ? { token_expires_at: r.tokenExpiresAt } : {}),
  });

  /** Ci::Runners::ResetAuthenticationTokenService → reset_token!: a new token, a new expiry, the old one dead. */
  const resetToken = (r: StandinRunner) => {
    r.token = runnerAuthToken(r.runnerType, r.createdVia === 'registration');
    r.tokenExpiresAt = tokenExpiry();
    r.queueValue = null;
  };

  // Entities::Ci::RunnerManager; status via Ci::HasRunnerStatus; job_execution_status active while it runs a job.
  const managerEntity = (mg: StandinManager) => ({
    id: mg.id,
    system_id: mg.systemId,
    version: mg.version,
    revision: mg.revision,
    platform: mg.platform,
    architecture: mg.architecture,
    created_at: mg.createdAt,
    contacted_at: mg.contactedAt,
    ip_address: mg.ipAddress,
    status: !mg.contactedAt ? 'never_contacted' : online(mg.contactedAt) ? 'online' : 'offline',
    job_execution_status: jobs.some(
      (j) => j.status === 'running' && j.runnerId === mg.runnerId && j.systemId === mg.systemId,
    )
      ? 'active'
      : 'idle',
  });

  const removeRunner = (runner: StandinRunner) => {
    state.runners.splice(state.runners.indexOf(runner), 1);
    for (let i = state.managers.length - 1; i >= 0; i--)
      if (state.managers[i].runnerId === runner.id) state.managers.splice(i, 1);
  };

  const projectById = (id: number) => state.projects.find((pr) => pr.id === id)!;

  /** A queued job: tick the queue of every runner that could take it (Ci::UpdateBuildQueueService#tick_for). */
  const tickRunnersFor = (job: StandinJob) => {
    const project = projectById(job.projectId);
    for (const r of state.runners) if (runnerMatchesJob(r, job, project)) tickQueue(r);
  };

  const jobView = (j: StandinJob): StandinJobView => ({
    id: j.id,
    name: j.name,
    project: projectById(j.projectId).path,
    pipelineId: j.pipelineId,
    status: j.status,
    runnerId: j.runnerId,
    systemId: j.systemId,
    failureReason: j.failureReason,
    exitCode: j.exitCode,
    trace: j.trace.toString('utf8'),
    queuedAt: j.queuedAt,
    startedAt: j.startedAt,
    finishedAt: j.finishedAt,
  });

  type Reply = { status: number; body?: unknown; headers?: Record<string, string>; raw?: Buffer };

  const jobToken = (req: IncomingMessage, p: Params) => {
    const header = req.headers['job-token'];
    return str(p, 'token') ?? (Array.isArray(header) ? header[0] : header) ?? '';
  };

  /**
   * authenticate_job!(heartbeat_runner: true): 403 for an unknown job or token, 403 with Job-Status when the job
   * does not run; then heartbeats of the job's runner and manager (ip only).
   */
  const authenticateJob = (req: IncomingMessage, idText: string, p: Params): StandinJob => {
    const job = jobs.find((j) => j.id === Number(idText));
    if (!job) throw forbidden();
    if (jobToken(req, p) !== job.token) throw forbidden();
    if (job.status !== 'running') {
      // job_forbidden!: the Job-Status header tells the runner to abort (network/remote_job_state_response.go).
      throw new HttpError(
        403,
        { message: '403 Forbidden - Job is not processing on runner' },
        { 'Job-Status': job.status },
      );
    }
    const runner = state.runners.find((r) => r.id === job.runnerId);
    if (runner) {
      heartbeatRunner(runner);
      const manager = state.managers.find((m) => m.runnerId === runner.id && m.systemId === job.systemId);
      if (manager) heartbeatManager(manager, { ipAddress: clientIp(req) }, true);
    }
    return job;
  };

  const finish = (job: StandinJob, status: JobStatus) => {
    job.status = status;
    job.finishedAt = now();
  };

  async function api(
    req: IncomingMessage,
    method: string,
    path: string,
    p: Params,
    url: URL,
    raw: Buffer,
  ): Promise<Reply> {
    let m: RegExpExecArray | null;
    if (method === 'POST' && path === '/api/v4/user/runners') {
      const token = accessFor(req, 'lib/api/user_runners.rb');
      const runnerType = oneOf(p, 'runner_type', RUNNER_TYPES);
      if (!runnerType) throw badRequest('runner_type is missing, runner_type does not have a valid value');
      const groupId = int(p, 'group_id');
      const projectId = int(p, 'project_id');
      if (runnerType === 'group_type' && !groupId)
        throw new HttpError(400, {
          message: '400 Bad request - group_id is required for group_type runners',
        });
      if (runnerType === 'project_type' && !projectId)
        throw new HttpError(400, {
          message: '400 Bad request - project_id is required for project_type runners',
        });
      // CreateRunnerService: InstanceRunnerStrategy#authorized_user? is can?(:create_instance_runner), admins only.
      if (runnerType === 'instance_type' && !token.admin) throw forbidden('Insufficient permissions');
      const attrs = runnerAttributes(p);
      const runner = newRunner(
        {
          runnerType,
          groupId: runnerType === 'group_type' ? groupId! : null,
          projectId: runnerType === 'project_type' ? projectId! : null,
          createdVia: 'user',
          ...attrs,
        },
        runnerAuthToken(runnerType, false),
      );
      state.runners.push(runner);
      return { status: 201, body: registration(runner) };
    }
    if (method === 'POST' && path === '/api/v4/runners') {
      const token = str(p, 'token');
      if (token === undefined) throw badRequest('token is missing');
      // As RegisterRunnerService: with registration disallowed any presented token gets 410, valid or not.
      if (token && !state.registrationTokensEnabled)
        throw new HttpError(410, { message: '410 Gone - runner registration disallowed' });
      if (token !== tokens.registrationToken) throw forbidden('invalid token supplied');
      const attrs = runnerAttributes(p);
      // Runners registered with a registration token get a token without the glrt- prefix: t1_… for the instance's.
      const runner = newRunner(
        { runnerType: 'instance_type', createdVia: 'registration', ...attrs },
        runnerAuthToken('instance_type', true),
      );
      state.runners.push(runner);
      return { status: 201, body: registration(runner) };
    }
    if (method === 'POST' && path === '/api/v4/runners/verify') {
      // runner.rb: a runner created in the UI (glrt-) counts as contacted only once it polls for jobs, so verify
      // makes its manager row but writes no contacted_at (authenticate_runner!(update_contacted_at: false)).
      const token = str(p, 'token') ?? '';
      const { runner } = authenticateRunner(req, p, { updateContactedAt: !token.startsWith('glrt-') });
      return { status: 200, body: registration(runner) };
    }
    if (method === 'POST' && path === '/api/v4/runners/reset_authentication_token') {
      const { runner } = authenticateRunner(req, p);
      resetToken(runner);
      return { status: 201, body: resetResult(runner) };
    }
    if ((m = /^\/api\/v4\/runners\/(\d+)\/reset_authentication_token$/.exec(path)) && method === 'POST') {
      // lib/api/ci/runners.rb: the same with an access token (gitlab-runner's ResetTokenWithPAT).
      const token = accessFor(req, 'lib/api/ci/runners.rb', true);
      const runner = runnerById(m[1]);
      mayChange(token, runner);
      resetToken(runner);
      return { status: 201, body: resetResult(runner) };
    }
    if (method === 'DELETE' && path === '/api/v4/runners') {
      removeRunner(authenticateRunner(req, p).runner);
      return { status: 204 };
    }
    if (method === 'DELETE' && path === '/api/v4/runners/managers') {
      const { runner } = authenticateRunner(req, p, { ensureManager: false });
      const systemId = str(p, 'system_id');
      if (!systemId) throw badRequest('system_id is missing');
      const i = state.managers.findIndex((mg) => mg.runnerId === runner.id && mg.systemId === systemId);
      if (i < 0) throw notFound('Runner manager not found');
      state.managers.splice(i, 1);
      return { status: 204 };
    }
    if (method === 'POST' && path === '/api/v4/jobs/request') {
      const { runner, manager } = authenticateRunner(req, p);
      if (runner.paused)
        return { status: 204, headers: { 'X-GitLab-Last-Update': ensureQueueValue(runner) } };
      const lastUpdate = str(p, 'last_update');
      // runner_queue_value_latest?: nothing changed since this runner last looked, so no queue scan.
      if (lastUpdate && ensureQueueValue(runner) === lastUpdate)
        return { status: 204, headers: { 'X-GitLab-Last-Update': lastUpdate } };
      const newUpdate = ensureQueueValue(runner);
      // RegisterJobService: the oldest pending job this runner matches.
      const job = jobs.find(
        (j) => j.status === 'pending' && runnerMatchesJob(runner, j, projectById(j.projectId)),
      );
      if (!job) return { status: 204, headers: { 'X-GitLab-Last-Update': newUpdate } };
      job.status = 'running';
      job.runnerId = runner.id;
      job.systemId = manager!.systemId;
      job.startedAt = now();
      const body = jobPayload(job, {
        serverUrl,
        registry: signer?.hostPort ?? null,
        runner,
        project: projectById(job.projectId),
        timeInQueue: (Date.parse(job.startedAt) - Date.parse(job.queuedAt)) / 1000,
        runningOnInstanceRunners: jobs.filter(
          (j) => j.status === 'running' && j.projectId === job.projectId && j !== job,
        ).length,
      });
      return { status: 201, body };
    }
    if ((m = /^\/api\/v4\/jobs\/(\d+)$/.exec(path)) && method === 'PUT') {
      // Grape's `requires :token` comes before authenticate_job!.
      if (str(p, 'token') === undefined) throw badRequest('token is missing');
      const job = authenticateJob(req, m[1], p);
      // UpdateBuildStateService#update_build_state! (live trace off: no 202 "accepted" round).
      const wanted = str(p, 'state') ?? '';
      let code = 200;
      if (wanted === 'running') {
        // build.touch: nothing to record here
      } else if (wanted === 'success') finish(job, 'success');
      else if (wanted === 'failed') {
        const reason = str(p, 'failure_reason');
        // drop_with_exit_code!: a reason GitLab does not know becomes unknown_failure.
        job.failureReason = reason && FAILURE_REASONS.includes(reason) ? reason : 'unknown_failure';
        const exitCode = int(p, 'exit_code');
        job.exitCode = exitCode ?? null;
        finish(job, 'failed');
      } else code = 400;
      return { status: code, headers: { 'Job-Status': job.status }, raw: Buffer.from(String(code)) };
    }
    if ((m = /^\/api\/v4\/jobs\/(\d+)\/trace$/.exec(path)) && method === 'PATCH') {
      const job = authenticateJob(req, m[1], p);
      const range = req.headers['content-range'];
      if (range === undefined) throw new HttpError(400, { message: '400 Missing header Content-Range' });
      // AppendBuildTraceService: only the start counts (the runner's end is off by one, gitlab-runner#3275);
      // Gitlab::Ci::Trace#append writes nothing unless the start is the current size.
      const start = Number(/^\s*(\d+)/.exec(String(range))?.[1] ?? 0);
      const end = start + raw.length;
      if (start === job.trace.length) job.trace = Buffer.concat([job.trace, raw]);
      if (job.trace.length !== end) {
        // The runner resends from the Range end (network/patch_response.go NewOffset).
        throw new HttpError(
          416,
          { message: '416 Range Not Satisfiable' },
          { Range: `0-${job.trace.length}` },
        );
      }
      const interval = job.watchedUntil > Date.now() ? TRACE_UPDATE_WATCHED_S : TRACE_UPDATE_DEFAULT_S;
      return {
        status: 202,
        headers: {
          'Job-Status': job.status,
          Range: `0-${job.trace.length}`,
          'X-GitLab-Trace-Update-Interval': String(interval),
        },
      };
    }
    if (method === 'GET' && path === '/api/v4/runners/all') {
      // authenticated_as_admin!: plain 403 for a non-administrator (or one without admin_mode in Admin Mode).
      const token = accessFor(req, 'lib/api/ci/runners.rb');
      if (!token.admin) throw forbidden();
      const wanted = tags(p) ?? [];
      const type = oneOf(p, 'type', RUNNER_TYPES);
      const list = state.runners.filter(
        (r) => wanted.every((t) => r.tagList.includes(t)) && (!type || r.runnerType === type),
      );
      const perPage = Math.min(100, Math.max(1, Number(url.searchParams.get('per_page') ?? 20) || 20));
      const page = Math.max(1, Number(url.searchParams.get('page') ?? 1) || 1);
      const slice = list.slice((page - 1) * perPage, page * perPage);
      const hasNext = page * perPage < list.length;
      return {
        status: 200,
        body: slice.map(summary),
        headers: {
          'x-page': String(page),
          'x-per-page': String(perPage),
          'x-total': String(list.length),
          'x-next-page': hasNext ? String(page + 1) : '',
        },
      };
    }
    if ((m = /^\/api\/v4\/runners\/(\d+)\/managers$/.exec(path)) && method === 'GET') {
      accessFor(req, 'lib/api/ci/runners.rb', true);
      const runner = runnerById(m[1]);
      return {
        status: 200,
        body: state.managers.filter((mg) => mg.runnerId === runner.id).map(managerEntity),
      };
    }
    if ((m = /^\/api\/v4\/runners\/(\d+)$/.exec(path))) {
      if (method === 'GET') {
        // authenticate_show_runner!: instance runners are visible to every signed-in user.
        accessFor(req, 'lib/api/ci/runners.rb', true);
        return { status: 200, body: details(runnerById(m[1])) };
      }
      if (method === 'PUT') {
        const token = accessFor(req, 'lib/api/ci/runners.rb', true);
        const runner = runnerById(m[1]);
        mayChange(token, runner);
        if (!RUNNER_FIELDS.some((f) => f in p))
          throw badRequest(
            `${RUNNER_FIELDS.join(', ')} are missing, at least one parameter must be provided`,
          );
        Object.assign(runner, runnerAttributes(p));
        // Ci::Runners::UpdateRunnerService ticks the queue: new tags or an unpaused runner may match other jobs.
        tickQueue(runner);
        return { status: 200, body: details(runner) };
      }
      if (method === 'DELETE') {
        const token = accessFor(req, 'lib/api/ci/runners.rb', true);
        const runner = runnerById(m[1]);
        mayChange(token, runner);
        removeRunner(runner);
        return { status: 204 };
      }
    }
    throw notFound();
  }

  /** Deploy tokens and project access tokens for git over HTTP (git-http.ts). */
  const gitTokens = new GitTokens();

  /**
   * Who a git client is for `project` (Gitlab::Auth#find_for_git_client, in its order): a running job's token under
   * the user gitlab-ci-token, an access token (any login), a deploy token (its own username); undefined: nobody.
   */
  function gitActor(project: StandinProject, login: string, password: string): GitActor | Reply | undefined {
    if (login === 'gitlab-ci-token') {
      const job = jobs.find((j) => j.status === 'running' && j.token === password);
      if (job && job.projectId === project.id)
        return { kind: 'job', abilities: ['build_download_code', 'build_push_code'] };
      // GitAccess#check_project_accessibility!: another project's job token, outside the job token allowlist.
      if (job)
        return {
          status: 403,
          raw: Buffer.from(
            `Authentication by CI/CD job token not allowed from ${projectById(job.projectId).path.split('/').pop()} to ${project.path.split('/').pop()}.`,
          ),
        };
    }
    const token = accessTokens.get(password);
    if (token?.admin) return { kind: 'access-token', abilities: abilitiesForScopes(token.scopes) };
    return gitTokens.actor(project.id, login, password);
  }

  /** git's smart HTTP protocol (git-http.ts): GitLab's authentication and access checks, then git http-backend. */
  async function smartGit(
    req: IncomingMessage,
    project: StandinProject,
    file: string,
    service: GitService,
    url: URL,
    body: Buffer,
  ): Promise<Reply> {
    const cred = basicCredentials(req.headers.authorization);
    const actor = cred && gitActor(project, cred.login, cred.password);
    if (!actor) return challenge();
    if (!('kind' in actor)) return actor;
    const denied = accessDenied(actor, service);
    if (denied) return denied;
    const method = (req.method ?? 'GET').toUpperCase();
    const reply = await httpBackend({
      repos: join(stateDir, 'repos'),
      projectPath: project.path,
      file,
      method,
      query: url.searchParams,
      headers: req.headers,
      body,
    });
    if (service === 'git-receive-pack' && method === 'POST') {
      const sha = await afterReceivePack(repoDir(stateDir, project.path));
      if (sha && sha !== project.sha) Object.assign(project, { beforeSha: project.sha, sha });
    }
    return reply;
  }

  /**
   * git's dumb HTTP protocol for GET /<group>/<project>.git/<file>. Authentication as GitLab's
   * Gitlab::Auth#find_for_git_client: user gitlab-ci-token with the token of a running job of the project (or an
   * access token); anything else is 401 with a Basic challenge, which is what makes git send the URL's credentials.
   */
  async function gitHttp(
    req: IncomingMessage,
    method: string,
    path: string,
    url: URL,
    body: Buffer,
  ): Promise<Reply | null> {
    const m = /^\/(.+?)\.git\/(.+)$/.exec(path);
    if (!m) return null;
    const project = state.projects.find((pr) => pr.path === m[1]);
    const service = smartService(method, m[2], url.searchParams);
    if (project && service) return smartGit(req, project, m[2], service, url, body);
    if (!project || (method !== 'GET' && method !== 'HEAD'))
      return { status: 404, raw: Buffer.from('Not Found\n') };
    const basic = /^Basic (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const [user, ...rest] = basic ? Buffer.from(basic, 'base64').toString('utf8').split(':') : [];
    const password = rest.join(':');
    const allowed =
      (user === 'gitlab-ci-token' &&
        jobs.some((j) => j.projectId === project.id && j.status === 'running' && j.token === password)) ||
      (user !== undefined && accessTokens.get(password)?.admin === true);
    if (!allowed)
      return {
        status: 401,
        headers: { 'WWW-Authenticate': 'Basic realm="GitLab"' },
        raw: Buffer.from('HTTP Basic: Access denied\n'),
      };
    const file = dumbHttpFile(stateDir, project.path, m[2]);
    if (!file) return { status: 404, raw: Buffer.from('Not Found\n') };
    return {
      status: 200,
      headers: { 'content-type': file.type, 'cache-control': 'no-cache' },
      raw: file.body,
    };
  }

  const parseJobVariables = (v: unknown): Record<string, JobVariableInput> => {
    if (v === undefined || v === null) return {};
    if (typeof v !== 'object' || Array.isArray(v)) throw badRequest('variables must be an object');
    const out: Record<string, JobVariableInput> = {};
    for (const [key, val] of Object.entries(v as Record<string, unknown>)) {
      if (!/^[A-Za-z0-9_]+$/.test(key))
        throw badRequest(`variable key ${key}: only letters, digits and _ are allowed`);
      const input: JobVariableInput =
        typeof val === 'string' || typeof val === 'number' || typeof val === 'boolean'
          ? { value: String(val) }
          : val && typeof val === 'object' && 'value' in val
            ? {
                value: String((val as { value: unknown }).value),
                masked: Boolean((val as { masked?: unknown }).masked),
                file: Boolean((val as { file?: unknown }).file),
                raw: Boolean((val as { raw?: unknown }).raw),
              }
            : (() => {
                throw badRequest(`variable ${key}: a string or {value, masked?, file?, raw?}`);
              })();
      // GitLab refuses to save a masked variable whose value cannot be masked reliably.
      if (input.masked && !MASKABLE.test(input.value))
        throw badRequest(`variable ${key}: a masked value needs at least 8 characters and no whitespace`);
      out[key] = input;
    }
    return out;
  };

  async function control(method: string, path: string, p: Params): Promise<Reply> {
    let m: RegExpExecArray | null;
    if (method === 'GET' && path === '/_standin/state')
      return { status: 200, body: { ...state, jobs: jobs.map(jobView) } };
    if (method === 'POST' && path === '/_standin/reset') {
      reset();
      return { status: 204 };
    }
    if (method === 'POST' && (m = /^\/_standin\/registration-tokens\/(enable|disable)$/.exec(path))) {
      state.registrationTokensEnabled = m[1] === 'enable';
      return { status: 204 };
    }
    if (method === 'POST' && path === '/_standin/runner-token-expiration') {
      const seconds = p.seconds;
      if (seconds !== null && !(typeof seconds === 'number' && seconds > 0))
        throw badRequest('seconds: a positive number or null');
      state.runnerTokenExpirationSeconds = seconds;
      return { status: 204 };
    }
    if (method === 'POST' && (m = /^\/_standin\/runners\/(\d+)\/delete-token$/.exec(path))) {
      runnerById(m[1]).token = null;
      return { status: 204 };
    }
    if (method === 'POST' && (m = /^\/_standin\/runners\/(\d+)\/expire-token$/.exec(path))) {
      runnerById(m[1]).tokenExpiresAt = new Date(Date.now() - 1000).toISOString();
      return { status: 204 };
    }
    if (method === 'DELETE' && (m = /^\/_standin\/runners\/(\d+)$/.exec(path))) {
      removeRunner(runnerById(m[1]));
      return { status: 204 };
    }
    if (method === 'POST' && path === '/_standin/fail') {
      const rule = p as unknown as FailRule;
      if (typeof rule.path !== 'string' || !Number.isInteger(Number(rule.status)))
        throw badRequest('path and status are required');
      failRules.push({
        ...rule,
        status: Number(rule.status),
        truncate: rule.truncate === true || String(rule.truncate) === 'true',
        left: Number(rule.times ?? 1),
      });
      return { status: 204 };
    }
    if (method === 'POST' && path === '/_standin/admin-mode') {
      state.adminMode = bool(p, 'enabled') ?? true;
      return { status: 204 };
    }
    if (method === 'POST' && path === '/_standin/clock') {
      const offset = Number(p.offsetSeconds ?? 0);
      if (!Number.isFinite(offset)) throw badRequest('offsetSeconds: a number');
      clockOffsetSeconds = offset;
      return { status: 204 };
    }
    if (method === 'POST' && path === '/_standin/delay') {
      delayMs = Number(p.ms ?? 0);
      return { status: 204 };
    }
    if (method === 'POST' && path === '/_standin/projects') {
      const projectPath = str(p, 'path');
      if (
        !projectPath ||
        !/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)+$/.test(projectPath) ||
        projectPath.split('/').some((s) => s.startsWith('.') || s.endsWith('.git'))
      )
        throw badRequest('path: "group/project" (letters, digits, _ . -)');
      const files = p.files ?? {};
      if (
        typeof files !== 'object' ||
        Array.isArray(files) ||
        Object.values(files).some((v) => typeof v !== 'string')
      )
        throw badRequest('files: {name: text}');
      const badName = Object.keys(files).find(
        (n) =>
          n.startsWith('/') ||
          n.split('/').some((seg) => seg === '..' || seg === '.' || seg === '.git' || seg === ''),
      );
      if (badName !== undefined)
        throw badRequest(`files: ${badName} is not a relative path inside the repository`);
      const { sha, beforeSha } = await commitFiles(stateDir, projectPath, files as Record<string, string>);
      // A second POST for the same path commits the files on top (a push): same project, new head.
      let project = state.projects.find((pr) => pr.path === projectPath);
      if (project) Object.assign(project, { sha, beforeSha });
      else {
        const group = projectPath.slice(0, projectPath.lastIndexOf('/'));
        if (!namespaces.has(group)) namespaces.set(group, 100 + namespaces.size);
        project = {
          id: nextProjectId++,
          path: projectPath,
          namespaceId: namespaces.get(group)!,
          sha,
          beforeSha,
          createdAt: now(),
        };
        state.projects.push(project);
      }
      return {
        status: 201,
        body: {
          path: project.path,
          repoUrl: `${serverUrl}/${project.path}.git`,
          sha,
          id: project.id,
          namespaceId: project.namespaceId,
        },
      };
    }
    if (method === 'POST' && path === '/_standin/git-tokens') {
      // A project's deploy token or project access token (Settings > Repository / Access tokens), for git over HTTP.
      const project = state.projects.find((pr) => pr.path === str(p, 'project'));
      if (!project) throw notFound('Project');
      const scopes = ([] as unknown[]).concat(p.scopes ?? []).map(String);
      const kind = str(p, 'kind');
      if (kind === 'deploy') return { status: 201, body: gitTokens.createDeployToken(project.id, scopes) };
      if (kind === 'project')
        return { status: 201, body: gitTokens.createProjectAccessToken(project.id, scopes) };
      throw badRequest('kind: deploy or project');
    }
    if (method === 'POST' && path === '/_standin/jobs') {
      const projectPath = str(p, 'project');
      const ciYaml = str(p, 'ciYaml');
      const name = str(p, 'job');
      if (!projectPath || ciYaml === undefined || !name)
        throw badRequest('project, ciYaml and job are required');
      const project = state.projects.find((pr) => pr.path === projectPath);
      if (!project) throw notFound('Project');
      let spec;
      try {
        spec = parseCiJob(ciYaml, name);
      } catch (err) {
        if (err instanceof CiConfigError) throw badRequest(err.message);
        throw err;
      }
      const extraVariables = parseJobVariables(p.variables);
      const job: StandinJob = {
        id: nextJobId++,
        pipelineId: nextPipelineId++,
        projectId: project.id,
        name,
        spec,
        extraVariables,
        status: 'pending',
        token: randomToken('glcbt-', 24),
        sha: project.sha,
        beforeSha: project.beforeSha,
        ref: 'main',
        runnerId: null,
        systemId: null,
        failureReason: null,
        exitCode: null,
        trace: Buffer.alloc(0),
        queuedAt: now(),
        startedAt: null,
        finishedAt: null,
        watchedUntil: 0,
      };
      await writePipelineRef(stateDir, project.path, job.pipelineId, job.sha);
      jobs.push(job);
      tickRunnersFor(job);
      return { status: 201, body: { id: job.id } };
    }
    if (method === 'GET' && path === '/_standin/jobs') return { status: 200, body: jobs.map(jobView) };
    if (method === 'GET' && path === '/_standin/registry-token') {
      // For tests that read the registry after a job: GitLab's own full-access token for the named repositories.
      if (!signer) throw notFound('Registry');
      const names = ([] as unknown[]).concat(p.repository ?? []).map(String);
      return { status: 200, body: { token: fullAccessToken(signer, names) } };
    }
    if ((m = /^\/_standin\/jobs\/(\d+)$/.exec(path)) && method === 'GET') {
      const job = jobs.find((j) => j.id === Number(m![1]));
      if (!job) throw notFound('Job');
      // Reading the log is "watching" it: GitLab then asks the runner for a patch every 3 s instead of 60 s.
      job.watchedUntil = Date.now() + TRACE_WATCH_TTL_MS;
      return { status: 200, body: jobView(job) };
    }
    if ((m = /^\/_standin\/jobs\/(\d+)\/cancel$/.exec(path)) && method === 'POST') {
      const job = jobs.find((j) => j.id === Number(m![1]));
      if (!job) throw notFound('Job');
      // Ci::Build#cancel: a pending or running job is canceled; the runner learns it from Job-Status on its next call.
      if (!FINISHED.includes(job.status)) finish(job, 'canceled');
      return { status: 200, body: jobView(job) };
    }
    throw notFound();
  }

  /** GitLab's registry token endpoint (standin-registry.ts): a job's token works only while the job runs. */
  const jwtAuth = (req: IncomingMessage, url: URL): Reply => {
    const r = registryAuth(signer, url.searchParams, req.headers.authorization, (token) => {
      const job = jobs.find((j) => j.token === token && j.status === 'running');
      return job ? { projectPath: projectById(job.projectId).path, user: 'root' } : null;
    });
    return r.body === null ? { status: r.status } : { status: r.status, body: r.body };
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://standin');
    const method = (req.method ?? 'GET').toUpperCase();
    const path = url.pathname;
    const isControl = path.startsWith('/_standin/');
    let reply: Reply;
    try {
      const body = await readBody(req);
      // The trace body is the log itself (text/plain), never parameters; Grape reads only the query there.
      const isTrace = /^\/api\/v4\/jobs\/\d+\/trace$/.test(path);
      const params = parseParams(req, url, isTrace ? '' : body.toString('utf8'));
      const git =
        !isControl && !path.startsWith('/api/') ? await gitHttp(req, method, path, url, body) : null;
      if (isControl) reply = await control(method, path, params);
      else if (method === 'GET' && path === '/jwt/auth') reply = jwtAuth(req, url);
      else if (git) reply = git;
      else {
        if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
        const rule = failRules.find(
          (r) =>
            r.left > 0 &&
            r.path === path &&
            (!r.method || r.method.toUpperCase() === method) &&
            (!r.descriptionIncludes || String(params.description ?? '').includes(r.descriptionIncludes)),
        );
        if (rule) rule.left--;
        if (rule && !rule.truncate)
          throw new HttpError(rule.status, { message: `${rule.status} injected by the stand-in` });
        reply = await api(req, method, path, params, url, body);
        if (rule?.truncate) {
          // GitLab did the work; the answer lost its second half on the way (a proxy's buffer, a reset connection).
          const text = JSON.stringify(reply.body ?? {});
          reply = {
            status: rule.status,
            raw: Buffer.from(text.slice(0, Math.floor(text.length / 2))),
            headers: { 'content-type': 'application/json' },
          };
        }
      }
    } catch (err) {
      reply =
        err instanceof HttpError
          ? { status: err.status, body: err.body ?? undefined, headers: err.headers }
          : { status: 500, body: { message: '500 Internal Server Error' } };
    }
    if (!isControl) state.calls.push({ method, path, status: reply.status, at: now() });
    if (res.destroyed) return;
    const headers: Record<string, string> = { ...(reply.headers ?? {}) };
    if (!isControl && clockOffsetSeconds !== 0)
      headers.date = new Date(Date.now() + clockOffsetSeconds * 1000).toUTCString();
    if (reply.raw !== undefined) {
      if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type'))
        headers['content-type'] = 'text/plain';
      res.writeHead(reply.status, headers).end(method === 'HEAD' ? undefined : reply.raw);
    } else if (reply.body !== undefined && reply.status !== 204) {
      headers['content-type'] = 'application/json';
      res.writeHead(reply.status, headers).end(JSON.stringify(reply.body));
    } else res.writeHead(reply.status, headers).end();
  };

  reset();
  const listener = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
    });
  };
  const server: Server = createServer(listener);
  const tlsServer = opts.tls && createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key }, listener);
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const hostPart = host.includes(':') ? `[${host}]` : host;
  const url = `http://${hostPart}:${port}`;
  let tlsUrl: string | undefined;
  if (tlsServer) {
    await new Promise<void>((resolve, reject) => {
      tlsServer.once('error', reject);
      tlsServer.listen(opts.tls!.port ?? 0, host, () => resolve());
    });
    tlsUrl = `https://${hostPart}:${(tlsServer.address() as AddressInfo).port}`;
  }
  serverUrl = (opts.externalUrl ?? tlsUrl ?? url).replace(/\/+$/, '');

  return {
    url,
    ...(tlsUrl ? { tlsUrl } : {}),
    port,
    state,
    tokens,
    stateDir,
    jobs,
    tokenFiles: opts.tokensDir
      ? (Object.fromEntries(
          Object.entries(TOKEN_FILES).map(([k, f]) => [k, join(opts.tokensDir!, f)]),
        ) as Record<keyof StandinTokens, string>)
      : undefined,
    close: () =>
      new Promise<void>((resolve) => {
        tlsServer?.closeAllConnections();
        tlsServer?.close();
        server.closeAllConnections();
        server.close(() => {
          if (ownStateDir) rmSync(stateDir, { recursive: true, force: true });
          resolve();
        });
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
          (!filter.path ||
            (typeof filter.path === 'string' ? c.path === filter.path : filter.path.test(c.path))),
      );
    },
    setDelay(ms) {
      delayMs = ms;
    },
    setRunnerTokenExpiration(seconds) {
      state.runnerTokenExpirationSeconds = seconds;
    },
    setAdminMode(enabled) {
      state.adminMode = enabled;
    },
    jobView(id) {
      const job = jobs.find((j) => j.id === id);
      return job ? jobView(job) : undefined;
    },
  };
}
