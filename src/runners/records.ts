// Registration records: which GitLab runner (token, system_id, settings) belongs to which node, and where they are kept.
import { randomBytes } from 'node:crypto';
import { InputError } from '../errors.js';
import { AUTH_MODES, REGISTRATION_MODE_KEYS, type RegistrationMode } from '../gitlab/auth-modes.js';
import type { AccessLevel, Inventory, NodeSpec, RunnerType } from '../inventory/types.js';
import { registerSecret } from '../secrets.js';

export type { RegistrationMode };

/** The settings a runner was created or last updated with, in our words (the API's are snake_case). */
export interface RunnerSettings {
  description: string;
  tagList: string[];
  runUntagged: boolean;
  locked: boolean;
  accessLevel: AccessLevel;
  /** null: no limit (JSON has no undefined) */
  maximumTimeout: number | null;
  paused: boolean;
  /** where the runner lives; only access mode chooses it (a registration token implies it) */
  runnerType?: RunnerType;
  groupId?: number;
  projectId?: number;
}

export interface RunnerRecord {
  node: string;
  mode: RegistrationMode;
  /** GitLab's runner id (shared mode: the shared runner's id, as verify reports it) */
  id?: number;
  /** the runner authentication token; a secret, stored only where RecordStore puts it */
  token: string;
  /** `s_` + 12 hex, generated once per node and kept across re-creation: the runner manager's identity */
  systemId: string;
  /** exactly what the runner was created/updated with; null in shared mode, where GitLab owns the settings */
  settings: RunnerSettings | null;
  createdAt: string;
  tokenExpiresAt?: string | null;
  /** when `token` was issued (created or last rotated); default createdAt */
  tokenObtainedAt?: string;
  /** set when a newer record replaced this one and its runner (or manager) is not deleted yet:
   *  kept so that a failed delete is retried on the next run instead of leaving an orphan */
  retiredAt?: string;
}

/** Where records live between runs: a Kubernetes Secret (cluster placement) or a root-only file on a node. */
export interface RecordStore {
  load(): Promise<RunnerRecord[]>;
  save(records: RunnerRecord[]): Promise<void>;
  /** the id of the fleet these records belong to, made and kept on first use (see creationMarker) */
  fleetId?(): Promise<string>;
}

export function modeForAuth(kind: Inventory['gitlab']['auth']['kind']): RegistrationMode | null {
  return AUTH_MODES[kind].registration;
}

/** The settings a node's runner should have according to the inventory. */
export function desiredSettings(inv: Inventory, node: NodeSpec, mode: RegistrationMode): RunnerSettings {
  const r = inv.runners;
  const settings: RunnerSettings = {
    description: r.description.split('{node}').join(node.name),
    // The node name as a tag lets a job pin itself to one Pi.
    tagList: [...new Set([...r.tags, node.name])],
    runUntagged: r.runUntagged,
    locked: r.locked,
    accessLevel: r.accessLevel,
    maximumTimeout: r.maximumTimeout ?? null,
    paused: r.paused,
  };
  if (mode === 'access') {
    settings.runnerType = inv.gitlab.runnerType;
    if (inv.gitlab.runnerType === 'group_type') settings.groupId = inv.gitlab.groupId;
    if (inv.gitlab.runnerType === 'project_type') settings.projectId = inv.gitlab.projectId;
  }
  return settings;
}

const SETTING_LABELS: Record<keyof RunnerSettings, string> = {
  description: 'description',
  tagList: 'tags',
  runUntagged: 'run_untagged',
  locked: 'locked',
  accessLevel: 'access_level',
  maximumTimeout: 'maximum_timeout',
  paused: 'paused',
  runnerType: 'runner_type',
  groupId: 'group_id',
  projectId: 'project_id',
};

/** Fields whose change needs a new runner: PUT /runners/:id cannot move a runner to another group or project. */
export const SCOPE_FIELDS: readonly (keyof RunnerSettings)[] = ['runnerType', 'groupId', 'projectId'];

/** Which settings differ, as readable `field: old → new` strings (never a token: settings hold none). */
export function diffSettings(
  before: RunnerSettings | null,
  after: RunnerSettings,
): { field: keyof RunnerSettings; text: string }[] {
  if (!before) return [{ field: 'description', text: 'settings unknown' }];
  const out: { field: keyof RunnerSettings; text: string }[] = [];
  for (const field of Object.keys(SETTING_LABELS) as (keyof RunnerSettings)[]) {
    const a = before[field];
    const b = after[field];
    if (field === 'tagList') {
      const old = new Set(before.tagList);
      const now = new Set(after.tagList);
      const added = after.tagList.filter((t) => !old.has(t));
      const removed = before.tagList.filter((t) => !now.has(t));
      // GitLab keeps tags as a set: order alone is no change.
      if (added.length || removed.length) {
        out.push({
          field,
          text: `tags ${[...added.map((t) => `+${t}`), ...removed.map((t) => `-${t}`)].join(' ')}`,
        });
      }
      continue;
    }
    if ((a ?? null) !== (b ?? null))
      out.push({ field, text: `${SETTING_LABELS[field]}: ${show(a)} → ${show(b)}` });
  }
  return out;
}

function show(v: unknown): string {
  return v === undefined || v === null ? 'none' : typeof v === 'string' ? JSON.stringify(v) : String(v);
}

/**
 * Share of a token's lifetime after which runner-fleet rotates it. gitlab-runner itself resets at 0.75
 * (common.TokenResetIntervalFactor) because it runs all the time; runner-fleet runs when someone or cron runs it,
 * so it starts at half the lifetime to leave the other half for the next run. The runner is never left to rotate
 * by itself: it would write the new token only into the pod's copy of config.toml, and the Secret would go stale.
 */
export const TOKEN_ROTATION_FACTOR = 0.5;

/** Whether the record's token should be rotated now: it expires, and at least half of its lifetime has passed. */
export function tokenRotationDue(rec: RunnerRecord, now: Date): boolean {
  if (!rec.tokenExpiresAt) return false;
  const expires = Date.parse(rec.tokenExpiresAt);
  const obtained = Date.parse(rec.tokenObtainedAt ?? rec.createdAt);
  if (!Number.isFinite(expires) || !Number.isFinite(obtained)) return false;
  return now.getTime() >= obtained + TOKEN_ROTATION_FACTOR * Math.max(0, expires - obtained);
}

export function newSystemId(): string {
  // A random runner manager id as gitlab-runner makes one: `r_` and 12 alphanumerics (`s_` is for ids it derives
  // from the machine). Rejection sampling keeps every character equally likely.
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
  let id = '';
  while (id.length < 12)
    for (const b of randomBytes(16)) if (b < 248 && id.length < 12) id += alphabet[b % 62];
  return `r_${id}`;
}

/** What gitlab-runner accepts in .runner_system_id (both its random and its machine-derived ids). */
export const SYSTEM_ID = /^[sr]_[0-9a-zA-Z]{12}$/;

/** Validates records read back from a store; a store implementation calls this on what it loaded. */
export function parseRecords(raw: unknown, source: string): RunnerRecord[] {
  const issues: string[] = [];
  if (!Array.isArray(raw))
    throw new InputError([`${source}: expected a list of runner records`], 'runner records are unreadable');
  const out: RunnerRecord[] = [];
  raw.forEach((r, i) => {
    const p = `${source}[${i}]`;
    if (!r || typeof r !== 'object') return void issues.push(`${p}: expected a record`);
    const rec = r as Record<string, unknown>;
    const bad = (k: string, want: string) => issues.push(`${p}.${k}: expected ${want}`);
    if (typeof rec.node !== 'string' || !rec.node) bad('node', 'a node name');
    if (!Object.keys(REGISTRATION_MODE_KEYS).includes(rec.mode as string))
      bad('mode', Object.keys(REGISTRATION_MODE_KEYS).join(' | '));
    if (rec.id !== undefined && !Number.isInteger(rec.id)) bad('id', 'an integer');
    if (typeof rec.token !== 'string' || !rec.token) bad('token', 'a token');
    if (typeof rec.systemId !== 'string' || !SYSTEM_ID.test(rec.systemId))
      bad('systemId', 'r_ or s_ and 12 letters or digits');
    if (
      rec.settings !== null &&
      (typeof rec.settings !== 'object' || !Array.isArray((rec.settings as RunnerSettings)?.tagList))
    )
      bad('settings', 'settings or null');
    if (typeof rec.createdAt !== 'string') bad('createdAt', 'a timestamp');
    if (typeof rec.token === 'string') registerSecret(rec.token);
    out.push(rec as unknown as RunnerRecord);
  });
  // Never echo a record's values here: they include tokens.
  if (issues.length > 0) throw new InputError(issues, 'runner records are unreadable');
  return out;
}
