// The update phase on the fake GitLab: verify, then PUT the settings; a gone runner or a token that may not update re-creates.
import { describe, expect, it } from 'vitest';
import { FakeGitlab } from '../../../test/support/fakeGitlabApi.js';
import { fakeRun, recordOf, settingsFor } from '../../../test/support/reconcileRun.js';
import type { RegistrationAction } from '../registration-plan.js';
import type { RunnerRecord } from '../records.js';
import { updateRunner } from './update.js';

const update = (record: RunnerRecord, over = {}): Extract<RegistrationAction, { kind: 'update' }> => ({
  kind: 'update',
  node: record.node,
  record,
  settings: settingsFor(record.node, { tagList: ['arm64', 'pi', record.node], ...over }),
  changed: ['tags +pi'],
});

describe('updateRunner', () => {
  it('verifies, then updates the runner in place (same id) and saves the settings', async () => {
    const api = new FakeGitlab();
    const rec = recordOf(api, 'pi-1');
    const { run, store } = fakeRun({ api, records: [rec] });
    await updateRunner(run, update(rec));
    expect(api.methods()).toEqual(['verifyRunner', 'updateRunner']);
    expect(api.calls[1].args[2]).not.toHaveProperty('maintenance_note');
    expect(api.runners[0].tagList).toEqual(['arm64', 'pi', 'pi-1']);
    expect(store.current[0].settings?.tagList).toEqual(['arm64', 'pi', 'pi-1']);
    expect(run.report.changes).toEqual([
      { node: 'pi-1', step: 'update runner', detail: `pi-1: updated runner #${rec.id}: tags +pi` },
    ]);
  });

  it('clearing a time limit sends an explicit null', async () => {
    const api = new FakeGitlab();
    const rec = recordOf(api, 'pi-1', { settings: settingsFor('pi-1', { maximumTimeout: 600 }) });
    const { run } = fakeRun({ api, records: [rec] });
    await updateRunner(run, update(rec));
    expect(api.calls[1].args[2]).toMatchObject({ maximum_timeout: null });
  });

  it('a rejected token is replaced with the new settings, and no update follows', async () => {
    const api = new FakeGitlab();
    const rec = recordOf(api, 'pi-1', { dead: true });
    const { run } = fakeRun({ api, records: [rec] });
    await updateRunner(run, update(rec));
    expect(api.methods()).not.toContain('updateRunner');
    expect(api.runners[0].tagList).toEqual(['arm64', 'pi', 'pi-1']);
  });

  it('a runner GitLab no longer has is re-created, its record retired as dead', async () => {
    const api = new FakeGitlab().fail('updateRunner', 404);
    const rec = recordOf(api, 'pi-1');
    const { run } = fakeRun({ api, records: [rec] });
    await updateRunner(run, update(rec));
    expect(api.methods()).toEqual([
      'verifyRunner',
      'updateRunner',
      'listAllRunners',
      'createUserRunner',
      'deleteRunnerById',
    ]);
    expect(run.report.changes[0].detail).toContain(`(runner #${rec.id} is gone)`);
  });

  it('a token that may not update: one warning for the run, then every node re-creates without asking', async () => {
    const api = new FakeGitlab().fail('updateRunner', 403, { message: '403 Forbidden' });
    const a = recordOf(api, 'pi-1');
    const b = recordOf(api, 'pi-2');
    const { run } = fakeRun({ api, records: [a, b] });
    await updateRunner(run, update(a));
    await updateRunner(run, update(b));
    expect(run.verdicts.updateForbidden).toBe(true);
    expect(run.report.warnings.map((w) => w.message)).toEqual([
      expect.stringMatching(/^gitlab.accessToken may not update runners \(403 Forbidden;/),
    ]);
    expect(api.methods().filter((m) => m === 'updateRunner')).toHaveLength(1);
    expect(run.report.changes.map((c) => c.step)).toEqual([
      'replace runner',
      'delete runner',
      'replace runner',
      'delete runner',
    ]);
  });

  it("any other failure of the update is the caller's", async () => {
    const api = new FakeGitlab().fail('updateRunner', 500);
    const rec = recordOf(api, 'pi-1');
    const { run } = fakeRun({ api, records: [rec] });
    await expect(updateRunner(run, update(rec))).rejects.toThrow('500 fake');
  });
});
