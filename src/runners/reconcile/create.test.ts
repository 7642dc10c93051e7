// The create phase on the fake GitLab: a marked create saved before the replaced record retires; refusals and lost answers.
import { describe, expect, it } from 'vitest';
import { FakeGitlab } from '../../../test/support/fakeGitlabApi.js';
import { FLEET, fakeRun, recordOf, settingsFor } from '../../../test/support/reconcileRun.js';
import { ApiError } from '../../errors.js';
import { creationMarker } from '../registration-plan.js';
import { createRunner, explainCreateError, joinSharedRunner, noClearAnswer } from './create.js';

const want = (over = {}) => ({ node: 'pi-1', settings: settingsFor('pi-1'), replacesDead: false, ...over });
const SHARED = 'glrt-shared-000000000000000';

describe('noClearAnswer and explainCreateError', () => {
  it('no answer, a gateway error or an unreadable 2xx may have made the runner; a refusal did not', () => {
    for (const s of [0, 200, 201, 502, 503, 504])
      expect(noClearAnswer(new ApiError('gitlab', s, 'x'))).toBe(true);
    for (const s of [400, 401, 403, 404, 410, 500])
      expect(noClearAnswer(new ApiError('gitlab', s, 'x'))).toBe(false);
    expect(noClearAnswer(new Error('x'))).toBe(false);
  });
  it('says what each refusal means for the token in use', () => {
    const e = (s: number, m = `${s}`) => new ApiError('gitlab', s, m);
    expect(explainCreateError(e(410), 'registration')).toMatch(/registration tokens are disabled/);
    expect(explainCreateError(e(401), 'access')).toMatch(/was not accepted/);
    expect(explainCreateError(e(403, '403 insufficient_scope'), 'access')).toMatch(/create_runner scope/);
    expect(explainCreateError(e(403), 'access')).toMatch(/administrator's token/);
    expect(explainCreateError(e(403), 'registration')).toBe('gitlab.registrationToken was rejected (403)');
  });
});

describe('createRunner', () => {
  it('access: one marked create, the record saved with a new system id, then the change', async () => {
    const { run, api, store } = fakeRun();
    await createRunner(run, 'access', want(), 'new node');
    expect(api.methods()).toEqual(['listAllRunners', 'createUserRunner']);
    const [, params] = api.calls[1].args as [string, Record<string, unknown>];
    expect(params).toMatchObject({ runner_type: 'instance_type', tag_list: ['arm64', 'pi-1'] });
    expect(params.maintenance_note).toMatch(
      new RegExp(
        `^Managed by runner-fleet for node pi-1; .* \\[runner-fleet fleet=${FLEET} node=pi-1 attempt=[0-9a-f]{8}\\]$`,
      ),
    );
    const [rec] = store.current;
    expect(rec).toMatchObject({
      node: 'pi-1',
      mode: 'access',
      id: api.runners[0].id,
      systemId: 'r_unit00000001',
    });
    expect(run.report.changes).toEqual([
      {
        node: 'pi-1',
        step: 'create runner',
        detail: `pi-1: created runner #${rec.id} (new node; tags arm64, pi-1)`,
      },
    ]);
  });

  it('a replacement keeps the system id and retires the old record only after the new one is saved', async () => {
    const api = new FakeGitlab();
    const old = recordOf(api, 'pi-1');
    const { run, store } = fakeRun({ api, records: [old], mode: 'registration', secret: 'GR1348941unit' });
    await createRunner(run, 'registration', want({ systemId: old.systemId, replaces: old }), 'tags +x');
    expect(api.methods()).toEqual(['registerRunner', 'deleteRunnerByToken']);
    expect(store.current.map((r) => [r.systemId, r.id])).toEqual([[old.systemId, api.runners[0].id]]);
    expect(run.report.changes.map((c) => c.detail)).toEqual([
      `pi-1: created runner #${api.runners[0].id} to replace #${old.id} (tags +x); tags arm64, pi-1`,
      `pi-1: deleted runner #${old.id} (replaced by #${api.runners[0].id})`,
    ]);
  });

  it('adopts a runner an earlier lost create made instead of making another', async () => {
    const api = new FakeGitlab();
    api.addRunner({
      tagList: ['arm64', 'pi-1'],
      description: 'fleet pi-1',
      maintenanceNote: creationMarker(FLEET, 'pi-1', 'abcd1234'),
    });
    const { run } = fakeRun({ api });
    await createRunner(run, 'access', want(), 'new node');
    expect(api.methods()).not.toContain('createUserRunner');
    expect(run.report.changes.map((c) => c.step)).toEqual(['adopt runner']);
  });

  it('a refused create condemns the token for every node: the next create fails without asking', async () => {
    const api = new FakeGitlab().fail('createUserRunner', 403, { message: '403 insufficient_scope' });
    const { run } = fakeRun({ api });
    await expect(createRunner(run, 'access', want(), 'new node')).rejects.toThrow(/create_runner scope/);
    await expect(createRunner(run, 'access', want({ node: 'pi-2' }), 'new node')).rejects.toThrow(
      /create_runner scope/,
    );
    expect(api.methods()).toEqual(['listAllRunners', 'createUserRunner']);
  });

  it('no clear answer: looks once and adopts what GitLab made anyway', async () => {
    const api = new FakeGitlab().fail('createUserRunner', 504, { afterEffect: true });
    const { run, store } = fakeRun({ api });
    await createRunner(run, 'access', want(), 'new node');
    expect(api.methods()).toEqual([
      'listAllRunners',
      'createUserRunner',
      'listAllRunners',
      'getRunner',
      'resetRunnerTokenById',
    ]);
    expect(store.current.map((r) => r.id)).toEqual([api.runners[0].id]);
    expect(run.report.changes.map((c) => c.step)).toEqual(['adopt runner']);
  });

  it('no clear answer and nothing found: not retried, the mark named, and what the next run does', async () => {
    const access = fakeRun({
      api: new FakeGitlab().fail('createUserRunner', 0, { message: 'no answer within 1s' }),
    });
    await expect(createRunner(access.run, 'access', want(), 'new node')).rejects.toThrow(
      /creating its runner got no clear answer \(no answer within 1s\); GitLab may have made it, marked \[runner-fleet fleet=f00d00000001 node=pi-1 attempt=[0-9a-f]{8}\] in its maintenance note\. Not retried: the next run looks for it/,
    );
    const denied = fakeRun({ api: new FakeGitlab().fail('createUserRunner', 502) });
    denied.run.verdicts.strayLookupDenied = 'this token cannot list runners';
    await expect(createRunner(denied.run, 'access', want(), 'x')).rejects.toThrow(
      /Not retried, and this token cannot list runners: delete that runner in GitLab if it appears/,
    );
    const reg = fakeRun({ api: new FakeGitlab().fail('registerRunner', 502), mode: 'registration' });
    await expect(createRunner(reg.run, 'registration', want(), 'x')).rejects.toThrow(
      /Not retried; with gitlab.registrationToken runners cannot be listed/,
    );
    expect(reg.api.methods()).toEqual(['registerRunner']);
  });

  it('a record that cannot be saved: the runner is deleted again, and the replaced record stays live', async () => {
    const api = new FakeGitlab();
    const old = recordOf(api, 'pi-1');
    const { run, store } = fakeRun({ api, records: [old] });
    store.save = () => Promise.reject(new Error('disk full'));
    await expect(createRunner(run, 'access', want({ replaces: old }), 'x')).rejects.toThrow(
      /^created runner #\d+ but could not save its record \(disk full\); deleted it again$/,
    );
    expect(api.runners.map((r) => r.id)).toEqual([old.id]);
    expect(old.retiredAt).toBeUndefined();
  });

  it('no token: nothing is asked', async () => {
    const { run, api } = fakeRun({ secret: undefined });
    await expect(createRunner(run, 'access', want(), 'x')).rejects.toThrow(
      'no token to create a runner with',
    );
    expect(api.calls).toEqual([]);
  });
});

describe('joinSharedRunner', () => {
  const join = (over = {}) => ({ kind: 'join' as const, node: 'pi-1', reason: 'new node', ...over });

  it("verifies the shared token under the node's system id and records it as a manager", async () => {
    const api = new FakeGitlab();
    const shared = api.addRunner({ tagList: [], token: SHARED });
    const { run, store } = fakeRun({ api, mode: 'shared', secret: SHARED });
    await joinSharedRunner(run, join());
    expect(shared.managers).toEqual(['r_unit00000001']);
    expect(store.current).toMatchObject([{ node: 'pi-1', mode: 'shared', id: shared.id, settings: null }]);
    expect(run.report.changes[0].detail).toBe(
      `pi-1: registered as manager r_unit00000001 of runner #${shared.id} (new node)`,
    );
  });

  it('a rejected shared token fails this node and every later join without asking', async () => {
    const { run, api } = fakeRun({ mode: 'shared', secret: SHARED });
    await expect(joinSharedRunner(run, join())).rejects.toThrow(/gitlab.runnerToken was rejected by GitLab/);
    await expect(joinSharedRunner(run, join({ node: 'pi-2' }))).rejects.toThrow(
      /gitlab.runnerToken was rejected/,
    );
    expect(api.methods()).toEqual(['verifyRunner']);
  });

  it('replacing a record of another mode retires it after the join is saved', async () => {
    const api = new FakeGitlab();
    api.addRunner({ tagList: [], token: SHARED });
    const old = recordOf(api, 'pi-1');
    const { run } = fakeRun({ api, mode: 'shared', secret: SHARED, records: [old] });
    await joinSharedRunner(run, join({ systemId: old.systemId, replaces: old }));
    expect(run.report.changes.map((c) => c.detail)).toEqual([
      expect.stringContaining('registered as manager r_aaaaaaaaaaaa'),
      `pi-1: deleted runner #${old.id} (node now uses gitlab.runnerToken)`,
    ]);
  });

  it('a join that cannot be saved leaves the shared runner again', async () => {
    const api = new FakeGitlab();
    const shared = api.addRunner({ tagList: [], token: SHARED });
    const { run, store } = fakeRun({ api, mode: 'shared', secret: SHARED });
    store.save = () => Promise.reject(new Error('disk full'));
    await expect(joinSharedRunner(run, join())).rejects.toThrow(
      `joined runner #${shared.id} but could not save the record (disk full); left it again`,
    );
    expect(shared.managers).toEqual([]);
  });
});
