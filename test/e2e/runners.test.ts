// End to end: runners registered exactly once in every auth mode, updated in place, removed with their node, tokens never leak.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterBinDir, down, type FleetInfo, up } from '#testbed';
import type { StandinRunner } from '../gitlab/standin.js';
import {
  kubectl,
  kubectlJson,
  readInventory,
  standinControl,
  standinState,
  writeVariant,
  type InventoryDoc,
  withoutPrepull,
} from '../support/fleet.js';
import { allOutput, runProvision } from '../support/provision.js';
import { requireRoot } from '../support/requireRoot.js';

const canRun = requireRoot('runner registration end to end');

describe.runIf(canRun)('runners in GitLab, exactly once', () => {
  let fleet: FleetInfo;
  let base: InventoryDoc;
  let gitlabUrl: string;
  let tokensDir: string;
  let bin: string;
  let kubeconfig: string;
  const variant = (mutate: (inv: InventoryDoc) => void) => writeVariant(fleet.inventory, base, mutate);
  const ours = async (): Promise<StandinRunner[]> =>
    (await standinState(gitlabUrl)).runners.filter((r) => r.createdVia !== 'preset');
  const callsSince = async (n: number, method: string, path: string) =>
    (await standinState(gitlabUrl)).calls.slice(n).filter((c) => c.method === method && c.path === path);
  const callCount = async () => (await standinState(gitlabUrl)).calls.length;
  const records = (): { node: string; id?: number; mode: string; retiredAt?: string }[] => {
    const secret = kubectlJson(bin, kubeconfig, [
      '-n',
      'gitlab-runner',
      'get',
      'secret',
      'runner-fleet-records',
    ]);
    return JSON.parse(Buffer.from(secret.data['records.json'], 'base64').toString('utf8'));
  };
  const withMode = (
    mode: 'accessToken' | 'registrationToken' | 'runnerToken',
    file: string,
    extra: (inv: InventoryDoc) => void = () => {},
  ) =>
    variant((inv) => {
      delete inv.gitlab.accessToken;
      inv.gitlab[mode] = `file:${join(tokensDir, file)}`;
      extra(inv);
    });

  beforeAll(async () => {
    fleet = await up({ nodes: 3 });
    withoutPrepull(fleet.inventory);
    base = readInventory(fleet.inventory);
    base.runners = { ...base.runners, tags: ['arm64', 'pi'], executor: 'dood' };
    gitlabUrl = base.gitlab.url;
    tokensDir = join(base.gitlab.accessToken.slice('file:'.length), '..');
    kubeconfig = base.kubernetes.kubeconfig;
    bin = await clusterBinDir();
  });

  afterAll(async () => {
    if (canRun) await down();
  });

  it('access token: one runner per node with the inventory tags plus the node name; a rerun creates none', async () => {
    const path = variant(() => {});
    const first = await runProvision(['--inventory', path, '--json']);
    expect(first.code, first.stderr).toBe(0);
    const runners = await ours();
    expect(runners).toHaveLength(3);
    // Nodes register side by side: GitLab's ids say nothing about node order.
    expect(runners.map((r) => [...r.tagList].sort()).sort((a, b) => a[2].localeCompare(b[2]))).toEqual([
      ['arm64', 'pi', 'pi1'],
      ['arm64', 'pi', 'pi2'],
      ['arm64', 'pi', 'pi3'],
    ]);
    expect(runners.every((r) => r.createdVia === 'user')).toBe(true);

    const before = await callCount();
    const second = await runProvision(['--inventory', path, '--json']);
    expect(second.code, second.stderr).toBe(0);
    expect(second.report!.gitlab!.changes).toEqual([]);
    expect(await callsSince(before, 'POST', '/api/v4/user/runners')).toEqual([]);
    expect((await ours()).map((r) => r.id)).toEqual(runners.map((r) => r.id));
  });

  it('changed tags update the runners in place: same ids, no new runner', async () => {
    const ids = (await ours()).map((r) => r.id);
    const before = await callCount();
    const r = await runProvision([
      '--inventory',
      variant((inv) => (inv.runners.tags = ['arm64', 'fast'])),
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(await callsSince(before, 'POST', '/api/v4/user/runners')).toEqual([]);
    const after = await ours();
    expect(after.map((x) => x.id)).toEqual(ids);
    expect(after.map((x) => [...x.tagList].sort()[1])).toEqual(['fast', 'fast', 'fast']);
    base.runners.tags = ['arm64', 'fast'];
  });

  it('a node removed from the inventory loses its runner, its label, its pod and its config; the others stay', async () => {
    const before = await ours();
    const pi3 = before.find((r) => r.tagList.includes('pi3'))!;
    const r = await runProvision([
      '--inventory',
      variant((inv) => (inv.nodes = inv.nodes.filter((n: { name: string }) => n.name !== 'pi3'))),
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const after = await ours();
    expect(after.map((x) => x.id)).toEqual(before.filter((x) => x.id !== pi3.id).map((x) => x.id));
    expect(records().map((x) => x.node)).toEqual(['pi1', 'pi2']);
    const node = kubectlJson(bin, kubeconfig, ['get', 'node', 'pi3']);
    expect(node.metadata.labels['fleet.runner-fleet.dev/gitlab-runner']).toBeUndefined();
    const secret = kubectlJson(bin, kubeconfig, [
      '-n',
      'gitlab-runner',
      'get',
      'secret',
      'runner-fleet-config',
    ]);
    expect(Object.keys(secret.data).filter((k) => k.startsWith('pi3'))).toEqual([]);
    const pods = kubectlJson(bin, kubeconfig, ['-n', 'gitlab-runner', 'get', 'pods']).items.filter(
      (p: any) => !p.metadata.deletionTimestamp,
    );
    expect(pods.map((p: any) => p.spec.nodeName).sort()).toEqual(['pi1', 'pi2']);
  });

  it('a token GitLab no longer accepts is replaced on the next run and the record updated', async () => {
    const path = variant(() => {});
    await runProvision(['--inventory', path]); // pi3 is back
    const pi1 = (await ours()).find((r) => r.tagList.includes('pi1'))!;
    await standinControl(gitlabUrl, `runners/${pi1.id}/delete-token`);
    const r = await runProvision(['--inventory', path, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const now = (await ours()).filter((x) => x.tagList.includes('pi1'));
    expect(now).toHaveLength(1);
    expect(now[0].id).not.toBe(pi1.id);
    expect(records().find((x) => x.node === 'pi1')!.id).toBe(now[0].id);
    const again = await runProvision(['--inventory', path, '--json']);
    expect(again.report!.changed).toBe(0);
  });

  it('legacy registration token: one runner per node, then nothing; disabled on GitLab 17+: exit 1 with the way forward', async () => {
    const path = withMode('registrationToken', 'registration-token');
    const first = await runProvision(['--inventory', path, '--json']);
    expect(first.code, first.stderr).toBe(0);
    const runners = await ours();
    expect(runners.filter((x) => x.createdVia === 'registration')).toHaveLength(3);
    expect(runners).toHaveLength(3); // the access-token runners were replaced, not orphaned
    const before = await callCount();
    const second = await runProvision(['--inventory', path, '--json']);
    expect(second.code, second.stderr).toBe(0);
    expect(await callsSince(before, 'POST', '/api/v4/runners')).toEqual([]);

    await standinControl(gitlabUrl, 'registration-tokens/disable');
    await standinControl(gitlabUrl, `runners/${runners[0].id}/delete-token`);
    const third = await runProvision(['--inventory', path, '--json']);
    expect(third.code).toBe(1);
    expect(third.report!.gitlab!.error).toMatch(/registration tokens? (are|is) disabled/i);
    expect(third.report!.gitlab!.error).toMatch(/accessToken/);
    expect(third.report!.gitlab!.error).toMatch(/runnerToken/);
    await standinControl(gitlabUrl, 'registration-tokens/enable');
  });

  it('runner token (glrt-): every node verifies as a manager of the one runner, none is created; removing a node removes only its manager', async () => {
    const path = withMode('runnerToken', 'runner-token');
    const before = await callCount();
    const r = await runProvision(['--inventory', path, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(await callsSince(before, 'POST', '/api/v4/user/runners')).toEqual([]);
    expect(await callsSince(before, 'POST', '/api/v4/runners')).toEqual([]);
    const state = await standinState(gitlabUrl);
    const shared = state.runners.find((x) => x.createdVia === 'preset')!;
    expect(state.managers.filter((m) => m.runnerId === shared.id)).toHaveLength(3);
    // The legacy runners were removed; the one whose token the legacy test revoked cannot be (GitLab refuses its
    // token and a registration token cannot delete by id), and the run says so instead of pretending.
    expect(state.runners.filter((x) => x.createdVia !== 'preset' && x.token !== null)).toEqual([]);

    const smaller = withMode(
      'runnerToken',
      'runner-token',
      (inv) => (inv.nodes = inv.nodes.filter((n: { name: string }) => n.name !== 'pi3')),
    );
    const cut = await callCount();
    const r2 = await runProvision(['--inventory', smaller, '--json']);
    expect(r2.code, r2.stderr).toBe(0);
    const after = await standinState(gitlabUrl);
    expect(after.runners.some((x) => x.id === shared.id)).toBe(true);
    expect(after.managers.filter((m) => m.runnerId === shared.id)).toHaveLength(2);
    expect(await callsSince(cut, 'DELETE', '/api/v4/runners')).toEqual([]);
    expect(await callsSince(cut, 'DELETE', '/api/v4/runners/managers')).toHaveLength(1);
  });

  it('no token appears in any output, any file the tool wrote outside Secrets, or any ConfigMap', async () => {
    await runProvision(['--inventory', withMode('accessToken', 'access-token'), '--verbose']);
    await runProvision([
      'plan',
      '--inventory',
      withMode('accessToken', 'access-token'),
      '--verbose',
      '--json',
    ]);
    const state = await standinState(gitlabUrl);
    const secrets = [
      ...readdirSync(tokensDir).map((f) => readFileSync(join(tokensDir, f), 'utf8').trim()),
      ...state.runners.map((r) => r.token).filter((t): t is string => Boolean(t)),
    ];
    expect(secrets.length).toBeGreaterThan(5);
    const haystacks: [string, string][] = allOutput.map((o, i) => [`run output ${i}`, o]);
    // Files on the nodes that runner-fleet writes (daemon.json and its backups), as the nodes see them.
    for (const node of fleet.nodes) {
      for (const dir of ['etc-docker', 'var-snap']) {
        const root = join(fleet.stateDir, node.name, dir);
        const walk = (d: string): void => {
          for (const f of readdirSync(d)) {
            const p = join(d, f);
            const st = statSync(p, { throwIfNoEntry: false });
            if (st?.isDirectory()) walk(p);
            else if (st?.isFile() && /daemon\.json/.test(f)) haystacks.push([p, readFileSync(p, 'utf8')]);
          }
        };
        walk(root);
      }
    }
    haystacks.push(['all ConfigMaps', kubectl(bin, kubeconfig, ['get', 'configmaps', '-A', '-o', 'json'])]);
    haystacks.push(['all DaemonSets', kubectl(bin, kubeconfig, ['get', 'daemonsets', '-A', '-o', 'json'])]);
    for (const [where, text] of haystacks) {
      for (const s of secrets) expect(text.includes(s), `a token appears in ${where}`).toBe(false);
    }
  });

  it("a second fleet (namespace fleet-b, node pi1 again) never takes the first fleet's runners; a 201 cut short is adopted; destroy waits for apply's lock and finds its marked runners", async () => {
    const a = (await ours()).map((r) => ({ id: r.id, token: r.token, maintenanceNote: r.maintenanceNote }));
    // Fleet A's three, and the legacy runner whose token an earlier test revoked.
    expect(a.filter((r) => r.token !== null)).toHaveLength(3);
    const bPath = variant((inv) => {
      inv.kubernetes.namespace = 'fleet-b';
      inv.kubernetes.nodeLabel = 'runner-fleet.dev/fleet-b';
      inv.nodes = inv.nodes.filter((n: { name: string }) => n.name === 'pi1');
    });
    const aUntouched = async () => {
      const now = await standinState(gitlabUrl);
      for (const r of a)
        expect(
          now.runners.find((x) => x.id === r.id),
          `runner #${r.id} of fleet A`,
        ).toMatchObject(r);
      const resets = now.calls.filter((c) =>
        a.some((r) => c.path === `/api/v4/runners/${r.id}/reset_authentication_token`),
      );
      expect(resets).toEqual([]);
    };
    const bFleet = () =>
      kubectlJson(bin, kubeconfig, ['-n', 'fleet-b', 'get', 'secret', 'runner-fleet-records']).metadata
        .annotations['runner-fleet.dev/fleet-id'] as string;
    const marked = async (fleetId: string) =>
      (await ours()).filter((r) => (r.maintenanceNote ?? '').includes(`[runner-fleet fleet=${fleetId} `));

    // B's create for pi1 gets no clear answer: it looks for pi1's strays and finds A's runner, which it must leave.
    await standinControl(gitlabUrl, 'fail', 'POST', {
      method: 'POST',
      path: '/api/v4/user/runners',
      status: 502,
    });
    const lost = await runProvision(['--inventory', bPath, '--json']);
    expect(lost.code).toBe(1);
    expect(lost.report!.gitlab!.error).toMatch(/pi1: creating its runner got no clear answer/);
    await aUntouched();

    // B's next create is made by GitLab but its 201 is cut short: no clear answer, found by B's own mark, adopted.
    await standinControl(gitlabUrl, 'fail', 'POST', {
      method: 'POST',
      path: '/api/v4/user/runners',
      status: 201,
      truncate: true,
    });
    const cut = await runProvision(['--inventory', bPath, '--json']);
    expect(cut.code, cut.stderr).toBe(0);
    expect(cut.report!.gitlab!.changes.map((c) => c.step)).toEqual(['adopt runner']);
    const b = bFleet();
    expect(b).toMatch(/^[0-9a-f]{12}$/);
    expect((await marked(b)).map((r) => r.id)).toHaveLength(1);
    await aUntouched();

    // Destroy during an apply: it fails fast on the fleet lock, having removed nothing.
    await standinControl(gitlabUrl, 'delay', 'POST', { ms: 1500 });
    const applying = runProvision(['--inventory', bPath, '--json']);
    for (let i = 0; i < 100; i++) {
      const lease = kubectl(bin, kubeconfig, [
        '-n',
        'fleet-b',
        'get',
        'lease',
        '--ignore-not-found',
        '-o',
        'name',
      ]);
      if (lease.trim()) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const early = await runProvision(['destroy', '--yes', '--inventory', bPath]);
    expect(early.code).toBe(1);
    expect(early.stderr).toMatch(
      /another runner-fleet run holds the fleet lock \(Lease fleet-b\/runner-fleet-lock\)/,
    );
    expect((await applying).code).toBe(0);
    await standinControl(gitlabUrl, 'delay', 'POST', { ms: 0 });

    // A create of B's whose answer was lost for good (no record holds it): destroy finds it by B's mark.
    const token = readFileSync(join(tokensDir, 'access-token'), 'utf8').trim();
    const res = await fetch(`${gitlabUrl}/api/v4/user/runners`, {
      method: 'POST',
      headers: { 'PRIVATE-TOKEN': token, 'content-type': 'application/json' },
      body: JSON.stringify({
        runner_type: 'instance_type',
        tag_list: ['arm64', 'fast', 'pi1'],
        maintenance_note: `[runner-fleet fleet=${b} node=pi1 attempt=0b0b0b0b]`,
      }),
    });
    expect(res.status).toBe(201);
    const gone = await runProvision(['destroy', '--yes', '--inventory', bPath, '--json']);
    expect(gone.code, gone.stderr).toBe(0);
    expect(await marked(b)).toEqual([]);
    await aUntouched();
  }, 240_000);
});
