// The GitLab the stand-in pretends to be, as data: its records (runners, managers, projects, jobs, the call log), the
// instance settings, the id sequences, and how a runner record and its token are made. Operations on the records are
// in standin-runners.ts and standin-work.ts.
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { JobStatus, StandinJob, StandinProject } from './standin-jobs.js';

export type RunnerType = 'instance_type' | 'group_type' | 'project_type';
export type AccessLevel = 'not_protected' | 'ref_protected';

export const RUNNER_TYPES: RunnerType[] = ['instance_type', 'group_type', 'project_type'];
export const ACCESS_LEVELS: AccessLevel[] = ['not_protected', 'ref_protected'];

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

/** What a reset goes back to, and the settings that never change. */
export interface ModelSettings {
  registrationTokensEnabled: boolean;
  runnerTokenExpirationSeconds: number | null;
  /** [min, max] ms: contacted_at reaches the database column only when older than a random value in it */
  persistEvery: [number, number];
  /** the glrt- token of the instance runner every reset makes (#1) */
  presetRunnerToken: string;
  /** the project repositories live under <stateDir>/repos */
  stateDir: string;
}

export interface StandinModel {
  readonly settings: ModelSettings;
  readonly state: StandinState;
  /** the live job records, with tokens and traces */
  readonly jobs: StandinJob[];
  /** group path → namespace id */
  readonly namespaces: Map<string, number>;
  /** the next id of each kind */
  next: { runner: number; manager: number; project: number; job: number; pipeline: number };
}

export const now = () => new Date().toISOString();

export const randomToken = (prefix: string, n = 20) =>
  prefix + randomBytes(n).toString('base64url').slice(0, n);

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

/** Ci::Runner#compute_token_expiration: when a token made now expires, or null. */
export const tokenExpiry = (m: StandinModel) =>
  m.state.runnerTokenExpirationSeconds
    ? new Date(Date.now() + m.state.runnerTokenExpirationSeconds * 1000).toISOString()
    : null;

/** A runner record with GitLab's defaults and the next id (not yet in the state). */
export function newRunner(
  m: StandinModel,
  fields: Partial<StandinRunner> & Pick<StandinRunner, 'runnerType' | 'createdVia'>,
  token: string,
): StandinRunner {
  return {
    id: m.next.runner++,
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
    tokenExpiresAt: tokenExpiry(m),
    queueValue: null,
    queueValueExpiresAt: 0,
    ...fields,
  };
}

export function createModel(settings: ModelSettings): StandinModel {
  const m: StandinModel = {
    settings,
    state: {
      registrationTokensEnabled: settings.registrationTokensEnabled,
      adminMode: false,
      runnerTokenExpirationSeconds: settings.runnerTokenExpirationSeconds,
      runners: [],
      managers: [],
      projects: [],
      calls: [],
    },
    jobs: [],
    namespaces: new Map(),
    next: { runner: 1, manager: 1, project: 1, job: 1, pipeline: 1 },
  };
  resetModel(m);
  return m;
}

/** Back to a fresh GitLab: the settings as started, no records, no repositories, one runner made in the UI. */
export function resetModel(m: StandinModel): void {
  const { state } = m;
  state.adminMode = false;
  state.registrationTokensEnabled = m.settings.registrationTokensEnabled;
  state.runnerTokenExpirationSeconds = m.settings.runnerTokenExpirationSeconds;
  state.runners.length = 0;
  state.managers.length = 0;
  state.projects.length = 0;
  state.calls.length = 0;
  m.jobs.length = 0;
  m.namespaces.clear();
  rmSync(join(m.settings.stateDir, 'repos'), { recursive: true, force: true });
  m.next = { runner: 1, manager: 1, project: 1, job: 1, pipeline: 1 };
  // The runner an administrator made in the UI, whose glrt- token every node shares in runner-token mode.
  state.runners.push(
    newRunner(
      m,
      {
        runnerType: 'instance_type',
        description: 'shared runner made in the UI',
        tagList: ['shared'],
        createdVia: 'preset',
        runUntagged: true,
      },
      m.settings.presetRunnerToken,
    ),
  );
}
