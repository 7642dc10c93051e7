// The host-placement runner phase against the GitLab stand-in and fake nodes: plan registers nothing, apply
// registers one runner per node and installs it, a rerun changes nothing, destroy unregisters it. No root, no SSH.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TESTBED_REPOSITORY_FINGERPRINT, TESTBED_REPOSITORY_KEY } from '#testbed';
import { runConverge } from '../../src/commands/apply.js';
import { runDestroy } from '../../src/commands/destroy.js';
import { CONFIG_TOML, KEYRING_FILE, RECORD_FILE } from '../../src/host-runner/facts.js';
import { parseInventory } from '../../src/inventory/schema.js';
import type { Inventory } from '../../src/inventory/types.js';
import { setNodeConnector, type NodeConnector } from '../../src/ssh.js';
import { startGitlabStandin, type GitlabStandin } from '../gitlab/standin.js';
import { FakeNodeConnection, fakeNodeState, text, type FakeNodeState } from '../support/fakeNode.js';
import { testContext } from '../support/context.js';

let dir: string;
let gl: GitlabStandin;
let inv: Inventory;
let previous: NodeConnector;
const env = { HOME: process.env.HOME, KUBECONFIG: process.env.KUBECONFIG };
const nodes = new Map<string, FakeNodeState>([
  ['pi1', fakeNodeState()],
  ['pi2', fakeNodeState()],
]);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rf-host-placement-'));
  // No cluster to clear: neither the inventory nor kubectl's default places name one.
  process.env.HOME = dir;
  delete process.env.KUBECONFIG;
  gl = await startGitlabStandin({ tokensDir: join(dir, 'tokens') });
  process.env.RF_TEST_ACCESS_TOKEN = gl.tokens.accessToken;
  writeFileSync(join(dir, 'id'), 'not a key: the fake connection never reads it\n');
  writeFileSync(join(dir, 'known_hosts'), '');
  inv = parseInventory(
    `
gitlab: {url: ${gl.url}, registry: [198.18.0.2:5000], accessToken: env:RF_TEST_ACCESS_TOKEN}
ssh: {user: pi, identityFile: ${join(dir, 'id')}, knownHosts: ${join(dir, 'known_hosts')}}
nodes: [{name: pi1, host: 10.0.0.11}, {name: pi2, host: 10.0.0.12}]
runners:
  executor: shell
  placement: host
  tags: [pi]
  # Fake nodes run no gitlab-runner process: nothing would ever ask GitLab for jobs.
  contactTimeout: 0
  packageRepository: {key: "file:${TESTBED_REPOSITORY_KEY}", fingerprint: ${TESTBED_REPOSITORY_FINGERPRINT}}
`,
    join(dir, 'fleet.yaml'),
  );
  previous = setNodeConnector(async (node) => new FakeNodeConnection(node, nodes.get(node.name)!));
});

afterAll(async () => {
  setNodeConnector(previous);
  await gl?.close();
  process.env.HOME = env.HOME;
  if (env.KUBECONFIG !== undefined) process.env.KUBECONFIG = env.KUBECONFIG;
  delete process.env.RF_TEST_ACCESS_TOKEN;
  rmSync(dir, { recursive: true, force: true });
});

const converge = (dryRun: boolean) => runConverge(testContext(inv, { dryRun }));
const created = () => gl.calls({ method: 'POST', path: '/api/v4/user/runners' }).length;

describe('host placement on fake nodes with the GitLab stand-in', () => {
  it("pre-flight: a node clock an hour behind GitLab's Date refuses that node only (one HEAD for GitLab's clock)", async () => {
    nodes.get('pi1')!.preflight = [`epoch ${Math.floor(Date.now() / 1000) - 3600}`];
    nodes.get('pi2')!.preflight = [`epoch ${Math.floor(Date.now() / 1000)}`];
    try {
      const report = await converge(true);
      const [pi1, pi2] = report.nodes;
      expect(pi1.ok).toBe(false);
      expect(pi1.error).toMatch(
        /pi1: the clock is 3\d{3} s behind GitLab's .*; fix: sudo timedatectl set-ntp true/,
      );
      expect(pi2.ok).toBe(true);
      expect(gl.calls({ method: 'HEAD', path: '/api/v4/version' })).toHaveLength(1);
    } finally {
      for (const s of nodes.values()) s.preflight = [];
      gl.reset();
    }
  });

  it('plan creates nothing in GitLab and writes nothing on the nodes', async () => {
    const report = await converge(true);
    expect(report.ok).toBe(true);
    expect(created()).toBe(0);
    expect(report.gitlab?.changes.map((c) => c.step)).toEqual(['create runner', 'create runner']);
    for (const s of nodes.values()) expect(s.files.size).toBe(0);
  });

  it('apply registers one runner per node and installs it with the pinned key and one [[runners]] block', async () => {
    const report = await converge(false);
    expect(report.ok, JSON.stringify(report)).toBe(true);
    expect(created()).toBe(2);
    for (const [name, s] of nodes) {
      expect(s.runner).toMatchObject({
        installed: true,
        active: true,
        enabled: true,
        groups: ['gitlab-runner', 'docker'],
      });
      // Binary, as gpg --dearmor writes it: the testbed's .gpg, byte for byte.
      expect(
        s.files.get(KEYRING_FILE)!.equals(readFileSync(TESTBED_REPOSITORY_KEY.replace(/\.asc$/, '.gpg'))),
      ).toBe(true);
      const config = text(s, CONFIG_TOML)!;
      expect(config.match(/\[\[runners\]\]/g)).toHaveLength(1);
      expect(config).toContain('executor = "shell"');
      expect(JSON.parse(text(s, RECORD_FILE)!)).toEqual([
        expect.objectContaining({ node: name, mode: 'access' }),
      ]);
    }
  });

  it('a rerun changes nothing and creates nothing, in one round trip per node', async () => {
    const before = [...nodes.values()].map((s) => s.scripts.length);
    const report = await converge(false);
    expect([...nodes.values()].map((s, i) => s.scripts.length - before[i])).toEqual([1, 1]);
    expect(report.nodes.flatMap((n) => n.changes.map((c) => c.detail))).toEqual([]);
    expect(report).toMatchObject({ ok: true, changed: 0 });
    expect(created()).toBe(2);
  });

  it('destroy unregisters each host runner through the record on its node', async () => {
    const report = await runDestroy(testContext(inv), {
      yes: true,
      purgeRegistryConfig: false,
      confirm: async () => true,
    });
    expect(report.ok, JSON.stringify(report)).toBe(true);
    expect(gl.state.runners.filter((r) => r.id !== 1)).toEqual([]);
    for (const s of nodes.values()) {
      expect(s.files.has(RECORD_FILE)).toBe(false);
      expect(s.files.has(CONFIG_TOML)).toBe(false);
      expect(s.runner).toMatchObject({ installed: true, active: false, enabled: false });
    }
  });
});
