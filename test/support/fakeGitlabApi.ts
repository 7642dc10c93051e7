// An in-memory GitLab runner API for unit tests: keeps runners and managers, records every call in order, fails the calls a test scripts.
import { ApiError } from '../../src/errors.js';
import type {
  CreateRunnerParams,
  GitlabRunnerApi,
  RunnerCredentials,
  RunnerDetails,
  RunnerManager,
  RunnerParams,
  RunnerSummary,
} from '../../src/gitlab/api.js';
import type { RunnerType } from '../../src/inventory/types.js';

export interface FakeRunner {
  id: number;
  token: string;
  tokenExpiresAt: string | null;
  runnerType: RunnerType;
  description: string;
  tagList: string[];
  runUntagged: boolean;
  locked: boolean;
  accessLevel: RunnerDetails['access_level'];
  maximumTimeout: number | null;
  paused: boolean;
  maintenanceNote: string | null;
  contactedAt: string | null;
  /** system_ids of its managers */
  managers: string[];
}

export type FakeCall = { method: keyof GitlabRunnerApi; args: unknown[] };

interface Fault {
  method: keyof GitlabRunnerApi;
  status: number;
  message: string;
  /** the call takes effect, then its answer is lost (a timeout after GitLab acted) */
  afterEffect: boolean;
  times: number;
}

/**
 * Status codes as the stand-in (test/gitlab/standin.ts) and GitLab answer them: a runner token GitLab does not know
 * is 403 (authenticate_runner!), a runner id it does not know is 404, a manager it does not have is 404.
 */
export class FakeGitlab implements GitlabRunnerApi {
  readonly runners: FakeRunner[] = [];
  readonly calls: FakeCall[] = [];
  /** what createUserRunner, registerRunner and token resets give as expiry */
  tokenExpiresAt: string | null = null;
  private nextId = 100;
  private tokenSeq = 0;
  private faults: Fault[] = [];

  /** The next `times` calls of `method` fail with `status` (afterEffect: they act first, then fail). */
  fail(
    method: keyof GitlabRunnerApi,
    status: number,
    opts: { message?: string; times?: number; afterEffect?: boolean } = {},
  ): this {
    this.faults.push({
      method,
      status,
      message: opts.message ?? `${status} fake`,
      afterEffect: opts.afterEffect ?? false,
      times: opts.times ?? 1,
    });
    return this;
  }

  /** the methods called, in order */
  methods(): string[] {
    return this.calls.map((c) => c.method);
  }

  /** A runner already in GitLab (made by hand, by another fleet or by a lost create). */
  addRunner(r: Partial<FakeRunner> & { tagList: string[] }): FakeRunner {
    const runner: FakeRunner = {
      id: this.nextId++,
      token: this.newToken(),
      tokenExpiresAt: null,
      runnerType: 'instance_type',
      description: '',
      runUntagged: false,
      locked: false,
      accessLevel: 'not_protected',
      maximumTimeout: null,
      paused: false,
      maintenanceNote: null,
      contactedAt: null,
      managers: [],
      ...r,
    };
    this.runners.push(runner);
    return runner;
  }

  async createUserRunner(accessToken: string, params: CreateRunnerParams): Promise<RunnerCredentials> {
    return this.call('createUserRunner', [accessToken, params], () =>
      this.create(params, params.runner_type),
    );
  }

  async registerRunner(registrationToken: string, params: RunnerParams): Promise<RunnerCredentials> {
    return this.call('registerRunner', [registrationToken, params], () =>
      this.create(params, 'instance_type'),
    );
  }

  async verifyRunner(token: string, systemId?: string): Promise<RunnerCredentials> {
    return this.call('verifyRunner', [token, systemId], () => {
      const r = this.byToken(token);
      if (systemId && !r.managers.includes(systemId)) r.managers.push(systemId);
      return this.credentials(r);
    });
  }

  async resetRunnerToken(token: string): Promise<RunnerCredentials> {
    return this.call('resetRunnerToken', [token], () => this.reset(this.byToken(token)));
  }

  async resetRunnerTokenById(accessToken: string, id: number): Promise<RunnerCredentials> {
    return this.call('resetRunnerTokenById', [accessToken, id], () => this.reset(this.byId(id)));
  }

  async deleteRunnerByToken(token: string): Promise<void> {
    return this.call('deleteRunnerByToken', [token], () => this.remove(this.byToken(token)));
  }

  async deleteRunnerManager(token: string, systemId: string): Promise<void> {
    return this.call('deleteRunnerManager', [token, systemId], () => {
      const r = this.byToken(token);
      const i = r.managers.indexOf(systemId);
      if (i < 0) throw new ApiError('gitlab', 404, '404 Runner manager not found');
      r.managers.splice(i, 1);
    });
  }

  async updateRunner(accessToken: string, id: number, params: RunnerParams): Promise<RunnerDetails> {
    return this.call('updateRunner', [accessToken, id, params], () => {
      const r = this.byId(id);
      this.assign(r, params);
      return this.details(r);
    });
  }

  async deleteRunnerById(accessToken: string, id: number): Promise<void> {
    return this.call('deleteRunnerById', [accessToken, id], () => this.remove(this.byId(id)));
  }

  async getRunner(accessToken: string, id: number): Promise<RunnerDetails> {
    return this.call('getRunner', [accessToken, id], () => this.details(this.byId(id)));
  }

  async listRunnerManagers(accessToken: string, id: number): Promise<RunnerManager[]> {
    return this.call('listRunnerManagers', [accessToken, id], () =>
      this.byId(id).managers.map((systemId, i) => ({
        id: i + 1,
        system_id: systemId,
        created_at: '2026-01-01T00:00:00.000Z',
        contacted_at: null,
        status: 'never_contacted',
      })),
    );
  }

  async listAllRunners(
    accessToken: string,
    filter: { tagList?: string[]; type?: RunnerType } = {},
  ): Promise<RunnerSummary[]> {
    return this.call('listAllRunners', [accessToken, filter], () =>
      this.runners
        .filter((r) => (filter.tagList ?? []).every((t) => r.tagList.includes(t)))
        .filter((r) => !filter.type || r.runnerType === filter.type)
        .map((r) => this.summary(r)),
    );
  }

  private call<T>(method: keyof GitlabRunnerApi, args: unknown[], act: () => T): Promise<T> {
    this.calls.push({ method, args: structuredClone(args) });
    const i = this.faults.findIndex((f) => f.method === method);
    const fault = i >= 0 ? this.faults[i] : undefined;
    if (fault && --fault.times <= 0) this.faults.splice(i, 1);
    try {
      if (fault && !fault.afterEffect) throw new ApiError('gitlab', fault.status, fault.message);
      const out = act();
      if (fault) throw new ApiError('gitlab', fault.status, fault.message);
      return Promise.resolve(out);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private newToken(): string {
    return `glrt-fake${String(++this.tokenSeq).padStart(16, '0')}`;
  }

  private create(params: RunnerParams, runnerType: RunnerType): RunnerCredentials {
    const r = this.addRunner({ tagList: [], runnerType, tokenExpiresAt: this.tokenExpiresAt });
    this.assign(r, params);
    return this.credentials(r);
  }

  private reset(r: FakeRunner): RunnerCredentials {
    r.token = this.newToken();
    r.tokenExpiresAt = this.tokenExpiresAt;
    return this.credentials(r);
  }

  private remove(r: FakeRunner): void {
    this.runners.splice(this.runners.indexOf(r), 1);
  }

  private byToken(token: string): FakeRunner {
    const r = this.runners.find((x) => x.token === token);
    if (!r) throw new ApiError('gitlab', 403, '403 Forbidden');
    return r;
  }

  private byId(id: number): FakeRunner {
    const r = this.runners.find((x) => x.id === id);
    if (!r) throw new ApiError('gitlab', 404, '404 Not found');
    return r;
  }

  private assign(r: FakeRunner, p: RunnerParams): void {
    if (p.description !== undefined) r.description = p.description;
    if (p.tag_list !== undefined) r.tagList = [...p.tag_list];
    if (p.run_untagged !== undefined) r.runUntagged = p.run_untagged;
    if (p.locked !== undefined) r.locked = p.locked;
    if (p.access_level !== undefined) r.accessLevel = p.access_level;
    if (p.maximum_timeout !== undefined) r.maximumTimeout = p.maximum_timeout;
    if (p.paused !== undefined) r.paused = p.paused;
    if (p.maintenance_note !== undefined) r.maintenanceNote = p.maintenance_note;
  }

  private credentials(r: FakeRunner): RunnerCredentials {
    return { id: r.id, token: r.token, tokenExpiresAt: r.tokenExpiresAt };
  }

  private summary(r: FakeRunner): RunnerSummary {
    return {
      id: r.id,
      description: r.description,
      paused: r.paused,
      is_shared: r.runnerType === 'instance_type',
      runner_type: r.runnerType,
      status: r.contactedAt ? 'online' : 'never_contacted',
    };
  }

  private details(r: FakeRunner): RunnerDetails {
    return {
      ...this.summary(r),
      contacted_at: r.contactedAt,
      tag_list: [...r.tagList],
      run_untagged: r.runUntagged,
      locked: r.locked,
      access_level: r.accessLevel,
      maximum_timeout: r.maximumTimeout,
      maintenance_note: r.maintenanceNote,
    };
  }
}
