// GitOps on real controllers: render --seal against the real Sealed Secrets controller in the test cluster, the
// rendered tree applied, the controller taking over (and writing) the config Secret, and a real job on the result.
import { mkdirSync, readdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  clusterBinDir,
  DEFAULT_SERVICES,
  down,
  type FleetInfo,
  runCiJob,
  sealedSecretsService,
  up,
} from '#testbed';
import { kubectl, kubectlJson, readInventory, writeVariant, type InventoryDoc } from '../support/fleet.js';
import { findKubeseal, requireKubeseal } from '../support/kubeseal.js';
import { runProvision } from '../support/provision.js';
import { requireRoot } from '../support/requireRoot.js';

const canRun = requireRoot('GitOps on real controllers') && requireKubeseal('GitOps on real controllers');
const NS = 'gitlab-runner';
const SECRET = 'runner-fleet-config';

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

describe.runIf(canRun)('GitOps on real controllers', () => {
  let fleet: FleetInfo;
  let base: InventoryDoc;
  let bin: string;
  let kubeconfig: string;
  let env: NodeJS.ProcessEnv;
  const k = (args: string[]) => kubectl(bin, kubeconfig, args);
  const get = (args: string[]) => kubectlJson(bin, kubeconfig, args);
  const secret = () => {
    try {
      return get(['-n', NS, 'get', 'secret', SECRET, '--show-managed-fields']);
    } catch {
      return undefined;
    }
  };

  beforeAll(async () => {
    fleet = await up({
      nodes: 2,
      kinds: ['apt', 'apt'],
      services: [...DEFAULT_SERVICES, sealedSecretsService],
    });
    base = readInventory(fleet.inventory);
    kubeconfig = base.kubernetes.kubeconfig;
    bin = await clusterBinDir();
    // kubeseal on PATH under its own name, as a user installs it.
    const path = join(fleet.stateDir, 'path');
    mkdirSync(path);
    symlinkSync(findKubeseal().path!, join(path, 'kubeseal'));
    env = { PATH: `${path}:${process.env.PATH}` };
  });

  afterAll(async () => {
    if (canRun) await down();
  });

  it("render --seal fetches the named controller's certificate; the controller takes over the Secret apply wrote, writes it when it is gone, and the pods run a job with it", async () => {
    const apply = await runProvision(['--inventory', fleet.inventory, '--executor', 'dood', '--quiet']);
    expect(apply.code, apply.stderr).toBe(0);
    const applied = secret();
    expect(applied.metadata.annotations['sealedsecrets.bitnami.com/managed']).toBe('true');

    const ops = join(fleet.stateDir, 'ops');
    mkdirSync(ops, { mode: 0o700 });
    const out = join(ops, 'fleet');
    const render = (inventory: string) =>
      runProvision(['render', '--inventory', inventory, '--executor', 'dood', '--seal', '--out', out], env);

    // kubeseal's default name: this cluster's controller is named as the Helm chart names it.
    const unnamed = writeVariant(fleet.inventory, base, (inv) => delete inv.kubernetes.sealedSecrets);
    const wrong = await render(unnamed);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('Sealed Secrets controller kube-system/sealed-secrets-controller');
    expect(readdirSync(ops)).toEqual([]);

    const ok = await render(fleet.inventory);
    expect(ok.code, ok.stderr).toBe(0);
    expect(readdirSync(out).sort()).toEqual([
      '01-namespace-gitlab-runner.yaml',
      '02-serviceaccount-gitlab-runner.yaml',
      '03-sealedsecret-runner-fleet-config.yaml',
      '04-daemonset-gitlab-runner-dood.yaml',
    ]);

    // Apply, then GitOps: the controller takes over the Secret apply wrote (same object, now owned by it).
    k(['apply', '--server-side', '--field-manager=runner-fleet', '-f', out]);
    await until('the SealedSecret to be Synced', () =>
      get(['-n', NS, 'get', 'sealedsecret', SECRET]).status?.conditions?.find(
        (c: any) => c.type === 'Synced' && c.status === 'True',
      ),
    );
    const taken = secret();
    expect(taken.metadata.uid).toBe(applied.metadata.uid);
    expect(taken.metadata.ownerReferences).toMatchObject([{ kind: 'SealedSecret', name: SECRET }]);
    expect(taken.data).toEqual(applied.data);

    // GitOps only: without the Secret, the controller writes it from git's SealedSecret alone.
    k(['-n', NS, 'delete', 'secret', SECRET]);
    const written = await until('the controller to write the Secret', () => {
      const s = secret();
      return s && s.metadata.uid !== applied.metadata.uid ? s : undefined;
    });
    expect(written.metadata.managedFields.map((f: any) => f.manager)).toEqual([
      'sealed-secrets-controller-v0.40.0',
    ]);
    expect(written.data).toEqual(applied.data);

    // New runner pods mount the Secret the controller wrote, and a real job runs on them.
    k(['-n', NS, 'delete', 'pods', '-l', 'runner-fleet.dev/executor=dood', '--wait=true']);
    k(['-n', NS, 'rollout', 'status', 'daemonset/gitlab-runner-dood', '--timeout=180s']);
    const job = await runCiJob({
      inventoryPath: fleet.inventory,
      executor: 'dood',
      node: 'pi1',
      timeout: 240,
    });
    expect(job.status, `${job.failureReason}\n${job.trace}`).toBe('success');
    expect(job.pushed).toBe(true);
  });
});
