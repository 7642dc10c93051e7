// A create whose answer is lost may still make the runner. It is never retried blindly; the next
// run finds it by runner-fleet's marker, adopts it (token reset with the access token) or deletes it, and says so.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { GitlabApi, type GitlabRunnerApi } from '../../src/gitlab/api.js';
import { parseInventory } from '../../src/inventory/schema.js';
import type { Inventory } from '../../src/inventory/types.js';
import { creationMarker } from '../../src/runners/registration-plan.js';
import { MemoryRecordStore } from '../support/memoryRecordStore.js';
import { withSecrets } from '../support/secrets.js';
import type { RunnerRecord } from '../../src/runners/records.js';
import { reconcileRunners } from '../../src/runners/reconcile.js';
import { sweepFleetStrays } from '../../src/runners/sweep.js';
import { startGitlabStandin, type GitlabStandin } from './standin.js';

let gl: GitlabStandin;
let api: GitlabApi;
let tokensDir: string;

beforeAll(async () => {
  tokensDir = join(mkdtempSync(join(tmpdir(), 'rf-faults-')), 'tokens');
  gl = await startGitlabStandin({ tokensDir });
  // One second per request: the create below is slowed past it.
  api = new GitlabApi({ url: gl.url, timeoutSeconds: 1, retryDelayMs: 10 });
});
afterAll(() => gl.close());
beforeEach(() => gl.reset());

const inventory = (
  nodes: string[],
  token: 'accessToken' | 'accessTokenNoList' | 'accessTokenAdminMode' = 'accessToken',
): Inventory =>
  withSecrets(
    parseInventory(
      `gitlab:
  url: ${gl.url}
  registry: 127.0.0.1:5000
  accessToken: file:${gl.tokenFiles![token]}
nodes:
${nodes.map((n, i) => `  - { name: ${n}, host: 10.1.0.${i + 1} }`).join('\n')}
runners:
  tags: [arm64]
  description: "fleet {node}"
`,
      '/tmp/faults-inventory.yaml',
    ),
  );

/** The API, with GitLab answering every create too late (the stand-in still makes the runner, after 2.5 s). */
function slowCreates(): GitlabRunnerApi {
  const slow = Object.create(api) as GitlabApi;
  slow.createUserRunner = async (token, params) => {
    gl.setDelay(2500);
    const p = api.createUserRunner(token, params);
    // Only the create is slow: the delay is read when a request arrives.
    setTimeout(() => gl.setDelay(0), 100);
    return p;
  };
  return slow;
}

/** MemoryRecordStore's default fleet id: every store here is one fleet */
const FLEET = new MemoryRecordStore().fleet;
const fleet = () => gl.state.runners.filter((r) => r.createdVia !== 'preset');
const creates = () => gl.calls({ method: 'POST', path: '/api/v4/user/runners' });

describe('a create that times out', () => {
  it('is not retried; the next run adopts the runner GitLab made anyway, and a third run changes nothing', async () => {
    const inv = inventory(['pi1']);
    const store = new MemoryRecordStore();
    const first = await reconcileRunners(inv, store, slowCreates(), { dryRun: false });
    expect(first.errors).toHaveLength(1);
    expect(first.errors[0].message).toMatch(
      /creating its runner got no clear answer .*no answer within 1s.*marked \[runner-fleet fleet=[0-9a-f]+ node=pi1 attempt=[0-9a-f]{8}\].*Not retried: the next run looks for it/,
    );
    expect(store.current).toEqual([]);
    // Exactly one create went out, and GitLab made that runner after we gave up.
    await new Promise((r) => setTimeout(r, 3000));
    expect(creates()).toHaveLength(1);
    expect(fleet()).toHaveLength(1);
    const made = fleet()[0];
    expect(made.maintenanceNote).toContain(`[runner-fleet fleet=${FLEET} node=pi1 attempt=`);

    const second = await reconcileRunners(inv, store, api, { dryRun: false });
    expect(second.errors).toEqual([]);
    expect(second.changes.map((c) => c.step)).toEqual(['adopt runner']);
    expect(second.changes[0].detail).toMatch(
      new RegExp(`pi1: adopted runner #${made.id}, made by an earlier create whose answer was lost`),
    );
    expect(creates()).toHaveLength(1);
    expect(
      gl.calls({ method: 'POST', path: `/api/v4/runners/${made.id}/reset_authentication_token` }),
    ).toHaveLength(1);
    expect(store.current.map((r) => r.id)).toEqual([made.id]);
    // The recorded token is the one GitLab now accepts.
    expect(store.current[0].token).toBe(fleet()[0].token);

    const third = await reconcileRunners(inv, store, api, { dryRun: false });
    expect(third.errors).toEqual([]);
    expect(third.changes).toEqual([]);
    expect(fleet().map((r) => r.id)).toEqual([made.id]);
  });

  it("several strays of one node (killed runs): the newest is adopted, the others deleted; other nodes' runners are untouched", async () => {
    const token = gl.tokens.accessToken;
    const stray = (node: string, attempt: string) =>
      api.createUserRunner(token, {
        runner_type: 'instance_type',
        description: `fleet ${node}`,
        tag_list: ['arm64', node],
        maintenance_note: `Managed by runner-fleet for node ${node}. ${creationMarker(FLEET, node, attempt)}`,
      });
    const a = await stray('pi1', 'aaaa1111');
    const b = await stray('pi1', 'bbbb2222');
    // Someone's own runner with pi1's tag but no marker: not ours, never touched.
    const foreign = await api.createUserRunner(token, {
      runner_type: 'instance_type',
      description: 'by hand',
      tag_list: ['pi1'],
    });
    const store = new MemoryRecordStore();
    const r = await reconcileRunners(inventory(['pi1', 'pi2']), store, api, { dryRun: false });
    expect(r.errors).toEqual([]);
    const steps = r.changes.map((c) => `${c.node} ${c.step}`).sort();
    // The strays were made with GitLab's defaults (run_untagged): the adopted one is put right in the same run.
    expect(steps).toEqual([
      'pi1 adopt runner',
      'pi1 delete runner',
      'pi1 update runner',
      'pi2 create runner',
    ]);
    expect(r.changes.find((c) => c.step === 'delete runner')!.detail).toContain(
      `deleted runner #${a.id}, left in GitLab by an interrupted create (attempt aaaa1111)`,
    );
    const ids = fleet().map((x) => x.id);
    expect(ids).not.toContain(a.id);
    expect(ids).toContain(b.id);
    expect(ids).toContain(foreign.id);
    expect(store.current.find((x) => x.node === 'pi1')!.id).toBe(b.id);
    expect(gl.state.runners.find((x) => x.id === b.id)!.runUntagged).toBe(false);
    expect(
      (await reconcileRunners(inventory(['pi1', 'pi2']), store, api, { dryRun: false })).changes,
    ).toEqual([]);
    // Every runner with runner-fleet's marker is in the records.
    const held = new Set(store.current.map((x) => x.id));
    expect(
      fleet()
        .filter((x) => x.maintenanceNote?.includes('[runner-fleet fleet='))
        .every((x) => held.has(x.id)),
    ).toBe(true);
  });

  it('a create answered 502 by a gateway is not retried either', async () => {
    gl.failNext({ method: 'POST', path: '/api/v4/user/runners', status: 502 });
    const store = new MemoryRecordStore();
    const r = await reconcileRunners(inventory(['pi1']), store, api, { dryRun: false });
    expect(r.errors[0].message).toContain('creating its runner got no clear answer');
    expect(creates()).toHaveLength(1);
  });
});

describe('a create answered 201 with a body cut short', () => {
  it('is no clear answer: the runner is looked for by its mark and adopted in the same run, never made twice', async () => {
    gl.failNext({ method: 'POST', path: '/api/v4/user/runners', status: 201, truncate: true });
    const store = new MemoryRecordStore();
    const r = await reconcileRunners(inventory(['pi1']), store, api, { dryRun: false });
    expect(r.errors).toEqual([]);
    expect(r.changes.map((c) => c.step)).toEqual(['adopt runner']);
    expect(creates()).toHaveLength(1);
    expect(fleet()).toHaveLength(1);
    expect(store.current.map((x) => x.id)).toEqual([fleet()[0].id]);
    expect(store.current[0].token).toBe(fleet()[0].token);
  });
});

describe('a token that may not list runners (create_runner + manage_runner, as the README used to ask)', () => {
  it('plan says adoption is off and why, naming read_api; a lost create says the same', async () => {
    const inv = inventory(['pi1'], 'accessTokenNoList');
    const plan = await reconcileRunners(inv, new MemoryRecordStore(), api, { dryRun: true });
    expect(plan.warnings.map((w) => w.message).join('\n')).toMatch(
      /adoption of lost creates is off: this token cannot list runners \(GET \/runners\/all: .*insufficient_scope.*\): the token lacks the read_api scope/,
    );
    gl.failNext({ method: 'POST', path: '/api/v4/user/runners', status: 502 });
    const r = await reconcileRunners(inv, new MemoryRecordStore(), api, { dryRun: false });
    expect(r.errors[0].message).toMatch(/Not retried, and this token cannot list runners .*read_api/);
  });
});

describe('Admin Mode', () => {
  it('an administrator token without admin_mode: errors name admin_mode, not "must be an administrator"', async () => {
    gl.setAdminMode(true);
    const r = await reconcileRunners(inventory(['pi1']), new MemoryRecordStore(), api, { dryRun: false });
    const said = [...r.warnings, ...r.errors].map((x) => x.message).join('\n');
    expect(said).toMatch(/GET \/runners\/all: 403 Forbidden\).*admin_mode scope/);
    expect(r.errors[0].message).toMatch(/403 Forbidden - Insufficient permissions.*admin_mode scope/);
    expect(fleet()).toHaveLength(0);
  });

  it('the same token with admin_mode creates, lists and adopts as without Admin Mode', async () => {
    gl.setAdminMode(true);
    gl.failNext({ method: 'POST', path: '/api/v4/user/runners', status: 201, truncate: true });
    const store = new MemoryRecordStore();
    const r = await reconcileRunners(inventory(['pi1'], 'accessTokenAdminMode'), store, api, {
      dryRun: false,
    });
    expect(r.errors).toEqual([]);
    expect(r.warnings).toEqual([]);
    expect(r.changes.map((c) => c.step)).toEqual(['adopt runner']);
  });
});

describe('a second fleet on the same GitLab, with a node of the same name', () => {
  it("never adopts, resets or deletes the other fleet's runners, and leaves fleetless old marks alone with a word", async () => {
    const first = new MemoryRecordStore([], 'aaaa00000001');
    const second = new MemoryRecordStore([], 'bbbb00000002');
    // The first fleet: a live runner for pi1, and one whose create answer was lost (a stray of ITS fleet).
    await reconcileRunners(inventory(['pi1']), first, api, { dryRun: false });
    const live = first.current[0] as RunnerRecord;
    const lost = await api.createUserRunner(gl.tokens.accessToken, {
      runner_type: 'instance_type',
      tag_list: ['arm64', 'pi1'],
      maintenance_note: creationMarker('aaaa00000001', 'pi1', 'cccc3333'),
    });
    const old = await api.createUserRunner(gl.tokens.accessToken, {
      runner_type: 'instance_type',
      tag_list: ['arm64', 'pi1'],
      maintenance_note: '[runner-fleet node=pi1 attempt=dddd4444]',
    });
    const before = structuredClone(gl.state.runners);

    // The second fleet's create of pi1 is lost too, so it looks for strays of pi1.
    gl.failNext({ method: 'POST', path: '/api/v4/user/runners', status: 201, truncate: true });
    const r = await reconcileRunners(inventory(['pi1']), second, api, { dryRun: false });
    expect(r.errors).toEqual([]);
    expect(r.changes.map((c) => c.step)).toEqual(['adopt runner']);
    const mine = second.current[0].id!;
    expect([live.id, lost.id, old.id]).not.toContain(mine);
    expect(r.warnings.map((w) => w.message).join('\n')).toContain(
      `runner #${old.id} carries an older runner-fleet mark for pi1`,
    );
    // Nothing of the first fleet changed: same tokens, same settings, nothing deleted or reset.
    for (const b of before) expect(gl.state.runners.find((x) => x.id === b.id)).toEqual(b);
    expect(
      gl.calls({ path: new RegExp(`^/api/v4/runners/(${live.id}|${lost.id}|${old.id})/reset`) }),
    ).toEqual([]);

    // The first fleet still finds and adopts its own stray (node pi1 has a record, so make pi1 need a new runner).
    gl.deleteRunner(live.id!);
    const again = await reconcileRunners(inventory(['pi1']), first, api, { dryRun: false });
    expect(again.errors).toEqual([]);
    expect(again.changes.map((c) => c.step)).toContain('adopt runner');
    expect(first.current.find((x) => !x.retiredAt)!.id).toBe(lost.id);
  });
});

describe("destroy's look for this fleet's runners that no record holds", () => {
  it("deletes this fleet's marked runners only (dry run lists them); a token that cannot list says how to look", async () => {
    const make = (note: string, node = 'pi1') =>
      api.createUserRunner(gl.tokens.accessToken, {
        runner_type: 'instance_type',
        tag_list: [node],
        maintenance_note: note,
      });
    const mine = await make(creationMarker(FLEET, 'pi1', 'aaaa1111'));
    const held = await make(creationMarker(FLEET, 'pi2', 'bbbb2222'), 'pi2');
    const theirs = await make(creationMarker('other0fleet1', 'pi1', 'cccc3333'));
    const byHand = await make('by hand');
    const input = {
      api,
      secret: gl.tokens.accessToken,
      fleet: FLEET,
      nodes: ['pi1', 'pi2'],
      held: new Set([held.id]),
      type: 'instance_type' as const,
    };
    const plan = await sweepFleetStrays({ ...input, dryRun: true });
    expect(plan.changes.map((c) => c.detail)).toEqual([
      `pi1: delete runner #${mine.id}, made by this fleet (attempt aaaa1111) and held by no record`,
    ]);
    expect(fleet()).toHaveLength(4);
    const done = await sweepFleetStrays({ ...input, dryRun: false });
    expect(done.errors).toEqual([]);
    expect(fleet().map((r) => r.id)).toEqual([held.id, theirs.id, byHand.id]);

    const denied = await sweepFleetStrays({ ...input, secret: gl.tokens.accessTokenNoList, dryRun: false });
    expect(denied.warnings[0].message).toMatch(/read_api.*\[runner-fleet fleet=f00d00000001/);
  });
});
