// Strays and adoption on the fake GitLab: this fleet's lost creates found by mark, the newest adopted, the rest deleted.
import { describe, expect, it } from 'vitest';
import { FakeGitlab } from '../../../test/support/fakeGitlabApi.js';
import { FLEET, fakeRun, recordOf, settingsFor } from '../../../test/support/reconcileRun.js';
import { ApiError } from '../../errors.js';
import { creationMarker, type RegistrationAction } from '../registration-plan.js';
import { adoptStrays, findStrays, probeStrayLookup, strayLookupDeniedMessage } from './adopt.js';

const note = (mark: string) => `Managed by runner-fleet for node pi-1; edits here are overwritten. ${mark}`;
const stray = (
  api: FakeGitlab,
  fleet = FLEET,
  over: Parameters<FakeGitlab['addRunner']>[0] = { tagList: [] },
) =>
  api.addRunner({
    description: 'fleet pi-1',
    maintenanceNote: note(creationMarker(fleet, 'pi-1', 'abcd1234')),
    ...over,
    tagList: ['arm64', 'pi-1'],
  });
const want = (over = {}) => ({ node: 'pi-1', settings: settingsFor('pi-1'), replacesDead: false, ...over });

describe('strayLookupDeniedMessage', () => {
  it('names the missing scope, a token not accepted, or an administrator GitLab does not see', () => {
    const msg = (status: number, text: string) =>
      strayLookupDeniedMessage(new ApiError('gitlab', status, text));
    expect(msg(403, '403 insufficient_scope')).toMatch(/lacks the read_api scope/);
    expect(msg(401, '401 Unauthorized')).toMatch(/the token was not accepted/);
    expect(msg(403, '403 Forbidden')).toMatch(/admin_mode scope/);
  });
});

describe('probeStrayLookup', () => {
  const create: RegistrationAction = {
    kind: 'create',
    node: 'pi-2',
    mode: 'access',
    settings: settingsFor('pi-2'),
    reason: 'new node',
  };
  it('asks once, for the first node the plan creates a runner for, and only when it creates one', async () => {
    const api = new FakeGitlab();
    expect(await probeStrayLookup(api, 'glpat-x', [])).toBeUndefined();
    expect(api.calls).toEqual([]);
    expect(await probeStrayLookup(api, 'glpat-x', [create])).toBeUndefined();
    expect(api.calls).toEqual([
      { method: 'listAllRunners', args: ['glpat-x', { tagList: ['pi-2'], type: 'instance_type' }] },
    ]);
  });
  it('a refusal is why; any other failure is left to the calls that follow', async () => {
    const refused = new FakeGitlab().fail('listAllRunners', 403, { message: '403 insufficient_scope' });
    expect(await probeStrayLookup(refused, 'glpat-x', [create])).toMatch(/read_api/);
    const down = new FakeGitlab().fail('listAllRunners', 502);
    expect(await probeStrayLookup(down, 'glpat-x', [create])).toBeUndefined();
  });
});

describe('findStrays', () => {
  it("only this fleet's marked runners that no record holds, newest first; others are never touched", async () => {
    const api = new FakeGitlab();
    const held = recordOf(api, 'pi-1');
    api.runners[0].maintenanceNote = note(creationMarker(FLEET, 'pi-1', 'feed0000'));
    const older = stray(api);
    const newer = stray(api);
    stray(api, 'beef00000002');
    api.addRunner({ tagList: ['arm64', 'pi-1'], maintenanceNote: 'made by hand' });
    const { run } = fakeRun({ api, records: [held] });
    const found = await findStrays(run, 'pi-1', settingsFor('pi-1'));
    expect(found?.map((s) => [s.details.id, s.attempt])).toEqual([
      [newer.id, 'abcd1234'],
      [older.id, 'abcd1234'],
    ]);
    expect(run.report.warnings).toEqual([]);
    expect(api.methods().filter((m) => m !== 'getRunner')).toEqual(['listAllRunners']);
  });

  it('a marked runner in use or with a fleetless mark is left alone with one warning, said once per run', async () => {
    const api = new FakeGitlab();
    const used = stray(api, FLEET, { tagList: [], contactedAt: '2026-05-01T00:00:00Z' });
    stray(api, FLEET, { tagList: [], maintenanceNote: note('[runner-fleet node=pi-1 attempt=0ld00000]') });
    const { run } = fakeRun({ api });
    expect(await findStrays(run, 'pi-1', settingsFor('pi-1'))).toEqual([]);
    await findStrays(run, 'pi-1', settingsFor('pi-1'));
    expect(run.report.warnings.map((w) => w.message)).toEqual([
      expect.stringContaining(`runner #${used.id} carries this fleet's mark`),
      expect.stringContaining('names no fleet'),
    ]);
  });

  it('cannot look without an access token, or once a list was refused: that verdict is kept for the run', async () => {
    const api = new FakeGitlab().fail('listAllRunners', 401, { message: '401 Unauthorized' });
    stray(api);
    const registration = fakeRun({ api, mode: 'registration' });
    expect(await findStrays(registration.run, 'pi-1', settingsFor('pi-1'))).toBeUndefined();
    expect(api.calls).toEqual([]);
    const { run } = fakeRun({ api });
    expect(await findStrays(run, 'pi-1', settingsFor('pi-1'))).toBeUndefined();
    expect(run.verdicts.strayLookupDenied).toMatch(/the token was not accepted/);
    expect(await findStrays(run, 'pi-1', settingsFor('pi-1'))).toBeUndefined();
    expect(api.methods()).toEqual(['listAllRunners']);
  });

  it('a runner deleted between the list and its read is skipped', async () => {
    const api = new FakeGitlab().fail('getRunner', 404);
    stray(api);
    const { run } = fakeRun({ api });
    expect(await findStrays(run, 'pi-1', settingsFor('pi-1'))).toEqual([]);
  });
});

describe('adoptStrays', () => {
  it("adopts the newest (token reset), deletes the older, records GitLab's settings and retires the replaced record", async () => {
    const api = new FakeGitlab();
    const old = recordOf(api, 'pi-1', { dead: true });
    const older = stray(api);
    const newer = stray(api);
    const { run, store } = fakeRun({ api, records: [old] });
    expect(
      await adoptStrays(run, want({ systemId: 'r_keepkeepkeep', replaces: old, replacesDead: true })),
    ).toBe(true);
    expect(api.methods()).toEqual([
      'listAllRunners',
      'getRunner',
      'getRunner',
      'deleteRunnerById',
      'resetRunnerTokenById',
      'deleteRunnerById',
    ]);
    expect(api.runners.map((r) => r.id)).toEqual([newer.id]);
    const [rec] = store.current;
    expect(rec).toMatchObject({ node: 'pi-1', mode: 'access', id: newer.id, systemId: 'r_keepkeepkeep' });
    expect(rec.token).toBe(api.runners[0].token);
    expect(run.report.changes.map((c) => c.step)).toEqual(['delete runner', 'adopt runner', 'forget runner']);
    expect(run.report.changes[0].detail).toContain(
      `deleted runner #${older.id}, left in GitLab by an interrupted create`,
    );
  });

  it('settings another inventory made are put right at once; a token that may not update leaves them for the next run', async () => {
    const api = new FakeGitlab();
    const s = stray(api, FLEET, { tagList: [], maximumTimeout: 600, description: 'old words' });
    const { run, store } = fakeRun({ api });
    await adoptStrays(run, want());
    const put = api.calls.find((c) => c.method === 'updateRunner');
    expect(put?.args[2]).toMatchObject({ description: 'fleet pi-1', maximum_timeout: null });
    expect(put?.args[2]).not.toHaveProperty('maintenance_note');
    expect(store.current[0].settings).toEqual(settingsFor('pi-1'));
    expect(run.report.changes.map((c) => c.detail)).toEqual([
      expect.stringContaining(`adopted runner #${s.id}`),
      `pi-1: updated runner #${s.id}: description: "old words" → "fleet pi-1", maximum_timeout: 600 → none`,
    ]);

    const denied = new FakeGitlab().fail('updateRunner', 403);
    stray(denied, FLEET, { tagList: [], description: 'old words' });
    const second = fakeRun({ api: denied });
    expect(await adoptStrays(second.run, want())).toBe(true);
    expect(second.run.verdicts.updateForbidden).toBe(true);
    expect(second.store.current[0].settings?.description).toBe('old words');
  });

  it('none to adopt: false, nothing changed', async () => {
    const { run, api } = fakeRun();
    expect(await adoptStrays(run, want())).toBe(false);
    expect(api.methods()).toEqual(['listAllRunners']);
  });

  it("a token that may not reset the stray's token or delete an extra one is an error naming the runner", async () => {
    const api = new FakeGitlab().fail('resetRunnerTokenById', 403);
    const s = stray(api);
    const { run } = fakeRun({ api });
    await expect(adoptStrays(run, want())).rejects.toThrow(
      `runner #${s.id} was left in GitLab by an interrupted create (attempt abcd1234) and this token may not reset its token`,
    );
    const api2 = new FakeGitlab().fail('deleteRunnerById', 401);
    const first = stray(api2);
    stray(api2);
    await expect(adoptStrays(fakeRun({ api: api2 }).run, want())).rejects.toThrow(
      `runner #${first.id} was left in GitLab by an interrupted create (attempt abcd1234) and this token may not delete it`,
    );
  });

  it('a record that cannot be saved: the runner keeps its mark, so the next run adopts it again', async () => {
    const api = new FakeGitlab();
    const s = stray(api);
    const { run, store } = fakeRun({ api });
    store.save = () => Promise.reject(new Error('disk full'));
    await expect(adoptStrays(run, want())).rejects.toThrow(
      `adopted runner #${s.id} (left by an interrupted create) but could not save its record (disk full); the next run adopts it again`,
    );
    expect(run.ledger.snapshot()).toEqual([]);
    expect(api.runners[0].maintenanceNote).toContain('attempt=abcd1234');
  });
});
