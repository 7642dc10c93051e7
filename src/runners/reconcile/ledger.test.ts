// The ledger: the same records always serialise the same, saves never interleave, a failed save of a new record is undone.
import { describe, expect, it } from 'vitest';
import { MemoryRecordStore } from '../../../test/support/memoryRecordStore.js';
import { recordOf } from '../../../test/support/reconcileRun.js';
import { FakeGitlab } from '../../../test/support/fakeGitlabApi.js';
import type { RunnerRecord } from '../records.js';
import { Ledger, unsavedError } from './ledger.js';

const api = new FakeGitlab();
const rec = (node: string, createdAt: string): RunnerRecord => ({ ...recordOf(api, node), createdAt });

describe('Ledger', () => {
  it('saves its records sorted by node, then age, whatever order they came in', async () => {
    const store = new MemoryRecordStore();
    const ledger = new Ledger([rec('pi-2', '2026-01-02'), rec('pi-1', '2026-01-03')], store);
    ledger.add(rec('pi-1', '2026-01-01'));
    await ledger.commit();
    expect(store.current.map((r) => [r.node, r.createdAt])).toEqual([
      ['pi-1', '2026-01-01'],
      ['pi-1', '2026-01-03'],
      ['pi-2', '2026-01-02'],
    ]);
  });

  it('serialises saves: one starts only after the one before ended, and a failed save does not stop the next', async () => {
    const order: string[] = [];
    let fail = true;
    const store = new MemoryRecordStore();
    const slow = Object.assign(Object.create(store) as MemoryRecordStore, {
      async save(records: RunnerRecord[]) {
        order.push(`start ${records.length}`);
        await new Promise((r) => setTimeout(r, 5));
        order.push(`end ${records.length}`);
        if (fail) {
          fail = false;
          throw new Error('disk full');
        }
        await store.save(records);
      },
    });
    const ledger = new Ledger([], slow);
    ledger.add(rec('pi-1', '2026-01-01'));
    const first = ledger.commit();
    ledger.add(rec('pi-2', '2026-01-01'));
    const second = ledger.commit();
    await expect(first).rejects.toThrow('disk full');
    await second;
    // The first save took the snapshot of its time only when it started: both saw the two records.
    expect(order).toEqual(['start 2', 'end 2', 'start 2', 'end 2']);
    expect(store.current).toHaveLength(2);
  });

  it('saveNew records the runner and retires the one it replaces; a failed save undoes both in memory', async () => {
    const old = rec('pi-1', '2026-01-01');
    const store = new MemoryRecordStore();
    const ledger = new Ledger([old], store);
    const made = rec('pi-1', '2026-02-01');
    expect(await ledger.saveNew(made, old, '2026-02-01T00:00:00Z')).toEqual({ saved: true });
    expect(store.current.map((r) => r.retiredAt)).toEqual(['2026-02-01T00:00:00Z', undefined]);

    const broken = Object.assign(Object.create(store) as MemoryRecordStore, {
      save: () => Promise.reject(undefined),
    });
    const other = rec('pi-2', '2026-01-01');
    const again = new Ledger([other], broken);
    const outcome = await again.saveNew(rec('pi-2', '2026-03-01'), other, 'later');
    expect(outcome.saved).toBe(false);
    expect(other.retiredAt).toBeUndefined();
    expect(again.snapshot()).toEqual([other]);
    // A store that rejects with nothing still gives a reason.
    expect(unsavedError(outcome as { error: unknown })).toEqual(new Error('the records could not be saved'));
  });
});
