// Registration reconcile against the GitLab stand-in over HTTP: the issue's acceptance cases, rerun after rerun.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { GitlabApi } from '../../src/gitlab/api.js';
import { parseInventory } from '../../src/inventory/schema.js';
import type { Inventory } from '../../src/inventory/types.js';
import type { RunnerRecord } from '../../src/runners/records.js';
import { MemoryRecordStore } from '../support/memoryRecordStore.js';
import { withSecrets } from '../support/secrets.js';
import { reconcileRunners, type ReconcileResult } from '../../src/runners/reconcile.js';
import { startGitlabStandin, type GitlabStandin, type StandinTokens } from './standin.js';

let gl: GitlabStandin;
let api: GitlabApi;
/** every token seen in this file, to prove none leaks into messages */
const seenTokens = new Set<string>();

beforeAll(async () => {
  gl = await startGitlabStandin({ tokensDir: join(mkdtempSync(join(tmpdir(), 'rf-reconcile-')), 'tokens') });
  api = new GitlabApi({ url: gl.url, timeoutSeconds: 10, retryDelayMs: 10 });
  Object.values(gl.tokens).forEach((t) => seenTokens.add(t));
});
afterAll(() => gl.close());
beforeEach(() => gl.reset());

const TOKEN_KEY = {
  accessToken: 'accessToken',
  accessTokenCreateOnly: 'accessToken',
  registrationToken: 'registrationToken',
  runnerToken: 'runnerToken',
} as const;

function inventory(token: keyof typeof TOKEN_KEY, nodes: string[], runners = ''): Inventory {
  return withSecrets(
    parseInventory(
      `gitlab:
  url: ${gl.url}
  registry: 127.0.0.1:5000
  ${TOKEN_KEY[token]}: file:${gl.tokenFiles![token as keyof StandinTokens]}
  timeout: 10
nodes:
${nodes.map((n, i) => `  - { name: ${n}, host: 10.1.0.${i + 1} }`).join('\n')}
runners:
  tags: [arm64, pi]
  description: "fleet {node}"
${runners}`,
      '/tmp/reconcile-inventory.yaml',
    ),
  );
}

async function run(
  inv: Inventory,
  store: MemoryRecordStore,
  opts: { dryRun?: boolean; only?: string[] } = {},
): Promise<ReconcileResult> {
  const result = await reconcileRunners(inv, store, api, {
    dryRun: opts.dryRun ?? false,
    only: opts.only,
    makeSystemId: undefined,
  });
  for (const r of gl.state.runners) if (r.token) seenTokens.add(r.token);
  for (const r of store.current) seenTokens.add(r.token);
  const text = JSON.stringify({ changes: result.changes, errors: result.errors, warnings: result.warnings });
  for (const t of seenTokens) expect(text).not.toContain(t);
  return result;
}

/** runners other than the preset shared one (#1) */
const fleetRunners = () =>
  gl.state.runners
    .filter((r) => r.createdVia !== 'preset')
    .sort((a, b) => a.description.localeCompare(b.description));
const mutations = () =>
  gl
    .calls()
    .filter((c) => !(c.method === 'POST' && c.path === '/api/v4/runners/verify') && c.method !== 'GET');

describe('access token mode', () => {
  it('creates exactly one runner per node with tags + node name; a second run makes no create/update/delete call', async () => {
    const inv = inventory(
      'accessToken',
      ['pi-1', 'pi-2', 'pi-3'],
      '  runUntagged: true\n  maximumTimeout: 3600\n',
    );
    const store = new MemoryRecordStore();
    const first = await run(inv, store);
    expect(first.errors).toEqual([]);
    expect(first.changes.map((c) => c.step)).toEqual(['create runner', 'create runner', 'create runner']);
    expect(gl.calls({ method: 'POST', path: '/api/v4/user/runners' })).toHaveLength(3);
    expect(
      fleetRunners()
        .map((r) => [r.description, r.tagList, r.runUntagged, r.maximumTimeout, r.runnerType])
        .sort(),
    ).toEqual([
      ['fleet pi-1', ['arm64', 'pi', 'pi-1'], true, 3600, 'instance_type'],
      ['fleet pi-2', ['arm64', 'pi', 'pi-2'], true, 3600, 'instance_type'],
      ['fleet pi-3', ['arm64', 'pi', 'pi-3'], true, 3600, 'instance_type'],
    ]);
    const records = store.current;
    expect(records.map((r) => r.node).sort()).toEqual(['pi-1', 'pi-2', 'pi-3']);
    for (const r of records) {
      expect(r.mode).toBe('access');
      expect(r.systemId).toMatch(/^r_[0-9a-zA-Z]{12}$/);
      expect(gl.state.runners.find((x) => x.id === r.id)?.token).toBe(r.token);
    }

    gl.state.calls.length = 0;
    const second = await run(inv, store);
    expect(second.errors).toEqual([]);
    expect(second.changes).toEqual([]);
    expect(mutations()).toEqual([]);
    expect(gl.calls({ path: '/api/v4/runners/verify' })).toHaveLength(3);
    expect(store.current).toEqual(records);
    // verify registered each node's system_id as its runner's manager, without counting as its contact
    for (const r of records) {
      const ms = gl.state.managers.filter((m) => m.runnerId === r.id);
      expect(ms.map((m) => [m.systemId, m.contactedAt])).toEqual([[r.systemId, null]]);
    }
  });

  it('changed tags update the runners in place (same ids) and the records', async () => {
    const store = new MemoryRecordStore();
    await run(inventory('accessToken', ['pi-1', 'pi-2']), store);
    const before = store.current;
    gl.state.calls.length = 0;

    const inv = inventory('accessToken', ['pi-1', 'pi-2'], '  paused: true\n');
    inv.runners.tags = ['arm64', 'gpu'];
    const result = await run(inv, store);
    expect(result.errors).toEqual([]);
    expect(result.changes.map((c) => c.detail).sort()).toEqual([
      `pi-1: updated runner #${before[0].id}: tags +gpu -pi, paused: false → true`,
      `pi-2: updated runner #${before[1].id}: tags +gpu -pi, paused: false → true`,
    ]);
    expect(mutations().map((c) => c.method)).toEqual(['PUT', 'PUT']);
    expect(fleetRunners().map((r) => [r.id, r.tagList, r.paused])).toEqual([
      [before[0].id, ['arm64', 'gpu', 'pi-1'], true],
      [before[1].id, ['arm64', 'gpu', 'pi-2'], true],
    ]);
    expect(store.current.map((r) => [r.id, r.token, r.settings?.tagList])).toEqual([
      [before[0].id, before[0].token, ['arm64', 'gpu', 'pi-1']],
      [before[1].id, before[1].token, ['arm64', 'gpu', 'pi-2']],
    ]);
    gl.state.calls.length = 0;
    expect((await run(inv, store)).changes).toEqual([]);
    expect(mutations()).toEqual([]);
  });

  it('a token that cannot update (create_runner only) re-creates instead, deleting the old runner', async () => {
    const store = new MemoryRecordStore();
    await run(inventory('accessTokenCreateOnly', ['pi-1', 'pi-2']), store);
    const inv = inventory('accessTokenCreateOnly', ['pi-1', 'pi-2']);
    inv.runners.tags = ['gpu'];
    const result = await run(inv, store);
    expect(result.errors).toEqual([]);
    expect(result.warnings).toHaveLength(1);
    expect(result.warnings[0].message).toContain('manage_runner');
    // nodes run side by side: each may have tried once before the first 403 came back
    expect(gl.calls({ method: 'PUT' }).length).toBeLessThanOrEqual(2);
    expect(fleetRunners().map((r) => r.tagList)).toEqual([
      ['gpu', 'pi-1'],
      ['gpu', 'pi-2'],
    ]);
    expect(store.current.map((r) => r.id)).toEqual(fleetRunners().map((r) => r.id));
  });

  it('a removed node has its runner deleted; the others stay', async () => {
    const store = new MemoryRecordStore();
    await run(inventory('accessToken', ['pi-1', 'pi-2', 'pi-3']), store);
    const pi2 = store.current.find((r) => r.node === 'pi-2')!;
    gl.state.calls.length = 0;
    const result = await run(inventory('accessToken', ['pi-1', 'pi-3']), store);
    expect(result.changes).toEqual([
      {
        node: 'pi-2',
        step: 'delete runner',
        detail: `pi-2: deleted runner #${pi2.id} (node left the inventory)`,
      },
    ]);
    expect(mutations()).toEqual([
      { method: 'DELETE', path: '/api/v4/runners', status: 204, at: expect.any(String) },
    ]);
    expect(fleetRunners().map((r) => r.description)).toEqual(['fleet pi-1', 'fleet pi-3']);
    expect(store.current.map((r) => r.node)).toEqual(['pi-1', 'pi-3']);
  });

  it('retireLater: replaced and removed runners stay in GitLab, recorded as retired, until retire()', async () => {
    const store = new MemoryRecordStore();
    await run(inventory('accessTokenCreateOnly', ['pi-1', 'pi-2']), store);
    const before = store.current;
    const inv = inventory('accessTokenCreateOnly', ['pi-1']);
    inv.runners.tags = ['gpu'];
    const result = await reconcileRunners(inv, store, api, { dryRun: false, retireLater: true });
    expect(result.errors).toEqual([]);
    // pi-1's new runner exists beside its old one; pi-2's runner is still there too: old pods keep their tokens.
    expect(fleetRunners().map((r) => r.description)).toEqual(['fleet pi-1', 'fleet pi-1', 'fleet pi-2']);
    const retired = store.current.filter((r) => r.retiredAt).map((r) => r.id);
    expect(retired.sort()).toEqual(before.map((r) => r.id).sort());
    expect(result.changes.map((c) => c.step)).toEqual(['replace runner']);
    const after = await result.retire();
    expect(after.map((r) => r.node)).toEqual(['pi-1']);
    expect(store.current.map((r) => r.id)).toEqual(fleetRunners().map((r) => r.id));
    expect(result.changes.map((c) => c.step).sort()).toEqual([
      'delete runner',
      'delete runner',
      'replace runner',
    ]);
  });

  it('an expiring token is rotated from half its lifetime on: same runner, new token saved, the old one dead', async () => {
    gl.setRunnerTokenExpiration(3600);
    try {
      const store = new MemoryRecordStore();
      await run(inventory('accessToken', ['pi-1']), store);
      const [first] = store.current;
      expect(first.tokenExpiresAt).toBeTruthy();
      const early = await reconcileRunners(inventory('accessToken', ['pi-1']), store, api, {
        dryRun: false,
        now: () => new Date(Date.now() + 1000 * 1000),
      });
      expect(early.changes).toEqual([]);
      const later = () => new Date(Date.now() + 1900 * 1000);
      const planned = await reconcileRunners(inventory('accessToken', ['pi-1']), store, api, {
        dryRun: true,
        now: later,
      });
      expect(planned.changes.map((c) => c.step)).toEqual(['rotate token']);
      const rotated = await reconcileRunners(inventory('accessToken', ['pi-1']), store, api, {
        dryRun: false,
        now: later,
      });
      expect(rotated.errors).toEqual([]);
      expect(rotated.changes.map((c) => c.step)).toEqual(['rotate token']);
      const [second] = store.current;
      seenTokens.add(second.token);
      expect(second.id).toBe(first.id);
      expect(second.token).not.toBe(first.token);
      expect(second.tokenObtainedAt).toBeTruthy();
      await expect(api.verifyRunner(first.token)).rejects.toMatchObject({ status: 403 });
      await expect(api.verifyRunner(second.token)).resolves.toMatchObject({ id: first.id });
      expect(JSON.stringify(rotated.changes)).not.toContain(second.token);
    } finally {
      gl.setRunnerTokenExpiration(null);
    }
  });

  it('a token deleted in GitLab is replaced, the record updated, and the stale runner removed', async () => {
    const inv = inventory('accessToken', ['pi-1', 'pi-2']);
    const store = new MemoryRecordStore();
    await run(inv, store);
    const [pi1, pi2] = store.current;
    gl.deleteRunnerToken(pi1.id!); // runner still exists, its token does not work
    gl.deleteRunner(pi2.id!); // runner deleted in the UI

    const result = await run(inv, store);
    expect(result.errors).toEqual([]);
    const after = store.current;
    expect(after.map((r) => r.node)).toEqual(['pi-1', 'pi-2']);
    for (const [old, now] of [
      [pi1, after[0]],
      [pi2, after[1]],
    ] as [RunnerRecord, RunnerRecord][]) {
      expect(now.id).not.toBe(old.id);
      expect(now.token).not.toBe(old.token);
      expect(now.systemId).toBe(old.systemId);
    }
    expect(result.changes.map((c) => c.step).sort()).toEqual([
      'delete runner',
      'forget runner',
      'replace runner',
      'replace runner',
    ]);
    // no orphan: GitLab holds exactly the recorded runners
    expect(fleetRunners().map((r) => r.id)).toEqual(after.map((r) => r.id));
    expect(gl.calls({ method: 'DELETE', path: `/api/v4/runners/${pi1.id}` })).toHaveLength(1);
  });

  it("one node's failure does not stop the others, and the next run finishes it", async () => {
    const inv = inventory('accessToken', ['pi-1', 'pi-2', 'pi-3']);
    const store = new MemoryRecordStore();
    gl.failNext({ method: 'POST', path: '/api/v4/user/runners', status: 500, descriptionIncludes: 'pi-2' });
    const first = await run(inv, store);
    expect(first.errors).toEqual([
      { node: 'pi-2', message: 'GitLab POST /user/runners: 500 injected by the stand-in' },
    ]);
    expect(store.current.map((r) => r.node).sort()).toEqual(['pi-1', 'pi-3']);
    const second = await run(inv, store);
    expect(second.errors).toEqual([]);
    expect(second.changes.map((c) => c.detail)).toEqual([
      expect.stringMatching(/^pi-2: created runner #\d+/),
    ]);
    expect(fleetRunners()).toHaveLength(3);
  });

  it('a record that cannot be saved takes its new runner back: no orphan', async () => {
    const inv = inventory('accessToken', ['pi-1']);
    const store = new MemoryRecordStore();
    store.save = async () => {
      throw new Error('secret store is read-only');
    };
    const result = await run(inv, store);
    expect(result.errors).toHaveLength(1);
    expect(result.errors[0].message).toMatch(
      /created runner #\d+ but could not save its record \(secret store is read-only\); deleted it again/,
    );
    expect(fleetRunners()).toEqual([]);
  });

  it('dry run only reads (whether lost creates could be found) and describes what would change', async () => {
    const inv = inventory('accessToken', ['pi-1', 'pi-2']);
    const store = new MemoryRecordStore();
    const result = await run(inv, store, { dryRun: true });
    expect(gl.calls().map((c) => `${c.method} ${c.path}`)).toEqual(['GET /api/v4/runners/all']);
    expect(result.warnings).toEqual([]);
    expect(result.changes.map((c) => c.step)).toEqual(['create runner', 'create runner']);
    expect(store.saves).toBe(0);
  });

  it('an access token without create_runner fails every node with one clear message and one call', async () => {
    const inv = withSecrets(
      parseInventory(
        `gitlab: { url: "${gl.url}", registry: 127.0.0.1:5000, accessToken: "file:${gl.tokenFiles!.accessTokenNoScope}" }\nnodes: [{name: a, host: h1}, {name: b, host: h2}]\n`,
        '/tmp/x.yaml',
      ),
    );
    const result = await reconcileRunners(inv, new MemoryRecordStore(), api, {
      dryRun: false,
      concurrency: 1,
    });
    expect(result.errors.map((e) => e.node)).toEqual(['a', 'b']);
    expect(result.errors[0].message).toContain('may not create runners');
    expect(result.errors[0].message).toContain('create_runner');
    expect(gl.calls({ path: '/api/v4/user/runners' })).toHaveLength(1);
  });

  it('never reads a token reference itself: one not read up front is a bug, and nothing is asked', async () => {
    const inv = { ...inventory('accessToken', ['pi-1']), secrets: undefined };
    await expect(reconcileRunners(inv, new MemoryRecordStore(), api, { dryRun: false })).rejects.toThrow(
      'gitlab.accessToken was not read before the run',
    );
    expect(gl.calls()).toEqual([]);
  });
});

describe('registration token mode', () => {
  it('creates one runner per node with POST /runners; a rerun creates nothing', async () => {
    const inv = inventory('registrationToken', ['pi-1', 'pi-2']);
    const store = new MemoryRecordStore();
    const first = await run(inv, store);
    expect(first.errors).toEqual([]);
    expect(gl.calls({ method: 'POST', path: '/api/v4/runners' })).toHaveLength(2);
    expect(fleetRunners().map((r) => [r.createdVia, r.tagList])).toEqual([
      ['registration', ['arm64', 'pi', 'pi-1']],
      ['registration', ['arm64', 'pi', 'pi-2']],
    ]);
    expect(store.current.every((r) => r.mode === 'registration' && !r.token.startsWith('glrt-'))).toBe(true);
    gl.state.calls.length = 0;
    expect((await run(inv, store)).changes).toEqual([]);
    expect(mutations()).toEqual([]);
  });

  it('changed settings: a new runner, then the old one deleted (no access token to PUT with)', async () => {
    const store = new MemoryRecordStore();
    await run(inventory('registrationToken', ['pi-1']), store);
    const old = store.current[0];
    const result = await run(inventory('registrationToken', ['pi-1'], '  locked: true\n'), store);
    expect(result.errors).toEqual([]);
    expect(result.changes.map((c) => c.step)).toEqual(['replace runner', 'delete runner']);
    expect(fleetRunners().map((r) => [r.locked, r.id === old.id])).toEqual([[true, false]]);
    expect(store.current.map((r) => r.id)).toEqual(fleetRunners().map((r) => r.id));
  });

  it('410 Gone: explains that registration tokens are disabled and how to use accessToken or runnerToken', async () => {
    gl.setRegistrationTokens(false);
    const result = await run(inventory('registrationToken', ['pi-1', 'pi-2']), new MemoryRecordStore());
    expect(result.errors.map((e) => e.node).sort()).toEqual(['pi-1', 'pi-2']);
    const message = result.errors[0].message;
    expect(message).toContain('registration tokens are disabled on this GitLab');
    expect(message).toContain('410 Gone');
    expect(message).toContain('17.0');
    expect(message).toContain('gitlab.accessToken');
    expect(message).toContain('create_runner');
    expect(message).toContain('gitlab.runnerToken');
    expect(gl.calls({ method: 'POST', path: '/api/v4/runners' }).length).toBeLessThanOrEqual(2);
    expect(fleetRunners()).toEqual([]);
  });

  it('switching to an access token replaces every legacy runner', async () => {
    const store = new MemoryRecordStore();
    await run(inventory('registrationToken', ['pi-1', 'pi-2']), store);
    const legacy = store.current;
    const result = await run(inventory('accessToken', ['pi-1', 'pi-2']), store);
    expect(result.errors).toEqual([]);
    expect(fleetRunners().map((r) => r.createdVia)).toEqual(['user', 'user']);
    expect(store.current.map((r) => [r.mode, r.systemId])).toEqual(legacy.map((r) => ['access', r.systemId]));
  });
});

describe('runner token (shared) mode', () => {
  it('verifies each node under its own stable system_id and creates no runner', async () => {
    const inv = inventory('runnerToken', ['pi-1', 'pi-2', 'pi-3']);
    const store = new MemoryRecordStore();
    const first = await run(inv, store);
    expect(first.errors).toEqual([]);
    expect(first.changes.map((c) => c.step)).toEqual([
      'join shared runner',
      'join shared runner',
      'join shared runner',
    ]);
    expect(gl.calls({ method: 'POST', path: '/api/v4/user/runners' })).toEqual([]);
    expect(gl.calls({ method: 'POST', path: '/api/v4/runners' })).toEqual([]);
    expect(gl.state.runners.map((r) => r.id)).toEqual([1]);
    const records = store.current;
    expect(
      records.every(
        (r) => r.mode === 'shared' && r.id === 1 && r.token === gl.tokens.runnerToken && r.settings === null,
      ),
    ).toBe(true);
    expect(new Set(records.map((r) => r.systemId)).size).toBe(3);
    expect(gl.state.managers.map((m) => m.systemId).sort()).toEqual(records.map((r) => r.systemId).sort());

    gl.state.calls.length = 0;
    expect((await run(inv, store)).changes).toEqual([]);
    expect(mutations()).toEqual([]);
    expect(store.current).toEqual(records);
    expect(gl.state.managers).toHaveLength(3);
  });

  it('a removed node deletes only its manager; the shared runner stays', async () => {
    const store = new MemoryRecordStore();
    await run(inventory('runnerToken', ['pi-1', 'pi-2']), store);
    const pi2 = store.current.find((r) => r.node === 'pi-2')!;
    gl.state.calls.length = 0;
    const result = await run(inventory('runnerToken', ['pi-1']), store);
    expect(result.changes).toEqual([
      {
        node: 'pi-2',
        step: 'delete manager',
        detail: `pi-2: deleted manager ${pi2.systemId} of runner #1 (node left the inventory)`,
      },
    ]);
    expect(mutations().map((c) => `${c.method} ${c.path}`)).toEqual(['DELETE /api/v4/runners/managers']);
    expect(gl.state.runners.map((r) => r.id)).toEqual([1]);
    expect(gl.state.managers.map((m) => m.systemId)).toEqual([store.current[0].systemId]);
  });

  it('a rejected shared token is an error per node, never a create', async () => {
    const store = new MemoryRecordStore();
    await run(inventory('runnerToken', ['pi-1', 'pi-2']), store);
    gl.deleteRunnerToken(1);
    const result = await run(inventory('runnerToken', ['pi-1', 'pi-2']), store);
    expect(result.errors.map((e) => e.node)).toEqual(['pi-1', 'pi-2']);
    expect(result.errors[0].message).toContain('gitlab.runnerToken was rejected');
    expect(gl.calls({ method: 'POST', path: '/api/v4/user/runners' })).toEqual([]);
    expect(store.current).toHaveLength(2);
  });

  it('moving from per-node runners to the shared token deletes the old runners, keeping system_ids', async () => {
    const store = new MemoryRecordStore();
    await run(inventory('accessToken', ['pi-1', 'pi-2']), store);
    const before = store.current;
    const result = await run(inventory('runnerToken', ['pi-1', 'pi-2']), store);
    expect(result.errors).toEqual([]);
    expect(fleetRunners()).toEqual([]);
    expect(store.current.map((r) => [r.mode, r.systemId])).toEqual(before.map((r) => ['shared', r.systemId]));
  });
});
