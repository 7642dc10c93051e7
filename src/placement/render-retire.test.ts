// When render may delete a held runner: a removed node's once its pod is gone, a replaced one once the Secret moved on.
import { describe, expect, it } from 'vitest';
import type { RunnerRecord } from '../runners/records.js';
import type { HeldDelete } from '../runners/reconcile.js';
import { retireVerdict, type RetireScene } from './render-retire.js';

const rec = (node: string, over: Partial<RunnerRecord> = {}): RunnerRecord => ({
  node,
  mode: 'access',
  id: 7,
  token: 'glrt-old-token-000000000000',
  systemId: 's_aaaaaaaaaaaa',
  settings: null,
  createdAt: '2026-01-01T00:00:00.000Z',
  retiredAt: '2026-06-01T00:00:00.000Z',
  ...over,
});
const held = (node: string, over: Partial<RunnerRecord> = {}): HeldDelete => ({
  node,
  rec: rec(node, over),
  why: 'x',
  tokenDead: false,
});
const scene = (over: Partial<RetireScene> = {}): RetireScene => ({
  inventory: new Set(['pi1']),
  podsLeft: new Set(),
  liveConfig: { 'pi1.config.toml': 'token = "glrt-new-token-000000000000"' },
  ...over,
});

describe('retireVerdict', () => {
  it("a removed node's runner goes once no pod of ours is left there, whatever the Secret still holds", () => {
    const removed = held('pi2');
    const live = { 'pi2.config.toml': `token = "${removed.rec.token}"` };
    expect(retireVerdict(removed, scene({ liveConfig: live }))).toEqual({ now: true });
    expect(retireVerdict(removed, scene({ podsLeft: new Set(['pi2']), liveConfig: live }))).toEqual({
      now: false,
      why: 'the runner pod on pi2 has not gone yet (it finishes its running jobs first)',
    });
  });

  it("a replaced runner waits until the cluster's Secret gives its node the new token", () => {
    const replaced = held('pi1');
    expect(retireVerdict(replaced, scene())).toEqual({ now: true });
    const stale = scene({ liveConfig: { 'pi1.config.toml': `token = "${replaced.rec.token}"` } });
    expect(retireVerdict(replaced, stale)).toMatchObject({ now: false });
    expect(retireVerdict(replaced, scene({ liveConfig: undefined }))).toMatchObject({ now: false });
  });

  it('a replaced manager of a shared runner waits until the Secret names the new system_id', () => {
    const replaced = held('pi1', { mode: 'shared' });
    expect(
      retireVerdict(replaced, scene({ liveConfig: { 'pi1.system_id': 's_aaaaaaaaaaaa' } })),
    ).toMatchObject({
      now: false,
    });
    expect(retireVerdict(replaced, scene({ liveConfig: { 'pi1.system_id': 's_bbbbbbbbbbbb' } }))).toEqual({
      now: true,
    });
  });
});
