// The update phase: changed settings put on the node's runner (PUT /runners/:id), or a new runner when the token may not.
import type { RegistrationAction } from '../registration-plan.js';
import { createRunner } from './create.js';
import { updateParams } from './params.js';
import { isApi, type ReconcileRun } from './run.js';
import { verifyOrReplace } from './verify.js';

type UpdateAction = Extract<RegistrationAction, { kind: 'update' }>;

/**
 * PUT /runners/:id with the access token. Returns whether the node has its runner with the new settings: false when
 * this token may not update runners (the verdict is kept). A runner GitLab no longer has is re-created.
 */
async function putSettings(run: ReconcileRun, secret: string, a: UpdateAction, id: number): Promise<boolean> {
  try {
    await run.api.updateRunner(
      secret,
      id,
      updateParams(a.settings, a.node, a.record.settings?.maximumTimeout),
    );
    a.record.settings = a.settings;
    await run.ledger.commit();
    run.report.changed(a.node, 'update runner', `${a.node}: updated runner #${id}: ${a.changed.join(', ')}`);
    return true;
  } catch (err) {
    if (isApi(err, 404)) {
      await replaceRunner(run, a, true, `runner #${id} is gone`);
      return true;
    }
    if (!isApi(err, 401, 403)) throw err;
    // Nodes run side by side, so several may have asked; say it once.
    if (!run.verdicts.updateForbidden)
      run.report.warn(
        a.node,
        `gitlab.accessToken may not update runners (${err.message}; needs the manage_runner or api scope, and for instance runners an administrator, with admin_mode when Admin Mode is on): re-creating runners whose settings changed instead`,
      );
    run.verdicts.updateForbidden = true;
    return false;
  }
}

/**
 * Verifies the record first (a rejected token is replaced, with the new settings); then updates the runner, or,
 * when this token may not update runners, replaces it with a new one.
 */
export async function updateRunner(run: ReconcileRun, a: UpdateAction): Promise<void> {
  if ((await verifyOrReplace(run, a.node, a.record, a.settings)) === 'replaced') return;
  const { secret } = run;
  const id = a.record.id;
  if (!run.verdicts.updateForbidden && secret && id !== undefined) {
    if (await putSettings(run, secret, a, id)) return;
  }
  await replaceRunner(run, a, false, a.changed.join(', '));
}

/** A new runner with the wanted settings in place of the recorded one (`dead`: GitLab no longer has it). */
function replaceRunner(run: ReconcileRun, a: UpdateAction, dead: boolean, reason: string): Promise<unknown> {
  return createRunner(
    run,
    'access',
    {
      node: a.node,
      settings: a.settings,
      systemId: a.record.systemId,
      replaces: a.record,
      replacesDead: dead,
    },
    reason,
  );
}
