// Faults against the real test cluster: the fleet Lease (held, stale, renewed, released), a second
// apply failing fast before any change, records written with resourceVersion, and a frozen apiserver (SIGSTOP).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '#testbed';
import { ApiError } from '../../src/errors.js';
import { KubeClient } from '../../src/kube/client.js';
import { KubeRecordStore, RecordsConflictError } from '../../src/kube/records-secret.js';
import {
  acquireFleetLock,
  LEASE_NAME,
  LockHeldError,
  microTime,
  type LeaseSpec,
} from '../../src/lock/fleet-lock.js';
import { startGitlabStandin, type GitlabStandin } from '../gitlab/standin.js';
import { runProvision } from '../support/provision.js';
import { requireRoot } from '../support/requireRoot.js';

const canRun = requireRoot('test/e2e/faults-cluster.test.ts (test cluster)');
const NS = 'gitlab-runner';

describe.runIf(canRun)('faults against the test cluster', () => {
  let cluster: TestCluster;
  let stateDir: string;
  let client: KubeClient;
  let gl: GitlabStandin;
  let dir: string;
  const lease = {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: LEASE_NAME, namespace: NS },
  };
  const leaseSpec = async () => (await client.read(lease))?.spec as LeaseSpec | undefined;

  beforeAll(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'rf-faults-cluster-'));
    cluster = await startCluster({ stateDir, nodes: ['pi1', 'pi2'] });
    client = KubeClient.load({ kubeconfig: cluster.kubeconfig });
    dir = mkdtempSync(join(tmpdir(), 'rf-faults-'));
    gl = await startGitlabStandin({ tokensDir: join(dir, 'tokens') });
    for (const f of ['id', 'known_hosts']) writeFileSync(join(dir, f), '');
  });

  afterAll(async () => {
    // Never leave the apiserver stopped, whatever failed.
    if (cluster?.pids['kube-apiserver']) process.kill(cluster.pids['kube-apiserver'], 'SIGCONT');
    await gl?.close();
    await cluster?.stop();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  const inventory = (extra = '') => {
    const path = join(dir, `fleet-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(
      path,
      `gitlab: {url: '${gl.url}', registry: '127.0.0.1:5000', accessToken: 'file:${gl.tokenFiles!.accessToken}', timeout: 5}
ssh: {identityFile: ${join(dir, 'id')}, knownHosts: ${join(dir, 'known_hosts')}, connectTimeout: 2}
nodes:
  - {name: pi1, host: 127.0.0.1, port: 1}
  - {name: pi2, host: 127.0.0.2, port: 1}
kubernetes: {kubeconfig: ${cluster.kubeconfig}, namespace: ${NS}${extra}}
`,
    );
    return path;
  };

  it('the Lease: a second holder is refused naming the first and its expiry; renewed while held; released at the end', async () => {
    const a = await acquireFleetLock(client, NS, { durationSeconds: 3 });
    try {
      const spec = (await leaseSpec())!;
      expect(spec.holderIdentity).toBe(a.identity);
      expect(spec.leaseDurationSeconds).toBe(3);
      expect(spec.acquireTime).toMatch(/\.\d{6}Z$/);
      const err = await acquireFleetLock(client, NS).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LockHeldError);
      expect((err as Error).message).toContain(a.identity);
      expect((err as Error).message).toMatch(/expires at \d{4}-\d\d-\d\dT/);
      // Renewed every third of its duration: the holder that keeps running keeps it past the first expiry.
      await new Promise((r) => setTimeout(r, 4000));
      expect(Date.parse((await leaseSpec())!.renewTime!)).toBeGreaterThan(Date.parse(spec.renewTime!));
      await expect(acquireFleetLock(client, NS)).rejects.toBeInstanceOf(LockHeldError);
      expect(a.lost()).toBeUndefined();
    } finally {
      await a.release();
    }
    expect(await client.read(lease)).toBeUndefined();
    const b = await acquireFleetLock(client, NS);
    await b.release();
  });

  it('a stale Lease from a killed run is taken over once it has expired', async () => {
    const old = new Date(Date.now() - 120_000);
    await client.create({
      ...lease,
      spec: {
        holderIdentity: 'gone-host/pid-9/dead',
        leaseDurationSeconds: 60,
        acquireTime: microTime(old),
        renewTime: microTime(old),
      },
    });
    const warnings: string[] = [];
    const log = { warn: (_s: string, m: string) => warnings.push(m), error: () => undefined } as never;
    const c = await acquireFleetLock(client, NS, { log });
    try {
      expect((await leaseSpec())!.holderIdentity).toBe(c.identity);
      expect((await leaseSpec())!.leaseTransitions).toBe(1);
      expect(warnings.join('\n')).toContain('gone-host/pid-9/dead stopped renewing it');
    } finally {
      await c.release();
    }
  });

  it('a second apply fails fast, exit 1, naming the holder and its expiry, before GitLab or any node is touched', async () => {
    const now = new Date();
    await client.create({
      ...lease,
      spec: {
        holderIdentity: 'other-host/pid-4242/0badcafe',
        leaseDurationSeconds: 600,
        acquireTime: microTime(now),
        renewTime: microTime(now),
      },
    });
    try {
      gl.reset();
      const t0 = Date.now();
      const r = await runProvision(['--inventory', inventory(), '--executor', 'dood']);
      expect(r.code, r.stderr).toBe(1);
      expect(Date.now() - t0).toBeLessThan(20_000);
      expect(r.stderr).toContain('other-host/pid-4242/0badcafe');
      expect(r.stderr).toContain(
        `expires at ${new Date(Date.parse(microTime(now).replace(/(\.\d{3})\d{3}Z$/, '$1Z')) + 600_000).toISOString()}`,
      );
      expect(r.stderr).toContain('nothing was changed');
      expect(r.stderr).not.toMatch(/connecting to/);
      expect(gl.state.calls).toEqual([]);
      expect((await leaseSpec())!.holderIdentity).toBe('other-host/pid-4242/0badcafe');
    } finally {
      await client.delete(lease);
    }
  });

  it('records: a save against a version someone else replaced is a conflict naming the Secret, never an overwrite', async () => {
    const ns = 'rf-records-conflict';
    const a = new KubeRecordStore<{ node: string }>(client, ns);
    const b = new KubeRecordStore<{ node: string }>(client, ns);
    // Both read "no Secret yet": only the first create wins.
    expect(await a.load()).toEqual([]);
    expect(await b.load()).toEqual([]);
    await a.save([{ node: 'pi1' }]);
    const e1 = await b.save([{ node: 'pi2' }]).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(RecordsConflictError);
    expect((e1 as Error).message).toContain(
      `Secret ${ns}/runner-fleet-records was changed by someone else since this run read it`,
    );
    // Both read the same version: the second replace is refused.
    expect(await b.load()).toEqual([{ node: 'pi1' }]);
    await a.save([{ node: 'pi1' }, { node: 'pi3' }]);
    await expect(b.save([{ node: 'pi2' }])).rejects.toBeInstanceOf(RecordsConflictError);
    expect(await new KubeRecordStore(client, ns).load()).toEqual([{ node: 'pi1' }, { node: 'pi3' }]);
    // A store that keeps writing after its own save goes on working.
    await a.save([{ node: 'pi1' }]);
    expect(await b.load()).toEqual([{ node: 'pi1' }]);
  });

  it('a frozen apiserver: every request gives up after requestTimeout naming the cluster, and apply exits 1', async () => {
    const pid = cluster.pids['kube-apiserver'];
    const timed = KubeClient.load({ kubeconfig: cluster.kubeconfig, requestTimeoutSeconds: 2 });
    // Connected before the freeze, so the test covers a server that stops answering mid-run too.
    await timed.listNodes();
    process.kill(pid, 'SIGSTOP');
    try {
      const t0 = Date.now();
      const err = await timed.listNodes().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ApiError);
      expect((err as Error).message).toBe(
        `list nodes: no answer from ${cluster.server} within 2s (kubernetes.requestTimeout)`,
      );
      expect(Date.now() - t0).toBeLessThan(5000);

      gl.reset();
      const t1 = Date.now();
      const r = await runProvision(['--inventory', inventory(', requestTimeout: 3'), '--executor', 'dood']);
      expect(r.code, r.stderr).toBe(1);
      expect(Date.now() - t1).toBeLessThan(25_000);
      expect(r.stderr).toContain(`cannot take the fleet lock on the cluster ${cluster.server}`);
      expect(r.stderr).toContain('within 3s (kubernetes.requestTimeout)');
      expect(gl.state.calls).toEqual([]);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    expect((await timed.listNodes()).map((n) => n.name).sort()).toEqual(['pi1', 'pi2']);
  });
});
