// What one reconcile run hands from phase to phase: GitLab and its token, the records, the report, and what GitLab already said.
import { randomBytes } from 'node:crypto';
import type { GitlabRunnerApi } from '../../gitlab/api.js';
import { ApiError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { Change } from '../../report.js';
import { mapPool } from '../../pool.js';
import { redact } from '../../secrets.js';
import type { RecordStore, RegistrationMode, RunnerRecord, RunnerSettings } from '../records.js';
import type { Ledger } from './ledger.js';

export interface RunnerChange extends Change {
  node: string;
}

export interface RunnerIssue {
  node: string;
  message: string;
}

/** Changes, errors and warnings in the order they happened, redacted; each is logged as it lands (changes: not in a dry run). */
export class RunReport {
  readonly changes: RunnerChange[] = [];
  readonly errors: RunnerIssue[] = [];
  readonly warnings: RunnerIssue[] = [];

  constructor(
    private readonly log: Logger | undefined,
    private readonly dryRun: boolean,
  ) {}

  fail(node: string, message: string): void {
    this.errors.push({ node, message: redact(message) });
    this.log?.error(node, redact(message));
  }

  warn(node: string, message: string): void {
    this.warnings.push({ node, message: redact(message) });
    this.log?.warn(node, redact(message));
  }

  changed(node: string, step: string, detail: string): void {
    this.changes.push({ node, step, detail: redact(detail) });
    if (!this.dryRun) this.log?.change(node, redact(detail));
  }
}

/**
 * What GitLab has already answered about the run's token. Nodes run side by side: the first answer that condemns
 * the token for all of them is kept here and reused instead of asked again.
 */
export interface TokenVerdicts {
  /** a create was refused (401, missing scope, 410): later creates fail with this, without asking */
  createBlocked?: string;
  /** gitlab.runnerToken was rejected: later joins fail with this */
  sharedBroken?: string;
  /** an update was refused (401/403): settings changes re-create instead, adoption leaves GitLab's settings */
  updateForbidden: boolean;
  /** why this token cannot list runners (the probe or a refused list): no look for strays; said in a lost create's error */
  strayLookupDenied?: string;
}

/** The runner a node should get: its settings, the system_id it keeps, the record it replaces (its token known dead or not). */
export interface WantedRunner {
  node: string;
  settings: RunnerSettings;
  systemId?: string;
  replaces?: RunnerRecord;
  replacesDead: boolean;
}

/** A delete that `retireLater` holds back for `retire()`. */
export interface HeldDelete {
  node: string;
  rec: RunnerRecord;
  why: string;
  tokenDead: boolean;
}

export interface ReconcileRun {
  api: GitlabRunnerApi;
  /** how the inventory registers runners; null: it has no token */
  mode: RegistrationMode | null;
  /** the inventory's GitLab token (access, registration or shared runner token) */
  secret: string | undefined;
  ledger: Ledger;
  report: RunReport;
  verdicts: TokenVerdicts;
  /** deletes held back for `retire()`; undefined: delete at once */
  held: HeldDelete[] | undefined;
  /** stray runners already reported as left alone, so each is said once */
  leftAloneSaid: Set<number>;
  now(): string;
  makeSystemId(): string;
  /** this fleet's id for creation marks (see fleetIdOnce) */
  fleetId(): Promise<string>;
}

/**
 * This fleet's id, asked for on first use only and then kept: the given one (host placement), else the store's
 * (made and kept there, so the next run finds this run's marks), else a random one for this run.
 */
export function fleetIdOnce(given: string | undefined, store: RecordStore): () => Promise<string> {
  let id: Promise<string> | undefined;
  return () =>
    (id ??= given
      ? Promise.resolve(given)
      : store.fleetId
        ? store.fleetId()
        : Promise.resolve(randomBytes(6).toString('hex')));
}

export const isApi = (err: unknown, ...statuses: number[]): err is ApiError =>
  err instanceof ApiError && statuses.includes(err.status);

export const messageOf = (err: unknown): string => redact(err instanceof Error ? err.message : String(err));

/**
 * Runs each node's items in their order (a node's new runner before its old one's delete), nodes side by side, at
 * most `concurrency` at once. A failed item is an error of its node; the node's next item still runs.
 */
export async function eachNodeInOrder<T extends { node: string }>(
  items: readonly T[],
  concurrency: number,
  report: RunReport,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  const byNode = new Map<string, T[]>();
  for (const item of items) byNode.set(item.node, [...(byNode.get(item.node) ?? []), item]);
  await mapPool([...byNode.entries()], concurrency, async ([node, list]) => {
    for (const item of list) {
      try {
        await fn(item);
      } catch (err) {
        report.fail(node, messageOf(err));
      }
    }
  });
}
