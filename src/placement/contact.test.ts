import { describe, expect, it } from 'vitest';
import type { PodView } from '../kube/rollout.js';
import { recordingLogger } from '../../test/support/logger.js';
import { testContext } from '../../test/support/context.js';
import type { GitlabApi } from '../gitlab/api.js';
import { parseInventory } from '../inventory/schema.js';
import type { RunnerRecord } from '../runners/records.js';
import type { ProbeResult } from '../status/probe.js';
import { contactPollMs, proveContact, runnerContainerStarts } from './contact.js';

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

describe('proveContact: what proves each node, and what fails it', () => {
  const inv = parseInventory(
    `gitlab: {url: http://gitlab.lan, registry: gitlab.lan:5050, accessToken: env:RF_CONTACT_TOKEN}
nodes: [{name: pi1, host: 10.0.0.1}, {name: pi2, host: 10.0.0.2}, {name: pi3, host: 10.0.0.3}, {name: pi4, host: 10.0.0.4}]
runners: {contactTimeout: 3}`,
    '/tmp/contact.yaml',
  );
  const withToken = { ...inv, secrets: new Map([['gitlab.accessToken', 'glpat-test']]) };
  const OLD = '2026-12-07T10:00:00.000Z';
  const started = Date.parse('2026-12-07T09:59:00.000Z');
  /** pi1 (started 10:00:03) contacts during the wait; pi2 and pi3 (09:59) made theirs before it; pi4 (10:00:30) none */
  const contacts = new Map<string, string[]>([
    ['pi1', [OLD, '2026-12-07T10:00:05.000Z']],
    ['pi2', [OLD]],
    ['pi3', [OLD]],
    ['pi4', [OLD]],
  ]);
  const api = {
    getRunner: async (_t: string, id: number) => ({ id, paused: false, contacted_at: null }),
    listRunnerManagers: async (_t: string, id: number) => {
      const seen = contacts.get(`pi${id}`)!;
      const at = seen.length > 1 ? seen.shift()! : seen[0];
      return [{ id: 1, system_id: `s_00000000000${id}`, contacted_at: at, status: 'online' }];
    },
  };
  const record = (id: number) =>
    ({ node: `pi${id}`, id, systemId: `s_00000000000${id}`, tokenExpiresAt: null }) as RunnerRecord;
  const gitlabHop: ProbeResult = {
    kind: 'failed',
    target: { kind: 'gitlab', host: 'gitlab.lan', port: 80, url: 'http://gitlab.lan/api/v4/version' },
    hop: 'tcp',
    detail: 'nc: timed out',
  };
  const registryHop: ProbeResult = {
    kind: 'failed',
    target: { kind: 'registry', host: 'gitlab.lan', port: 5050, url: 'http://gitlab.lan:5050/v2/' },
    hop: 'tcp',
    detail: 'nc: timed out',
  };

  it('a contact during the wait: no probe; one before it: probed, and only a GitLab hop fails it; none: probed and failed', async () => {
    const log = recordingLogger();
    const clock = { t: 0, now: () => clock.t, sleep: async (ms: number) => void (clock.t += ms) };
    const probed: string[] = [];
    const probes: Record<string, ProbeResult> = { pi2: gitlabHop, pi3: registryHop, pi4: gitlabHop };
    const failed = await proveContact({
      ctx: testContext(withToken, { log }, { gitlab: () => api as unknown as GitlabApi }),
      records: [1, 2, 3, 4].map(record),
      site: 'pod',
      probe: async (node) => (probed.push(node), probes[node] ?? { kind: 'ok' }),
      starts: new Map([
        ['pi1', Date.parse('2026-12-07T10:00:03.000Z')],
        ['pi2', started],
        ['pi3', started],
        ['pi4', Date.parse('2026-12-07T10:00:30.000Z')],
      ]),
      clock,
      runStartedAt: Date.parse('2026-12-07T10:00:01.000Z'),
    });
    expect(probed.sort()).toEqual(['pi2', 'pi3', 'pi4']);
    expect([...failed.keys()].sort()).toEqual(['pi2', 'pi4']);
    expect(failed.get('pi2')).toMatch(
      /^its runner last asked GitLab for jobs at 2026-12-07T10:00:00.000Z; now cannot connect/,
    );
    expect(failed.get('pi4')).toMatch(/^its runner did not ask GitLab for jobs within 3 s: cannot connect/);
    expect(log.lines.filter((l) => l.kind === 'warn').map((l) => l.scope)).toEqual(['pi3']);
  });
});
