// Unit tests for the cluster manifests: shape per executor, tokens only in the Secret, broken templates refused.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError } from '../errors.js';
import { parseInventory } from '../inventory/schema.js';
import { EXECUTORS } from '../inventory/types.js';
import { MANIFESTS_DIR } from '../templates.js';
import type { KubeObject } from './objects.js';
import { renderClusterObjects } from './render.js';

const inv = parseInventory(
  `
gitlab: {url: https://gitlab.lan, registry: gitlab.lan:5050}
nodes:
  - {name: pi1, host: 127.0.0.11}
  - {name: pi2, host: 127.0.0.12}
kubernetes: {namespace: ci, nodeLabel: example.org/runner}
runners: {image: "gitlab/gitlab-runner:alpine-v17.11.0", dockerCliImage: "docker:27-cli"}
`,
  '/tmp/inventory.yaml',
);
const tokens = { pi1: 'glrt-pi1secretvalue0', pi2: 'glrt-pi2secretvalue0' };
const configs = {
  pi1: `[[runners]]\n  token = "${tokens.pi1}"\n`,
  pi2: `[[runners]]\n  token = "${tokens.pi2}"\n`,
};

type Pod = { spec: Record<string, any> };
const podOf = (objs: KubeObject[]): Pod['spec'] =>
  (objs.find((o) => o.kind === 'DaemonSet') as any).spec.template.spec;

describe('renderClusterObjects', () => {
  it.each(EXECUTORS)(
    '%s: Namespace, ServiceAccount, Secret, DaemonSet, all labelled and namespaced',
    (executor) => {
      const objs = renderClusterObjects({ inventory: inv, executor, configs, tokens });
      expect(objs.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([
        'Namespace/ci',
        'ServiceAccount/gitlab-runner',
        'Secret/runner-fleet-config',
        `DaemonSet/gitlab-runner-${executor}`,
      ]);
      for (const o of objs) expect(o.metadata.labels?.['app.kubernetes.io/managed-by']).toBe('runner-fleet');
      for (const o of objs.slice(1)) expect(o.metadata.namespace).toBe('ci');
      const pod = podOf(objs);
      expect(pod.nodeSelector).toEqual({ 'example.org/runner': 'true' });
      expect(
        pod.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]
          .matchExpressions,
      ).toEqual([{ key: 'kubernetes.io/arch', operator: 'In', values: ['arm64', 'amd64'] }]);
      const c = pod.containers[0];
      expect(c.image).toBe('gitlab/gitlab-runner:alpine-v17.11.0');
      expect(c.env[0]).toEqual({
        name: 'NODE_NAME',
        valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } },
      });
      expect(c.resources.requests).toEqual({ cpu: '50m', memory: '64Mi' });
      expect(c.securityContext?.privileged).toBeUndefined();
      expect(pod.automountServiceAccountToken).toBe(false);
      expect(pod.terminationGracePeriodSeconds).toBe(3600);
      const vols = Object.fromEntries(pod.volumes.map((v: { name: string }) => [v.name, v]));
      // The socket's folder, not the socket: a restarted dockerd's new socket is seen by the running pod.
      expect(vols['docker-run'].hostPath).toEqual({ path: '/var/run', type: 'Directory' });
      expect(c.volumeMounts).toContainEqual({
        name: 'docker-run',
        mountPath: '/run/node-docker',
        readOnly: true,
      });
      expect(c.env).toContainEqual({ name: 'DOCKER_HOST', value: 'unix:///run/node-docker/docker.sock' });
      expect(pod.initContainers[0].name).toBe('docker-cli');
      expect(vols.identity.hostPath).toEqual({
        path: `/var/lib/runner-fleet/namespaces/ci/${executor}`,
        type: 'DirectoryOrCreate',
      });
      expect(vols.config.secret).toEqual({ secretName: 'runner-fleet-config', defaultMode: 0o400 });
      expect(vols['runner-dir'].emptyDir.medium).toBe('Memory');
      // The start script must at least parse as POSIX sh.
      execFileSync('sh', ['-n', '-c', c.args[0]]);
    },
  );

  it('shell: the copied docker CLI is on PATH (the other executors have it for the Docker check only)', () => {
    const pod = podOf(renderClusterObjects({ inventory: inv, executor: 'shell', configs }));
    expect(pod.initContainers[0].image).toBe('docker:27-cli');
    expect(pod.containers[0].env.find((e: { name: string }) => e.name === 'PATH').value).toMatch(
      /^\/opt\/docker-cli:/,
    );
    expect(
      pod.containers[0].volumeMounts.some((m: { mountPath: string }) => m.mountPath === '/opt/docker-cli'),
    ).toBe(true);
    const dood = podOf(renderClusterObjects({ inventory: inv, executor: 'dood', configs }));
    expect(dood.containers[0].env.some((e: { name: string }) => e.name === 'PATH')).toBe(false);
  });

  it('keeps tokens in the Secret only, one key per node (plus recorded system_ids)', () => {
    const objs = renderClusterObjects({
      inventory: inv,
      executor: 'dood',
      configs,
      tokens,
      systemIds: { pi1: 's_0123456789ab' },
    });
    const secret = objs.find((o) => o.kind === 'Secret')!;
    expect(secret.type).toBe('Opaque');
    const data = secret.data as Record<string, string>;
    expect(Object.keys(data)).toEqual(['pi1.config.toml', 'pi1.system_id', 'pi2.config.toml']);
    expect(Buffer.from(data['pi2.config.toml'], 'base64').toString()).toBe(configs.pi2);
    for (const o of objs.filter((x) => x.kind !== 'Secret')) expect(JSON.stringify(o)).not.toMatch(/glrt-/);
  });

  it('the config Secret alone says a Sealed Secrets controller may take it over (apply first, GitOps later)', () => {
    const objs = renderClusterObjects({ inventory: inv, executor: 'dood', configs, tokens });
    expect(objs.find((o) => o.kind === 'Secret')!.metadata.annotations).toEqual({
      'sealedsecrets.bitnami.com/managed': 'true',
    });
    for (const o of objs.filter((x) => x.kind !== 'Secret')) expect(o.metadata.annotations).toBeUndefined();
  });

  it('refuses missing or unknown configs', () => {
    expect(() =>
      renderClusterObjects({ inventory: inv, executor: 'dood', configs: { pi1: 'x', pi9: 'y' } }),
    ).toThrow(/configs: no config.toml for node pi2[\s\S]*configs: pi9 is not an inventory node/);
  });

  it('refuses a customised template that drops our label, leaks a token or breaks YAML, naming the document', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rf-manifests-'));
    cpSync(MANIFESTS_DIR, dir, { recursive: true });
    const sa = join(dir, 'serviceaccount.yaml.hbs');
    writeFileSync(
      sa,
      readFileSync(sa, 'utf8').replace(
        'automountServiceAccountToken: {{json automountServiceAccountToken}}',
        'automountServiceAccountToken: false\n---\nkind: ConfigMap\napiVersion: v1\nmetadata: {name: leak, namespace: ci, labels: {app.kubernetes.io/managed-by: runner-fleet}}\ndata: {t: "glrt-pi1secretvalue0"}',
      ),
    );
    const ns = join(dir, 'namespace.yaml.hbs');
    writeFileSync(ns, readFileSync(ns, 'utf8').replace(/ {4}\{\{json @key\}\}: \{\{json this\}\}\n/, ''));
    let err: unknown;
    try {
      renderClusterObjects({ inventory: inv, executor: 'dood', configs, tokens, templateDir: dir });
    } catch (e) {
      err = e;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(err).toBeInstanceOf(InputError);
    const issues = (err as InputError).issues;
    expect(issues).toContain(
      'namespace.yaml.hbs document 1: metadata.labels["app.kubernetes.io/managed-by"] must be "runner-fleet" (prune finds our objects by it)',
    );
    expect(issues).toContain(
      'ConfigMap leak: contains a runner token; tokens may only be in the runner-fleet-config Secret',
    );
    expect((err as Error).message).not.toMatch(/glrt-pi1/);
  });
});

describe('renderClusterObjects: operator pod settings', () => {
  const tuned = parseInventory(
    `
gitlab: {url: https://gitlab.lan, registry: gitlab.lan:5050}
nodes: [{name: pi1, host: 127.0.0.11}, {name: pi2, host: 127.0.0.12}]
runners:
  version: 17.9.3
  image: "reg.lan:5000/gitlab-runner:{version}"
  metrics: { port: 9400, annotations: true }
  resources: { requests: { cpu: 100m, memory: 96Mi }, limits: { memory: 256Mi } }
  tolerations: [{ key: dedicated, value: ci, effect: NoSchedule }, { operator: Exists, effect: NoExecute, tolerationSeconds: 60 }]
  nodeSelector: { "kubernetes.io/os": linux }
`,
    '/tmp/inventory.yaml',
  );

  it('a metrics port named metrics, scrape annotations, resources, tolerations and the extra node selector', () => {
    const objs = renderClusterObjects({ inventory: tuned, executor: 'dood', configs, tokens });
    const ds = objs.find((o) => o.kind === 'DaemonSet') as any;
    expect(ds.spec.template.metadata.annotations).toEqual({
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': '9400',
      'prometheus.io/path': '/metrics',
    });
    const pod = podOf(objs);
    const c = pod.containers[0];
    expect(c.image).toBe('reg.lan:5000/gitlab-runner:17.9.3');
    expect(c.ports).toEqual([{ name: 'metrics', containerPort: 9400, protocol: 'TCP' }]);
    expect(c.resources).toEqual({ requests: { cpu: '100m', memory: '96Mi' }, limits: { memory: '256Mi' } });
    expect(pod.tolerations).toEqual([
      { key: 'dedicated', operator: 'Equal', value: 'ci', effect: 'NoSchedule' },
      { operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 60 },
    ]);
    expect(pod.nodeSelector).toEqual({
      'kubernetes.io/os': 'linux',
      'fleet.runner-fleet.dev/gitlab-runner': 'true',
    });
  });

  it('without them: no ports, annotations or tolerations, the default requests', () => {
    const pod = podOf(renderClusterObjects({ inventory: inv, executor: 'dood', configs, tokens }));
    expect(pod.containers[0].ports).toBeUndefined();
    expect(pod.tolerations).toBeUndefined();
    expect(pod.containers[0].resources).toEqual({ requests: { cpu: '50m', memory: '64Mi' } });
  });

  it('gitlab.hostAliases: the pods get one hostAliases entry per address; none without it', () => {
    const aliased = parseInventory(
      `
gitlab:
  url: https://gitlab.lan
  registry: gitlab.lan:5050
  hostAliases: {registry.lan: 10.0.0.5, gitlab.lan: 10.0.0.5, ci.lan: 10.0.0.4}
nodes: [{name: pi1, host: 127.0.0.11}, {name: pi2, host: 127.0.0.12}]
`,
      '/tmp/inventory.yaml',
    );
    const pod = podOf(renderClusterObjects({ inventory: aliased, executor: 'dood', configs, tokens }));
    expect(pod.hostAliases).toEqual([
      { ip: '10.0.0.4', hostnames: ['ci.lan'] },
      { ip: '10.0.0.5', hostnames: ['gitlab.lan', 'registry.lan'] },
    ]);
    expect(
      podOf(renderClusterObjects({ inventory: inv, executor: 'dood', configs, tokens })),
    ).not.toHaveProperty('hostAliases');
  });
});

describe('renderClusterObjects with gitlab.caFile', () => {
  it("puts the CA beside the configs in the config Secret (the runner's tls-ca-file in the pod)", () => {
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    const withCa = { ...inv, gitlab: { ...inv.gitlab, ca: { path: '/x/ca.pem', pem } } };
    const objs = renderClusterObjects({ inventory: withCa, executor: 'dind', configs, tokens });
    const secret = objs.find((o) => o.kind === 'Secret') as unknown as { data: Record<string, string> };
    expect(Buffer.from(secret.data['runner-fleet-ca.crt'], 'base64').toString('utf8')).toBe(pem);
    const without = renderClusterObjects({ inventory: inv, executor: 'dind', configs, tokens });
    const plain = without.find((o) => o.kind === 'Secret') as unknown as { data: Record<string, string> };
    expect(plain.data['runner-fleet-ca.crt']).toBeUndefined();
  });
});
