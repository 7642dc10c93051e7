// The working set of runner records during a reconcile, and its saves: serialised, so nodes running side by side never interleave them.
import type { RecordStore, RunnerRecord } from '../records.js';

/** What saving a new record gave: on failure the record and the retirement of the one it replaces are undone. */
export type SaveOutcome = { saved: true } | { saved: false; error: unknown };

/** The error a failed save gave, never nothing (a store could reject without a reason). */
export const unsavedError = (o: { error: unknown }): unknown =>
  o.error ?? new Error('the records could not be saved');

export class Ledger {
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

  /**
   * Records a runner that exists in GitLab now (retiring, at `at`, the record it replaces) and saves the records.
   * When the save fails both are undone in memory: the caller decides what happens to the runner.
   */
  async saveNew(rec: RunnerRecord, replaces: RunnerRecord | undefined, at: string): Promise<SaveOutcome> {
    this.add(rec);
    if (replaces) replaces.retiredAt = at;
    try {
      await this.commit();
      return { saved: true };
    } catch (error) {
      this.drop(rec);
      if (replaces) delete replaces.retiredAt;
      return { saved: false, error };
    }
  }

  /** sorted by node, then age: the same records always serialise the same, whatever order nodes finished in */
  snapshot(): RunnerRecord[] {
    const sorted = [...this.records].sort(
      (a, b) => a.node.localeCompare(b.node) || a.createdAt.localeCompare(b.createdAt),
    );
    return structuredClone(sorted);
  }
}
