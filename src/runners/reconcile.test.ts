// reconcileRunners on the fake GitLab: the plan run phase by phase, each node in order, nodes apart; the dry run asks nothing.
import { describe, expect, it } from 'vitest';
import { FakeGitlab } from '../../test/support/fakeGitlabApi.js';
import { recordingLogger } from '../../test/support/logger.js';
import { MemoryRecordStore } from '../../test/support/memoryRecordStore.js';
import { recordOf } from '../../test/support/reconcileRun.js';
import { withSecrets } from '../../test/support/secrets.js';
import { parseInventory } from '../inventory/schema.js';
import type { Inventory } from '../inventory/types.js';
import type { RunnerRecord } from './records.js';
import { reconcileRunners } from './reconcile.js';

const TOKEN = 'glpat-orchestration0000000';

function inventory(nodes: string[], auth = 'accessToken: env:RF_UNIT_TOKEN'): Inventory {
  return withSecrets(
    parseInventory(
      `gitlab:
  url: https://gitlab.lan
  registry: gitlab.lan:5050
  ${auth}
nodes:
${nodes.map((n, i) => `  - { name: ${n}, host: 10.0.0.${i + 1} }`).join('\n')}
runners:
  tags: [arm64]
  description: "fleet {node}"
`,
      '/tmp/unit-inventory.yaml',
    ),
    { 'gitlab.accessToken': TOKEN },
  );
}

const NOW = new Date('2026-06-01T00:00:00.000Z');

async function reconcile(
  inv: Inventory,
  api: FakeGitlab,
  records: RunnerRecord[],
  opts: { dryRun?: boolean; retireLater?: boolean } = {},
) {
  const store = new MemoryRecordStore(records);
  const log = recordingLogger();
  const result = await reconcileRunners(inv, store, api, {
    dryRun: opts.dryRun ?? false,
    retireLater: opts.retireLater,
    log,
    now: () => NOW,
    concurrency: 1,
  });
  return { result, store, log };
}

describe('reconcileRunners', () => {
  it('dry run: only the probe is asked; blocked nodes are errors, changes and due rotations are described', async () => {
    const api = new FakeGitlab();
    const gone = recordOf(api, 'pi-9');
    const due = recordOf(api, 'pi-1', { tokenExpiresAt: '2026-07-01T00:00:00.000Z' });
    const { result, store, log } = await reconcile(inventory(['pi-1', 'pi-2']), api, [gone, due], {
      dryRun: true,
    });
    expect(api.methods()).toEqual(['listAllRunners']);
    expect(store.saves).toBe(0);
    expect(result.errors).toEqual([]);
    expect(result.changes.map((c) => [c.step, c.detail])).toEqual([
      [
        'rotate token',
        `pi-1: would rotate the token of runner #${due.id} (expires at 2026-07-01T00:00:00.000Z)`,
      ],
      ['create runner', 'pi-2: create a runner (new node; tags arm64, pi-2)'],
      ['delete runner', `pi-9: delete runner #${gone.id} (node left the inventory)`],
    ]);
    // Changes of a dry run are a plan, not logged as done.
    expect(log.lines.filter((l) => l.kind === 'change')).toEqual([]);
    expect(await result.retire()).toEqual(result.records);

    const none = await reconcile(inventory(['pi-1'], ''), new FakeGitlab(), [], { dryRun: true });
    expect(none.result.errors).toEqual([
      { node: 'pi-1', message: expect.stringMatching(/gitlab has no accessToken/) },
    ]);
  });

  it('a token that may not list runners is said once, before anything is created', async () => {
    const api = new FakeGitlab().fail('listAllRunners', 403, {
      message: '403 insufficient_scope',
      times: 99,
    });
    const { result } = await reconcile(inventory(['pi-1', 'pi-2']), api, []);
    expect(result.warnings).toEqual([
      {
        node: 'pi-1',
        message: expect.stringMatching(/^adoption of lost creates is off: this token cannot list runners/),
      },
    ]);
    // No more lists: the verdict holds for the run.
    expect(api.methods()).toEqual(['listAllRunners', 'createUserRunner', 'createUserRunner']);
    expect(result.records.map((r) => r.node)).toEqual(['pi-1', 'pi-2']);
  });

  it("one node's failure is its own; the others go on, and its next action still runs", async () => {
    const api = new FakeGitlab().fail('deleteRunnerByToken', 500);
    const current = recordOf(api, 'pi-1');
    const extra = recordOf(api, 'pi-1', { createdAt: '2025-12-01T00:00:00.000Z' });
    const other = recordOf(api, 'pi-2');
    const { result, store } = await reconcile(inventory(['pi-1', 'pi-2']), api, [current, extra, other]);
    // The plan deletes a node's extra record first, then verifies its current one.
    expect(api.methods()).toEqual(['deleteRunnerByToken', 'verifyRunner', 'verifyRunner']);
    expect(result.errors).toEqual([{ node: 'pi-1', message: '500 fake' }]);
    expect(store.current).toHaveLength(3);
  });

  it('retireLater: the new runner is made and saved now, the replaced one deleted only by retire()', async () => {
    const api = new FakeGitlab();
    const gone = recordOf(api, 'pi-9');
    const { result, store } = await reconcile(inventory(['pi-1']), api, [gone], { retireLater: true });
    expect(api.methods()).toEqual(['listAllRunners', 'listAllRunners', 'createUserRunner']);
    expect(store.current.find((r) => r.node === 'pi-9')?.retiredAt).toBe(NOW.toISOString());
    const after = await result.retire();
    expect(api.methods().at(-1)).toBe('deleteRunnerByToken');
    expect(after.map((r) => r.node)).toEqual(['pi-1']);
    expect(result.changes.map((c) => c.step)).toEqual(['create runner', 'delete runner']);
  });
});
