// The verify phase on the fake GitLab: a token checked under the node's system id, rotated past half its life, replaced when rejected.
import { describe, expect, it } from 'vitest';
import { FakeGitlab } from '../../../test/support/fakeGitlabApi.js';
import { fakeRun, recordOf, settingsFor } from '../../../test/support/reconcileRun.js';
import { rotateToken, verifyOrReplace } from './verify.js';

const SHARED = 'glrt-shared-000000000000000';

describe('verifyOrReplace', () => {
  it("a valid token: one verify under the node's system id, nothing saved when nothing changed", async () => {
    const api = new FakeGitlab();
    const rec = recordOf(api, 'pi-1');
    const { run, store } = fakeRun({ api, records: [rec] });
    expect(await verifyOrReplace(run, 'pi-1', rec, rec.settings)).toBe('kept');
    expect(api.calls).toEqual([{ method: 'verifyRunner', args: [rec.token, 'r_aaaaaaaaaaaa'] }]);
    expect(api.runners[0].managers).toEqual(['r_aaaaaaaaaaaa']);
    expect(store.saves).toBe(0);
    expect(run.report.changes).toEqual([]);
  });

  it('learns the runner id and a new expiry from the answer, and saves them', async () => {
    const api = new FakeGitlab();
    const rec = recordOf(api, 'pi-1', { id: undefined });
    api.runners[0].tokenExpiresAt = '2027-01-01T00:00:00.000Z';
    const { run, store } = fakeRun({ api, records: [rec] });
    await verifyOrReplace(run, 'pi-1', rec, rec.settings);
    expect(store.current[0]).toMatchObject({
      id: api.runners[0].id,
      tokenExpiresAt: '2027-01-01T00:00:00.000Z',
    });
  });

  it('a token past half its life is rotated and saved before anything else', async () => {
    const api = new FakeGitlab();
    api.tokenExpiresAt = '2026-12-01T00:00:00.000Z';
    const rec = recordOf(api, 'pi-1', { tokenExpiresAt: '2026-07-01T00:00:00.000Z' });
    api.runners[0].tokenExpiresAt = rec.tokenExpiresAt!;
    const { run, store } = fakeRun({ api, records: [rec] });
    expect(await verifyOrReplace(run, 'pi-1', rec, rec.settings)).toBe('kept');
    expect(api.methods()).toEqual(['verifyRunner', 'resetRunnerToken']);
    expect(store.current[0]).toMatchObject({
      token: api.runners[0].token,
      tokenExpiresAt: '2026-12-01T00:00:00.000Z',
      tokenObtainedAt: run.now(),
    });
    expect(run.report.changes[0].detail).toBe(
      `pi-1: rotated the token of runner #${rec.id} (it expired at 2026-07-01T00:00:00.000Z; the new one at 2026-12-01T00:00:00.000Z)`,
    );
  });

  it('a rejected token is replaced by a new runner with the same system id; the old one deleted by id', async () => {
    const api = new FakeGitlab();
    const rec = recordOf(api, 'pi-1', { dead: true });
    const { run, store } = fakeRun({ api, records: [rec] });
    expect(await verifyOrReplace(run, 'pi-1', rec, settingsFor('pi-1'))).toBe('replaced');
    expect(api.methods()).toEqual(['verifyRunner', 'listAllRunners', 'createUserRunner', 'deleteRunnerById']);
    expect(store.current.map((r) => [r.id, r.systemId])).toEqual([[api.runners[0].id, 'r_aaaaaaaaaaaa']]);
    expect(run.report.changes[0].detail).toContain('(the token of #999 was rejected (403))');
  });

  it('a rotation GitLab refuses counts as a rejected token too', async () => {
    const api = new FakeGitlab().fail('resetRunnerToken', 403);
    const rec = recordOf(api, 'pi-1', { tokenExpiresAt: '2026-07-01T00:00:00.000Z' });
    api.runners[0].tokenExpiresAt = rec.tokenExpiresAt!;
    const { run } = fakeRun({ api, records: [rec] });
    expect(await verifyOrReplace(run, 'pi-1', rec, settingsFor('pi-1'))).toBe('replaced');
    expect(api.methods()).toContain('createUserRunner');
  });

  it('without a token to create with, or a record of another mode, a rejected token is an error', async () => {
    const api = new FakeGitlab();
    const rec = recordOf(api, 'pi-1', { dead: true });
    const none = fakeRun({ api, records: [rec], mode: null, secret: undefined });
    await expect(verifyOrReplace(none.run, 'pi-1', rec, null)).rejects.toThrow(
      'the token of runner #999 was rejected (403 Forbidden) and gitlab has no token to create a new one',
    );
    const other = fakeRun({ api, records: [rec], mode: 'registration' });
    await expect(verifyOrReplace(other.run, 'pi-1', rec, settingsFor('pi-1'))).rejects.toThrow(
      /no token to create/,
    );
  });

  it('a rejected shared token condemns it for every node', async () => {
    const api = new FakeGitlab().fail('verifyRunner', 422);
    const rec = { ...recordOf(api, 'pi-1', { dead: true }), mode: 'shared' as const, token: SHARED };
    const { run } = fakeRun({ api, records: [rec], mode: 'shared', secret: SHARED });
    await expect(verifyOrReplace(run, 'pi-1', rec, null)).rejects.toThrow(
      /gitlab.runnerToken was rejected by GitLab/,
    );
    expect(run.verdicts.sharedBroken).toMatch(/put a valid glrt- token in the reference/);
  });

  it("any other failure is the caller's", async () => {
    const api = new FakeGitlab().fail('verifyRunner', 500);
    const rec = recordOf(api, 'pi-1');
    const { run } = fakeRun({ api, records: [rec] });
    await expect(verifyOrReplace(run, 'pi-1', rec, rec.settings)).rejects.toThrow('500 fake');
  });
});

describe('rotateToken', () => {
  it("a shared token is the person's to reset: a warning, no call", async () => {
    const api = new FakeGitlab();
    const rec = { ...recordOf(api, 'pi-1'), mode: 'shared' as const, tokenExpiresAt: '2026-07-01' };
    const { run } = fakeRun({ api, records: [rec], mode: 'shared' });
    await rotateToken(run, 'pi-1', rec);
    expect(api.calls).toEqual([]);
    expect(run.report.warnings[0].message).toMatch(
      /^gitlab.runnerToken expires at 2026-07-01: reset it in GitLab/,
    );
  });

  it('a new token that cannot be saved is an error that says the next run replaces the runner', async () => {
    const api = new FakeGitlab();
    const rec = recordOf(api, 'pi-1');
    const { run, store } = fakeRun({ api, records: [rec] });
    store.save = () => Promise.reject(new Error('disk full'));
    await expect(rotateToken(run, 'pi-1', rec)).rejects.toThrow(
      `rotated the token of runner #${rec.id} but could not save it (disk full); the next run replaces the runner`,
    );
  });
});
