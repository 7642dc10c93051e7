import { describe, expect, it } from 'vitest';
import type { PodView } from '../kube/rollout.js';
import { contactPollMs, runnerContainerStarts } from './contact.js';

describe('contactPollMs: how often the contact wait asks GitLab about each node', () => {
  it('a few nodes: often, so a runner poll is seen soon after it happens (never more than 4 times a second)', () => {
    expect(contactPollMs(1)).toBe(250);
    expect(contactPollMs(3)).toBe(400);
    expect(contactPollMs(10)).toBe(1334);
  });
  it('at most 15 GitLab requests a second for the whole fleet (two per node and poll) while under 15 nodes', () => {
    for (const n of [1, 3, 7, 14]) expect((n * 2 * 1000) / contactPollMs(n)).toBeLessThanOrEqual(15);
  });
  it('from 15 nodes on, every 2 s, as before', () => {
    expect(contactPollMs(15)).toBe(2000);
    expect(contactPollMs(200)).toBe(2000);
  });
});

describe('runnerContainerStarts', () => {
  const pod = (name: string, containers: NonNullable<PodView['status']>['containerStatuses']): PodView => ({
    metadata: { name },
    status: { phase: 'Running', containerStatuses: containers },
  });
  it("the gitlab-runner container's current run, by node; a container not running (waiting, restarting) has none", () => {
    const starts = runnerContainerStarts(
      new Map([
        [
          'pi1',
          pod('a', [
            { name: 'dind', state: { running: { startedAt: '2026-12-07T10:00:00Z' } } },
            { name: 'gitlab-runner', state: { running: { startedAt: '2026-12-07T10:00:05Z' } } },
          ]),
        ],
        ['pi2', pod('b', [{ name: 'gitlab-runner', state: {} }])],
      ]),
    );
    expect([...starts]).toEqual([['pi1', Date.parse('2026-12-07T10:00:05Z')]]);
  });
});
