// GitOps on real controllers: render --seal against the real Sealed Secrets controller in the test cluster, the
// rendered tree applied, the controller taking over (and writing) the config Secret, and a real job on the result;
// then Flux syncing the rendered tree from a repository on the GitLab stand-in (smart HTTP), a job in that
// repository whose environment holds no cluster credentials, and the loop a user runs: edit the inventory, render,
// commit and push, Flux applies, GitLab and status agree.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { stringify as stringifyYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  clusterBinDir,
  DEFAULT_SERVICES,
  down,
  FLUX_NAMESPACE,
  fluxService,
  type FleetInfo,
  runCiJob,
  sealedSecretsService,
  up,
} from '#testbed';
import {
  kubectl,
  kubectlJson,
  readInventory,
  standinState,
  writeVariant,
  type InventoryDoc,
} from '../support/fleet.js';
import type { StatusReport } from '../../src/status/health.js';
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
  /** what the Flux test leaves for the loop: the checkout on the stand-in, and how it renders, pushes and waits */
  let fluxSide:
    | {
        gitlab: string;
        git: (args: string[], cwd?: string) => string;
        checkout: string;
        renderInto: (inventory: string) => ReturnType<typeof runProvision>;
        push: (message: string) => string;
        ready: (kind: string) => () => any;
      }
    | undefined;
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
      services: [...DEFAULT_SERVICES, sealedSecretsService, fluxService],
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

  it('Flux syncs the rendered tree from a repository on the stand-in; a job in that repository holds no cluster credentials', async () => {
    const started = Date.now();
    const gitlab = base.gitlab.url as string;
    const control = async (path: string, json: unknown) => {
      const res = await fetch(`${gitlab}/_standin/${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(json),
      });
      expect(res.status).toBe(201);
      return (await res.json()) as { username: string; token: string };
    };
    const REPO = 'ops/runners';
    await control('projects', {
      path: REPO,
      files: { 'README.md': 'the fleet, rendered by runner-fleet\n' },
    });
    // The operator pushes with a project access token (write_repository); Flux reads with a deploy token.
    const writer = await control('git-tokens', {
      project: REPO,
      kind: 'project',
      scopes: ['write_repository'],
    });
    const reader = await control('git-tokens', {
      project: REPO,
      kind: 'deploy',
      scopes: ['read_repository'],
    });
    const repoUrl = `${gitlab}/${REPO}.git`;
    const git = (args: string[], cwd?: string) =>
      execFileSync('git', args, {
        cwd,
        encoding: 'utf8',
        env: {
          ...process.env,
          GIT_CONFIG_NOSYSTEM: '1',
          GIT_CONFIG_GLOBAL: '/dev/null',
          GIT_TERMINAL_PROMPT: '0',
          GIT_AUTHOR_NAME: 'operator',
          GIT_AUTHOR_EMAIL: 'operator@example.invalid',
          GIT_COMMITTER_NAME: 'operator',
          GIT_COMMITTER_EMAIL: 'operator@example.invalid',
        },
      }).trim();
    const checkout = join(fleet.stateDir, 'ops', 'runners');
    git(['clone', '--quiet', repoUrl.replace('://', `://x:${writer.token}@`), checkout]);

    // The README's GitOps sequence: render into the checkout, commit, push.
    const renderInto = (inventory: string) =>
      runProvision(
        [
          'render',
          ...['--inventory', inventory, '--executor', 'dood', '--seal', '--out', join(checkout, 'fleet')],
          ...['--flux-repo', repoUrl, '--flux-path', 'fleet', '--flux-interval', '5s'],
          ...['--flux-secret', 'runners-git', '--json'],
        ],
        env,
      );
    const push = (message: string) => {
      git(['add', '-A', 'fleet'], checkout);
      git(['commit', '--quiet', '-m', message], checkout);
      git(['push', '--quiet', 'origin', 'HEAD:main'], checkout);
      return git(['rev-parse', 'HEAD'], checkout);
    };
    const render = await renderInto(fleet.inventory);
    expect(render.code, render.stderr).toBe(0);
    const sha = push('runners: rendered by runner-fleet');

    // Once, where Flux runs: the deploy token as the GitRepository's Secret, then render's Flux objects.
    k([
      ...['-n', FLUX_NAMESPACE, 'create', 'secret', 'generic', 'runners-git'],
      `--from-literal=username=${reader.username}`,
      `--from-literal=password=${reader.token}`,
    ]);
    k(['apply', '--server-side', '-f', join(checkout, 'fleet', 'flux', 'sync.yaml')]);
    const ready = (kind: string) => () => {
      const o = get(['-n', FLUX_NAMESPACE, 'get', kind, 'runner-fleet-gitlab-runner']);
      const c = o.status?.conditions?.find((x: any) => x.type === 'Ready');
      return c?.status === 'True' ? o : undefined;
    };
    const source = await until('the GitRepository to be Ready', ready('gitrepository'), 120_000);
    expect(source.status.artifact.revision).toBe(`main@sha1:${sha}`);
    const synced = await until('the Kustomization to be Ready', ready('kustomization'), 120_000);
    expect(synced.status.lastAppliedRevision).toBe(`main@sha1:${sha}`);
    // Flux applied the rendered objects (its field manager now holds the DaemonSet's fields too).
    const ds = get(['-n', NS, 'get', 'daemonset', 'gitlab-runner-dood', '--show-managed-fields']);
    expect(ds.metadata.managedFields.map((f: any) => f.manager)).toContain('kustomize-controller');
    console.log(`[gitops] Flux synced ${sha.slice(0, 8)} in ${Math.round((Date.now() - started) / 1000)} s`);

    // A job of that repository: no kubeconfig, no service account token, no KUBE* variable in its environment.
    const yaml = stringifyYaml({
      'no-deploy-rights': {
        image: base.runners.dockerCliImage,
        tags: ['pi1'],
        script: [
          'echo "KUBECONFIG=${KUBECONFIG:-unset}"',
          'ls ~/.kube/config /var/run/secrets/kubernetes.io/serviceaccount/token 2>&1 || true',
          'echo "cluster variables: $(env | cut -d= -f1 | grep -ciE \'^kube|k8s\')"',
          'env | cut -d= -f1 | sort | tr "\\n" " "; echo',
        ],
      },
    });
    const job = await runCiJob({
      inventoryPath: fleet.inventory,
      executor: 'dood',
      node: 'pi1',
      project: REPO,
      custom: { job: 'no-deploy-rights', yaml },
      timeout: 180,
    });
    console.log(`[gitops] the job's environment:\n${job.trace}`);
    expect(job.status, `${job.failureReason}\n${job.trace}`).toBe('success');
    expect(job.trace).toContain('KUBECONFIG=unset');
    expect(job.trace).toMatch(/serviceaccount\/token'?: No such file or directory/);
    expect(job.trace).toContain('cluster variables: 0');
    console.log(`[gitops] Flux part: ${Math.round((Date.now() - started) / 1000)} s`);
    fluxSide = { gitlab, git, checkout, renderInto, push, ready };
  });

  it('the loop: edit the inventory, render into the checkout, push; Flux applies it, GitLab and status agree, and a second render changes nothing', async () => {
    expect(fluxSide, 'the Flux test above ran').toBeDefined();
    const { gitlab, git, checkout, renderInto, push, ready } = fluxSide!;
    // The loop: a tag for every runner and pi2 gone from the inventory; render converges GitLab and the node label,
    // the commit carries the rest (the config Secret without pi2), Flux applies it.
    const loop = Date.now();
    const records = (): { node: string; id?: number; retiredAt?: string }[] =>
      JSON.parse(
        Buffer.from(
          get(['-n', NS, 'get', 'secret', 'runner-fleet-records']).data['records.json'],
          'base64',
        ).toString('utf8'),
      );
    const idOf = (node: string) => records().find((r) => r.node === node && !r.retiredAt)?.id;
    const [pi1, pi2] = [idOf('pi1')!, idOf('pi2')!];
    expect([pi1, pi2].every((id) => typeof id === 'number')).toBe(true);
    // The job above committed its .gitlab-ci.yml to the repository: the operator's checkout catches up first.
    git(['pull', '--quiet', '--rebase', 'origin', 'main'], checkout);
    const edited = writeVariant(fleet.inventory, base, (inv) => {
      inv.runners = { ...inv.runners, tags: [...(inv.runners?.tags ?? []), 'gitops'] };
      inv.nodes = inv.nodes.filter((n: { name: string }) => n.name !== 'pi2');
    });
    const again = await renderInto(edited);
    expect(again.code, again.stderr).toBe(0);
    const result = JSON.parse(again.stdout) as {
      gitlab: { step: string; detail: string }[];
      pending: string[];
    };
    expect(result.gitlab.map((c) => c.step).sort()).toEqual(['delete runner', 'update runner']);
    expect(result.pending).toEqual([]);
    const next = push('runners: pi2 leaves, tag gitops');
    await until(
      'Flux to apply the new commit',
      () => (ready('kustomization')()?.status.lastAppliedRevision === `main@sha1:${next}` ? true : undefined),
      120_000,
    );
    const runners = (await standinState(gitlab)).runners;
    expect(runners.find((r) => r.id === pi1)?.tagList).toContain('gitops');
    expect(runners.some((r) => r.id === pi2)).toBe(false);
    expect(records().map((r) => r.node)).toEqual(['pi1']);
    const pods = get(['-n', NS, 'get', 'pods', '-l', 'app.kubernetes.io/name=gitlab-runner']).items as any[];
    expect(pods.map((p) => p.spec.nodeName)).toEqual(['pi1']);
    // The controller writes the Secret from the SealedSecret Flux applied: pi2's config.toml goes with it.
    await until('the config Secret without pi2', () =>
      Object.keys(secret()?.data ?? { pi2: '' }).some((k) => k.startsWith('pi2')) ? undefined : true,
    );

    const status = await runProvision(['status', '--inventory', edited, '--executor', 'dood', '--json']);
    expect(status.code, status.stderr).toBe(0);
    const report = JSON.parse(status.stdout) as StatusReport;
    expect(report.nodes.map((n) => [n.node, n.healthy, n.gitlab.state, n.gitlab.runnerId])).toEqual([
      ['pi1', true, 'online', pi1],
    ]);
    expect(report.retiring).toBeUndefined(); // nothing left for runner-fleet to delete in GitLab

    // Nothing left to do: GitLab is asked but not changed, the files are the same (sealing kept), git sees nothing.
    const calls = (await standinState(gitlab)).calls.length;
    const idle = await renderInto(edited);
    expect(idle.code, idle.stderr).toBe(0);
    expect(JSON.parse(idle.stdout)).toMatchObject({ gitlab: [], labels: [], pending: [] });
    const writes = (await standinState(gitlab)).calls
      .slice(calls)
      .filter(
        (c) =>
          c.method !== 'GET' &&
          /^\/api\/v4\/(user\/)?runners(\/|$)/.test(c.path) &&
          !c.path.endsWith('/verify'),
      );
    expect(writes).toEqual([]);
    expect(git(['status', '--porcelain'], checkout)).toBe('');
    console.log(
      `[gitops] the loop (edit, render, push, Flux, status, render again): ${Math.round((Date.now() - loop) / 1000)} s`,
    );
  }, 240_000);
});
