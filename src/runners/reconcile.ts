// Runs the registration plan against GitLab: verify, create, update, delete; saves records after every step so nothing is orphaned.
import { randomBytes } from 'node:crypto';
import type { GitlabRunnerApi, CreateRunnerParams, RunnerDetails, RunnerParams } from '../gitlab/api.js';
import { ApiError } from '../errors.js';
import type { Inventory } from '../inventory/types.js';
import type { Logger } from '../log.js';
import { mapPool } from '../pool.js';
import type { Change } from '../report.js';
import { redact, secretValue } from '../secrets.js';
import { judgeStray, strayLeftAlone, type StrayCandidate } from './strays.js';
import {
  creationMarker,
  describeAction,
  describeMode,
  planRegistrations,
  type RegistrationAction,
} from './plan.js';
import {
  diffSettings,
  modeForAuth,
  newSystemId,
  SCOPE_FIELDS,
  tokenRotationDue,
  type RecordStore,
  type RunnerRecord,
  type RunnerSettings,
} from './records.js';

export interface ReconcileOptions {
  dryRun: boolean;
  /** `--only`: pass the whole inventory and the selected names, so other nodes' runners are left alone */
  only?: string[];
  /** nodes handled at once (default 4) */
  concurrency?: number;
  log?: Logger;
  now?: () => Date;
  makeSystemId?: () => string;
  /** the fleet's id for creation marks when the store keeps none (host placement: one per node address) */
  fleetId?: string;
  /**
   * Leave every delete (a replaced runner, a node gone from the inventory) to `result.retire()`, which the caller
   * runs once the cluster or hosts carry the new tokens: until then old pods still poll with the old tokens, and
   * in shared-token mode a pod still running would re-create the manager just deleted. The records of what waits
   * are saved as retired first, so a run that dies in between leaves nothing the next run does not delete.
   */
  retireLater?: boolean;
}

export interface RunnerChange extends Change {
  node: string;
}

export interface RunnerIssue {
  node: string;
  message: string;
}

export interface ReconcileResult {
  /** the records as saved (dry run: as loaded) */
  records: RunnerRecord[];
  /** what changed in GitLab (dry run: what would) */
  changes: RunnerChange[];
  /** per node; one node's failure never stops the others */
  errors: RunnerIssue[];
  /** things that worked but need a person's attention */
  warnings: RunnerIssue[];
  actions: RegistrationAction[];
  /**
   * Runs the deletes that `retireLater` held back (nothing otherwise), adding to `changes` and `errors`; returns the
   * records as saved afterwards.
   */
  retire(): Promise<RunnerRecord[]>;
}

/** Keeps the working set of records and saves it; saves are serialised so concurrent nodes never interleave them. */
class Ledger {
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly records: RunnerRecord[],
    private readonly store: RecordStore,
  ) {}

  add(r: RunnerRecord): void {
    this.records.push(r);
  }

  drop(r: RunnerRecord): void {
    const i = this.records.indexOf(r);
    if (i >= 0) this.records.splice(i, 1);
  }

  commit(): Promise<void> {
    const run = this.chain.then(() => this.store.save(this.snapshot()));
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** sorted by node, then age: the same records always serialise the same, whatever order nodes finished in */
  snapshot(): RunnerRecord[] {
    const sorted = [...this.records].sort(
      (a, b) => a.node.localeCompare(b.node) || a.createdAt.localeCompare(b.createdAt),
    );
    return structuredClone(sorted);
  }
}

const isApi = (err: unknown, ...statuses: number[]): err is ApiError =>
  err instanceof ApiError && statuses.includes(err.status);
const messageOf = (err: unknown): string => redact(err instanceof Error ? err.message : String(err));

/**
 * A create that may or may not have made the runner: no answer (0), a gateway's 502/503/504, or a 2xx whose body
 * could not be read (cut short by a proxy): GitLab did answer success, but the runner's id and token are lost.
 */
export const noClearAnswer = (err: unknown): err is ApiError =>
  isApi(err, 0, 502, 503, 504) || (err instanceof ApiError && err.status >= 200 && err.status < 300);

/**
 * Why this token cannot list runners (GET /runners/all), in GitLab's terms: a scope it lacks (manage_runner does not
 * cover a route without a runner id), or an administrator GitLab does not see (Admin Mode wants admin_mode).
 */
export function strayLookupDeniedMessage(err: ApiError): string {
  const why = /insufficient_scope/.test(err.message)
    ? 'the token lacks the read_api scope (or api): manage_runner covers only calls that name a runner id'
    : err.status === 401
      ? 'the token was not accepted'
      : 'GitLab did not treat the token as an administrator: its user must be one, and with Admin Mode on the token also needs the admin_mode scope';
  return `this token cannot list runners (GET /runners/all: ${err.message}): ${why}`;
}

export function registrationDisabledMessage(err: ApiError): string {
  return (
    `gitlab.registrationToken: registration tokens are disabled on this GitLab (${err.message}). ` +
    'Since GitLab 17.0 they are off by default (allow_runner_registration_token), and their removal is scheduled for 20.0. ' +
    'Instead set gitlab.accessToken: file:/path/to/token — a personal, group or project access token with the create_runner scope; ' +
    'runner-fleet then creates one runner per node — or gitlab.runnerToken: env:NAME — the glrt- token of a runner created in GitLab, ' +
    'shared by every node. Remove gitlab.registrationToken.'
  );
}

/**
 * One GET /runners/all (filtered to a node that gets a new runner) when the plan creates any: undefined when this
 * token may list runners, else why not. Only a refusal counts; any other failure is left to the calls that follow.
 */
async function probeStrayLookup(
  api: GitlabRunnerApi,
  secret: string,
  actions: RegistrationAction[],
): Promise<string | undefined> {
  const create = actions.find((a) => a.kind === 'create' && a.mode === 'access');
  if (!create || create.kind !== 'create') return undefined;
  try {
    await api.listAllRunners(secret, { tagList: [create.node], type: create.settings.runnerType });
    return undefined;
  } catch (err) {
    return isApi(err, 401, 403) ? strayLookupDeniedMessage(err) : undefined;
  }
}

export async function reconcileRunners(
  inv: Inventory,
  store: RecordStore,
  api: GitlabRunnerApi,
  opts: ReconcileOptions,
): Promise<ReconcileResult> {
  const mode = modeForAuth(inv.gitlab.auth.kind);
  // Read once, up front, with every other reference of the inventory (readInventorySecrets).
  const secret = inv.gitlab.auth.kind === 'none' ? undefined : secretValue(inv, inv.gitlab.auth.token);
  const loaded = await store.load();
  const actions = planRegistrations(inv, loaded, {
    sharedToken: mode === 'shared' ? secret : undefined,
    only: opts.only,
  });
  const changes: RunnerChange[] = [];
  const errors: RunnerIssue[] = [];
  const warnings: RunnerIssue[] = [];
  const now = () => (opts.now ? opts.now() : new Date()).toISOString();
  const makeSystemId = opts.makeSystemId ?? newSystemId;
  const log = opts.log;

  const fail = (node: string, message: string) => {
    errors.push({ node, message: redact(message) });
    log?.error(node, redact(message));
  };
  const warn = (node: string, message: string) => {
    warnings.push({ node, message: redact(message) });
    log?.warn(node, redact(message));
  };
  const changed = (node: string, step: string, detail: string) => {
    changes.push({ node, step, detail: redact(detail) });
    if (!opts.dryRun) log?.change(node, redact(detail));
  };

  // Whether a lost create could be found again is said before anything is created, in plan and apply alike.
  let strayLookupDenied =
    mode === 'access' && secret ? await probeStrayLookup(api, secret, actions) : undefined;
  if (strayLookupDenied) {
    const node = actions.find((a) => a.kind === 'create')!.node;
    warn(
      node,
      `adoption of lost creates is off: ${strayLookupDenied}. A create whose answer is lost (timeout, gateway error) is reported with its mark and not retried, but no later run can find it: each would create another runner and leave that one in GitLab. Give the token the read_api scope (see the README's token table)`,
    );
  }

  if (opts.dryRun) {
    for (const a of actions) {
      if (a.kind === 'blocked') fail(a.node, a.reason);
      const d = describeAction(a);
      if (d) changed(a.node, d.step, d.detail);
      if (
        (a.kind === 'verify' || a.kind === 'update') &&
        a.record.mode !== 'shared' &&
        tokenRotationDue(a.record, new Date(now()))
      ) {
        changed(
          a.node,
          'rotate token',
          `${a.node}: would rotate the token of runner #${a.record.id ?? '?'} (expires at ${a.record.tokenExpiresAt})`,
        );
      }
    }
    return { records: loaded, changes, errors, warnings, actions, retire: async () => loaded };
  }

  const ledger = new Ledger(loaded, store);
  // The first answer that condemns a token for every node (401, missing scope, 410) is reused instead of asked again.
  let createBlocked: string | undefined;
  let sharedBroken: string | undefined;
  let updateForbidden = false;

  const createParams = (s: RunnerSettings, node: string, mark?: string): RunnerParams => {
    const p: RunnerParams = {
      description: s.description,
      tag_list: s.tagList,
      run_untagged: s.runUntagged,
      locked: s.locked,
      access_level: s.accessLevel,
      paused: s.paused,
      maintenance_note: `Managed by runner-fleet for node ${node}; edits here are overwritten on the next run.${mark ? ` ${mark}` : ''}`,
    };
    if (s.maximumTimeout !== null) p.maximum_timeout = s.maximumTimeout;
    return p;
  };

  const explainCreateError = (err: ApiError, m: 'access' | 'registration'): string => {
    if (err.status === 410) return registrationDisabledMessage(err);
    if (m === 'access' && err.status === 401)
      return `gitlab.accessToken was not accepted (${err.message}): is it valid and unexpired?`;
    if (m === 'access' && err.status === 403) {
      if (/insufficient_scope/.test(err.message))
        return `gitlab.accessToken may not create runners (${err.message}): it needs the create_runner scope (or api)`;
      return `gitlab.accessToken may not create runners (${err.message}): an instance runner needs an administrator's token, which with Admin Mode on also needs the admin_mode scope; a group or project runner needs the Owner or Maintainer role there`;
    }
    if (m === 'registration' && err.status === 403)
      return `gitlab.registrationToken was rejected (${err.message})`;
    return err.message;
  };

  /** Deletes the runner (or manager) behind a record, then forgets the record. */
  const deleteRecord = async (
    node: string,
    rec: RunnerRecord,
    why: string,
    tokenDead = false,
  ): Promise<void> => {
    let outcome: 'deleted' | 'gone';
    if (rec.mode === 'shared') {
      // Never DELETE /runners with a shared token: that would delete the runner under every other node.
      try {
        await api.deleteRunnerManager(rec.token, rec.systemId);
        outcome = 'deleted';
      } catch (err) {
        if (!isApi(err, 403, 404)) throw err;
        outcome = 'gone';
      }
    } else {
      let dead = tokenDead;
      outcome = 'gone';
      if (!dead) {
        try {
          await api.deleteRunnerByToken(rec.token);
          outcome = 'deleted';
        } catch (err) {
          if (!isApi(err, 403)) throw err;
          dead = true;
        }
      }
      // A rejected token may belong to a runner that still exists (token reset): the access token can still reach it by id.
      if (dead && mode === 'access' && secret && rec.id !== undefined) {
        try {
          await api.deleteRunnerById(secret, rec.id);
          outcome = 'deleted';
        } catch (err) {
          if (isApi(err, 401, 403))
            warn(
              node,
              `could not check whether runner #${rec.id} still exists (${messageOf(err)}); delete it in GitLab if it does`,
            );
          else if (!isApi(err, 404)) throw err;
        }
      }
    }
    ledger.drop(rec);
    await ledger.commit();
    const what =
      rec.mode === 'shared'
        ? `manager ${rec.systemId} of runner #${rec.id ?? '?'}`
        : `runner #${rec.id ?? '?'}`;
    if (outcome === 'deleted')
      changed(
        node,
        rec.mode === 'shared' ? 'delete manager' : 'delete runner',
        `${node}: deleted ${what} (${why})`,
      );
    else
      changed(
        node,
        'forget runner',
        `${node}: ${what} was already gone from GitLab; record removed (${why})`,
      );
  };

  const later: { node: string; rec: RunnerRecord; why: string; tokenDead: boolean }[] = [];
  /** Deletes now, or (retireLater) marks the record retired, saves it, and leaves the delete to retire(). */
  const retireRecord = async (
    node: string,
    rec: RunnerRecord,
    why: string,
    tokenDead = false,
  ): Promise<void> => {
    if (!opts.retireLater) return deleteRecord(node, rec, why, tokenDead);
    if (!rec.retiredAt) {
      rec.retiredAt = now();
      await ledger.commit();
    }
    later.push({ node, rec, why, tokenDead });
  };

  /** This fleet's id, kept by the store (made on first use) so that the next run finds this run's marks. */
  let fleetIdOf: Promise<string> | undefined;
  const fleetId = (): Promise<string> =>
    (fleetIdOf ??= opts.fleetId
      ? Promise.resolve(opts.fleetId)
      : store.fleetId
        ? store.fleetId()
        : Promise.resolve(randomBytes(6).toString('hex')));
  const leftAloneSaid = new Set<number>();
  /**
   * Runners GitLab has for `node` (its name is one of their tags) carrying this fleet's creation marker for it that
   * no record holds: made by a create whose answer was lost, in this run or a killed one. Newest first. Runners with
   * another fleet's mark are never touched; old marks without a fleet, or marked runners in use, are reported only.
   * undefined: they cannot be looked for (no access token, or one that may not list every runner).
   */
  const findStrays = async (
    node: string,
    settings: RunnerSettings,
  ): Promise<{ details: RunnerDetails; attempt: string }[] | undefined> => {
    if (mode !== 'access' || !secret || strayLookupDenied) return undefined;
    let list;
    try {
      list = await api.listAllRunners(secret, { tagList: [node], type: settings.runnerType });
    } catch (err) {
      if (!isApi(err, 401, 403)) throw err;
      // Said only when it matters: in the error of a create that got no answer.
      strayLookupDenied = strayLookupDeniedMessage(err);
      return undefined;
    }
    const fleet = await fleetId();
    const held = new Set(ledger.snapshot().map((r) => r.id));
    const out: { details: RunnerDetails; attempt: string }[] = [];
    for (const r of list) {
      if (held.has(r.id)) continue;
      let details: RunnerDetails;
      try {
        details = await api.getRunner(secret, r.id);
      } catch (err) {
        if (isApi(err, 404)) continue;
        throw err;
      }
      const j = judgeStray(details as StrayCandidate, fleet, node);
      if (j.kind === 'ours') out.push({ details, attempt: j.attempt });
      const why = strayLeftAlone(details.id, node, j);
      if (why && !leftAloneSaid.has(details.id)) {
        leftAloneSaid.add(details.id);
        warn(node, why);
      }
    }
    return out.sort((a, b) => b.details.id - a.details.id);
  };

  /**
   * Takes over the newest stray runner of the node (its token is unknown: reset with the access token, as
   * gitlab-runner's ResetTokenWithPAT does), deletes any other, and says so. Returns whether the node now has a
   * runner; false when there was none to adopt.
   */
  /**
   * Records a runner that exists in GitLab now (retiring the record it replaces) and saves the records. When the save
   * fails both are undone in memory and the error is returned: the caller decides what happens to the runner.
   */
  const saveNewRecord = async (rec: RunnerRecord, replaces?: RunnerRecord): Promise<unknown> => {
    ledger.add(rec);
    if (replaces) replaces.retiredAt = now();
    try {
      await ledger.commit();
      return undefined;
    } catch (err) {
      ledger.drop(rec);
      if (replaces) delete replaces.retiredAt;
      return err ?? new Error('the records could not be saved');
    }
  };

  const adoptStrays = async (
    node: string,
    settings: RunnerSettings,
    systemId?: string,
    replaces?: RunnerRecord,
    replacesDead = false,
  ): Promise<boolean> => {
    const strays = await findStrays(node, settings);
    if (!strays?.length || !secret) return false;
    const [keep, ...rest] = strays;
    for (const s of rest) {
      try {
        await api.deleteRunnerById(secret, s.details.id);
      } catch (err) {
        if (isApi(err, 401, 403))
          throw new Error(
            `runner #${s.details.id} was left in GitLab by an interrupted create (attempt ${s.attempt}) and this token may not delete it (${messageOf(err)}): delete it in GitLab`,
          );
        if (!isApi(err, 404)) throw err;
      }
      changed(
        node,
        'delete runner',
        `${node}: deleted runner #${s.details.id}, left in GitLab by an interrupted create (attempt ${s.attempt}) and held by no record`,
      );
    }
    const id = keep.details.id;
    let creds;
    try {
      creds = await api.resetRunnerTokenById(secret, id);
    } catch (err) {
      if (isApi(err, 401, 403)) {
        throw new Error(
          `runner #${id} was left in GitLab by an interrupted create (attempt ${keep.attempt}) and this token may not reset its token to adopt it (${messageOf(err)}; needs manage_runner, and for an instance runner an administrator, with admin_mode when Admin Mode is on): delete it in GitLab, then run again`,
        );
      }
      throw err;
    }
    const d = keep.details;
    const rec: RunnerRecord = {
      node,
      mode: 'access',
      id,
      token: creds.token,
      systemId: systemId ?? makeSystemId(),
      // What GitLab has, so that a difference from the inventory is an update on the next run, not hidden.
      settings: {
        ...settings,
        description: d.description ?? '',
        tagList: d.tag_list ?? settings.tagList,
        runUntagged: d.run_untagged ?? settings.runUntagged,
        locked: d.locked ?? settings.locked,
        accessLevel: d.access_level ?? settings.accessLevel,
        maximumTimeout: d.maximum_timeout ?? null,
        paused: d.paused ?? settings.paused,
      },
      createdAt: now(),
      tokenExpiresAt: creds.tokenExpiresAt,
    };
    const unsaved = await saveNewRecord(rec, replaces);
    if (unsaved)
      // It keeps its marker: the next run finds it again.
      throw new Error(
        `adopted runner #${id} (left by an interrupted create) but could not save its record (${messageOf(unsaved)}); the next run adopts it again`,
      );
    changed(
      node,
      'adopt runner',
      `${node}: adopted runner #${id}, made by an earlier create whose answer was lost (attempt ${keep.attempt}); reset its token, which nobody knew`,
    );
    // Settings made by another inventory (or edited since): put right now, as an update would be on the next run.
    const diff = diffSettings(rec.settings, settings).filter((x) => !SCOPE_FIELDS.includes(x.field));
    if (diff.length > 0 && !updateForbidden) {
      try {
        const params = createParams(settings, node);
        delete params.maintenance_note;
        if (settings.maximumTimeout === null && d.maximum_timeout != null) params.maximum_timeout = null;
        await api.updateRunner(secret, id, params);
        rec.settings = settings;
        await ledger.commit();
        changed(
          node,
          'update runner',
          `${node}: updated runner #${id}: ${diff.map((x) => x.text).join(', ')}`,
        );
      } catch (err) {
        // The record holds what GitLab has: the next run updates or re-creates it.
        if (!isApi(err, 401, 403)) throw err;
        updateForbidden = true;
      }
    }
    if (replaces) await retireRecord(node, replaces, `replaced by #${id}`, replacesDead);
    return true;
  };

  /** Creates a runner for the node, saves its record, and only then deletes what it replaces. */
  const createRunner = async (
    node: string,
    m: 'access' | 'registration',
    settings: RunnerSettings,
    why: string,
    systemId?: string,
    replaces?: RunnerRecord,
    replacesDead = false,
  ): Promise<void> => {
    if (createBlocked) throw new Error(createBlocked);
    if (!secret) throw new Error('no token to create a runner with');
    // A runner an earlier create made without its answer reaching us: adopt it rather than make another.
    if (m === 'access' && (await adoptStrays(node, settings, systemId, replaces, replacesDead))) return;
    const attempt = randomBytes(4).toString('hex');
    const mark = creationMarker(await fleetId(), node, attempt);
    let creds;
    try {
      creds =
        m === 'access'
          ? await api.createUserRunner(secret, {
              runner_type: settings.runnerType ?? 'instance_type',
              ...(settings.groupId !== undefined ? { group_id: settings.groupId } : {}),
              ...(settings.projectId !== undefined ? { project_id: settings.projectId } : {}),
              ...createParams(settings, node, mark),
            } satisfies CreateRunnerParams)
          : await api.registerRunner(secret, createParams(settings, node, mark));
    } catch (err) {
      if (isApi(err, 401, 403, 410)) {
        createBlocked = explainCreateError(err, m);
        throw new Error(createBlocked);
      }
      // No clear answer (timeout, connection lost, a gateway's 502/503/504, a 2xx cut short): GitLab may have made
      // the runner anyway. Look once; never create again blindly, which is how two runners for one node came about.
      if (noClearAnswer(err)) {
        const adopted =
          m === 'access'
            ? await adoptStrays(node, settings, systemId, replaces, replacesDead).catch(() => false)
            : false;
        if (adopted) return;
        throw new Error(
          `creating its runner got no clear answer (${messageOf(err)}); GitLab may have made it, marked ${mark} in its maintenance note. ` +
            (m === 'registration'
              ? 'Not retried; with gitlab.registrationToken runners cannot be listed: delete that runner in GitLab if it appears'
              : strayLookupDenied
                ? `Not retried, and ${strayLookupDenied}: delete that runner in GitLab if it appears`
                : 'Not retried: the next run looks for it and adopts or deletes it'),
        );
      }
      throw err;
    }
    const rec: RunnerRecord = {
      node,
      mode: m,
      id: creds.id,
      token: creds.token,
      systemId: systemId ?? makeSystemId(),
      settings,
      createdAt: now(),
      tokenExpiresAt: creds.tokenExpiresAt,
    };
    const unsaved = await saveNewRecord(rec, replaces);
    if (unsaved) {
      // Nobody could ever find this runner's token again: take it back rather than leave an orphan.
      let undone = 'deleted it again';
      try {
        await api.deleteRunnerByToken(creds.token);
      } catch (delErr) {
        undone = `and could not delete it (${messageOf(delErr)}): delete runner #${creds.id} in GitLab`;
      }
      throw new Error(
        `created runner #${creds.id} but could not save its record (${messageOf(unsaved)}); ${undone}`,
      );
    }
    changed(
      node,
      replaces ? 'replace runner' : 'create runner',
      replaces
        ? `${node}: created runner #${creds.id} to replace #${replaces.id ?? '?'} (${why}); tags ${settings.tagList.join(', ')}`
        : `${node}: created runner #${creds.id} (${why}; tags ${settings.tagList.join(', ')})`,
    );
    if (replaces) await retireRecord(node, replaces, `replaced by #${creds.id}`, replacesDead);
  };

  /** Verifies a record's token; a rejected one is replaced. Returns whether the record is still the node's runner. */
  const verifyOrReplace = async (
    node: string,
    rec: RunnerRecord,
    settings: RunnerSettings | null,
  ): Promise<boolean> => {
    try {
      // With the node's system_id: without one GitLab files the call under a '<legacy>' manager. For glrt- tokens
      // verify writes no contacted_at (runner.rb, update_contacted_at: false), so status, which judges that manager's
      // contact, still sees only what the runner process itself did.
      const c = await api.verifyRunner(rec.token, rec.systemId);
      const expires = c.tokenExpiresAt ?? null;
      if ((c.id && rec.id === undefined) || expires !== (rec.tokenExpiresAt ?? null)) {
        if (c.id && rec.id === undefined) rec.id = c.id;
        rec.tokenExpiresAt = expires;
        await ledger.commit();
      }
      if (tokenRotationDue(rec, new Date(now()))) await rotateToken(node, rec);
      return true;
    } catch (err) {
      // 403: token unknown (runner deleted or token reset); 422: the runner's project or group is gone.
      if (!isApi(err, 403, 422)) throw err;
      if (rec.mode === 'shared') {
        sharedBroken = `gitlab.runnerToken was rejected by GitLab (${err.message}): the runner was deleted or its token reset; put a valid glrt- token in the reference`;
        throw new Error(sharedBroken);
      }
      if (!settings || mode !== rec.mode || (mode !== 'access' && mode !== 'registration')) {
        throw new Error(
          `the token of runner #${rec.id ?? '?'} was rejected (${err.message}) and gitlab has no token to create a new one`,
        );
      }
      await createRunner(
        node,
        mode,
        settings,
        `the token of #${rec.id ?? '?'} was rejected (${err.status})`,
        rec.systemId,
        rec,
        true,
      );
      return false;
    }
  };

  /**
   * A token past half its lifetime gets a new one from GitLab, saved before anything else happens: the old one
   * stops working at once, and the pods or host pick the new one up with the config this run writes.
   */
  const rotateToken = async (node: string, rec: RunnerRecord): Promise<void> => {
    if (rec.mode === 'shared') {
      warn(
        node,
        `gitlab.runnerToken expires at ${rec.tokenExpiresAt}: reset it in GitLab (or use gitlab.accessToken, whose runners runner-fleet rotates) and update the reference`,
      );
      return;
    }
    const old = rec.tokenExpiresAt;
    const c = await api.resetRunnerToken(rec.token);
    rec.token = c.token;
    rec.tokenExpiresAt = c.tokenExpiresAt;
    rec.tokenObtainedAt = now();
    try {
      await ledger.commit();
    } catch (err) {
      throw new Error(
        `rotated the token of runner #${rec.id ?? '?'} but could not save it (${messageOf(err)}); the next run replaces the runner`,
      );
    }
    changed(
      node,
      'rotate token',
      `${node}: rotated the token of runner #${rec.id ?? '?'} (it expired at ${old}; the new one at ${c.tokenExpiresAt ?? 'never'})`,
    );
  };

  const run = async (a: RegistrationAction): Promise<void> => {
    switch (a.kind) {
      case 'blocked':
        throw new Error(a.reason);
      case 'verify':
        await verifyOrReplace(a.node, a.record, a.settings);
        return;
      case 'create':
        await createRunner(a.node, a.mode, a.settings, a.reason, a.systemId, a.replaces);
        return;
      case 'update': {
        if (!(await verifyOrReplace(a.node, a.record, a.settings))) return;
        if (!updateForbidden && secret && a.record.id !== undefined) {
          try {
            const params = createParams(a.settings, a.node);
            delete params.maintenance_note;
            if (a.settings.maximumTimeout === null && a.record.settings?.maximumTimeout != null)
              params.maximum_timeout = null;
            await api.updateRunner(secret, a.record.id, params);
            a.record.settings = a.settings;
            await ledger.commit();
            changed(
              a.node,
              'update runner',
              `${a.node}: updated runner #${a.record.id}: ${a.changed.join(', ')}`,
            );
            return;
          } catch (err) {
            if (isApi(err, 404)) {
              await createRunner(
                a.node,
                'access',
                a.settings,
                `runner #${a.record.id} is gone`,
                a.record.systemId,
                a.record,
                true,
              );
              return;
            }
            if (!isApi(err, 401, 403)) throw err;
            // Nodes run side by side, so several may have asked; say it once.
            if (!updateForbidden)
              warn(
                a.node,
                `gitlab.accessToken may not update runners (${err.message}; needs the manage_runner or api scope, and for instance runners an administrator, with admin_mode when Admin Mode is on): re-creating runners whose settings changed instead`,
              );
            updateForbidden = true;
          }
        }
        await createRunner(a.node, 'access', a.settings, a.changed.join(', '), a.record.systemId, a.record);
        return;
      }
      case 'join': {
        if (sharedBroken) throw new Error(sharedBroken);
        if (!secret) throw new Error('no gitlab.runnerToken');
        const systemId = a.systemId ?? makeSystemId();
        let creds;
        try {
          creds = await api.verifyRunner(secret, systemId);
        } catch (err) {
          if (isApi(err, 403, 422)) {
            sharedBroken = `gitlab.runnerToken was rejected by GitLab (${err.message}): create a runner in GitLab (or use gitlab.accessToken) and put its glrt- token in the reference`;
            throw new Error(sharedBroken);
          }
          throw err;
        }
        const rec: RunnerRecord = {
          node: a.node,
          mode: 'shared',
          id: creds.id || undefined,
          token: secret,
          systemId,
          settings: null,
          createdAt: now(),
          tokenExpiresAt: creds.tokenExpiresAt,
        };
        ledger.add(rec);
        if (a.replaces) a.replaces.retiredAt = now();
        try {
          await ledger.commit();
        } catch (err) {
          ledger.drop(rec);
          if (a.replaces) delete a.replaces.retiredAt;
          await api.deleteRunnerManager(secret, systemId).catch(() => undefined);
          throw new Error(
            `joined runner #${creds.id} but could not save the record (${messageOf(err)}); left it again`,
          );
        }
        changed(
          a.node,
          'join shared runner',
          `${a.node}: registered as manager ${systemId} of runner #${creds.id} (${a.reason})`,
        );
        if (a.replaces) await retireRecord(a.node, a.replaces, `node now uses ${describeMode('shared')}`);
        return;
      }
      case 'delete':
        await retireRecord(a.node, a.record, a.reason);
        return;
    }
  };

  // One node's actions run in order (its new runner before its old one's delete); nodes run side by side.
  const byNode = new Map<string, RegistrationAction[]>();
  for (const a of actions) byNode.set(a.node, [...(byNode.get(a.node) ?? []), a]);
  await mapPool([...byNode.entries()], opts.concurrency ?? 4, async ([node, list]) => {
    for (const a of list) {
      try {
        await run(a);
      } catch (err) {
        fail(node, messageOf(err));
      }
    }
  });

  const retire = async (): Promise<RunnerRecord[]> => {
    const pending = later.splice(0);
    const byNodeLater = new Map<string, typeof pending>();
    for (const p of pending) byNodeLater.set(p.node, [...(byNodeLater.get(p.node) ?? []), p]);
    await mapPool([...byNodeLater.entries()], opts.concurrency ?? 4, async ([node, list]) => {
      for (const p of list) {
        try {
          await deleteRecord(node, p.rec, p.why, p.tokenDead);
        } catch (err) {
          fail(node, messageOf(err));
        }
      }
    });
    return ledger.snapshot();
  };

  return { records: ledger.snapshot(), changes, errors, warnings, actions, retire };
}
