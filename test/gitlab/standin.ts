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
//
// The parts: standin-routes.ts lists every route and standin-control.ts the /_standin/ controls; the model is
// standin-model.ts (records) with standin-runners.ts and standin-work.ts (what GitLab does to them), standin-auth.ts
// who a request is, standin-tokens.ts the tokens and scopes, standin-server.ts the request pipeline.
import { LONG_POLLING_DEFAULT_SECONDS } from './standin-workhorse.js';
import { GitTokens } from './git-http.js';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type FailRule, resetStandin, type StandinContext } from './standin-context.js';
import type { StandinJob } from './standin-jobs.js';
import { createModel, type StandinCall, type StandinJobView, type StandinState } from './standin-model.js';
import { type RegistrySigner, registrySigner } from './standin-registry.js';
import { removeRunner, runnerById } from './standin-runners.js';
import { standinListener } from './standin-server.js';
import { accessTokensOf, loadOrMakeTokens, type StandinTokens, TOKEN_FILES } from './standin-tokens.js';
import { jobById, jobView } from './standin-work.js';

export type { FailRule } from './standin-context.js';
export type { JobStatus, StandinJob, StandinProject } from './standin-jobs.js';
export {
  runnerAuthToken,
  type AccessLevel,
  type RunnerType,
  type StandinCall,
  type StandinJobView,
  type StandinManager,
  type StandinRunner,
  type StandinState,
} from './standin-model.js';
export { TOKEN_FILES, type StandinTokens } from './standin-tokens.js';

/** Ci::Runner::UPDATE_CONTACT_COLUMN_EVERY, and the same for runner managers. */
const UPDATE_CONTACT_COLUMN_EVERY_MS: [number, number] = [40 * 60 * 1000, 55 * 60 * 1000];

export interface StandinOptions {
  port?: number;
  host?: string;
  /** write one file per token here (mode 0600); existing files are reused so a restart keeps the tokens */
  tokensDir?: string;
  registrationTokensEnabled?: boolean;
  /** delay every API answer (timeout tests) */
  delayMs?: number;
  /** Workhorse's long polling of jobs/request in seconds (default: Omnibus' 50); 0 turns it off */
  longPollingSeconds?: number;
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

function newContext(
  opts: StandinOptions,
  tokens: StandinTokens,
  signer: RegistrySigner | null,
  stateDir: string,
): StandinContext {
  return {
    model: createModel({
      registrationTokensEnabled: opts.registrationTokensEnabled ?? true,
      runnerTokenExpirationSeconds: opts.runnerTokenExpirationSeconds ?? null,
      persistEvery: opts.contactedAtPersistEveryMs ?? UPDATE_CONTACT_COLUMN_EVERY_MS,
      presetRunnerToken: tokens.runnerToken,
      stateDir,
    }),
    tokens,
    accessTokens: accessTokensOf(tokens),
    gitTokens: new GitTokens(),
    signer,
    serverUrl: '',
    delayMs: opts.delayMs ?? 0,
    longPollingSeconds: opts.longPollingSeconds ?? LONG_POLLING_DEFAULT_SECONDS,
    clockOffsetSeconds: 0,
    failRules: [],
  };
}

const listen = (server: Server, port: number, host: string) =>
  new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve((server.address() as AddressInfo).port));
  });

/** What tests and the testbed hold: URLs, tokens, the live state, and the controls as methods. */
function handleOf(
  ctx: StandinContext,
  close: () => Promise<void>,
): Omit<GitlabStandin, 'url' | 'tlsUrl' | 'port'> {
  const { model, tokens } = ctx;
  const { state } = model;
  return {
    state,
    tokens,
    stateDir: model.settings.stateDir,
    jobs: model.jobs,
    close,
    reset: () => resetStandin(ctx),
    setRegistrationTokens(enabled) {
      state.registrationTokensEnabled = enabled;
    },
    deleteRunnerToken(id) {
      runnerById(model, String(id)).token = null;
    },
    deleteRunner(id) {
      removeRunner(model, runnerById(model, String(id)));
    },
    failNext(rule) {
      ctx.failRules.push({ ...rule, left: rule.times ?? 1 });
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
      ctx.delayMs = ms;
    },
    setRunnerTokenExpiration(seconds) {
      state.runnerTokenExpirationSeconds = seconds;
    },
    setAdminMode(enabled) {
      state.adminMode = enabled;
    },
    jobView(id) {
      const job = jobById(model, id);
      return job ? jobView(model, job) : undefined;
    },
  };
}

export async function startGitlabStandin(opts: StandinOptions = {}): Promise<GitlabStandin> {
  const tokens = loadOrMakeTokens(opts.tokensDir);
  const signer = opts.registry ? registrySigner(opts.registry.hostPort, opts.registry.keyPem) : null;
  const ownStateDir = !opts.stateDir;
  const stateDir = opts.stateDir ?? mkdtempSync(join(tmpdir(), 'rf-standin-state-'));
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const ctx = newContext(opts, tokens, signer, stateDir);
  const listener = standinListener(ctx);
  const server: Server = createServer(listener);
  const tlsServer = opts.tls && createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key }, listener);
  const host = opts.host ?? '127.0.0.1';
  const hostPart = host.includes(':') ? `[${host}]` : host;
  const port = await listen(server, opts.port ?? 0, host);
  const url = `http://${hostPart}:${port}`;
  const tlsUrl = tlsServer && `https://${hostPart}:${await listen(tlsServer, opts.tls!.port ?? 0, host)}`;
  ctx.serverUrl = (opts.externalUrl ?? tlsUrl ?? url).replace(/\/+$/, '');
  const close = () =>
    new Promise<void>((resolve) => {
      tlsServer?.closeAllConnections();
      tlsServer?.close();
      server.closeAllConnections();
      server.close(() => {
        if (ownStateDir) rmSync(stateDir, { recursive: true, force: true });
        resolve();
      });
    });
  return {
    url,
    ...(tlsUrl ? { tlsUrl } : {}),
    port,
    ...handleOf(ctx, close),
    tokenFiles: opts.tokensDir
      ? (Object.fromEntries(
          Object.entries(TOKEN_FILES).map(([k, f]) => [k, join(opts.tokensDir!, f)]),
        ) as Record<keyof StandinTokens, string>)
      : undefined,
  };
}
