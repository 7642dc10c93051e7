// Issue 12 item 4: a create whose answer is lost may still make the runner. It is never retried blindly; the next
// run finds it by runner-fleet's marker, adopts it (token reset with the access token) or deletes it, and says so.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { GitlabApi, type GitlabRunnerApi } from '../../src/gitlab/api.js';
import { parseInventory } from '../../src/inventory/schema.js';
import type { Inventory } from '../../src/inventory/types.js';
import { creationMarker } from '../../src/runners/plan.js';
import { MemoryRecordStore } from '../support/memoryRecordStore.js';
import { withSecrets } from '../support/secrets.js';
import { reconcileRunners } from '../../src/runners/reconcile.js';
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

const inventory = (nodes: string[]): Inventory =>
  withSecrets(
    parseInventory(
      `gitlab:
  url: ${gl.url}
  registry: 127.0.0.1:5000
  accessToken: file:${gl.tokenFiles!.accessToken}
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

const fleet = () => gl.state.runners.filter((r) => r.createdVia !== 'preset');
const creates = () => gl.calls({ method: 'POST', path: '/api/v4/user/runners' });

describe('a create that times out', () => {
  it('is not retried; the next run adopts the runner GitLab made anyway, and a third run changes nothing', async () => {
    const inv = inventory(['pi1']);
    const store = new MemoryRecordStore();
    const first = await reconcileRunners(inv, store, slowCreates(), { dryRun: false });
    expect(first.errors).toHaveLength(1);
    expect(first.errors[0].message).toMatch(
      /creating its runner got no clear answer .*no answer within 1s.*marked \[runner-fleet node=pi1 attempt=[0-9a-f]{8}\].*Not retried: the next run looks for it/,
    );
    expect(store.current).toEqual([]);
    // Exactly one create went out, and GitLab made that runner after we gave up.
    await new Promise((r) => setTimeout(r, 3000));
    expect(creates()).toHaveLength(1);
    expect(fleet()).toHaveLength(1);
    const made = fleet()[0];
    expect(made.maintenanceNote).toContain('[runner-fleet node=pi1 attempt=');

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
        maintenance_note: `Managed by runner-fleet for node ${node}. ${creationMarker(node, attempt)}`,
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
        .filter((x) => x.maintenanceNote?.includes('[runner-fleet node='))
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
