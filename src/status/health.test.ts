// status judgement: which checks apply, what makes a node unhealthy, and a table without escape codes.
import { describe, expect, it } from 'vitest';
import type { HostFacts } from '../docker/facts.js';
import { hostFacts } from '../docker/facts.fixture.js';
import { renderHostsToml } from '../docker/docker-plan.js';
import { parseInventory } from '../inventory/schema.js';
import type { PodView } from '../kube/rollout.js';
import {
  ONLINE_CONTACT_TIMEOUT_MS,
  buildStatusReport,
  chooseExecutor,
  formatStatusTable,
  gitlabState,
  podState,
  retiringRunners,
  statusRow,
  type PodsView,
  type RunnerView,
} from './health.js';

const REG = '198.18.0.2:5000';
const inv = parseInventory(
  `gitlab: {url: https://gitlab.lan, registry: ${REG}}\nnodes: [{name: pi1, host: h1}, {name: pi2, host: h2}]\n`,
  '/tmp/i.yaml',
);
const [pi1] = inv.nodes;
const NOW = Date.parse('2026-01-01T12:00:00Z');

function facts(over: Partial<HostFacts> = {}): HostFacts {
  return hostFacts({
    docker: { version: '20.10.24', indexConfigs: { [REG]: { Secure: false } }, insecureCidrs: [] },
    ...over,
  });
}

const readyPod = (node: string, ready = true): PodView => ({
  metadata: { name: `gitlab-runner-dood-${node}` },
  spec: { nodeName: node },
  status: {
    phase: 'Running',
    conditions: [
      { type: 'Ready', status: ready ? 'True' : 'False', reason: ready ? undefined : 'ContainersNotReady' },
    ],
  },
});
const pods: PodsView = { pods: [readyPod('pi1'), readyPod('pi2')] };
const online: RunnerView = { kind: 'runner', id: 7, contactedAt: new Date(NOW - 60_000).toISOString() };

describe('statusRow', () => {
  it('healthy: reachable, Docker running, registry insecure, pod ready, runner online', () => {
    const row = statusRow(pi1, inv, { facts: facts() }, pods, online, NOW);
    expect(row).toMatchObject({
      healthy: true,
      problems: [],
      docker: { flavour: 'apt', version: '20.10.24', running: true },
      pod: { state: 'ready' },
      gitlab: { state: 'online', runnerId: 7 },
    });
  });

  it('a stopped dockerd: the row says so and the node is not healthy', () => {
    const row = statusRow(
      pi1,
      inv,
      {
        facts: facts({
          docker: undefined,
          dockerd: undefined,
          dockerInfoError:
            'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?',
        }),
      },
      pods,
      online,
      NOW,
    );
    expect(row.healthy).toBe(false);
    expect(row.docker.running).toBe(false);
    expect(row.registries).toEqual([{ registry: REG, insecure: null }]);
    expect(row.problems[0]).toMatch(/dockerd is not answering \(Cannot connect/);
  });

  it('unreachable nodes, secure registries, missing or unready pods, offline runners are all problems', () => {
    expect(statusRow(pi1, inv, { error: 'connection refused' }, pods, online, NOW).problems).toEqual([
      'unreachable: connection refused',
    ]);
    const secure = facts({ docker: { version: '1', indexConfigs: {}, insecureCidrs: ['127.0.0.0/8'] } });
    expect(statusRow(pi1, inv, { facts: secure }, pods, online, NOW).problems).toEqual([
      `dockerd does not treat ${REG} as insecure`,
    ]);
    expect(statusRow(pi1, inv, { facts: facts() }, { pods: [] }, online, NOW).problems).toEqual([
      'no runner pod on this node',
    ]);
    expect(
      statusRow(pi1, inv, { facts: facts() }, { pods: [readyPod('pi1', false)] }, online, NOW).problems[0],
    ).toMatch(/not ready \(ContainersNotReady\)/);
    const old: RunnerView = {
      kind: 'runner',
      id: 7,
      contactedAt: new Date(NOW - ONLINE_CONTACT_TIMEOUT_MS - 1000).toISOString(),
    };
    expect(statusRow(pi1, inv, { facts: facts() }, pods, old, NOW).problems[0]).toMatch(
      /offline in GitLab \(last contact 2h ago\)/,
    );
    expect(
      statusRow(pi1, inv, { facts: facts() }, pods, { kind: 'runner', id: 7, contactedAt: null }, NOW)
        .problems,
    ).toEqual(['runner #7 has never contacted GitLab']);
  });

  it("judges the node's own runner manager when the record names its system_id", () => {
    // The runner itself may look contacted (every apply verifies its token); the node's manager never asked for jobs.
    const noManager: RunnerView = { kind: 'runner', id: 7, contactedAt: null, systemId: 'r_0123456789ab' };
    const row = statusRow(pi1, inv, { facts: facts() }, pods, noManager, NOW);
    expect(row.gitlab).toMatchObject({ state: 'never contacted', systemId: 'r_0123456789ab' });
    expect(row.problems).toEqual([
      'runner #7: its manager r_0123456789ab (this node) has never asked GitLab for jobs; is the runner process running?',
    ]);
    expect(
      statusRow(pi1, inv, { facts: facts() }, pods, { ...online, systemId: 'r_0123456789ab' }, NOW).healthy,
    ).toBe(true);
  });

  it('"unknown" for want of an access token is not a problem; a failed question is', () => {
    expect(
      statusRow(
        pi1,
        inv,
        { facts: facts() },
        pods,
        { kind: 'unknown', why: 'no access token (gitlab.runnerToken)' },
        NOW,
      ).healthy,
    ).toBe(true);
    expect(
      statusRow(pi1, inv, { facts: facts() }, pods, { kind: 'error', id: 7, error: 'HTTP 500' }, NOW)
        .problems,
    ).toEqual(['GitLab: HTTP 500']);
  });

  it("microk8s nodes need runner-fleet's hosts.toml for each registry", () => {
    const without = statusRow(pi1, inv, { facts: facts({ microk8s: true }) }, pods, online, NOW);
    expect(without.problems).toEqual([`microk8s containerd has no runner-fleet hosts.toml for ${REG}`]);
    const content = renderHostsToml(REG);
    const withToml = statusRow(
      pi1,
      inv,
      { facts: facts({ microk8s: true, hostsToml: { [REG]: { path: 'x', content, sha256: 'y' } } }) },
      pods,
      online,
      NOW,
    );
    expect(withToml.healthy).toBe(true);
  });
});

describe('podState and gitlabState', () => {
  it('ignores pods being deleted and pods on other nodes; n/a when runners are not in the cluster', () => {
    const deleting: PodView = { ...readyPod('pi1'), metadata: { name: 'old', deletionTimestamp: 'x' } };
    expect(podState('pi1', { pods: [deleting, readyPod('pi2')] })).toEqual({ state: 'missing' });
    expect(podState('pi1', 'n/a')).toEqual({ state: 'n/a' });
    expect(podState('pi1', { error: 'ECONNREFUSED' })).toEqual({ state: 'unknown', detail: 'ECONNREFUSED' });
  });

  it("online within GitLab's 2 hours", () => {
    expect(
      gitlabState({ kind: 'runner', id: 1, contactedAt: new Date(NOW - 3_600_000).toISOString() }, NOW).state,
    ).toBe('online');
    expect(gitlabState({ kind: 'no-record' }, NOW).state).toBe('no runner');
  });
});

describe('formatStatusTable', () => {
  it('one row per node, problems listed under it, plain text', () => {
    const rows = [
      statusRow(pi1, inv, { facts: facts() }, pods, online, NOW),
      statusRow(inv.nodes[1], inv, { error: 'timed out' }, pods, online, NOW),
    ];
    const report = buildStatusReport(rows);
    expect(report.ok).toBe(false);
    const text = formatStatusTable(report, [REG]);
    const lines = text.split('\n');
    expect(lines[0]).toMatch(
      /^NODE\s+SSH\s+ARCH\s+DOCKER\s+REGISTRY 198\.18\.0\.2:5000\s+RUNNER POD\s+GITLAB\s+HEALTHY$/,
    );
    expect(lines[1]).toMatch(
      /^pi1\s+ok\s+arm64\s+apt 20\.10\.24\s+insecure\s+ready\s+#7 online \(1m ago\)\s+yes$/,
    );
    expect(lines[2]).toMatch(/^pi2\s+UNREACHABLE\s+\?\s+\?\s+\?\s+ready\s+.*NO$/);
    expect(text).toContain('pi2: unreachable: timed out');
    expect(text).toMatch(/1 of 2 node\(s\) not healthy\.$/);
    // eslint-disable-next-line no-control-regex
    expect(text).not.toMatch(/\x1b/);
  });
});

describe('what is deployed: the contact probe and a mismatch with the inventory', () => {
  it('a failing hop from the runner pod makes the node unhealthy, even while GitLab still shows it online', () => {
    const reach = {
      kind: 'failed' as const,
      target: {
        kind: 'gitlab' as const,
        host: '198.18.0.1',
        port: 8929,
        url: 'http://198.18.0.1:8929/api/v4/version',
      },
      hop: 'tcp' as const,
      detail: 'nc: timed out',
    };
    const row = statusRow(pi1, inv, { facts: facts() }, pods, online, NOW, undefined, reach);
    expect(row.healthy).toBe(false);
    expect(row.reach).toEqual(reach);
    expect(row.problems).toEqual([
      'cannot connect to 198.18.0.1:8929 (GitLab) from the runner pod (nc: timed out)',
    ]);
    expect(
      statusRow(pi1, inv, { facts: facts() }, pods, online, NOW, undefined, { kind: 'ok' }).healthy,
    ).toBe(true);
  });

  it("judges the executor the cluster runs when the inventory's has no pod, and names the mismatch", () => {
    expect(chooseExecutor(['dood', 'shell'], 'dood')).toEqual({ executor: 'dood' });
    expect(chooseExecutor([], 'dood')).toEqual({ executor: 'dood' });
    expect(chooseExecutor(['shell', 'shell', undefined], 'dood')).toEqual({
      executor: 'shell',
      mismatch: { kind: 'executor', deployed: 'shell', inventory: 'dood' },
    });
    const report = buildStatusReport([statusRow(pi1, inv, { facts: facts() }, pods, online, NOW)], {
      mismatch: [{ kind: 'executor', deployed: 'shell', inventory: 'dood' }],
    });
    expect(report.ok).toBe(true);
    expect(formatStatusTable(report, [REG])).toContain(
      'Note: the cluster runs the shell executor, the inventory says dood (the last apply had --executor shell; a plain apply switches to dood); judged as deployed.',
    );
  });
});

describe('runners still to be deleted in GitLab', () => {
  const rec = (node: string, id: number, retiredAt?: string) => ({
    node,
    mode: 'access' as const,
    id,
    token: `glrt-${node}-${id}-000000000000`,
    systemId: 's_aaaaaaaaaaaa',
    settings: null,
    createdAt: '2026-01-01T00:00:00.000Z',
    ...(retiredAt ? { retiredAt } : {}),
  });

  it("names a removed node's runner and a replaced one in a note; the fleet stays healthy", () => {
    const at = '2026-01-01T11:00:00.000Z';
    const retiring = retiringRunners(inv, [rec('pi1', 3), rec('pi1', 2, at), rec('pi9', 7, at)]);
    expect(retiring).toEqual([
      { node: 'pi1', runnerId: 2, replaced: true },
      { node: 'pi9', runnerId: 7, replaced: false },
    ]);
    const report = buildStatusReport([statusRow(pi1, inv, { facts: facts() }, pods, online, NOW)], {
      retiring,
    });
    expect(report.ok).toBe(true);
    const text = formatStatusTable(report, [REG]);
    expect(text).toContain(
      'Note: runner #7 of pi9 (no longer in the inventory) is still in GitLab: the next render or apply deletes it once its pod has finished its jobs and gone.',
    );
    expect(text).toContain('Note: runner #2 of pi1 (replaced) is still in GitLab');
    expect(retiringRunners(inv, [rec('pi1', 3)])).toEqual([]);
  });
});
