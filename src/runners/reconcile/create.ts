// The create phase: a new runner for a node (or, with a shared token, the node joined as a manager), saved before what it replaces is retired.
import { randomBytes } from 'node:crypto';
import type { CreateRunnerParams, RunnerCredentials } from '../../gitlab/api.js';
import { ApiError } from '../../errors.js';
import { creationMarker, describeMode, type RegistrationAction } from '../registration-plan.js';
import type { RunnerRecord } from '../records.js';
import { adoptStrays } from './adopt.js';
import { unsavedError } from './ledger.js';
import { createParams } from './params.js';
import { retireRecord } from './retire.js';
import { isApi, messageOf, type ReconcileRun, type WantedRunner } from './run.js';

/**
 * A create that may or may not have made the runner: no answer (0), a gateway's 502/503/504, or a 2xx whose body
 * could not be read (cut short by a proxy): GitLab did answer success, but the runner's id and token are lost.
 */
export const noClearAnswer = (err: unknown): err is ApiError =>
  isApi(err, 0, 502, 503, 504) || (err instanceof ApiError && err.status >= 200 && err.status < 300);

export function registrationDisabledMessage(err: ApiError): string {
  return (
    `gitlab.registrationToken: registration tokens are disabled on this GitLab (${err.message}). ` +
    'Since GitLab 17.0 they are off by default (allow_runner_registration_token), and their removal is scheduled for 20.0. ' +
    'Instead set gitlab.accessToken: file:/path/to/token — a personal, group or project access token with the create_runner scope; ' +
    'runner-fleet then creates one runner per node — or gitlab.runnerToken: env:NAME — the glrt- token of a runner created in GitLab, ' +
    'shared by every node. Remove gitlab.registrationToken.'
  );
}

/** Why GitLab refused a create (401, 403, 410), and what to do about it. */
export function explainCreateError(err: ApiError, m: 'access' | 'registration'): string {
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
}

/**
 * POST /user/runners (access) or POST /runners (registration) with the creation mark. A refusal condemns the token
 * for every node (the verdict is kept). No clear answer: GitLab may have made the runner anyway, so look once (access
 * mode) and adopt it; never create again blindly, which is how two runners for one node came about.
 */
async function postCreate(
  run: ReconcileRun,
  secret: string,
  m: 'access' | 'registration',
  want: WantedRunner,
  mark: string,
): Promise<RunnerCredentials | 'adopted'> {
  const { node, settings } = want;
  try {
    return m === 'access'
      ? await run.api.createUserRunner(secret, {
          runner_type: settings.runnerType ?? 'instance_type',
          ...(settings.groupId !== undefined ? { group_id: settings.groupId } : {}),
          ...(settings.projectId !== undefined ? { project_id: settings.projectId } : {}),
          ...createParams(settings, node, mark),
        } satisfies CreateRunnerParams)
      : await run.api.registerRunner(secret, createParams(settings, node, mark));
  } catch (err) {
    if (isApi(err, 401, 403, 410)) {
      run.verdicts.createBlocked = explainCreateError(err, m);
      throw new Error(run.verdicts.createBlocked);
    }
    if (!noClearAnswer(err)) throw err;
    const adopted = m === 'access' ? await adoptStrays(run, want).catch(() => false) : false;
    if (adopted) return 'adopted';
    throw new Error(
      `creating its runner got no clear answer (${messageOf(err)}); GitLab may have made it, marked ${mark} in its maintenance note. ` +
        (m === 'registration'
          ? 'Not retried; with gitlab.registrationToken runners cannot be listed: delete that runner in GitLab if it appears'
          : run.verdicts.strayLookupDenied
            ? `Not retried, and ${run.verdicts.strayLookupDenied}: delete that runner in GitLab if it appears`
            : 'Not retried: the next run looks for it and adopts or deletes it'),
    );
  }
}

/** Saves the new runner's record; a runner whose record cannot be saved is deleted again rather than orphaned. */
async function keepCreated(
  run: ReconcileRun,
  m: 'access' | 'registration',
  want: WantedRunner,
  creds: RunnerCredentials,
): Promise<void> {
  const rec: RunnerRecord = {
    node: want.node,
    mode: m,
    id: creds.id,
    token: creds.token,
    systemId: want.systemId ?? run.makeSystemId(),
    settings: want.settings,
    createdAt: run.now(),
    tokenExpiresAt: creds.tokenExpiresAt,
  };
  const saved = await run.ledger.saveNew(rec, want.replaces, run.now());
  if (saved.saved) return;
  // Nobody could ever find this runner's token again: take it back rather than leave an orphan.
  let undone = 'deleted it again';
  try {
    await run.api.deleteRunnerByToken(creds.token);
  } catch (delErr) {
    undone = `and could not delete it (${messageOf(delErr)}): delete runner #${creds.id} in GitLab`;
  }
  throw new Error(
    `created runner #${creds.id} but could not save its record (${messageOf(unsavedError(saved))}); ${undone}`,
  );
}

/**
 * Creates a runner for the node (adopting one a lost create made instead, in access mode), saves its record, and
 * only then retires what it replaces.
 */
export async function createRunner(
  run: ReconcileRun,
  m: 'access' | 'registration',
  want: WantedRunner,
  why: string,
): Promise<void> {
  if (run.verdicts.createBlocked) throw new Error(run.verdicts.createBlocked);
  const secret = run.secret;
  if (!secret) throw new Error('no token to create a runner with');
  const { node, settings, replaces } = want;
  // A runner an earlier create made without its answer reaching us: adopt it rather than make another.
  if (m === 'access' && (await adoptStrays(run, want))) return;
  const attempt = randomBytes(4).toString('hex');
  const mark = creationMarker(await run.fleetId(), node, attempt);
  const creds = await postCreate(run, secret, m, want, mark);
  if (creds === 'adopted') return;
  await keepCreated(run, m, want, creds);
  run.report.changed(
    node,
    replaces ? 'replace runner' : 'create runner',
    replaces
      ? `${node}: created runner #${creds.id} to replace #${replaces.id ?? '?'} (${why}); tags ${settings.tagList.join(', ')}`
      : `${node}: created runner #${creds.id} (${why}; tags ${settings.tagList.join(', ')})`,
  );
  if (replaces) await retireRecord(run, node, replaces, `replaced by #${creds.id}`, want.replacesDead);
}

/** Shared token: verify it under the node's system_id, which makes the node a manager of the shared runner. */
export async function joinSharedRunner(
  run: ReconcileRun,
  a: Extract<RegistrationAction, { kind: 'join' }>,
): Promise<void> {
  if (run.verdicts.sharedBroken) throw new Error(run.verdicts.sharedBroken);
  const secret = run.secret;
  if (!secret) throw new Error('no gitlab.runnerToken');
  const systemId = a.systemId ?? run.makeSystemId();
  let creds;
  try {
    creds = await run.api.verifyRunner(secret, systemId);
  } catch (err) {
    if (isApi(err, 403, 422)) {
      run.verdicts.sharedBroken = `gitlab.runnerToken was rejected by GitLab (${err.message}): create a runner in GitLab (or use gitlab.accessToken) and put its glrt- token in the reference`;
      throw new Error(run.verdicts.sharedBroken);
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
    createdAt: run.now(),
    tokenExpiresAt: creds.tokenExpiresAt,
  };
  const saved = await run.ledger.saveNew(rec, a.replaces, run.now());
  if (!saved.saved) {
    await run.api.deleteRunnerManager(secret, systemId).catch(() => undefined);
    throw new Error(
      `joined runner #${creds.id} but could not save the record (${messageOf(saved.error)}); left it again`,
    );
  }
  run.report.changed(
    a.node,
    'join shared runner',
    `${a.node}: registered as manager ${systemId} of runner #${creds.id} (${a.reason})`,
  );
  if (a.replaces) await retireRecord(run, a.node, a.replaces, `node now uses ${describeMode('shared')}`);
}
