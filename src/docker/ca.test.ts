// gitlab.caFile on a node, as data: the files and registry entries each case has, the steps planned from them.
import { describe, expect, it } from 'vitest';
import type { PrivateCa } from '../inventory/types.js';
import {
  CA_HEADER,
  HOST_RUNNER_CA,
  caConsumersWithout,
  caFileContent,
  containerdCaPath,
  dockerCaPath,
} from './ca.js';
import { planHostCleanup } from './cleanup-plan.js';
import { TEST_REGISTRY, hostFacts, testNode } from './facts.fixture.js';
import { APT_DAEMON_JSON, SNAP_DAEMON_JSON, hostsTomlPath, sha256, type HostFacts } from './facts.js';
import { NO_SNAP_SETTINGS, planHost, renderHostsToml, type HostStep } from './docker-plan.js';

const REG = TEST_REGISTRY;
const CA: PrivateCa = {
  path: '/inv/ca.pem',
  pem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
};
const OTHER_CA: PrivateCa = { ...CA, pem: CA.pem.replace('MIIB', 'MIIC') };
const pods = { placement: 'cluster' as const, podCidr: '10.1.0.0/16' };

/** Facts whose gather printed these files (path → content), as gatherFacts's CA lines would. */
function withFiles(files: Record<string, string>, over: Partial<HostFacts> = {}): HostFacts {
  const base = hostFacts({
    docker: { version: '20.10.24', indexConfigs: {}, insecureCidrs: ['127.0.0.0/8'] },
    forwarding: undefined,
    ...over,
  });
  const encoded = new Map(
    Object.entries(files).map(([p, c]) => [p, Buffer.from(c, 'utf8').toString('base64')]),
  );
  return { ...base, gathered: { sections: new Map(), files: encoded } };
}

const brief = (steps: HostStep[]) =>
  steps.map(
    (s) => `${s.kind}${'path' in s ? ` ${s.path}` : ''}${s.kind === 'reload-docker' ? ` ${s.action}` : ''}`,
  );

const json = (o: unknown) => ({
  path: APT_DAEMON_JSON,
  content: JSON.stringify(o),
  sha256: sha256(JSON.stringify(o)),
});

describe('planHost with gitlab.caFile', () => {
  it('apt node with microk8s: the CA in dockerd certs.d and containerd certs.d, hosts.toml over HTTPS; no insecure entry', () => {
    const plan = planHost(
      testNode,
      [REG],
      withFiles({}, { microk8s: true }),
      undefined,
      pods,
      NO_SNAP_SETTINGS,
      CA,
    );
    expect(brief(plan.steps)).toEqual([
      `write-file /etc/docker/certs.d/${REG}/runner-fleet-ca.crt`,
      `write-file /var/snap/microk8s/current/args/certs.d/${REG}/runner-fleet-ca.crt`,
      `write-file ${hostsTomlPath(REG)}`,
    ]);
    expect(plan.notYetInsecure).toEqual([]);
    const toml = plan.steps[2] as Extract<HostStep, { kind: 'write-file' }>;
    expect(toml.content).toContain(`server = "https://${REG}"`);
    expect(toml.content).toContain(`ca = "${containerdCaPath(REG)}"`);
    const ca = plan.steps[0] as Extract<HostStep, { kind: 'write-file' }>;
    expect(ca).toMatchObject({ name: 'ca.crt', mode: '0644', expectSha256: 'absent' });
    expect(ca.content.startsWith(CA_HEADER) && ca.content.endsWith(CA.pem)).toBe(true);
  });

  it('a rerun on a converged node changes nothing', () => {
    const files = {
      [dockerCaPath('apt', REG)]: caFileContent(CA),
      [containerdCaPath(REG)]: caFileContent(CA),
    };
    const toml = renderHostsToml(REG, CA);
    const facts = withFiles(files, {
      microk8s: true,
      hostsToml: { [REG]: { path: hostsTomlPath(REG), content: toml, sha256: sha256(toml) } },
    });
    expect(planHost(testNode, [REG], facts, undefined, pods, NO_SNAP_SETTINGS, CA).steps).toEqual([]);
  });

  it('takes back the insecure entry runner-fleet added earlier (its record says so) and reloads dockerd', () => {
    const state = JSON.stringify({ 'insecure-registries-added': [REG] });
    const facts = withFiles(
      {},
      {
        aptDaemonJson: json({ 'insecure-registries': [REG, 'other:5000'] }),
        registryState: {
          [APT_DAEMON_JSON]: {
            path: `${APT_DAEMON_JSON}.runner-fleet.json`,
            content: state,
            sha256: sha256(state),
          },
        },
        docker: { version: 'x', indexConfigs: { [REG]: { Secure: false } }, insecureCidrs: [] },
      },
    );
    const plan = planHost(testNode, [REG], facts, undefined, pods, NO_SNAP_SETTINGS, CA);
    expect(brief(plan.steps)).toEqual([
      `write-file ${APT_DAEMON_JSON}`,
      'reload-docker reload',
      `write-file ${dockerCaPath('apt', REG)}`,
    ]);
    const dj = plan.steps[0] as Extract<HostStep, { kind: 'write-file' }>;
    expect(JSON.parse(dj.content)).toEqual({ 'insecure-registries': ['other:5000'] });
  });

  it("snap Docker: the snap's certs.d ($SNAP_DATA/etc/docker, its layout's /etc/docker)", () => {
    const facts = withFiles({}, { aptDocker: false, snapDocker: true, snapd: true });
    const plan = planHost(testNode, [REG], facts, undefined, pods, NO_SNAP_SETTINGS, CA);
    expect(brief(plan.steps)).toEqual([
      `write-file /var/snap/docker/current/etc/docker/certs.d/${REG}/runner-fleet-ca.crt`,
    ]);
    expect(SNAP_DAEMON_JSON.startsWith('/var/snap/docker/current/')).toBe(true);
  });

  it("placement host: the runner's tls-ca-file too; a changed CA replaces each copy", () => {
    const files = { [dockerCaPath('apt', REG)]: caFileContent(OTHER_CA) };
    const plan = planHost(
      testNode,
      [REG],
      withFiles(files),
      undefined,
      { ...pods, placement: 'host' },
      NO_SNAP_SETTINGS,
      CA,
    );
    expect(brief(plan.steps)).toEqual([
      `write-file ${dockerCaPath('apt', REG)}`,
      `write-file ${HOST_RUNNER_CA}`,
    ]);
    expect(plan.steps[0]).toMatchObject({ expectSha256: sha256(caFileContent(OTHER_CA)) });
    expect(plan.steps[0].detail).toContain('replace the private CA');
  });

  it("without gitlab.caFile: runner-fleet's copies go, a file someone else wrote stays", () => {
    const foreign = '-----BEGIN CERTIFICATE-----\nmine\n-----END CERTIFICATE-----\n';
    const files = {
      [dockerCaPath('apt', REG)]: caFileContent(CA),
      [dockerCaPath('snap', REG)]: foreign,
      [HOST_RUNNER_CA]: caFileContent(CA),
    };
    const facts = withFiles(files, {
      aptDaemonJson: json({ 'insecure-registries': [REG] }),
      docker: { version: 'x', indexConfigs: { [REG]: { Secure: false } }, insecureCidrs: [] },
    });
    const plan = planHost(testNode, [REG], facts, undefined, pods);
    expect(brief(plan.steps)).toEqual([
      `remove-file ${dockerCaPath('apt', REG)}`,
      `remove-file ${HOST_RUNNER_CA}`,
    ]);
  });
});

describe('destroy and the CA', () => {
  const toml = renderHostsToml(REG, CA);
  const facts = withFiles(
    { [dockerCaPath('apt', REG)]: caFileContent(CA), [HOST_RUNNER_CA]: caFileContent(CA) },
    {
      microk8s: true,
      hostsToml: { [REG]: { path: hostsTomlPath(REG), content: toml, sha256: sha256(toml) } },
    },
  );

  it("removes the host runner's copy always, the registries' copies and the HTTPS hosts.toml with --purge-registry-config", () => {
    const kept = planHostCleanup(testNode, [REG], facts, {
      purgeRegistryConfig: false,
      namespace: 'gitlab-runner',
      systemIds: [],
    });
    expect(kept.steps.map((s) => `${s.kind} ${'path' in s ? s.path : ''}`)).toEqual([
      `remove-file ${HOST_RUNNER_CA}`,
    ]);
    expect(kept.kept.join('\n')).toContain(dockerCaPath('apt', REG));
    const purged = planHostCleanup(testNode, [REG], facts, {
      purgeRegistryConfig: true,
      namespace: 'gitlab-runner',
      systemIds: [],
    });
    expect(purged.steps.map((s) => `${s.kind} ${'path' in s ? s.path : ''}`)).toEqual([
      `remove-file ${HOST_RUNNER_CA}`,
      `remove-file ${dockerCaPath('apt', REG)}`,
      `remove-file ${hostsTomlPath(REG)}`,
    ]);
  });
});

describe('caConsumersWithout (status)', () => {
  it('names each consumer on the node whose copy is missing or stale', () => {
    const facts = withFiles({ [dockerCaPath('apt', REG)]: caFileContent(OTHER_CA) }, { microk8s: true });
    expect(
      caConsumersWithout({
        ca: CA,
        node: testNode,
        registries: [REG],
        placement: 'host',
        executor: 'shell',
        facts,
      }),
    ).toEqual([`dockerd for ${REG}`, `microk8s containerd for ${REG}`, 'the host runner']);
    const ok = withFiles({ [dockerCaPath('apt', REG)]: caFileContent(CA) });
    expect(
      caConsumersWithout({
        ca: CA,
        node: testNode,
        registries: [REG],
        placement: 'cluster',
        executor: 'dood',
        facts: ok,
      }),
    ).toEqual([]);
  });

  it("with dind, names the dind service's dockerd beside the node's (it mounts the node dockerd's certs.d)", () => {
    expect(
      caConsumersWithout({
        ca: CA,
        node: testNode,
        registries: [REG],
        placement: 'cluster',
        executor: 'dind',
        facts: withFiles({}),
      }),
    ).toEqual([`dockerd and the dind service's dockerd (it mounts dockerd's certs.d) for ${REG}`]);
  });
});
