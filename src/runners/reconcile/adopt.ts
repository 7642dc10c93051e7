// Strays and adoption: runners an earlier create made without its answer reaching us, found by this fleet's mark and adopted (or deleted).
import type { GitlabRunnerApi, RunnerDetails } from '../../gitlab/api.js';
import type { ApiError } from '../../errors.js';
import type { RegistrationAction } from '../registration-plan.js';
import { diffSettings, SCOPE_FIELDS, type RunnerRecord, type RunnerSettings } from '../records.js';
import { judgeStray, strayLeftAlone, type StrayCandidate } from '../strays.js';
import { unsavedError } from './ledger.js';
import { updateParams } from './params.js';
import { retireRecord } from './retire.js';
import { isApi, messageOf, type ReconcileRun, type WantedRunner } from './run.js';

/** A runner of this fleet's for the node that no record holds, and the create attempt its mark names. */
export interface Stray {
  details: RunnerDetails;
  attempt: string;
}

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

/**
 * One GET /runners/all (filtered to a node that gets a new runner) when the plan creates any: undefined when this
 * token may list runners, else why not. Only a refusal counts; any other failure is left to the calls that follow.
 */
export async function probeStrayLookup(
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

/**
 * Runners GitLab has for `node` (its name is one of their tags) carrying this fleet's creation marker for it that
 * no record holds: made by a create whose answer was lost, in this run or a killed one. Newest first. Runners with
 * another fleet's mark are never touched; old marks without a fleet, or marked runners in use, are reported only.
 * undefined: they cannot be looked for (no access token, or one that may not list every runner: the verdict is kept).
 */
export async function findStrays(
  run: ReconcileRun,
  node: string,
  settings: RunnerSettings,
): Promise<Stray[] | undefined> {
  const { api, secret } = run;
  if (run.mode !== 'access' || !secret || run.verdicts.strayLookupDenied) return undefined;
  let list;
  try {
    list = await api.listAllRunners(secret, { tagList: [node], type: settings.runnerType });
  } catch (err) {
    if (!isApi(err, 401, 403)) throw err;
    // Said only when it matters: in the error of a create that got no answer.
    run.verdicts.strayLookupDenied = strayLookupDeniedMessage(err);
    return undefined;
  }
  const fleet = await run.fleetId();
  const held = new Set(run.ledger.snapshot().map((r) => r.id));
  const out: Stray[] = [];
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
    if (why && !run.leftAloneSaid.has(details.id)) {
      run.leftAloneSaid.add(details.id);
      run.report.warn(node, why);
    }
  }
  return out.sort((a, b) => b.details.id - a.details.id);
}

/** Deletes the strays not adopted (an older lost create's); a token that may not is the node's error. */
async function deleteExtraStrays(
  run: ReconcileRun,
  secret: string,
  node: string,
  rest: Stray[],
): Promise<void> {
  for (const s of rest) {
    try {
      await run.api.deleteRunnerById(secret, s.details.id);
    } catch (err) {
      if (isApi(err, 401, 403))
        throw new Error(
          `runner #${s.details.id} was left in GitLab by an interrupted create (attempt ${s.attempt}) and this token may not delete it (${messageOf(err)}): delete it in GitLab`,
        );
      if (!isApi(err, 404)) throw err;
    }
    run.report.changed(
      node,
      'delete runner',
      `${node}: deleted runner #${s.details.id}, left in GitLab by an interrupted create (attempt ${s.attempt}) and held by no record`,
    );
  }
}

/**
 * Takes the stray over: its token is unknown, so it is reset with the access token (as gitlab-runner's
 * ResetTokenWithPAT does), and its record saved with the settings GitLab has.
 */
async function takeOver(
  run: ReconcileRun,
  secret: string,
  want: WantedRunner,
  keep: Stray,
): Promise<RunnerRecord> {
  const { node, settings } = want;
  const id = keep.details.id;
  let creds;
  try {
    creds = await run.api.resetRunnerTokenById(secret, id);
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
    systemId: want.systemId ?? run.makeSystemId(),
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
    createdAt: run.now(),
    tokenExpiresAt: creds.tokenExpiresAt,
  };
  const saved = await run.ledger.saveNew(rec, want.replaces, run.now());
  if (!saved.saved)
    // It keeps its marker: the next run finds it again.
    throw new Error(
      `adopted runner #${id} (left by an interrupted create) but could not save its record (${messageOf(unsavedError(saved))}); the next run adopts it again`,
    );
  run.report.changed(
    node,
    'adopt runner',
    `${node}: adopted runner #${id}, made by an earlier create whose answer was lost (attempt ${keep.attempt}); reset its token, which nobody knew`,
  );
  return rec;
}

/** Settings made by another inventory (or edited since): put right now, as an update would be on the next run. */
async function putSettingsRight(
  run: ReconcileRun,
  secret: string,
  want: WantedRunner,
  rec: RunnerRecord,
  had: RunnerDetails,
): Promise<void> {
  const { node, settings } = want;
  const id = had.id;
  const diff = diffSettings(rec.settings, settings).filter((x) => !SCOPE_FIELDS.includes(x.field));
  if (diff.length === 0 || run.verdicts.updateForbidden) return;
  try {
    await run.api.updateRunner(secret, id, updateParams(settings, node, had.maximum_timeout));
    rec.settings = settings;
    await run.ledger.commit();
    run.report.changed(
      node,
      'update runner',
      `${node}: updated runner #${id}: ${diff.map((x) => x.text).join(', ')}`,
    );
  } catch (err) {
    // The record holds what GitLab has: the next run updates or re-creates it.
    if (!isApi(err, 401, 403)) throw err;
    run.verdicts.updateForbidden = true;
  }
}

/**
 * Takes over the newest stray runner of the node, deletes any other, and says so; then retires the record it
 * replaces. Returns whether the node now has a runner; false when there was none to adopt.
 */
export async function adoptStrays(run: ReconcileRun, want: WantedRunner): Promise<boolean> {
  const strays = await findStrays(run, want.node, want.settings);
  const secret = run.secret;
  if (!strays?.length || !secret) return false;
  const [keep, ...rest] = strays;
  await deleteExtraStrays(run, secret, want.node, rest);
  const rec = await takeOver(run, secret, want, keep);
  await putSettingsRight(run, secret, want, rec, keep.details);
  if (want.replaces)
    await retireRecord(run, want.node, want.replaces, `replaced by #${keep.details.id}`, want.replacesDead);
  return true;
}
