// The delete phase on the fake GitLab: by token, by id when the token is dead, managers in shared mode, held for retire().
import { describe, expect, it } from 'vitest';
import { fakeRun, recordOf } from '../../../test/support/reconcileRun.js';
import { FakeGitlab } from '../../../test/support/fakeGitlabApi.js';
import { deleteRecord, retireHeld, retireRecord } from './retire.js';

describe('deleteRecord', () => {
  it('deletes the runner by its token, forgets the record and says so', async () => {
    const api = new FakeGitlab();
    const rec = recordOf(api, 'pi-1');
    const { run, store } = fakeRun({ api, records: [rec] });
    await deleteRecord(run, 'pi-1', rec, 'node left the inventory');
    expect(api.methods()).toEqual(['deleteRunnerByToken']);
    expect(api.runners).toEqual([]);
    expect(store.current).toEqual([]);
    expect(run.report.changes).toEqual([
      {
        node: 'pi-1',
        step: 'delete runner',
        detail: `pi-1: deleted runner #${rec.id} (node left the inventory)`,
      },
    ]);
  });

  it('a rejected token falls back to the id with the access token: the runner may still exist (token reset)', async () => {
    const api = new FakeGitlab();
    const rec = recordOf(api, 'pi-1');
    api.runners[0].token = 'glrt-reset-elsewhere-0000000';
    const { run } = fakeRun({ api, records: [rec] });
    await deleteRecord(run, 'pi-1', rec, 'replaced');
    expect(api.methods()).toEqual(['deleteRunnerByToken', 'deleteRunnerById']);
    expect(api.runners).toEqual([]);
    expect(run.report.changes[0].step).toBe('delete runner');
  });

  it('a token known dead goes straight to the id; a runner gone there too is only forgotten', async () => {
    const api = new FakeGitlab();
    const rec = recordOf(api, 'pi-1', { dead: true });
    const { run } = fakeRun({ api, records: [rec] });
    await deleteRecord(run, 'pi-1', rec, 'replaced by #7', true);
    expect(api.methods()).toEqual(['deleteRunnerById']);
    expect(run.report.changes).toEqual([
      {
        node: 'pi-1',
        step: 'forget runner',
        detail: 'pi-1: runner #999 was already gone from GitLab; record removed (replaced by #7)',
      },
    ]);
  });

  it('an access token that may not delete by id: a warning to check by hand, the record still goes', async () => {
    const api = new FakeGitlab().fail('deleteRunnerById', 403);
    const rec = recordOf(api, 'pi-1', { dead: true });
    const { run, store } = fakeRun({ api, records: [rec] });
    await deleteRecord(run, 'pi-1', rec, 'replaced', true);
    expect(run.report.warnings).toEqual([
      {
        node: 'pi-1',
        message:
          'could not check whether runner #999 still exists (403 fake); delete it in GitLab if it does',
      },
    ]);
    expect(store.current).toEqual([]);
  });

  it('without an access token a dead token leaves nothing to ask: forgotten', async () => {
    const api = new FakeGitlab();
    const rec = { ...recordOf(api, 'pi-1', { dead: true }), mode: 'registration' as const };
    const { run } = fakeRun({ api, mode: 'registration', secret: 'GR1348941unit', records: [rec] });
    await deleteRecord(run, 'pi-1', rec, 'gone');
    expect(api.methods()).toEqual(['deleteRunnerByToken']);
    expect(run.report.changes[0].step).toBe('forget runner');
  });

  it("shared mode deletes only the node's manager, never the runner; a missing manager is forgotten", async () => {
    const api = new FakeGitlab();
    const shared = api.addRunner({
      tagList: [],
      token: 'glrt-shared-000000000000000',
      managers: ['r_aaaaaaaaaaaa'],
    });
    const rec = {
      ...recordOf(api, 'pi-1', { dead: true }),
      mode: 'shared' as const,
      token: shared.token,
      id: shared.id,
    };
    const { run } = fakeRun({ api, mode: 'shared', secret: shared.token, records: [rec] });
    await deleteRecord(run, 'pi-1', rec, 'node left the inventory');
    expect(api.methods()).toEqual(['deleteRunnerManager']);
    expect(api.runners).toHaveLength(1);
    expect(shared.managers).toEqual([]);
    expect(run.report.changes[0]).toEqual({
      node: 'pi-1',
      step: 'delete manager',
      detail: `pi-1: deleted manager r_aaaaaaaaaaaa of runner #${shared.id} (node left the inventory)`,
    });
    await deleteRecord(run, 'pi-1', rec, 'again');
    expect(run.report.changes[1].step).toBe('forget runner');
  });

  it("any other failure is the caller's, and the record stays", async () => {
    const api = new FakeGitlab().fail('deleteRunnerByToken', 502);
    const rec = recordOf(api, 'pi-1');
    const { run, store } = fakeRun({ api, records: [rec] });
    await expect(deleteRecord(run, 'pi-1', rec, 'x')).rejects.toThrow('502 fake');
    expect(store.current).toHaveLength(1);
  });
});

describe('retireRecord and retireHeld', () => {
  it('without retireLater the delete happens at once', async () => {
    const api = new FakeGitlab();
    const rec = recordOf(api, 'pi-1');
    const { run } = fakeRun({ api, records: [rec] });
    await retireRecord(run, 'pi-1', rec, 'x');
    expect(api.methods()).toEqual(['deleteRunnerByToken']);
    expect(await retireHeld(run, 4)).toEqual([]);
  });

  it("with retireLater the record is saved as retired first; retireHeld deletes each node's in order", async () => {
    const api = new FakeGitlab();
    const a = recordOf(api, 'pi-1');
    const b = recordOf(api, 'pi-1', { createdAt: '2026-01-02T00:00:00.000Z' });
    const c = recordOf(api, 'pi-2', { dead: true });
    const { run, store } = fakeRun({ api, records: [a, b, c], retireLater: true });
    await retireRecord(run, 'pi-1', a, 'first');
    await retireRecord(run, 'pi-1', b, 'second');
    await retireRecord(run, 'pi-2', c, 'third', true);
    expect(api.calls).toEqual([]);
    expect(store.current.map((r) => r.retiredAt)).toEqual([run.now(), run.now(), run.now()]);

    const left = await retireHeld(run, 1);
    expect(left).toEqual([]);
    expect(api.calls.map((x) => [x.method, x.args[0]])).toEqual([
      ['deleteRunnerByToken', a.token],
      ['deleteRunnerByToken', b.token],
      ['deleteRunnerById', run.secret],
    ]);
    expect(run.report.changes.map((x) => x.detail)).toEqual([
      `pi-1: deleted runner #${a.id} (first)`,
      `pi-1: deleted runner #${b.id} (second)`,
      'pi-2: runner #999 was already gone from GitLab; record removed (third)',
    ]);
    // Held deletes run once.
    await retireHeld(run, 1);
    expect(api.calls).toHaveLength(3);
  });

  it("a held delete that fails is its node's error; the record stays retired for the next run", async () => {
    const api = new FakeGitlab().fail('deleteRunnerByToken', 500);
    const rec = recordOf(api, 'pi-1');
    const { run } = fakeRun({ api, records: [rec], retireLater: true });
    await retireRecord(run, 'pi-1', rec, 'x');
    const left = await retireHeld(run, 4);
    expect(run.report.errors).toEqual([{ node: 'pi-1', message: '500 fake' }]);
    expect(left.map((r) => r.retiredAt)).toEqual([run.now()]);
  });

  it('retireHeld with a choice runs only the deletes it picks; the others stay held for a later call', async () => {
    const api = new FakeGitlab();
    const a = recordOf(api, 'pi-1');
    const b = recordOf(api, 'pi-2');
    const { run, store } = fakeRun({ api, records: [a, b], retireLater: true });
    await retireRecord(run, 'pi-1', a, 'node left the inventory');
    await retireRecord(run, 'pi-2', b, 'node left the inventory');
    const left = await retireHeld(run, 4, (h) => h.node === 'pi-2');
    expect(api.calls.map((x) => x.args[0])).toEqual([b.token]);
    expect(left.map((r) => [r.node, r.retiredAt])).toEqual([['pi-1', run.now()]]);
    expect(run.held?.map((h) => h.node)).toEqual(['pi-1']);
    await retireHeld(run, 4);
    expect(api.calls.map((x) => x.args[0])).toEqual([b.token, a.token]);
    expect(store.current).toEqual([]);
  });
});
