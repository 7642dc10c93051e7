import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRunContext } from './context.js';
import { parseInventory } from './inventory/schema.js';
import type { Inventory, NodeSpec } from './inventory/types.js';
import { setNodeConnector, type NodeConnection, type NodeConnector } from './ssh.js';
import { recordingLogger } from '../test/support/logger.js';

const KUBECONFIG = `apiVersion: v1
kind: Config
clusters: [{name: microk8s, cluster: {server: "https://198.18.0.11:16443", insecure-skip-tls-verify: true}}]
users: [{name: admin, user: {token: not-a-real-token}}]
contexts: [{name: microk8s, context: {cluster: microk8s, user: admin}}]
current-context: microk8s
`;

let dir: string;
let previous: NodeConnector | undefined;
/** every script each node was asked to run, and how many connections were opened to it */
const asked = new Map<string, string[]>();
let opened = 0;

function fakeMicrok8s(node: NodeSpec): NodeConnection {
  opened++;
  const exec = async (script: string) => {
    asked.set(node.name, [...(asked.get(node.name) ?? []), script]);
    return { code: 0, stdout: script.includes('microk8s config') ? KUBECONFIG : '', stderr: '' };
  };
  return { node, exec, check: exec, close: () => undefined };
}

function inventory(fromNode: boolean): Inventory {
  return parseInventory(
    `
gitlab: {url: https://gitlab.lan, registry: [198.18.0.2:5000]}
ssh: {user: pi, identityFile: ${join(dir, 'id')}, knownHosts: ${join(dir, 'known_hosts')}}
nodes: [{name: pi1, host: 10.0.0.11}, {name: pi2, host: 10.0.0.12}]
${fromNode ? 'kubernetes: {fromNode: pi1}' : `kubernetes: {kubeconfig: ${join(dir, 'kubeconfig')}}`}
`,
    join(dir, 'fleet.yaml'),
  );
}

const settings = (inv: Inventory) => ({
  inventory: inv,
  dryRun: false,
  log: recordingLogger(),
  concurrency: 2,
});

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rf-context-'));
  for (const f of ['id', 'known_hosts', 'fleet.yaml']) writeFileSync(join(dir, f), '');
  writeFileSync(join(dir, 'kubeconfig'), KUBECONFIG);
  previous = setNodeConnector(async (node) => fakeMicrok8s(node));
});

afterEach(() => {
  asked.clear();
  opened = 0;
});

afterAll(() => {
  if (previous) setNodeConnector(previous);
  rmSync(dir, { recursive: true, force: true });
});

describe('run context', () => {
  it('kubernetes.fromNode: one SSH connection and one `microk8s config` for the whole run, however many ask', async () => {
    const ctx = createRunContext(settings(inventory(true)));
    // The fleet lock, the runner phase, a dry-run copy and render's kubeseal all ask, some at once.
    const clients = await Promise.all([
      ctx.cluster(),
      ctx.cluster(),
      { ...ctx, dryRun: true }.cluster(),
      ctx.kubeconfigText().then(() => ctx.cluster()),
    ]);
    await ctx.cluster();
    expect(opened).toBe(1);
    expect(asked.get('pi1')?.filter((s) => s.includes('microk8s config'))).toHaveLength(1);
    expect(asked.has('pi2')).toBe(false);
    expect(new Set(clients).size).toBe(1);
    expect(clients[0].server).toBe('https://198.18.0.11:16443');
    expect(await ctx.kubeconfigText()).toBe(KUBECONFIG);
  });

  it('a kubeconfig file: no node is contacted, and the client is still made once', async () => {
    const ctx = createRunContext(settings(inventory(false)));
    const [a, b] = await Promise.all([ctx.cluster(), ctx.cluster()]);
    expect(a).toBe(b);
    expect(opened).toBe(0);
    expect(await ctx.kubeconfigText()).toBeUndefined();
  });

  it('one GitLab client per run; stand-ins replace the outside systems', async () => {
    const ctx = createRunContext(settings(inventory(false)));
    expect(ctx.gitlab()).toBe(ctx.gitlab());
    let made = 0;
    const fake = createRunContext(settings(inventory(true)), {
      kubeconfigText: async () => (made++, KUBECONFIG),
    });
    await Promise.all([fake.cluster(), fake.cluster()]);
    expect(made).toBe(1);
    expect(opened).toBe(0);
  });
});
