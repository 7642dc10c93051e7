// gitlab.caFile end to end: the registry and GitLab serve HTTPS with a certificate from a test CA. Without the CA each
// consumer fails with x509 (the apt and the snap node's Docker, microk8s's containerd pulling a pod's image, the dind
// service's dockerd); with it the real gitlab-runner contacts GitLab, clones and pushes on every executor (a host
// shell runner, then runner pods with dood and dind whose images containerd pulls over HTTPS); status names the
// consumer that lost its copy; destroy takes the copies back. The same dind runner shows the MTU: pi1's Docker network
// carries 1400 behind a path MTU black hole, and a download inside `docker build` works with the --mtu runner-fleet
// reads from the node, and hangs without it.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import {
  down,
  execOnNode,
  type FleetInfo,
  makeTestPki,
  nodeFile,
  runCiJob,
  seedImage,
  servicesNamed,
  startTlsRegistry,
  startTlsStandin,
  type TestPki,
  TLS_REGISTRY,
  tlsRegistryHasTag,
  type TlsService,
  up,
  clusterBinDir,
  blackholePathMtu,
  REGISTRY,
  type JobResult,
} from '#testbed';
import type { Executor } from '../../src/inventory/types.js';
import type { StatusReport } from '../../src/status/health.js';
import { kubectl, kubectlJson, readInventory, type InventoryDoc } from '../support/fleet.js';
import { runProvision } from '../support/provision.js';
import { requireRoot } from '../support/requireRoot.js';

const canRun = requireRoot('private CA end to end');
const X509 = 'x509: certificate signed by unknown authority';
const DOCKER_CA = `/etc/docker/certs.d/${TLS_REGISTRY}/runner-fleet-ca.crt`;
// The snap's dockerd reads certs.d in its layout's /etc/docker ($SNAP_DATA/etc/docker), never the host's.
const SNAP_DOCKER_CA = `/var/snap/docker/current/etc/docker/certs.d/${TLS_REGISTRY}/runner-fleet-ca.crt`;
const CONTAINERD_CA = `/var/snap/microk8s/current/args/certs.d/${TLS_REGISTRY}/runner-fleet-ca.crt`;
const RUNNER_CA = '/etc/gitlab-runner/runner-fleet-ca.crt';
// Pushed by the test from the nodes; the images service's base:1 (the demo Dockerfile's FROM) stays as it is.
const PUSHED = `${TLS_REGISTRY}/runner-fleet/bb:1`;
const PROBE_NS = 'ca-probe';

describe.runIf(canRun)('gitlab.caFile: one private CA for the runner, Docker and the job', () => {
  let fleet: FleetInfo;
  let pki: TestPki;
  let tmp: string;
  let registry: TlsService;
  let standin: TlsService & { info: { url: string; tlsUrl?: string; tokenFiles: Record<string, string> } };
  let inventoryPath: string;
  let inv: InventoryDoc;
  let storage: string;
  let bin: string;
  const provision = (...args: string[]) => runProvision([...args, '--inventory', inventoryPath, '--json']);
  const sh = (script: string, node = 'pi1') => execOnNode(node, ['sh', '-c', script]);
  const status = async () => {
    const r = await provision('status');
    return { code: r.code, report: JSON.parse(r.stdout) as StatusReport, stderr: r.stderr };
  };
  const push = (node: string) => sh(`docker tag bb:local ${PUSHED} && docker push ${PUSHED}`, node);
  const kube = (args: string[]) => kubectl(bin, inv.kubernetes.kubeconfig, args);
  /** A pod on pi1 whose image containerd pulls from the HTTPS registry (microk8s's certs.d: hosts.toml, CA). */
  const probePod = () => {
    const file = join(fleet.stateDir, 'ca-probe.json');
    writeFileSync(
      file,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'probe', namespace: PROBE_NS },
        spec: {
          nodeName: 'pi1',
          containers: [{ name: 'c', image: `${TLS_REGISTRY}/runner-fleet/base:1`, command: ['true'] }],
          restartPolicy: 'Never',
        },
      }),
    );
    kube(['delete', 'pod', '-n', PROBE_NS, 'probe', '--ignore-not-found', '--wait=true']);
    kube(['apply', '-f', file]);
  };
  /** Polls the probe pod until `done` says so (60 s): its phase and its events' messages. */
  const watchProbe = async (done: (phase: string, events: string) => boolean) => {
    let phase = '';
    let events = '';
    for (let i = 0; i < 120 && !done(phase, events); i++) {
      await new Promise((r) => setTimeout(r, 500));
      phase = kubectlJson(bin, inv.kubernetes.kubeconfig, ['-n', PROBE_NS, 'get', 'pod', 'probe']).status
        .phase;
      events = (kubectlJson(bin, inv.kubernetes.kubeconfig, ['-n', PROBE_NS, 'get', 'events']).items as any[])
        .map((e) => e.message ?? '')
        .join('\n');
    }
    return { phase, events };
  };
  const writeInventory = (mutate: (doc: InventoryDoc) => void) => {
    mutate(inv);
    writeFileSync(inventoryPath, stringify(inv));
  };
  const job = (executor: Executor, dockerfile?: string): Promise<JobResult> =>
    runCiJob({
      inventoryPath,
      executor,
      node: 'pi1',
      timeout: 180,
      standinUrl: standin.info.url,
      dockerfile,
    });
  /**
   * A build that prints its container's MTU (the dind service's bridge) and downloads a layer of the base image (a
   * megabyte: many full-size packets) from the plain registry, giving up after 20 s.
   */
  const downloadingBuild = async () => {
    const res = await fetch(`http://${REGISTRY}/v2/runner-fleet/base/manifests/1`, {
      headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' },
    });
    const layer = ((await res.json()) as { layers: { digest: string }[] }).layers[0].digest;
    return [
      `FROM ${TLS_REGISTRY}/runner-fleet/base:1`,
      `RUN echo "build mtu $(cat /sys/class/net/eth0/mtu)" && timeout 20 wget -q -O /dev/null http://${REGISTRY}/v2/runner-fleet/base/blobs/${layer} && echo "downloaded $(echo ok)"`,
      '',
    ].join('\n');
  };
  const expectPushed = (r: JobResult) => {
    expect(r.status, `${r.failureReason}\n${r.trace}`).toBe('success');
    const [repo, tag] = r.image.slice(TLS_REGISTRY.length + 1).split(':');
    expect(tlsRegistryHasTag(storage, repo, tag), r.trace).toBe(true);
  };

  beforeAll(async () => {
    // pi1: apt Docker and microk8s (its containerd reads runner-fleet's hosts.toml); pi2: the docker snap.
    fleet = await up({
      nodes: 2,
      kinds: ['apt', 'snap'],
      microk8s: true,
      services: servicesNamed(['images', 'cluster']),
    });
    tmp = mkdtempSync(join(tmpdir(), 'rf-private-ca-'));
    pki = await makeTestPki(join(tmp, 'pki'));
    // The plain registry's storage: the images service's runner, helper, job and dind images, served over HTTPS.
    storage = join(fleet.stateDir, 'services', 'registry', 'data');
    registry = await startTlsRegistry(join(fleet.stateDir, 'tls-registry'), pki, storage);
    standin = await startTlsStandin(join(fleet.stateDir, 'tls-gitlab'), pki);
    inv = readInventory(fleet.inventory);
    inv.gitlab = {
      url: standin.info.tlsUrl,
      registry: [TLS_REGISTRY],
      accessToken: `file:${standin.info.tokenFiles.accessToken}`,
      caFile: `file:${pki.ca}`,
    };
    // Every image from the HTTPS registry: the runner's (containerd), the helper, job and dind images (dockerd).
    const overTls = (ref: unknown) => (typeof ref === 'string' ? ref.replace(REGISTRY, TLS_REGISTRY) : ref);
    const images = ['image', 'jobImage', 'dockerCliImage', 'dindImage', 'helperImage'];
    inv.runners = {
      ...inv.runners,
      ...Object.fromEntries(images.map((k) => [k, overTls(inv.runners[k])])),
      executor: 'shell',
      placement: 'host',
      tags: ['pi'],
    };
    inventoryPath = join(fleet.stateDir, 'private-ca.yaml');
    writeFileSync(inventoryPath, stringify(inv));
    bin = await clusterBinDir();
    // pi1's Docker network is narrower than Ethernet (docker0 at 1400, as under an overlay, a VPN or PPPoE) and the
    // registry never hears ICMP "fragmentation needed": a build container on a 1500 bridge behind it gets no
    // full-size packet back. runner-fleet reads docker0's MTU and passes --mtu to the dind service.
    await sh(`printf '{"mtu": 1400}\\n' > /etc/docker/daemon.json && systemctl restart docker`);
    await blackholePathMtu();
    await Promise.all([seedImage('pi1'), seedImage('pi2')]);
  });

  afterAll(async () => {
    if (!canRun) return;
    await standin?.stop();
    await registry?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    await down();
  });

  it('without the CA every Docker and containerd refuses the registry with x509; plan lists every copy, apply makes no insecure entry', async () => {
    kube(['create', 'namespace', PROBE_NS]);
    probePod();
    const [apt, snap] = await Promise.all([push('pi1'), push('pi2')]);
    expect(apt.code).not.toBe(0);
    expect(apt.stderr).toContain(X509);
    expect(snap.code).not.toBe(0);
    expect(snap.stderr).toContain(X509);
    const pull = await watchProbe((_, events) => events.includes(X509));
    expect(pull.events).toContain(X509);

    const plan = await provision('plan');
    expect(plan.code, plan.stderr).toBe(0);
    const planned = plan.report!.nodes.flatMap((n) => n.changes.map((c) => c.detail)).join('\n');
    for (const path of [DOCKER_CA, SNAP_DOCKER_CA, CONTAINERD_CA])
      expect(planned).toContain(`${path}: add the private CA`);
    expect(existsSync(nodeFile('pi1', DOCKER_CA))).toBe(false);

    // apply returns only once each runner (tls-ca-file) has contacted the HTTPS stand-in.
    const apply = await provision();
    expect(apply.code, `${apply.stderr}\n${apply.stdout}`).toBe(0);
    expect(readFileSync(nodeFile('pi1', DOCKER_CA), 'utf8')).toContain(readFileSync(pki.ca, 'utf8').trim());
    expect(readFileSync(nodeFile('pi1', '/etc/gitlab-runner/config.toml'), 'utf8')).toContain(
      `tls-ca-file = "${RUNNER_CA}"`,
    );
    const dj = nodeFile('pi1', '/etc/docker/daemon.json');
    expect(existsSync(dj) ? readFileSync(dj, 'utf8') : '').not.toContain(TLS_REGISTRY);
    // The snap node: only the snap's folder holds the CA, and that is what its dockerd reads.
    expect([existsSync(nodeFile('pi2', SNAP_DOCKER_CA)), existsSync(nodeFile('pi2', DOCKER_CA))]).toEqual([
      true,
      false,
    ]);

    const after = await Promise.all([push('pi1'), push('pi2')]);
    expect(
      after.map((r) => r.code),
      after.map((r) => r.stderr).join('\n'),
    ).toEqual([0, 0]);
    probePod();
    const pulled = await watchProbe((phase) => phase === 'Succeeded' || phase === 'Failed');
    expect(pulled.phase, pulled.events).toBe('Succeeded');
    const again = await provision();
    expect(again.code, again.stderr).toBe(0);
    expect(again.report!.nodes.flatMap((n) => n.changes)).toEqual([]);
  }, 240_000);

  it("a CA only in the host's /etc/docker/certs.d leaves the snap's dockerd refusing the registry", async () => {
    const copy = `mkdir -p ${DOCKER_CA.replace(/\/[^/]+$/, '')} && cp ${SNAP_DOCKER_CA} ${DOCKER_CA} && mv ${SNAP_DOCKER_CA} /tmp/ca.crt`;
    expect((await sh(copy, 'pi2')).code).toBe(0);
    const r = await sh(`docker pull ${PUSHED}`, 'pi2');
    expect(r.stderr).toContain(X509);
    expect((await sh(`mv /tmp/ca.crt ${SNAP_DOCKER_CA} && rm ${DOCKER_CA}`, 'pi2')).code).toBe(0);
  });

  it('a shell job clones over HTTPS (CI_SERVER_TLS_CA_FILE), builds FROM the HTTPS registry and pushes to it', async () => {
    expectPushed(await job('shell'));
  }, 240_000);

  it('status names the consumer that lost its copy (dockerd, and the runner through the probe); apply puts both back', async () => {
    const ok = await status();
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.report.nodes[0]).toMatchObject({ healthy: true, reach: { kind: 'ok' }, ca: { missing: [] } });

    expect((await sh(`rm ${DOCKER_CA} ${RUNNER_CA}`)).code).toBe(0);
    const bad = await status();
    expect(bad.code).toBe(1);
    const problems = bad.report.nodes[0].problems.join('\n');
    expect(problems).toContain(`no copy of gitlab.caFile for dockerd for ${TLS_REGISTRY}, the host runner`);
    expect(problems).toContain(X509);
    expect(bad.report.nodes[0].reach).toMatchObject({ kind: 'failed', hop: 'tls' });
    expect(problems).toMatch(/x509: the certificate of GitLab does not verify from the node against/);

    const fixed = await provision();
    expect(fixed.code, fixed.stderr).toBe(0);
    expect(fixed.report!.nodes[0].changes.map((c) => c.step)).toEqual(['write-file', 'write-file']);
    expect((await status()).code).toBe(0);
  }, 180_000);

  it('runner pods (their image pulled by containerd over HTTPS) run a dood job that builds FROM and pushes to the HTTPS registry', async () => {
    writeInventory((doc) => {
      doc.runners = { ...doc.runners, executor: 'dood', placement: 'cluster' };
    });
    const apply = await provision();
    expect(apply.code, `${apply.stderr}\n${apply.stdout}`).toBe(0);
    expect(existsSync(nodeFile('pi1', RUNNER_CA))).toBe(false);
    expectPushed(await job('dood'));
  }, 300_000);

  it("dind: the service's dockerd trusts the CA through the mounted certs.d; without the node's copy it fails with x509 and status says so", async () => {
    writeInventory((doc) => {
      doc.runners = { ...doc.runners, executor: 'dind' };
    });
    const apply = await provision();
    expect(apply.code, `${apply.stderr}\n${apply.stdout}`).toBe(0);
    const built = await job('dind', await downloadingBuild());
    expectPushed(built);
    // --mtu=1400 (read from docker0): the service's bridge carries what the node's network does.
    expect(built.trace).toContain('build mtu 1400');
    expect(built.trace).toContain('downloaded ok');

    expect((await sh(`rm ${DOCKER_CA} ${CONTAINERD_CA}`)).code).toBe(0);
    const bad = await status();
    expect(bad.code).toBe(1);
    expect(bad.report.nodes[0].problems.join('\n')).toContain(
      `no copy of gitlab.caFile for dockerd and the dind service's dockerd (it mounts dockerd's certs.d) for ${TLS_REGISTRY}, microk8s containerd for ${TLS_REGISTRY}`,
    );
    // The job, helper and dind images are in the node's Docker already: what fails is the dind service's own pull.
    const failed = await job('dind');
    expect(failed.status, failed.trace).toBe('failed');
    expect(failed.trace).toContain(X509);
    probePod();
    const pull = await watchProbe((_, events) => events.includes(X509));
    expect(pull.events).toContain(X509);

    const fixed = await provision();
    expect(fixed.code, fixed.stderr).toBe(0);
    // Only the CA copies: the contact probe from the runner pod (busybox wget) gets a TLS handshake failure from the
    // Node.js stand-in that it does not get from the node; left to the probe's own tests.
    const ok = await status();
    expect(ok.report.nodes.map((n) => n.ca)).toEqual([{ missing: [] }, { missing: [] }]);
  }, 300_000);

  it("dind without --mtu (nodes[].mtu: 1500): the service's bridge stays at 1500 and the download in docker build hangs", async () => {
    writeInventory((doc) => {
      doc.nodes = doc.nodes.map((n: InventoryDoc) => (n.name === 'pi1' ? { ...n, mtu: 1500 } : n));
    });
    const apply = await provision();
    expect(apply.code, `${apply.stderr}\n${apply.stdout}`).toBe(0);
    // The pod follows config.toml within ~40 s (the Secret's sync, then its copy loop); a new pod reads it at once.
    const pods = kubectlJson(bin, inv.kubernetes.kubeconfig, ['-n', 'gitlab-runner', 'get', 'pods'])
      .items as any[];
    const pod = pods.find((p) => p.spec.nodeName === 'pi1').metadata.name as string;
    kube(['-n', 'gitlab-runner', 'delete', 'pod', pod]);
    const hung = await job('dind', await downloadingBuild());
    expect(hung.status, hung.trace).toBe('failed');
    expect(hung.trace).toContain('build mtu 1500');
    expect(hung.trace).not.toContain('downloaded ok');
  }, 300_000);

  it('destroy --purge-registry-config takes back every copy runner-fleet wrote', async () => {
    const r = await runProvision([
      'destroy',
      '--inventory',
      inventoryPath,
      '--yes',
      '--purge-registry-config',
    ]);
    expect(r.code, `${r.stderr}\n${r.stdout}`).toBe(0);
    const left = [
      ['pi1', DOCKER_CA],
      ['pi1', CONTAINERD_CA],
      ['pi1', RUNNER_CA],
      ['pi2', SNAP_DOCKER_CA],
    ].filter(([node, path]) => existsSync(nodeFile(node, path)));
    expect(left).toEqual([]);
  }, 120_000);
});
