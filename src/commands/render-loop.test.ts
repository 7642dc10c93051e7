// render in the GitOps loop, on the fake GitLab and an in-memory cluster: it converges GitLab and the node labels as
// apply does, deletes a removed node's runner only once its pod is gone, and a rerun with nothing to do changes nothing.
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FakeCluster } from '../../test/support/fakeCluster.js';
import { FakeGitlab } from '../../test/support/fakeGitlabApi.js';
import { testContext } from '../../test/support/context.js';
import { recordOf } from '../../test/support/reconcileRun.js';
import { RunFailedError } from '../errors.js';
import type { GitlabApi } from '../gitlab/api.js';
import { defaultNodeLabel } from '../inventory/fields.js';
import { parseInventory } from '../inventory/schema.js';
import type { KubeClient } from '../kube/client.js';
import { nodeLabelManager } from '../kube/objects.js';
import { typedStore } from '../placement/records-read.js';
import { runRender } from './render.js';

const NS = 'gitlab-runner';
const LABEL = defaultNodeLabel(NS);
const inventory = (nodes: string[], tags = ['arm64'], extra = '') =>
  parseInventory(
    `gitlab: {url: https://gitlab.lan, registry: gitlab.lan:5050, accessToken: env:RF_RENDER_TOKEN}
nodes:
${nodes.map((n, i) => `  - { name: ${n}, host: 10.0.0.${i + 1} }`).join('\n')}
runners: {tags: [${tags.join(', ')}], description: "fleet {node}"}
${extra}`,
    '/tmp/render-loop.yaml',
  );

let base: string;
let out: string;
let api: FakeGitlab;
let cluster: FakeCluster;
const store = () => typedStore(cluster as unknown as KubeClient, NS, false);
const render = (inv: ReturnType<typeof inventory>) =>
  runRender(
    testContext(
      inv,
      {},
      { cluster: async () => cluster as unknown as KubeClient, gitlab: () => api as unknown as GitlabApi },
    ),
    { out, seal: false },
  );
const files = () =>
  Object.fromEntries(readdirSync(out).map((f) => [f, readFileSync(join(out, f), 'utf8')] as const));

beforeEach(async () => {
  vi.stubEnv('RF_RENDER_TOKEN', 'glpat-render0000000000000');
  base = mkdtempSync(join(tmpdir(), 'rf-render-loop-'));
  chmodSync(base, 0o700);
  out = join(base, 'fleet');
  api = new FakeGitlab();
  cluster = new FakeCluster(['pi1', 'pi2', 'pi3'], LABEL);
  // What apply left: a runner and a record per node, the fleet's label on each (so each has a pod).
  await store().save([recordOf(api, 'pi1'), recordOf(api, 'pi2')]);
  for (const node of ['pi1', 'pi2'])
    await cluster.applyNodeLabels({ node, manager: nodeLabelManager(NS), labels: { [LABEL]: 'true' } });
  cluster.labelCalls.length = 0;
  api.calls.length = 0;
});
afterEach(() => vi.unstubAllEnvs());

describe('render converges GitLab and the node labels', () => {
  it("a tag goes to GitLab, a removed node's label goes, then its runner once the pod is gone; a rerun changes nothing", async () => {
    const [pi1, pi2] = api.runners;
    const r = await render(inventory(['pi1'], ['arm64', 'gitops']));
    expect(r.gitlab.map((c) => c.detail)).toEqual([
      `pi1: updated runner #${pi1.id}: tags +gitops`,
      `pi2: deleted runner #${pi2.id} (node left the inventory)`,
    ]);
    expect(r.labels).toEqual([`remove ${LABEL} from node pi2 (not in the inventory)`]);
    expect(r.pending).toEqual([]);
    expect(api.runners.map((x) => [x.id, x.tagList])).toEqual([[pi1.id, ['arm64', 'gitops', 'pi1']]]);
    expect([...cluster.pods]).toEqual(['pi1']);
    expect((await store().load()).map((x) => x.node)).toEqual(['pi1']);
    const secrets = readFileSync(join(out, 'secrets.yaml'), 'utf8');
    expect(secrets).toContain('pi1.config.toml');
    expect(secrets).not.toContain('pi2.config.toml');

    const before = files();
    api.calls.length = 0;
    const again = await render(inventory(['pi1'], ['arm64', 'gitops']));
    expect(again).toMatchObject({ gitlab: [], labels: [], pending: [] });
    expect(api.methods().filter((m) => m !== 'verifyRunner')).toEqual([]);
    expect(files()).toEqual(before);
  });

  it('a pod still finishing its jobs keeps its runner: said plainly, and the next render deletes it', async () => {
    const pi2 = api.runners[1];
    cluster.stuck.add('pi2');
    const inv = inventory(['pi1'], ['arm64'], 'kubernetes: {rolloutTimeout: 1}');
    const r = await render(inv);
    expect(r.pending).toEqual([
      `pi2: runner #${pi2.id} stays in GitLab for now: the runner pod on pi2 has not gone yet (it finishes its running jobs first); the next render deletes it once that is done (an apply deletes it after its own rollout)`,
    ]);
    expect(api.runners.map((x) => x.id)).toContain(pi2.id);
    expect((await store().load()).find((x) => x.node === 'pi2')?.retiredAt).toBeDefined();
    expect(readFileSync(join(out, 'secrets.yaml'), 'utf8')).not.toContain('pi2.config.toml');

    cluster.stuck.delete('pi2');
    cluster.pods.delete('pi2');
    const next = await render(inv);
    expect(next.gitlab.map((c) => c.step)).toEqual(['delete runner']);
    expect(next.pending).toEqual([]);
    expect(api.runners.map((x) => x.id)).not.toContain(pi2.id);
  });

  it('a new node gets its runner registered and the label: its config is in the files', async () => {
    const r = await render(inventory(['pi1', 'pi2', 'pi3']));
    expect(r.gitlab.map((c) => c.step)).toEqual(['create runner']);
    expect(r.labels).toEqual([`label node pi3 ${LABEL}=true`]);
    expect(readFileSync(join(out, 'secrets.yaml'), 'utf8')).toContain('pi3.config.toml');
    expect((await store().load()).map((x) => x.node).sort()).toEqual(['pi1', 'pi2', 'pi3']);
  });

  it('GitLab refusing a change: exit 1 naming it, nothing written, no label touched', async () => {
    api.fail('updateRunner', 500);
    const err = await render(inventory(['pi1', 'pi2'], ['arm64', 'gitops'])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RunFailedError);
    expect((err as Error).message).toMatch(/^GitLab: pi1: 500 fake; nothing was written/);
    expect(existsSync(out)).toBe(false);
    expect(cluster.labelCalls).toEqual([]);
  });

  it('an inventory node the cluster does not have: refused before GitLab, nothing written', async () => {
    await expect(render(inventory(['pi1', 'pi9']))).rejects.toThrow(
      /inventory nodes not in the cluster: pi9; nothing changed in GitLab and nothing was written/,
    );
    expect(api.calls).toEqual([]);
    expect(existsSync(out)).toBe(false);
  });
});
