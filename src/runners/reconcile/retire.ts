// The delete phase: a record's runner (or its shared runner's manager) deleted in GitLab, then the record forgotten; with retireLater, held for retire().
import type { RunnerRecord } from '../records.js';
import { eachNodeInOrder, isApi, messageOf, type HeldDelete, type ReconcileRun } from './run.js';

type DeleteOutcome = 'deleted' | 'gone';

/** Never DELETE /runners with a shared token: that would delete the runner under every other node. */
async function deleteManager(run: ReconcileRun, rec: RunnerRecord): Promise<DeleteOutcome> {
  try {
    await run.api.deleteRunnerManager(rec.token, rec.systemId);
    return 'deleted';
  } catch (err) {
    if (!isApi(err, 403, 404)) throw err;
    return 'gone';
  }
}

/** Deletes the node's own runner by its token; a token known dead (or rejected now) falls back to the id. */
async function deleteOwnRunner(
  run: ReconcileRun,
  node: string,
  rec: RunnerRecord,
  tokenDead: boolean,
): Promise<DeleteOutcome> {
  let dead = tokenDead;
  let outcome: DeleteOutcome = 'gone';
  if (!dead) {
    try {
      await run.api.deleteRunnerByToken(rec.token);
      outcome = 'deleted';
    } catch (err) {
      if (!isApi(err, 403)) throw err;
      dead = true;
    }
  }
  // A rejected token may belong to a runner that still exists (token reset): the access token can still reach it by id.
  if (dead && run.mode === 'access' && run.secret && rec.id !== undefined) {
    try {
      await run.api.deleteRunnerById(run.secret, rec.id);
      outcome = 'deleted';
    } catch (err) {
      if (isApi(err, 401, 403))
        run.report.warn(
          node,
          `could not check whether runner #${rec.id} still exists (${messageOf(err)}); delete it in GitLab if it does`,
        );
      else if (!isApi(err, 404)) throw err;
    }
  }
  return outcome;
}

/** Deletes the runner (or manager) behind a record, then forgets the record. */
export async function deleteRecord(
  run: ReconcileRun,
  node: string,
  rec: RunnerRecord,
  why: string,
  tokenDead = false,
): Promise<void> {
  const outcome =
    rec.mode === 'shared' ? await deleteManager(run, rec) : await deleteOwnRunner(run, node, rec, tokenDead);
  run.ledger.drop(rec);
  await run.ledger.commit();
  const what =
    rec.mode === 'shared'
      ? `manager ${rec.systemId} of runner #${rec.id ?? '?'}`
      : `runner #${rec.id ?? '?'}`;
  if (outcome === 'deleted')
    run.report.changed(
      node,
      rec.mode === 'shared' ? 'delete manager' : 'delete runner',
      `${node}: deleted ${what} (${why})`,
    );
  else
    run.report.changed(
      node,
      'forget runner',
      `${node}: ${what} was already gone from GitLab; record removed (${why})`,
    );
}

/** Deletes now, or (retireLater) marks the record retired, saves it, and holds the delete for retireHeld(). */
export async function retireRecord(
  run: ReconcileRun,
  node: string,
  rec: RunnerRecord,
  why: string,
  tokenDead = false,
): Promise<void> {
  if (!run.held) return deleteRecord(run, node, rec, why, tokenDead);
  if (!rec.retiredAt) {
    rec.retiredAt = run.now();
    await run.ledger.commit();
  }
  run.held.push({ node, rec, why, tokenDead });
}

/**
 * Runs the deletes held so far (each node's in order, nodes side by side); returns the records as saved afterwards.
 * `which`: only the deletes it picks run; the others stay held (their records stay saved as retired).
 */
export async function retireHeld(
  run: ReconcileRun,
  concurrency: number,
  which: (held: HeldDelete) => boolean = () => true,
): Promise<RunnerRecord[]> {
  const all = run.held?.splice(0) ?? [];
  const pending = all.filter(which);
  run.held?.push(...all.filter((h) => !pending.includes(h)));
  await eachNodeInOrder(pending, concurrency, run.report, (p) =>
    deleteRecord(run, p.node, p.rec, p.why, p.tokenDead),
  );
  return run.ledger.snapshot();
}
