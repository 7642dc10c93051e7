// The verify phase: a record's token checked with GitLab (its manager refreshed), rotated past half its life, replaced when rejected.
import { tokenRotationDue, type RunnerRecord, type RunnerSettings } from '../records.js';
import { createRunner } from './create.js';
import { isApi, messageOf, type ReconcileRun } from './run.js';

/**
 * A token past half its lifetime gets a new one from GitLab, saved before anything else happens: the old one
 * stops working at once, and the pods or host pick the new one up with the config this run writes.
 */
export async function rotateToken(run: ReconcileRun, node: string, rec: RunnerRecord): Promise<void> {
  if (rec.mode === 'shared') {
    run.report.warn(
      node,
      `gitlab.runnerToken expires at ${rec.tokenExpiresAt}: reset it in GitLab (or use gitlab.accessToken, whose runners runner-fleet rotates) and update the reference`,
    );
    return;
  }
  const old = rec.tokenExpiresAt;
  const c = await run.api.resetRunnerToken(rec.token);
  rec.token = c.token;
  rec.tokenExpiresAt = c.tokenExpiresAt;
  rec.tokenObtainedAt = run.now();
  try {
    await run.ledger.commit();
  } catch (err) {
    throw new Error(
      `rotated the token of runner #${rec.id ?? '?'} but could not save it (${messageOf(err)}); the next run replaces the runner`,
    );
  }
  run.report.changed(
    node,
    'rotate token',
    `${node}: rotated the token of runner #${rec.id ?? '?'} (it expired at ${old}; the new one at ${c.tokenExpiresAt ?? 'never'})`,
  );
}

/** Whether the record is still the node's runner after its check, or a new runner replaced it. */
export type VerifyOutcome = 'kept' | 'replaced';

/** Verifies a record's token (and rotates it when due); a token GitLab rejects is replaced by a new runner. */
export async function verifyOrReplace(
  run: ReconcileRun,
  node: string,
  rec: RunnerRecord,
  settings: RunnerSettings | null,
): Promise<VerifyOutcome> {
  try {
    // With the node's system_id: without one GitLab files the call under a '<legacy>' manager. For glrt- tokens
    // verify writes no contacted_at (runner.rb, update_contacted_at: false), so status, which judges that manager's
    // contact, still sees only what the runner process itself did.
    const c = await run.api.verifyRunner(rec.token, rec.systemId);
    const expires = c.tokenExpiresAt ?? null;
    if ((c.id && rec.id === undefined) || expires !== (rec.tokenExpiresAt ?? null)) {
      if (c.id && rec.id === undefined) rec.id = c.id;
      rec.tokenExpiresAt = expires;
      await run.ledger.commit();
    }
    // Inside the try: a reset GitLab rejects (403) means the token is gone, as a rejected verify does.
    if (tokenRotationDue(rec, new Date(run.now()))) await rotateToken(run, node, rec);
    return 'kept';
  } catch (err) {
    // 403: token unknown (runner deleted or token reset); 422: the runner's project or group is gone.
    if (!isApi(err, 403, 422)) throw err;
    if (rec.mode === 'shared') {
      run.verdicts.sharedBroken = `gitlab.runnerToken was rejected by GitLab (${err.message}): the runner was deleted or its token reset; put a valid glrt- token in the reference`;
      throw new Error(run.verdicts.sharedBroken);
    }
    const mode = run.mode;
    if (!settings || mode !== rec.mode || (mode !== 'access' && mode !== 'registration')) {
      throw new Error(
        `the token of runner #${rec.id ?? '?'} was rejected (${err.message}) and gitlab has no token to create a new one`,
      );
    }
    await createRunner(
      run,
      mode,
      { node, settings, systemId: rec.systemId, replaces: rec, replacesDead: true },
      `the token of #${rec.id ?? '?'} was rejected (${err.status})`,
    );
    return 'replaced';
  }
}
