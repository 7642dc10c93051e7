// gitlab.caFile end to end: the registry and GitLab serve HTTPS with a certificate from a test CA; without the CA the
// node's Docker fails with x509, with it the real gitlab-runner (placement host, shell) contacts GitLab, clones and
// pushes; status names the consumer that lost its copy; destroy takes the copies back.
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
} from '#testbed';
import type { StatusReport } from '../../src/status/health.js';
import { readInventory } from '../support/fleet.js';
import { runProvision } from '../support/provision.js';
import { requireRoot } from '../support/requireRoot.js';

const canRun = requireRoot('private CA end to end');
const X509 = 'x509: certificate signed by unknown authority';
const DOCKER_CA = `/etc/docker/certs.d/${TLS_REGISTRY}/runner-fleet-ca.crt`;
const RUNNER_CA = '/etc/gitlab-runner/runner-fleet-ca.crt';

describe.runIf(canRun)('gitlab.caFile: one private CA for the runner, Docker and the job', () => {
  let fleet: FleetInfo;
  let pki: TestPki;
  let tmp: string;
  let registry: TlsService;
  let standin: TlsService & { info: { url: string; tlsUrl?: string; tokenFiles: Record<string, string> } };
  let inventoryPath: string;
  const provision = (...args: string[]) => runProvision([...args, '--inventory', inventoryPath, '--json']);
  const sh = (script: string) => execOnNode('pi1', ['sh', '-c', script]);
  const status = async () => {
    const r = await provision('status');
    return { code: r.code, report: JSON.parse(r.stdout) as StatusReport, stderr: r.stderr };
  };

  beforeAll(async () => {
    fleet = await up({ nodes: 1, kinds: ['apt'], services: servicesNamed([]) });
    tmp = mkdtempSync(join(tmpdir(), 'rf-private-ca-'));
    pki = await makeTestPki(join(tmp, 'pki'));
    registry = await startTlsRegistry(join(fleet.stateDir, 'tls-registry'), pki);
    standin = await startTlsStandin(join(fleet.stateDir, 'tls-gitlab'), pki);
    const inv = readInventory(fleet.inventory);
    inv.gitlab = {
      url: standin.info.tlsUrl,
      registry: [TLS_REGISTRY],
      accessToken: `file:${standin.info.tokenFiles.accessToken}`,
      caFile: `file:${pki.ca}`,
    };
    inv.runners = { ...inv.runners, executor: 'shell', placement: 'host', tags: ['pi'] };
    inventoryPath = join(fleet.stateDir, 'private-ca.yaml');
    writeFileSync(inventoryPath, stringify(inv));
    await seedImage('pi1');
  });

  afterAll(async () => {
    if (!canRun) return;
    await standin?.stop();
    await registry?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    await down();
  });

  it("without the CA the node's dockerd refuses the registry with x509; plan lists every copy, apply makes no insecure entry", async () => {
    const before = await sh(
      `docker tag bb:local ${TLS_REGISTRY}/runner-fleet/base:1 && docker push ${TLS_REGISTRY}/runner-fleet/base:1`,
    );
    expect(before.code).not.toBe(0);
    expect(before.stderr).toContain(X509);

    const plan = await provision('plan');
    expect(plan.code, plan.stderr).toBe(0);
    const planned = plan.report!.nodes[0].changes.map((c) => c.detail).join('\n');
    expect(planned).toContain(`${DOCKER_CA}: add the private CA`);
    expect(existsSync(nodeFile('pi1', DOCKER_CA))).toBe(false);

    // apply returns only once the runner (tls-ca-file) has contacted the HTTPS stand-in.
    const apply = await provision();
    expect(apply.code, `${apply.stderr}\n${apply.stdout}`).toBe(0);
    expect(readFileSync(nodeFile('pi1', DOCKER_CA), 'utf8')).toContain(readFileSync(pki.ca, 'utf8').trim());
    expect(readFileSync(nodeFile('pi1', '/etc/gitlab-runner/config.toml'), 'utf8')).toContain(
      `tls-ca-file = "${RUNNER_CA}"`,
    );
    const dj = nodeFile('pi1', '/etc/docker/daemon.json');
    expect(existsSync(dj) ? readFileSync(dj, 'utf8') : '').not.toContain(TLS_REGISTRY);

    const after = await sh(`docker push ${TLS_REGISTRY}/runner-fleet/base:1`);
    expect(after.code, after.stderr).toBe(0);
    const again = await provision();
    expect(again.code, again.stderr).toBe(0);
    expect(again.report!.nodes[0].changes).toEqual([]);
  }, 240_000);

  it('a shell job clones over HTTPS (CI_SERVER_TLS_CA_FILE), builds FROM the HTTPS registry and pushes to it', async () => {
    const r = await runCiJob({
      inventoryPath,
      executor: 'shell',
      node: 'pi1',
      timeout: 180,
      standinUrl: standin.info.url,
    });
    expect(r.status, `${r.failureReason}\n${r.trace}`).toBe('success');
    const [repo, tag] = r.image.slice(TLS_REGISTRY.length + 1).split(':');
    expect(tlsRegistryHasTag(join(fleet.stateDir, 'tls-registry'), repo, tag), r.trace).toBe(true);
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

  it('destroy --purge-registry-config takes back every copy runner-fleet wrote', async () => {
    const r = await runProvision([
      'destroy',
      '--inventory',
      inventoryPath,
      '--yes',
      '--purge-registry-config',
    ]);
    expect(r.code, `${r.stderr}\n${r.stdout}`).toBe(0);
    expect([existsSync(nodeFile('pi1', DOCKER_CA)), existsSync(nodeFile('pi1', RUNNER_CA))]).toEqual([
      false,
      false,
    ]);
  });
});
