// Runs the registration plan against GitLab: verify, create, update, delete; saves records after every step so nothing is orphaned.
// The phases live in reconcile/: retire.ts (delete), adopt.ts (strays), create.ts, verify.ts (and rotate), update.ts.
import type { GitlabRunnerApi } from '../gitlab/api.js';
import type { Inventory } from '../inventory/types.js';
import type { Logger } from '../log.js';
import { secretValue } from '../secrets.js';
import { describeAction, planRegistrations, type RegistrationAction } from './registration-plan.js';
import {
  modeForAuth,
  newSystemId,
  tokenRotationDue,
  type RecordStore,
  type RunnerRecord,
} from './records.js';
import { probeStrayLookup } from './reconcile/adopt.js';
import { createRunner, joinSharedRunner } from './reconcile/create.js';
import { Ledger } from './reconcile/ledger.js';
import { retireHeld, retireRecord } from './reconcile/retire.js';
import {
  eachNodeInOrder,
  fleetIdOnce,
  RunReport,
  type HeldDelete,
  type ReconcileRun,
  type RunnerChange,
  type RunnerIssue,
} from './reconcile/run.js';
import { updateRunner } from './reconcile/update.js';
import { verifyOrReplace } from './reconcile/verify.js';

export type { HeldDelete, RunnerChange, RunnerIssue } from './reconcile/run.js';
export { strayLookupDeniedMessage } from './reconcile/adopt.js';
export { noClearAnswer, registrationDisabledMessage } from './reconcile/create.js';

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
   * records as saved afterwards. `which`: only the held deletes it picks; the others stay held for a later call.
   */
  retire(which?: (held: HeldDelete) => boolean): Promise<RunnerRecord[]>;
  /** the deletes `retireLater` holds right now */
  held(): readonly HeldDelete[];
}

/** What a dry run reports: the blocked nodes as errors, and each change (and token rotation) the apply would make. */
function reportPlan(actions: RegistrationAction[], report: RunReport, now: () => Date): void {
  for (const a of actions) {
    if (a.kind === 'blocked') report.fail(a.node, a.reason);
    const d = describeAction(a);
    if (d) report.changed(a.node, d.step, d.detail);
    if (
      (a.kind === 'verify' || a.kind === 'update') &&
      a.record.mode !== 'shared' &&
      tokenRotationDue(a.record, now())
    ) {
      report.changed(
        a.node,
        'rotate token',
        `${a.node}: would rotate the token of runner #${a.record.id ?? '?'} (expires at ${a.record.tokenExpiresAt})`,
      );
    }
  }
}

/** One action of the plan, through its phase. */
async function runAction(run: ReconcileRun, a: RegistrationAction): Promise<void> {
  switch (a.kind) {
    case 'blocked':
      throw new Error(a.reason);
    case 'verify':
      await verifyOrReplace(run, a.node, a.record, a.settings);
      return;
    case 'create':
      await createRunner(
        run,
        a.mode,
        {
          node: a.node,
          settings: a.settings,
          systemId: a.systemId,
          replaces: a.replaces,
          replacesDead: false,
        },
        a.reason,
      );
      return;
    case 'update':
      await updateRunner(run, a);
      return;
    case 'join':
      await joinSharedRunner(run, a);
      return;
    case 'delete':
      await retireRecord(run, a.node, a.record, a.reason);
      return;
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
  const report = new RunReport(opts.log, opts.dryRun);
  const now = () => (opts.now ? opts.now() : new Date()).toISOString();

  // Whether a lost create could be found again is said before anything is created, in plan and apply alike.
  const strayLookupDenied =
    mode === 'access' && secret ? await probeStrayLookup(api, secret, actions) : undefined;
  if (strayLookupDenied) {
    const node = actions.find((a) => a.kind === 'create')!.node;
    report.warn(
      node,
      `adoption of lost creates is off: ${strayLookupDenied}. A create whose answer is lost (timeout, gateway error) is reported with its mark and not retried, but no later run can find it: each would create another runner and leave that one in GitLab. Give the token the read_api scope (see the README's token table)`,
    );
  }
  const { changes, errors, warnings } = report;

  if (opts.dryRun) {
    reportPlan(actions, report, () => new Date(now()));
    return {
      records: loaded,
      changes,
      errors,
      warnings,
      actions,
      retire: async () => loaded,
      held: () => [],
    };
  }

  const run: ReconcileRun = {
    api,
    mode,
    secret,
    ledger: new Ledger(loaded, store),
    report,
    verdicts: { strayLookupDenied, updateForbidden: false },
    held: opts.retireLater ? [] : undefined,
    leftAloneSaid: new Set(),
    now,
    makeSystemId: opts.makeSystemId ?? newSystemId,
    fleetId: fleetIdOnce(opts.fleetId, store),
  };
  const concurrency = opts.concurrency ?? 4;
  await eachNodeInOrder(actions, concurrency, report, (a) => runAction(run, a));
  return {
    records: run.ledger.snapshot(),
    changes,
    errors,
    warnings,
    actions,
    retire: (which) => retireHeld(run, concurrency, which),
    held: () => [...(run.held ?? [])],
  };
}
