// Command orchestration without SSH or root: plan, apply, a no-op rerun, status and destroy of a hosts-only
// inventory against fake node connections (test/support/fakeNode.ts).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runConverge } from '../../src/commands/apply.js';
import { InputError } from '../../src/errors.js';
import { runDestroy } from '../../src/commands/destroy.js';
import { runStatus } from '../../src/commands/status.js';
import { APT_DAEMON_JSON, registryStatePath } from '../../src/docker/facts.js';
import { FORWARDING_SYSCTL_FILE } from '../../src/docker/forwarding.js';
import { parseInventory } from '../../src/inventory/schema.js';
import type { Inventory } from '../../src/inventory/types.js';
import { setNodeConnector, type NodeConnector } from '../../src/ssh.js';
import { FakeNodeConnection, fakeNodeState, text, type FakeNodeState } from '../support/fakeNode.js';
import { testContext } from '../support/context.js';
import { recordingLogger } from '../support/logger.js';

const REGISTRY = '198.18.0.2:5000';
let dir: string;
let inv: Inventory;
let nodes: Map<string, FakeNodeState>;
let previous: NodeConnector | undefined;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rf-commands-'));
  // preflight reads both before any node is contacted.
  writeFileSync(join(dir, 'id'), 'not a key: the fake connection never reads it\n');
  writeFileSync(join(dir, 'known_hosts'), '');
  writeFileSync(join(dir, 'fleet.yaml'), '');
  inv = parseInventory(
    `
gitlab: {url: https://gitlab.lan, registry: [${REGISTRY}]}
ssh: {user: pi, identityFile: ${join(dir, 'id')}, knownHosts: ${join(dir, 'known_hosts')}}
nodes: [{name: pi1, host: 10.0.0.11}, {name: pi2, host: 10.0.0.12}]
`,
    join(dir, 'fleet.yaml'),
  );
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function useFakes(initial: Record<string, Record<string, string>> = {}) {
  nodes = new Map(inv.nodes.map((n) => [n.name, fakeNodeState(initial[n.name])]));
  previous = setNodeConnector(async (node) => new FakeNodeConnection(node, nodes.get(node.name)!));
}

afterEach(() => {
  if (previous) setNodeConnector(previous);
  previous = undefined;
});

const converge = (dryRun: boolean, log = recordingLogger()) => runConverge(testContext(inv, { dryRun, log }));

describe('commands on fake nodes (hosts only: no gitlab token)', () => {
  it('plan says what would change, changes nothing and tells the log no change', async () => {
    useFakes({ pi2: { [APT_DAEMON_JSON]: '{"log-driver": "journald"}\n' } });
    const log = recordingLogger();
    const report = await converge(true, log);
    expect(report.ok).toBe(true);
    expect(report.nodes.map((n) => n.name)).toEqual(['pi1', 'pi2']);
    for (const n of report.nodes) expect(n.changes.map((c) => c.step)).toContain('write-file');
    expect(nodes.get('pi1')!.files.has(APT_DAEMON_JSON)).toBe(false);
    expect(text(nodes.get('pi2')!, APT_DAEMON_JSON)).toBe('{"log-driver": "journald"}\n');
    expect(log.lines.filter((l) => l.kind === 'change')).toEqual([]);
    // One connection and one round trip (the gather) per node, every connection closed.
    for (const s of nodes.values()) expect([s.opened, s.closed, s.scripts.length]).toEqual([1, 1, 1]);
  });

  it('pre-flight: plan and apply refuse only the node with a problem, before any change on it; status names it', async () => {
    useFakes();
    nodes.get('pi1')!.preflight = ['cgroups-memory 0', 'boot-dir /boot/firmware'];
    const fix = `sudo sed -i '1 s/$/ cgroup_enable=memory cgroup_memory=1/' /boot/firmware/cmdline.txt && sudo reboot`;
    for (const dryRun of [true, false]) {
      const report = await converge(dryRun);
      expect(report.ok).toBe(false);
      const [pi1, pi2] = report.nodes;
      expect(pi1).toMatchObject({ name: 'pi1', ok: false, changes: [] });
      expect(pi1.error).toContain('pi1: the memory cgroup is not enabled');
      expect(pi1.error).toContain(fix);
      expect(pi2.ok).toBe(true);
    }
    // pi1: the gathers only; pi2 was written.
    expect(nodes.get('pi1')!.scripts.map((s) => s.step)).toEqual(['gather facts', 'gather facts']);
    expect(nodes.get('pi1')!.files.has(APT_DAEMON_JSON)).toBe(false);
    expect(text(nodes.get('pi2')!, APT_DAEMON_JSON)).toContain(REGISTRY);
    const status = await runStatus(testContext(inv));
    const row = status.nodes.find((n) => n.node === 'pi1')!;
    expect(row.healthy).toBe(false);
    expect(row.problems).toContain(
      `pre-flight: the memory cgroup is not enabled (the kernel command line lacks cgroup_enable=memory): the cluster cannot run pods; fix: ${fix}`,
    );
  });

  it('apply writes daemon.json (keeping other keys) and its record, then a rerun changes nothing in one round trip', async () => {
    useFakes({ pi2: { [APT_DAEMON_JSON]: '{"log-driver": "journald"}\n' } });
    const log = recordingLogger();
    const first = await converge(false, log);
    expect(first.ok).toBe(true);
    expect(first.changed).toBeGreaterThan(0);
    expect(log.lines.filter((l) => l.kind === 'change').map((l) => l.scope)).toEqual(
      expect.arrayContaining(['pi1', 'pi2']),
    );
    const pi2 = nodes.get('pi2')!;
    expect(JSON.parse(text(pi2, APT_DAEMON_JSON)!)).toEqual({
      'log-driver': 'journald',
      'insecure-registries': [REGISTRY],
    });
    expect(JSON.parse(text(pi2, registryStatePath(APT_DAEMON_JSON))!)).toMatchObject({
      'insecure-registries-added': [REGISTRY],
    });

    const scripts = pi2.scripts.length;
    const again = await converge(false);
    expect(again).toMatchObject({ ok: true, changed: 0 });
    expect(pi2.scripts.length - scripts).toBe(1);
  });

  it('status reports every node reachable with the registry insecure once applied', async () => {
    useFakes();
    const before = await runStatus(testContext(inv));
    expect(before.nodes.map((r) => r.registries)).toEqual([
      [{ registry: REGISTRY, insecure: false }],
      [{ registry: REGISTRY, insecure: false }],
    ]);
    expect(before.ok).toBe(false);
    await converge(false);
    const after = await runStatus(testContext(inv));
    expect(after.nodes.map((r) => [r.node, r.reachable, r.arch, r.registries[0].insecure])).toEqual([
      ['pi1', true, 'arm64', true],
      ['pi2', true, 'arm64', true],
    ]);
    expect(after.nodes.every((r) => r.pod.state === 'n/a' && r.gitlab.state === 'n/a')).toBe(true);
  });

  it("destroy --purge-registry-config takes the inventory's registries out of daemon.json and keeps other entries", async () => {
    useFakes({ pi2: { [APT_DAEMON_JSON]: '{"insecure-registries": ["10.9.9.9:5000"]}\n' } });
    await converge(false);
    const asked: string[] = [];
    const report = await runDestroy(testContext(inv), {
      yes: true,
      purgeRegistryConfig: true,
      confirm: async (t) => (asked.push(t), true),
    });
    expect(asked).toEqual([]);
    expect(report.ok).toBe(true);
    // runner-fleet's forwarding file first (apply wrote it: the nodes are cluster nodes), then the registry.
    expect(report.nodes.find((n) => n.name === 'pi2')!.changes.map((c) => c.step)).toEqual([
      'remove-file',
      'write-file',
      'reload-docker',
      'remove-file',
    ]);
    expect(text(nodes.get('pi2')!, FORWARDING_SYSCTL_FILE)).toBeUndefined();
    expect(JSON.parse(text(nodes.get('pi2')!, APT_DAEMON_JSON)!)).toEqual({
      'insecure-registries': ['10.9.9.9:5000'],
    });
    // The state file that recorded runner-fleet's entry goes with it.
    expect(text(nodes.get('pi2')!, registryStatePath(APT_DAEMON_JSON))).toBeUndefined();
  });
  it('every secret reference is read before any node is contacted: an unset cache key is exit 2, nothing touched', async () => {
    const withCache = parseInventory(
      `
gitlab: {url: https://gitlab.lan, registry: [${REGISTRY}], accessToken: env:RF_TEST_HOSTS_TOKEN}
ssh: {user: pi, identityFile: ${join(dir, 'id')}, knownHosts: ${join(dir, 'known_hosts')}}
nodes: [{name: pi1, host: 10.0.0.11}, {name: pi2, host: 10.0.0.12}]
runners:
  cache: {serverAddress: minio.lan:9000, bucketName: cache, accessKey: env:RF_TEST_UNSET_AK, secretKey: "file:${join(dir, 'sk')}"}
`,
      join(dir, 'fleet.yaml'),
    );
    process.env.RF_TEST_HOSTS_TOKEN = 'glpat-hosts-test-0001';
    writeFileSync(join(dir, 'sk'), 'secret-key\n');
    try {
      for (const run of [
        () => runConverge(testContext(withCache, { dryRun: false })),
        () => runConverge(testContext(withCache, { dryRun: true })),
        () => runStatus(testContext(withCache)),
        () =>
          runDestroy(testContext(withCache), {
            yes: true,
            purgeRegistryConfig: true,
            confirm: async () => true,
          }),
      ]) {
        useFakes();
        const err = await run().catch((e: unknown) => e);
        expect(err).toBeInstanceOf(InputError);
        expect((err as InputError).issues).toEqual([
          'runners.cache.accessKey: environment variable RF_TEST_UNSET_AK is not set',
        ]);
        for (const s of nodes.values()) expect(s.opened).toBe(0);
      }
    } finally {
      delete process.env.RF_TEST_HOSTS_TOKEN;
    }
  });
});
