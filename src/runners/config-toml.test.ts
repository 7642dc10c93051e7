// config.toml rendering: one [[runners]] block per node, executor-specific docker settings, arch-matched helper image.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError } from '../errors.js';
import { parseInventory } from '../inventory/schema.js';
import type { Executor } from '../inventory/types.js';
import { withSecrets } from '../../test/support/secrets.js';
import { helperImageFor, renderConfigToml } from './config-toml.js';
import type { RunnerRecord } from './records.js';
import { parse as parseToml, type TomlTable } from 'smol-toml';

const inv = parseInventory(
  `
gitlab:
  url: https://gitlab.lan/
  registry: [gitlab.lan:5050, 10.0.0.5:5000]
  accessToken: env:GITLAB_TOKEN
nodes:
  - { name: pi-1, host: 10.0.0.11 }
  - { name: pi-2, host: 10.0.0.12 }
runners:
  description: "fleet {node}"
  concurrent: 3
  checkInterval: 5
  jobImage: alpine:3.20
  dindImage: docker:27-dind
`,
  '/tmp/inventory.yaml',
);

const record: RunnerRecord = {
  node: 'pi-1',
  mode: 'access',
  id: 7,
  token: 'glrt-abcdefghijklmnop"\\x',
  systemId: 's_0123456789ab',
  settings: null,
  createdAt: '2025-01-01T00:00:00.000Z',
};

function render(executor: Executor, arch = 'arm64'): { text: string; doc: TomlTable; runner: TomlTable } {
  const text = renderConfigToml({
    placement: 'cluster',
    inventory: inv,
    node: inv.nodes[0],
    record,
    executor,
    arch,
  });
  const doc = parseToml(text);
  return { text, doc, runner: (doc.runners as TomlTable[])[0] };
}

describe('renderConfigToml', () => {
  it('shell: global settings and one runner block with the node token', () => {
    const { doc, runner } = render('shell');
    expect(doc.concurrent).toBe(3);
    expect(doc.check_interval).toBe(5);
    expect(doc.runners).toHaveLength(1);
    expect(runner).toMatchObject({
      name: 'fleet pi-1',
      url: 'https://gitlab.lan',
      token: record.token,
      executor: 'shell',
      shell: 'bash',
    });
    expect(runner.docker).toBeUndefined();
  });

  it('dind: privileged docker executor with a dind service that trusts every registry', () => {
    const { runner } = render('dind');
    expect(runner.executor).toBe('docker');
    expect(runner.environment).toEqual(['DOCKER_TLS_CERTDIR=/certs']);
    const docker = runner.docker as TomlTable;
    expect(docker).toMatchObject({
      image: 'alpine:3.20',
      privileged: true,
      volumes: ['/certs/client', '/cache'],
      helper_image:
        'registry.gitlab.com/gitlab-org/gitlab-runner/gitlab-runner-helper:arm64-v${CI_RUNNER_VERSION}',
    });
    expect(docker.network_mode).toBeUndefined();
    expect(docker.services).toEqual([
      {
        name: 'docker:27-dind',
        alias: 'docker',
        command: ['--insecure-registry=gitlab.lan:5050', '--insecure-registry=10.0.0.5:5000'],
      },
    ]);
  });

  it('dood: unprivileged, host socket, the job network Docker gives it (services reachable by alias)', () => {
    const { runner } = render('dood', 'amd64');
    const docker = runner.docker as TomlTable;
    // network_mode = "host" would disable the links that make `services:` reachable by alias.
    expect(docker.network_mode).toBeUndefined();
    expect(docker.pull_policy).toBeUndefined();
    expect(docker).toMatchObject({
      privileged: false,
      volumes: ['/var/run/docker.sock:/var/run/docker.sock', '/cache'],
      helper_image:
        'registry.gitlab.com/gitlab-org/gitlab-runner/gitlab-runner-helper:x86_64-v${CI_RUNNER_VERSION}',
    });
    expect(docker.services).toBeUndefined();
    expect(runner.environment).toBeUndefined();
  });

  it('helper image follows the node architecture in Debian or kernel spelling', () => {
    expect(helperImageFor('aarch64')).toMatch(/:arm64-v\$\{CI_RUNNER_VERSION\}$/);
    expect(helperImageFor('armhf')).toMatch(/:arm-v/);
    expect(helperImageFor('x86_64')).toMatch(/:x86_64-v/);
    expect(() => helperImageFor('riscv64')).toThrow(InputError);
  });

  it('runners.dindService: job leaves the dind service to the jobs that declare it', () => {
    const jobSide = { ...inv, runners: { ...inv.runners, dindService: 'job' as const } };
    const text = renderConfigToml({
      placement: 'cluster',
      inventory: jobSide,
      node: inv.nodes[0],
      record,
      executor: 'dind',
      arch: 'arm64',
    });
    const docker = (parseToml(text).runners as TomlTable[])[0].docker as TomlTable;
    expect(docker.services).toBeUndefined();
    expect(docker.privileged).toBe(true);
  });

  it('runners.helperImage (with {arch}) and runners.pullPolicy reach [runners.docker]', () => {
    const custom = parseInventory(
      `
gitlab: { url: https://gitlab.lan/, registry: [gitlab.lan:5050], accessToken: env:GITLAB_TOKEN }
nodes: [{ name: pi-1, host: 10.0.0.11 }]
runners:
  helperImage: "gitlab.lan:5050/mirror/helper:{arch}-v\${CI_RUNNER_VERSION}"
  pullPolicy: [if-not-present, always]
`,
      '/tmp/inventory.yaml',
    );
    for (const executor of ['dind', 'dood'] as const) {
      const text = renderConfigToml({
        placement: 'cluster',
        inventory: custom,
        node: custom.nodes[0],
        record,
        executor,
        arch: 'aarch64',
      });
      const docker = (parseToml(text).runners as TomlTable[])[0].docker as TomlTable;
      expect(docker.helper_image).toBe('gitlab.lan:5050/mirror/helper:arm64-v${CI_RUNNER_VERSION}');
      expect(docker.pull_policy).toEqual(['if-not-present', 'always']);
    }
  });

  it('escapes DEL and every other control character, so gitlab-runner (BurntSushi/toml) can read the file', () => {
    const nasty = `x\u007fy\u0001z\u001f\tq`;
    const hostile = { ...inv, runners: { ...inv.runners, description: `${nasty} {node}` } };
    const text = renderConfigToml({
      placement: 'cluster',
      inventory: hostile,
      node: inv.nodes[0],
      record,
      executor: 'dood',
      arch: 'arm64',
    });
    expect(text).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f]/); // eslint-disable-line no-control-regex
    expect(text).toContain('\\u007f');
    expect(((parseToml(text).runners as TomlTable[])[0] as TomlTable).name).toBe(`${nasty} pi-1`);
  });

  it('refuses a lone surrogate without quoting the token', () => {
    const hostile = { ...inv, runners: { ...inv.runners, description: 'half \ud800 {node}' } };
    let err: unknown;
    try {
      renderConfigToml({
        placement: 'cluster',
        inventory: hostile,
        node: inv.nodes[0],
        record,
        executor: 'shell',
        arch: 'arm64',
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toMatch(/lone UTF-16 surrogate/);
    expect((err as Error).message).not.toContain('glrt-');
  });

  it('the checker rejects what TOML forbids raw (a DEL inside a string)', () => {
    expect(() => parseToml('name = "a\u007fb"\n')).toThrow(/control characters/);
  });
});

describe('renderConfigToml: operator settings', () => {
  const withSettings = parseInventory(
    `
gitlab: { url: https://gitlab.lan, registry: gitlab.lan:5050 }
nodes: [{ name: pi-1, host: 10.0.0.11 }]
runners:
  cache: { serverAddress: "minio.lan:9000", bucketName: runner-cache, insecure: true, accessKey: env:RF_CACHE_AK, secretKey: "file:/run/secrets/sk" }
  metrics: { port: 9400 }
  jobResources: { memory: 2g, cpus: 1.5 }
`,
    '/tmp/inventory.yaml',
  );
  const withKeys = withSecrets(withSettings, {
    'runners.cache.accessKey': 'AKIA-test',
    'runners.cache.secretKey': 'sk-test/with"quote',
  });

  it('writes [runners.cache] and [runners.cache.s3] as gitlab-runner 17.9 names them, keys resolved from their references', () => {
    const text = renderConfigToml({
      placement: 'cluster',
      inventory: withKeys,
      node: withKeys.nodes[0],
      record: { ...record, node: 'pi-1' },
      executor: 'dood',
      arch: 'arm64',
    });
    expect(text).toContain('[runners.cache]\n');
    expect(text).toContain('[runners.cache.s3]\n');
    const runner = (parseToml(text).runners as TomlTable[])[0];
    expect(runner.cache).toEqual({
      Type: 's3',
      Shared: true,
      s3: {
        ServerAddress: 'minio.lan:9000',
        AccessKey: 'AKIA-test',
        SecretKey: 'sk-test/with"quote',
        BucketName: 'runner-cache',
        Insecure: true,
        AuthenticationType: 'access-key',
      },
    });
  });

  it('listens for metrics on the port and limits each job container', () => {
    const text = renderConfigToml({
      placement: 'cluster',
      inventory: withKeys,
      node: withKeys.nodes[0],
      record: { ...record, node: 'pi-1' },
      executor: 'dind',
      arch: 'arm64',
    });
    const doc = parseToml(text);
    expect(doc.listen_address).toBe(':9400');
    expect((doc.runners as TomlTable[])[0].docker).toMatchObject({ memory: '2g', cpus: '1.5' });
    // Without the settings: no listener, no limits, no cache.
    const plain = parseToml(render('dood').text);
    expect(plain.listen_address).toBeUndefined();
    expect((plain.runners as TomlTable[])[0].cache).toBeUndefined();
    expect(((plain.runners as TomlTable[])[0].docker as TomlTable).memory).toBeUndefined();
  });

  it('host runners listen for metrics on 127.0.0.1 only (pprof and the job list share the port), unless the inventory names an address', () => {
    const listen = (inventory: typeof withSettings, placement: 'host' | 'cluster') =>
      parseToml(
        renderConfigToml({
          placement,
          inventory,
          node: inventory.nodes[0],
          record: { ...record, node: 'pi-1' },
          executor: 'shell',
          arch: 'arm64',
        }),
      ).listen_address;
    expect(listen(withKeys, 'host')).toBe('127.0.0.1:9400');
    expect(listen(withKeys, 'cluster')).toBe(':9400');
    const at = (address: string) =>
      parseInventory(
        `gitlab: { url: https://gitlab.lan, registry: gitlab.lan:5050 }\nnodes: [{ name: pi-1, host: 10.0.0.11 }]\nrunners: { metrics: { port: 9400, address: "${address}" } }\n`,
        '/tmp/inventory.yaml',
      );
    expect(listen(at('0.0.0.0'), 'host')).toBe('0.0.0.0:9400');
    expect(listen(at('fd00::11'), 'host')).toBe('[fd00::11]:9400');
    // A pod listens on its pod IP whatever the address says: that is where Prometheus and status reach it.
    expect(listen(at('10.0.0.11'), 'cluster')).toBe(':9400');
  });

  it('never reads a reference itself: one not read up front (readInventorySecrets) is a bug', () => {
    expect(() =>
      renderConfigToml({
        placement: 'cluster',
        inventory: withSettings,
        node: withSettings.nodes[0],
        record: { ...record, node: 'pi-1' },
        executor: 'dood',
        arch: 'arm64',
      }),
    ).toThrow('runners.cache.accessKey was not read before the run');
  });

  it('dind: the MTU the node carries reaches the service dockerd (--mtu) and network_mtu; absent, neither', () => {
    const text = renderConfigToml({
      placement: 'cluster',
      inventory: inv,
      node: inv.nodes[0],
      record,
      executor: 'dind',
      arch: 'arm64',
      mtu: 1400,
    });
    const docker = ((parseToml(text).runners as TomlTable[])[0].docker ?? {}) as TomlTable;
    expect((docker.services as TomlTable[])[0].command).toEqual([
      '--insecure-registry=gitlab.lan:5050',
      '--insecure-registry=10.0.0.5:5000',
      '--mtu=1400',
    ]);
    expect(docker.network_mtu).toBe(1400);
    const plain = render('dind').runner.docker as TomlTable;
    expect(plain.network_mtu).toBeUndefined();
    expect(JSON.stringify(plain.services)).not.toContain('--mtu');
  });

  it('gitlab.hostAliases: extra_hosts for every docker executor, sorted; none for shell', () => {
    const aliased = parseInventory(
      `
gitlab:
  url: https://gitlab.lan/
  registry: gitlab.lan:5050
  accessToken: env:GITLAB_TOKEN
  hostAliases: {registry.lan: 10.0.0.6, gitlab.lan: 10.0.0.5}
nodes: [{ name: pi-1, host: 10.0.0.11 }]
`,
      '/tmp/inventory.yaml',
    );
    for (const executor of ['dind', 'dood'] as const) {
      const text = renderConfigToml({
        placement: 'cluster',
        inventory: aliased,
        node: aliased.nodes[0],
        record,
        executor,
        arch: 'arm64',
      });
      const docker = (parseToml(text).runners as TomlTable[])[0].docker as TomlTable;
      expect(docker.extra_hosts).toEqual(['gitlab.lan:10.0.0.5', 'registry.lan:10.0.0.6']);
    }
    expect(render('dood').runner.docker).not.toHaveProperty('extra_hosts');
  });
});

describe('renderConfigToml with gitlab.caFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-ca-'));
  const caPath = join(dir, 'ca.pem');
  writeFileSync(caPath, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
  const yaml = (placement: string) => `
gitlab:
  url: https://gitlab.lan/
  registry: [gitlab.lan:5050]
  accessToken: env:GITLAB_TOKEN
  caFile: file:ca.pem
nodes:
  - { name: pi-1, host: 10.0.0.11 }
runners:
  placement: ${placement}
  executor: ${placement === 'host' ? 'shell' : 'dind'}
`;
  const renderWith = (placement: string, executor: Executor) => {
    const ca = parseInventory(yaml(placement), join(dir, 'inventory.yaml'));
    const text = renderConfigToml({
      placement: ca.runners.placement,
      inventory: ca,
      node: ca.nodes[0],
      record,
      executor,
      arch: 'arm64',
    });
    return (parseToml(text).runners as TomlTable[])[0];
  };

  it("names the runner's copy in tls-ca-file: the config Secret's in a pod, runner-fleet's file on a host", () => {
    expect(renderWith('cluster', 'dood')['tls-ca-file']).toBe('/secrets/runner-fleet-ca.crt');
    expect(renderWith('host', 'shell')['tls-ca-file']).toBe('/etc/gitlab-runner/runner-fleet-ca.crt');
    expect(render('dood').runner['tls-ca-file']).toBeUndefined();
  });

  it("dind: the service gets the node's certs.d instead of --insecure-registry", () => {
    const docker = renderWith('cluster', 'dind').docker as TomlTable;
    expect(docker.volumes).toContain('/etc/docker/certs.d:/etc/docker/certs.d:ro');
    expect((docker.services as TomlTable[])[0].command).toEqual([]);
    const dood = renderWith('cluster', 'dood').docker as TomlTable;
    expect(dood.volumes).not.toContain('/etc/docker/certs.d:/etc/docker/certs.d:ro');
  });
});
