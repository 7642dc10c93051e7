// The GitLab runner API adapter: the only module that talks HTTP to GitLab (Node fetch); errors become ApiError, redacted.
import { ApiError } from '../errors.js';
import type { AccessLevel, GitlabConfig, RunnerType } from '../inventory/types.js';
import { commandTrace } from '../log.js';
import { redact, registerSecret } from '../secrets.js';
import { fetchTrusting } from './ca-fetch.js';

/** Runner settings as the API spells them (POST /user/runners, POST /runners, PUT /runners/:id). */
export interface RunnerParams {
  description?: string;
  /** GitLab takes an array or a comma-separated string; we always send an array */
  tag_list?: string[];
  run_untagged?: boolean;
  locked?: boolean;
  access_level?: AccessLevel;
  /** null clears the limit on update */
  maximum_timeout?: number | null;
  paused?: boolean;
  maintenance_note?: string;
}

export interface CreateRunnerParams extends RunnerParams {
  runner_type: RunnerType;
  group_id?: number;
  project_id?: number;
}

/** What creating or verifying a runner returns. `token` is a secret. */
export interface RunnerCredentials {
  id: number;
  token: string;
  tokenExpiresAt: string | null;
}

export interface RunnerSummary {
  id: number;
  description: string | null;
  paused: boolean;
  is_shared: boolean;
  runner_type: RunnerType;
  status: string;
  [key: string]: unknown;
}

/** GET /runners/:id: the summary plus contact time and settings. */
export interface RunnerDetails extends RunnerSummary {
  contacted_at: string | null;
  tag_list: string[];
  run_untagged: boolean;
  locked: boolean;
  access_level: AccessLevel;
  maximum_timeout: number | null;
}

export interface RunnerManager {
  id: number;
  system_id: string;
  created_at: string;
  contacted_at: string | null;
  status: string;
  [key: string]: unknown;
}

/** The calls runner reconcile needs; tests may hand reconcile their own implementation. */
export interface GitlabRunnerApi {
  createUserRunner(accessToken: string, params: CreateRunnerParams): Promise<RunnerCredentials>;
  registerRunner(registrationToken: string, params: RunnerParams): Promise<RunnerCredentials>;
  verifyRunner(token: string, systemId?: string): Promise<RunnerCredentials>;
  resetRunnerToken(token: string): Promise<RunnerCredentials>;
  resetRunnerTokenById(accessToken: string, id: number): Promise<RunnerCredentials>;
  deleteRunnerByToken(token: string): Promise<void>;
  deleteRunnerManager(token: string, systemId: string): Promise<void>;
  updateRunner(accessToken: string, id: number, params: RunnerParams): Promise<RunnerDetails>;
  deleteRunnerById(accessToken: string, id: number): Promise<void>;
  getRunner(accessToken: string, id: number): Promise<RunnerDetails>;
  listRunnerManagers(accessToken: string, id: number): Promise<RunnerManager[]>;
  listAllRunners(
    accessToken: string,
    filter?: { tagList?: string[]; type?: RunnerType },
  ): Promise<RunnerSummary[]>;
}

export interface GitlabApiOptions {
  /** base URL, e.g. https://gitlab.example.com or https://host/gitlab */
  url: string;
  /** per request, including reading the body */
  timeoutSeconds: number;
  /** injectable for tests; defaults to the global fetch */
  fetch?: typeof globalThis.fetch;
  /** extra attempts for idempotent requests after a network error or 502/503/504 (never for creates) */
  retries?: number;
  retryDelayMs?: number;
}

interface RequestOptions {
  accessToken?: string;
  body?: Record<string, unknown>;
  query?: Record<string, string>;
  /** safe to send twice: creates are not, because a lost response would leave a runner nobody knows */
  idempotent: boolean;
}

interface Response<T> {
  status: number;
  data: T;
  headers: Headers;
}

export class GitlabApi implements GitlabRunnerApi {
  private readonly base: string;
  private readonly fetchImpl: typeof globalThis.fetch;

  constructor(private readonly opts: GitlabApiOptions) {
    this.base = `${opts.url.replace(/\/+$/, '')}/api/v4`;
    this.fetchImpl = opts.fetch ?? globalThis.fetch;
  }

  static fromConfig(gitlab: GitlabConfig, extra: Partial<GitlabApiOptions> = {}): GitlabApi {
    // gitlab.caFile: runner-fleet itself is one more client of GitLab's certificate.
    const trusting = gitlab.ca ? { fetch: fetchTrusting(gitlab.ca.pem) } : {};
    return new GitlabApi({ url: gitlab.url, timeoutSeconds: gitlab.timeout, ...trusting, ...extra });
  }

  /** POST /user/runners: needs an access token with the create_runner scope. */
  async createUserRunner(accessToken: string, params: CreateRunnerParams): Promise<RunnerCredentials> {
    const res = await this.request<Record<string, unknown>>('POST', '/user/runners', {
      accessToken,
      body: { ...params },
      idempotent: false,
    });
    return credentials(res.data, 'POST /user/runners');
  }

  /** POST /runners with a legacy registration token (410 Gone when GitLab disallows them). */
  async registerRunner(registrationToken: string, params: RunnerParams): Promise<RunnerCredentials> {
    const res = await this.request<Record<string, unknown>>('POST', '/runners', {
      body: { token: registrationToken, ...params },
      idempotent: false,
    });
    return credentials(res.data, 'POST /runners');
  }

  /**
   * POST /runners/reset_authentication_token with the runner's own token: GitLab issues a new token (and expiry)
   * and the old one stops working. Not retried: a second call would rotate again, with a token we never saw.
   */
  async resetRunnerToken(token: string): Promise<RunnerCredentials> {
    const res = await this.request<Record<string, unknown>>('POST', '/runners/reset_authentication_token', {
      body: { token },
      idempotent: false,
    });
    return credentials({ id: 0, ...res.data }, 'POST /runners/reset_authentication_token');
  }

  /**
   * POST /runners/:id/reset_authentication_token with an access token (manage_runner), as gitlab-runner's
   * ResetTokenWithPAT: the way to get a token for a runner whose token nobody knows (one adopted after a lost create
   * answer). Not retried, like resetRunnerToken.
   */
  async resetRunnerTokenById(accessToken: string, id: number): Promise<RunnerCredentials> {
    const res = await this.request<Record<string, unknown>>(
      'POST',
      `/runners/${id}/reset_authentication_token`,
      { accessToken, idempotent: false },
    );
    return credentials({ id, ...res.data }, `POST /runners/${id}/reset_authentication_token`);
  }

  /** POST /runners/verify: 200 for a valid token; with system_id it creates or refreshes that runner manager. */
  async verifyRunner(token: string, systemId?: string): Promise<RunnerCredentials> {
    const body: Record<string, unknown> = { token };
    if (systemId) body.system_id = systemId;
    const res = await this.request<Record<string, unknown>>('POST', '/runners/verify', {
      body,
      idempotent: true,
    });
    // Tolerate a verify answer without a body (the old docs showed none): the token we sent is still the token.
    const data = res.data && typeof res.data === 'object' ? res.data : {};
    return credentials({ token, ...data, id: data.id ?? 0 }, 'POST /runners/verify');
  }

  /** DELETE /runners: deletes the whole runner the token belongs to (every manager of a shared runner too). */
  async deleteRunnerByToken(token: string): Promise<void> {
    await this.request('DELETE', '/runners', { body: { token }, idempotent: true });
  }

  /** DELETE /runners/managers: removes one manager (system_id) of the runner, leaving the runner. */
  async deleteRunnerManager(token: string, systemId: string): Promise<void> {
    await this.request('DELETE', '/runners/managers', {
      body: { token, system_id: systemId },
      idempotent: true,
    });
  }

  /** PUT /runners/:id: needs an access token with the api or manage_runner scope. */
  async updateRunner(accessToken: string, id: number, params: RunnerParams): Promise<RunnerDetails> {
    const res = await this.request<RunnerDetails>('PUT', `/runners/${id}`, {
      accessToken,
      body: { ...params },
      idempotent: true,
    });
    return res.data;
  }

  /** DELETE /runners/:id with an access token: for a runner whose own token no longer works. */
  async deleteRunnerById(accessToken: string, id: number): Promise<void> {
    await this.request('DELETE', `/runners/${id}`, { accessToken, idempotent: true });
  }

  async getRunner(accessToken: string, id: number): Promise<RunnerDetails> {
    return (await this.request<RunnerDetails>('GET', `/runners/${id}`, { accessToken, idempotent: true }))
      .data;
  }

  async listRunnerManagers(accessToken: string, id: number): Promise<RunnerManager[]> {
    return (
      await this.request<RunnerManager[]>('GET', `/runners/${id}/managers`, { accessToken, idempotent: true })
    ).data;
  }

  /**
   * GitLab's clock: one HEAD /version without a token, for its `Date` header (any status carries one), and this
   * machine's clock when the answer came. Undefined when the answer has no usable Date.
   */
  async serverClock(): Promise<{ date: number; receivedAt: number } | undefined> {
    commandTrace.emit?.('gitlab', 'HEAD /version');
    const url = new URL(`${this.base}/version`);
    let res: globalThis.Response;
    try {
      res = await this.fetchImpl(url, {
        method: 'HEAD',
        signal: AbortSignal.timeout(this.opts.timeoutSeconds * 1000),
        redirect: 'manual',
      });
    } catch (err) {
      throw new ApiError(
        'gitlab',
        0,
        redact(`GitLab HEAD /version: ${networkReason(err, this.opts.timeoutSeconds, url.origin)}`),
      );
    }
    const receivedAt = Date.now();
    const date = Date.parse(res.headers.get('date') ?? '');
    return Number.isNaN(date) ? undefined : { date, receivedAt };
  }

  /** GET /runners/all (administrators), every page. */
  async listAllRunners(
    accessToken: string,
    filter: { tagList?: string[]; type?: RunnerType } = {},
  ): Promise<RunnerSummary[]> {
    const out: RunnerSummary[] = [];
    let page = '1';
    // GitLab pages list endpoints (20 by default); follow X-Next-Page until it is empty.
    for (let guard = 0; page && guard < 1000; guard++) {
      const query: Record<string, string> = { per_page: '100', page };
      if (filter.tagList?.length) query.tag_list = filter.tagList.join(',');
      if (filter.type) query.type = filter.type;
      const res = await this.request<RunnerSummary[]>('GET', '/runners/all', {
        accessToken,
        query,
        idempotent: true,
      });
      if (!Array.isArray(res.data))
        throw new ApiError('gitlab', res.status, 'GitLab GET /runners/all: expected a list');
      out.push(...res.data);
      page = res.headers.get('x-next-page') ?? '';
    }
    return out;
  }

  private async request<T>(method: string, path: string, opts: RequestOptions): Promise<Response<T>> {
    const attempts = 1 + (opts.idempotent ? (this.opts.retries ?? 1) : 0);
    let last: unknown;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        return await this.once<T>(method, path, opts);
      } catch (err) {
        last = err;
        const retriable =
          err instanceof ApiError &&
          (err.status === 0 || err.status === 502 || err.status === 503 || err.status === 504);
        if (!retriable || attempt === attempts) throw err;
        await new Promise((r) => setTimeout(r, this.opts.retryDelayMs ?? 500));
      }
    }
    throw last;
  }

  private async once<T>(method: string, path: string, opts: RequestOptions): Promise<Response<T>> {
    const what = `GitLab ${method} ${path}`;
    commandTrace.emit?.('gitlab', `${method} ${path}`);
    const url = new URL(this.base + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) url.searchParams.set(k, v);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (opts.accessToken) {
      registerSecret(opts.accessToken);
      headers['PRIVATE-TOKEN'] = opts.accessToken;
    }
    let body: string | undefined;
    if (opts.body) {
      // Tokens travel in the body, never in the URL, so no proxy or access log records them.
      if (typeof opts.body.token === 'string') registerSecret(opts.body.token);
      headers['content-type'] = 'application/json';
      body = JSON.stringify(opts.body);
    }
    const timeoutMs = this.opts.timeoutSeconds * 1000;
    let res: globalThis.Response;
    let text: string;
    try {
      res = await this.fetchImpl(url, {
        method,
        headers,
        body,
        signal: AbortSignal.timeout(timeoutMs),
        redirect: 'error',
      });
      text = await res.text();
    } catch (err) {
      throw new ApiError(
        'gitlab',
        0,
        redact(`${what}: ${networkReason(err, this.opts.timeoutSeconds, url.origin)}`),
      );
    }
    let data: unknown = undefined;
    if (text.trim() !== '') {
      try {
        data = JSON.parse(text);
      } catch {
        data = undefined;
      }
    }
    if (!res.ok) {
      const reason = reasonFrom(data, res.statusText);
      // GitLab's messages usually start with the status already ("403 Forbidden - …").
      throw new ApiError(
        'gitlab',
        res.status,
        redact(`${what}: ${reason.startsWith(String(res.status)) ? reason : `${res.status} ${reason}`}`),
      );
    }
    if (data === undefined && text.trim() !== '') {
      throw new ApiError(
        'gitlab',
        res.status,
        `${what}: answered ${res.status} with a body that is not JSON (is gitlab.url the GitLab root?)`,
      );
    }
    return { status: res.status, data: data as T, headers: res.headers };
  }
}

/** GitLab's error bodies: {message: "403 Forbidden - …"}, {message: {field: [..]}}, or {error, error_description}. */
function reasonFrom(data: unknown, statusText: string): string {
  if (data && typeof data === 'object') {
    const d = data as Record<string, unknown>;
    const parts: string[] = [];
    if (d.message !== undefined)
      parts.push(typeof d.message === 'string' ? d.message : JSON.stringify(d.message));
    if (typeof d.error === 'string') parts.push(d.error);
    if (typeof d.error_description === 'string') parts.push(d.error_description);
    if (typeof d.scope === 'string') parts.push(`(needs scope: ${d.scope})`);
    if (parts.length > 0) return clip(parts.join(': '));
  }
  return statusText || 'no reason given';
}

function clip(text: string): string {
  return text.length > 400 ? `${text.slice(0, 400)}…` : text;
}

function networkReason(err: unknown, timeoutSeconds: number, origin: string): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError')
    return `no answer within ${timeoutSeconds}s (gitlab.timeout)`;
  const cause = e?.cause?.code ?? e?.cause?.message ?? e?.message ?? String(err);
  // Node's names for "x509: certificate signed by unknown authority" and its kin.
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER/.test(cause))
    return `${origin}'s certificate does not verify (${cause}; x509: is it signed by a private CA? name it in gitlab.caFile)`;
  return `cannot reach ${origin} (${cause})`;
}

function credentials(data: Record<string, unknown>, what: string): RunnerCredentials {
  const id = typeof data?.id === 'string' ? Number(data.id) : data?.id;
  if (typeof data?.token !== 'string' || typeof id !== 'number' || !Number.isInteger(id)) {
    throw new ApiError('gitlab', 200, `GitLab ${what}: the answer has no runner id and token`);
  }
  registerSecret(data.token);
  return {
    id,
    token: data.token,
    tokenExpiresAt: typeof data.token_expires_at === 'string' ? data.token_expires_at : null,
  };
}
