import { describe, expect, it } from 'vitest';
import { InputError } from '../errors.js';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { redact } from '../secrets.js';
import { loadInventory, parseInventory } from './schema.js';

const base = `
gitlab:
  url: http://gitlab.lan
  registry: gitlab.lan:5050
nodes:
  - name: pi1
    host: 10.0.0.1
  - name: pi2
    host: 10.0.0.2
    docker: snap
`;

function issuesOf(text: string, opts = {}): string[] {
  try {
    parseInventory(text, '/x/fleet.yaml', opts);
  } catch (err) {
    if (err instanceof InputError) return err.issues;
    throw err;
  }
  return [];
}

describe('parseInventory', () => {
  it('fills defaults and resolves paths against the inventory folder', () => {
    const inv = parseInventory(base, '/x/fleet.yaml');
    expect(inv.gitlab.registries).toEqual(['gitlab.lan:5050']);
    expect(inv.nodes.map((n) => [n.name, n.port, n.user, n.docker])).toEqual([
      ['pi1', 22, 'pi', 'auto'],
      ['pi2', 22, 'pi', 'snap'],
    ]);
    expect(inv.runners.executor).toBe('dood');
    expect(inv.kubernetes.namespace).toBe('gitlab-runner');
  });

  it("kubernetes.podCidr: microk8s's 10.1.0.0/16 unless given; an IPv4 network without host bits", () => {
    expect(parseInventory(base, '/x/fleet.yaml').kubernetes.podCidr).toBe('10.1.0.0/16');
    expect(
      parseInventory(`${base}kubernetes: { podCidr: 10.244.0.0/24 }\n`, '/x/f.yaml').kubernetes.podCidr,
    ).toBe('10.244.0.0/24');
    expect(issuesOf(`${base}kubernetes: { podCidr: 10.1.2.3/16 }\n`)).toEqual([
      'kubernetes.podCidr: has host bits set; the network is 10.1.0.0/16',
    ]);
    expect(issuesOf(`${base}kubernetes: { podCidr: fd00::/64 }\n`)).toEqual([
      'kubernetes.podCidr: expected an IPv4 network such as 10.1.0.0/16',
    ]);
  });

  it("kubernetes.sealedSecrets: kubeseal's controller unless named (the Helm chart's is sealed-secrets)", () => {
    expect(parseInventory(base, '/x/fleet.yaml').kubernetes.sealedSecrets).toEqual({
      controllerName: 'sealed-secrets-controller',
      controllerNamespace: 'kube-system',
    });
    expect(
      parseInventory(
        `${base}kubernetes: { sealedSecrets: { controllerName: sealed-secrets } }\n`,
        '/x/f.yaml',
      ).kubernetes.sealedSecrets,
    ).toEqual({ controllerName: 'sealed-secrets', controllerNamespace: 'kube-system' });
    expect(
      issuesOf(`${base}kubernetes: { sealedSecrets: { controllerNamespace: Kube_System, name: x } }\n`),
    ).toEqual([
      'kubernetes.sealedSecrets.controllerNamespace: expected a Kubernetes namespace name (lowercase letters, digits and -, at most 63 characters)',
      'kubernetes.sealedSecrets.name: unknown key (allowed: controllerName, controllerNamespace)',
    ]);
  });

  it('runners.pullPolicy: one or a list of gitlab-runner spellings, each once; runners.helperImage without spaces', () => {
    const inv = parseInventory(`${base}runners: { pullPolicy: if-not-present }\n`, '/x/fleet.yaml');
    expect(inv.runners.pullPolicy).toEqual(['if-not-present']);
    expect(parseInventory(base, '/x/fleet.yaml').runners.pullPolicy).toBeUndefined();
    expect(issuesOf(`${base}runners: { pullPolicy: [always, IfNotPresent, always] }\n`)).toEqual([
      'runners.pullPolicy[1]: expected always | if-not-present | never, got "IfNotPresent"',
      'runners.pullPolicy[2]: always is listed twice',
    ]);
    expect(issuesOf(`${base}runners: { pullPolicy: [] }\n`)).toEqual([
      'runners.pullPolicy: expected at least one policy',
    ]);
    expect(issuesOf(`${base}runners: { helperImage: "reg.lan/helper:{arch} latest" }\n`)[0]).toMatch(
      /^runners\.helperImage: expected an image reference/,
    );
  });

  it('gitlab.hostAliases: host names to addresses; nodes[].mtu: an optional integer MTU', () => {
    const inv = parseInventory(
      base.replace(
        '  registry: gitlab.lan:5050',
        '  registry: gitlab.lan:5050\n  hostAliases: {gitlab.lan: 10.0.0.9}',
      ) + '    mtu: 1400\n',
      '/x/fleet.yaml',
    );
    expect(inv.gitlab.hostAliases).toEqual({ 'gitlab.lan': '10.0.0.9' });
    expect(inv.nodes.map((n) => n.mtu)).toEqual([undefined, 1400]);
    expect(parseInventory(base, '/x/fleet.yaml').gitlab.hostAliases).toEqual({});
    const bad = base.replace(
      '  registry: gitlab.lan:5050',
      '  registry: gitlab.lan:5050\n  hostAliases: {"gitlab lan": 10.0.0.9, gitlab.lan: gitlab.example}',
    );
    expect(issuesOf(`${bad}    mtu: 100\n`)).toEqual([
      'gitlab.hostAliases.gitlab lan: expected a host name (letters, digits, - and .)',
      'gitlab.hostAliases.gitlab.lan: expected an IPv4 or IPv6 address',
      'nodes[1].mtu: expected an integer from 576 to 9000, got 100',
    ]);
  });

  it('names the path of a bad docker value', () => {
    expect(issuesOf(base.replace('docker: snap', 'docker: brew'))).toEqual([
      'nodes[1].docker: expected apt | snap | auto, got "brew"',
    ]);
  });

  it('rejects unknown keys, duplicate names and hosts', () => {
    const text = `${base}  - name: pi1\n    host: 10.0.0.2\n    colour: red\n`;
    const issues = issuesOf(text);
    expect(issues).toContain(
      'nodes[2].colour: unknown key (allowed: name, host, port, user, identityFile, knownHosts, docker, microk8s, mtu)',
    );
    expect(issues).toContain('nodes[2].name: duplicate node name "pi1" (also nodes[0])');
    expect(issues).toContain('nodes[2].host: duplicate host 10.0.0.2:22 (also nodes[1])');
  });

  it('reports every unknown key, a list where a mapping belongs, and takes `key: null` as absent', () => {
    expect(issuesOf(`${base}runners: { colour: red, size: 3 }\n`)).toEqual([
      expect.stringMatching(/^runners\.colour: unknown key \(allowed: executor, placement, /),
      expect.stringMatching(/^runners\.size: unknown key \(allowed: /),
    ]);
    expect(issuesOf(`${base}ssh: [a]\n`)).toEqual(['ssh: expected a mapping, got a list']);
    expect(issuesOf(`${base}kubernetes: { "__proto__": { namespace: x } }\n`)).toEqual([
      expect.stringMatching(/^kubernetes\.__proto__: unknown key/),
    ]);
    const inv = parseInventory(`${base}kubernetes:\n  namespace:\nrunners:\n`, '/x/fleet.yaml');
    expect([inv.kubernetes.namespace, inv.runners.concurrent]).toEqual(['gitlab-runner', 1]);
    expect(issuesOf('nodes: [{ name: pi1 }]\n')).toEqual([
      'gitlab: is required',
      'nodes[0].host: is required',
    ]);
  });

  it('checks cross-field rules even where other fields of the same mapping are wrong', () => {
    const text = base.replace(
      'registry: gitlab.lan:5050',
      'registry: gitlab.lan:5050\n  accessToken: env:A\n  runnerToken: env:B\n  runnerType: project_type\n  timeout: 0',
    );
    expect(issuesOf(text)).toEqual([
      'gitlab.timeout: expected an integer from 1 to 600, got 0',
      'gitlab: set only one of accessToken, runnerToken, registrationToken (got accessToken, runnerToken)',
      'gitlab.projectId: is required when runnerType is project_type',
    ]);
  });

  it('one registry spelled twice (case, port digits, IPv6 form) is refused; the same spelling twice is one', () => {
    const listed = (regs: string) => base.replace('registry: gitlab.lan:5050', `registry: [${regs}]`);
    expect(
      issuesOf(
        listed(
          'gitlab.lan:5050, Gitlab.LAN:5050, "gitlab.lan:05050", "[2001:db8::5]:5000", "[2001:DB8:0::5]:5000"',
        ),
      ),
    ).toEqual([
      expect.stringMatching(
        /^gitlab\.registry\[1\]: Gitlab\.LAN:5050 is gitlab\.registry\[0\] \(gitlab\.lan:5050\) again: host names are case-insensitive/,
      ),
      expect.stringMatching(/^gitlab\.registry\[2\]: gitlab\.lan:05050 is gitlab\.registry\[0\]/),
      expect.stringMatching(/^gitlab\.registry\[4\]: \[2001:DB8:0::5\]:5000 is gitlab\.registry\[3\]/),
    ]);
    const inv = parseInventory(
      listed('gitlab.lan:5050, other.lan:5050, gitlab.lan:5050, gitlab.lan:5051'),
      '/x/fleet.yaml',
    );
    expect(inv.gitlab.registries).toEqual(['gitlab.lan:5050', 'other.lan:5050', 'gitlab.lan:5051']);
  });

  it('rejects a registry with a scheme', () => {
    expect(issuesOf(base.replace('registry: gitlab.lan:5050', 'registry: [http://gitlab.lan:5050]'))).toEqual(
      ['gitlab.registry[0]: expected host:port without a scheme (e.g. gitlab.lan:5050)'],
    );
  });

  it('rejects a bad executor from the inventory or the command line', () => {
    expect(issuesOf(`${base}runners:\n  executor: kubernetes\n`)).toEqual([
      'runners.executor: expected shell | dind | dood, got "kubernetes"',
    ]);
    expect(issuesOf(base, { executor: 'docker' })).toEqual([
      '--executor: expected shell | dind | dood, got "docker"',
    ]);
  });

  it('accepts secrets only by reference and never echoes an inline token', () => {
    const issues = issuesOf(
      base.replace(
        'registry: gitlab.lan:5050',
        'registry: gitlab.lan:5050\n  accessToken: glpat-abcdefghijklmnop',
      ),
    );
    expect(issues).toEqual([
      'gitlab.accessToken: expected a reference `env:NAME` or `file:PATH` (secrets are never written inline)',
    ]);
    expect(issues.join()).not.toContain('glpat-');
  });

  it('host placement needs the shell executor', () => {
    expect(issuesOf(`${base}runners:\n  placement: host\n`)).toEqual([
      'runners.placement: host placement needs the shell executor (executor is dood)',
    ]);
    expect(issuesOf(`${base}runners:\n  placement: host\n  executor: shell\n`)).toEqual([]);
  });

  it("installs host runners from GitLab's repository unless a mirror and its pinned key are named", () => {
    expect(parseInventory(base, '/x/fleet.yaml').runners.packageRepository).toEqual({
      url: 'https://packages.gitlab.com/runner/gitlab-runner',
      key: { kind: 'url', url: 'https://packages.gitlab.com/runner/gitlab-runner/gpgkey' },
      fingerprint: 'F6403F6544A38863DAA0B6E03F01618A51312F3F',
    });
    const mirror = `${base}runners:\n  packageRepository:\n    url: https://apt.lan/gitlab-runner/\n    key: file:keys/mirror.asc\n    fingerprint: a0d3 d76d cdc5 b3a3 95ea  d837 1ebf e911 b8f8 121f\n`;
    expect(parseInventory(mirror, '/x/fleet.yaml').runners.packageRepository).toEqual({
      url: 'https://apt.lan/gitlab-runner',
      key: { kind: 'file', path: '/x/keys/mirror.asc' },
      fingerprint: 'A0D3D76DCDC5B3A395EAD8371EBFE911B8F8121F',
    });
    expect(issuesOf(`${base}runners:\n  packageRepository:\n    key: https://apt.lan/key.asc\n`)).toEqual([
      'runners.packageRepository.fingerprint: is required when key is set (runner-fleet refuses a key whose fingerprint it cannot check)',
    ]);
    expect(
      issuesOf(`${base}runners:\n  packageRepository:\n    key: /k.asc\n    fingerprint: F640\n`),
    ).toEqual([
      'runners.packageRepository.key: expected an http(s):// URL or file:PATH',
      "runners.packageRepository.fingerprint: expected the key's full fingerprint (40 hex digits, spaces allowed)",
    ]);
  });

  it('reports YAML syntax errors and duplicate keys', () => {
    expect(issuesOf('gitlab: [\n')[0]).toMatch(/YAML/);
    expect(issuesOf(`${base}nodes: []\n`)[0]).toMatch(/YAML/);
  });
});

describe('parseInventory: hostile and oversized input', () => {
  it('validates registries as dockerd does and names the path', () => {
    const text = base.replace(
      'registry: gitlab.lan:5050',
      'registry: [gitlab.lan:5050, "reg.lan:99999", "[..]:5000", reg.lan:0]',
    );
    expect(issuesOf(text)).toEqual([
      'gitlab.registry[1]: invalid port "99999" (expected 1–65535; dockerd refuses to start with it)',
      'gitlab.registry[2]: [..] is not an IPv6 address (zones are not allowed)',
      'gitlab.registry[3]: invalid port "0" (expected 1–65535; dockerd refuses to start with it)',
    ]);
  });

  it('refuses a GitLab URL with a user or password, and never echoes it', () => {
    for (const url of [
      'http://user:s3cret-pw@gitlab.lan',
      'https://s3cret-pw@gitlab.lan/',
      'http://:s3cret-pw@gitlab.lan',
    ]) {
      const issues = issuesOf(base.replace('url: http://gitlab.lan', `url: ${url}`));
      expect(issues).toEqual([
        expect.stringMatching(/^gitlab\.url: must not contain a user name or password/),
      ]);
      expect(issues.join()).not.toContain('s3cret-pw');
    }
  });

  it('refuses an alias bomb as bad input', () => {
    const bomb = `a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n`;
    let err: unknown;
    try {
      parseInventory(`${base}${bomb}`, '/x/fleet.yaml');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InputError);
    expect((err as InputError).issues[0]).toMatch(/YAML .*alias/i);
  });

  it('enforces GitLab and Kubernetes size limits up front', () => {
    expect(issuesOf(`${base}runners:\n  description: "${'d'.repeat(1025)}"\n`)).toEqual([
      'runners.description: is 1025 characters long; at most 1024 allowed',
    ]);
    const longName = base.replace('name: pi1', 'name: pi-with-a-long-name-0001');
    expect(issuesOf(`${longName}runners:\n  description: "${'d'.repeat(1010)} {node}"\n`)).toEqual([
      'runners.description: is 1035 characters long for node pi-with-a-long-name-0001; GitLab allows at most 1024',
    ]);
    expect(
      issuesOf(`${base}runners:\n  tags: [${Array.from({ length: 51 }, (_, i) => `t${i}`).join(', ')}]\n`),
    ).toEqual(['runners.tags: 51 tags; GitLab allows at most 50']);
    expect(issuesOf(`${base}runners:\n  tags: ["${'t'.repeat(256)}"]\n`)).toEqual([
      "runners.tags[0]: a tag is at most 255 characters (GitLab's limit)",
    ]);
    expect(issuesOf(`${base}kubernetes:\n  namespace: a.b\n`)[0]).toMatch(
      /^kubernetes\.namespace: expected a Kubernetes namespace name/,
    );
    expect(issuesOf(`${base}kubernetes:\n  nodeLabel: x/${'l'.repeat(64)}\n`)[0]).toMatch(
      /^kubernetes\.nodeLabel: expected a Kubernetes label key/,
    );
    const many = Array.from(
      { length: 400 },
      (_, i) => `  - { name: n${i}, host: 10.1.${i >> 8}.${i & 255} }`,
    ).join('\n');
    const big = `gitlab:\n  url: http://gitlab.lan\n  registry: gitlab.lan:5050\nnodes:\n${many}\nrunners:\n  description: "${'d'.repeat(1000)}"\n  tags: [${Array.from({ length: 50 }, () => `"${'t'.repeat(250)}"`).join(', ')}]\n`;
    expect(issuesOf(big)).toEqual([
      expect.stringMatching(
        /^nodes: 400 nodes with these settings need about \d+ KiB in one Secret; Kubernetes allows at most 1 MiB$/,
      ),
    ]);
  });

  it('refuses half a UTF-16 character from a YAML escape (no file can carry it)', () => {
    expect(issuesOf(`${base}runners:\n  description: "a \\ud800 b"\n  tags: ["\\udc00"]\n`)).toEqual([
      'runners.tags[0]: holds half a UTF-16 character (a YAML \\u escape of a lone surrogate); no file can carry it',
      'runners.description: holds half a UTF-16 character (a YAML \\u escape of a lone surrogate); no file can carry it',
    ]);
  });

  it('catches two spellings of one host on one port', () => {
    const text = base
      .replace('host: 10.0.0.1', 'host: localhost')
      .replace('host: 10.0.0.2', 'host: 127.0.0.1');
    expect(issuesOf(text)).toEqual([
      'nodes[1].host: duplicate host 127.0.0.1:22 (also nodes[0], as localhost: the same address)',
    ]);
    expect(issuesOf(base.replace('host: 10.0.0.2', 'host: 10.0.0.1\n    port: 2222'))).toEqual([]);
  });
});

describe('loadInventory', () => {
  it('refuses an inventory that is not UTF-8 instead of running with replacement characters', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rf-inv-'));
    const path = join(dir, 'fleet.yaml');
    writeFileSync(
      path,
      Buffer.concat([
        Buffer.from(`${base}runners:\n  description: "caf`),
        Buffer.from([0xe9]),
        Buffer.from('"\n'),
      ]),
    );
    expect(() => loadInventory(path)).toThrow(InputError);
    expect(() => loadInventory(path)).toThrow(/not valid UTF-8/);
    writeFileSync(path, `${base}runners:\n  description: "café {node}"\n`);
    expect(loadInventory(path).runners.description).toBe('café {node}');
  });
});

describe('redact', () => {
  it('hides the credentials of any URL in a message', () => {
    expect(redact('GET http://user:pw@gitlab.lan/api/v4 failed; also https://tok@x.lan')).toBe(
      'GET http://[REDACTED]@gitlab.lan/api/v4 failed; also https://[REDACTED]@x.lan',
    );
  });
});

describe('parseInventory: operator settings (cache, metrics, mirrors, logs, limits, versions)', () => {
  it("fills the defaults: no cache, no metrics, the runner pod's requests, no mirrors or log settings", () => {
    const inv = parseInventory(base, '/x/fleet.yaml');
    expect(inv.runners.cache).toBeUndefined();
    expect(inv.runners.metrics).toBeUndefined();
    expect(inv.runners.version).toBeUndefined();
    expect(inv.runners.image).toBe('gitlab/gitlab-runner:alpine-v17.11.0');
    expect(inv.runners.resources).toEqual({ requests: { cpu: '50m', memory: '64Mi' } });
    expect([inv.runners.tolerations, inv.runners.nodeSelector, inv.runners.jobResources]).toEqual([
      [],
      {},
      undefined,
    ]);
    expect(inv.docker).toEqual({ registryMirrors: [] });
  });

  it('runners.contactTimeout: 120 s by default, 0 skips the wait, never shorter than checkInterval', () => {
    expect(parseInventory(base, '/x/fleet.yaml').runners.contactTimeout).toBe(120);
    expect(
      parseInventory(`${base}runners: { contactTimeout: 0 }\n`, '/x/fleet.yaml').runners.contactTimeout,
    ).toBe(0);
    expect(issuesOf(`${base}runners: { contactTimeout: -1 }\n`)).toEqual([
      'runners.contactTimeout: expected an integer from 0 to 3600, got -1',
    ]);
    expect(issuesOf(`${base}runners: { contactTimeout: 5, checkInterval: 10 }\n`)).toEqual([
      'runners.contactTimeout: 5 s is shorter than runners.checkInterval (10 s), how often a runner asks GitLab for jobs; use 0 to skip the wait',
    ]);
  });

  it('runners.version fills {version} in the images; an image without it is refused', () => {
    const inv = parseInventory(
      `${base}runners: { version: 17.9.3, helperImage: "reg.lan/helper:{arch}-v{version}" }\n`,
      '/x/fleet.yaml',
    );
    expect([inv.runners.image, inv.runners.helperImage]).toEqual([
      'gitlab/gitlab-runner:alpine-v17.9.3',
      'reg.lan/helper:{arch}-v17.9.3',
    ]);
    expect(issuesOf(`${base}runners: { version: 17.9.3, image: "reg.lan/gitlab-runner:17.9.3" }\n`)).toEqual([
      expect.stringMatching(/^runners\.image: put \{version\} in the tag/),
    ]);
    expect(issuesOf(`${base}runners: { version: "17.9", image: "r/g:{version}" }\n`)).toEqual([
      'runners.version: expected a gitlab-runner version such as 17.9.3',
    ]);
    expect(issuesOf(`${base}runners: { image: "r/g:{version}" }\n`)).toEqual([
      'runners.image: {version} needs runners.version',
    ]);
  });

  it('runners.cache: bucket and endpoint checked, both keys required by reference', () => {
    const ok = `${base}runners:\n  cache: { serverAddress: "minio.lan:9000", bucketName: ci-cache, accessKey: env:AK, secretKey: file:sk }\n`;
    expect(parseInventory(ok, '/x/fleet.yaml').runners.cache).toEqual({
      serverAddress: 'minio.lan:9000',
      bucketName: 'ci-cache',
      insecure: false,
      shared: true,
      accessKey: { ref: 'env:AK', path: 'runners.cache.accessKey' },
      secretKey: { ref: 'file:sk', path: 'runners.cache.secretKey' },
    });
    expect(
      issuesOf(
        `${base}runners:\n  cache: { serverAddress: "http://minio.lan:9000", bucketName: CI, accessKey: AKIAINLINE }\n`,
      ),
    ).toEqual([
      "runners.cache.serverAddress: expected host or host:port without a scheme (e.g. minio.lan:9000), as gitlab-runner's ServerAddress",
      'runners.cache.bucketName: expected an S3 bucket name (3–63 lowercase letters, digits, . and -)',
      'runners.cache.accessKey: expected a reference `env:NAME` or `file:PATH` (secrets are never written inline)',
      'runners.cache.secretKey: is required (env:NAME or file:PATH)',
    ]);
  });

  it("runners.metrics, resources, jobResources, tolerations and nodeSelector: the apiserver's and Docker's refusals up front", () => {
    expect(parseInventory(`${base}runners: { metrics: {} }\n`, '/x/fleet.yaml').runners.metrics).toEqual({
      port: 9252,
      address: '127.0.0.1',
      annotations: false,
    });
    expect(issuesOf(`${base}runners: { metrics: { address: "pi1.lan" } }\n`)).toEqual([
      'runners.metrics.address: expected an IP address such as 127.0.0.1, 0.0.0.0 (every interface) or :: (no brackets, no port)',
    ]);
    expect(issuesOf(`${base}runners: { metrics: { address: "[::1]" } }\n`)).toHaveLength(1);
    expect(
      issuesOf(
        `${base}runners:\n  resources: { requests: { memory: 512Mi }, limits: { memory: 0.25Gi, cpu: lots } }\n`,
      ),
    ).toEqual(['runners.resources.limits.cpu: expected a Kubernetes quantity for cpu (e.g. 250m or 0.5)']);
    expect(
      issuesOf(`${base}runners:\n  resources: { requests: { memory: 512Mi }, limits: { memory: 0.25Gi } }\n`),
    ).toEqual([
      'runners.resources.requests.memory: 512Mi is more than the limit 0.25Gi (Kubernetes refuses a request above its limit)',
    ]);
    expect(
      parseInventory(`${base}runners: { jobResources: { memory: 2g, cpus: 3 } }\n`, '/x/fleet.yaml').runners
        .jobResources,
    ).toEqual({ memory: '2g', cpus: '3' });
    expect(issuesOf(`${base}runners: { jobResources: { memory: 4m, cpus: 0 } }\n`)).toEqual([
      'runners.jobResources.cpus: expected a number of CPUs above 0 such as 1.5, got "0"',
      "runners.jobResources.memory: 4m is below Docker's minimum memory limit (6m)",
    ]);
    expect(
      issuesOf(
        `${base}runners:\n  tolerations: [{ operator: Exists, value: x }, { key: a, effect: NoSchedule, tolerationSeconds: 5 }, { value: y }]\n`,
      ),
    ).toEqual([
      'runners.tolerations[0].value: must be empty with operator Exists',
      'runners.tolerations[1].tolerationSeconds: applies only with effect NoExecute',
      'runners.tolerations[2].operator: a toleration without a key must use operator Exists (it tolerates every taint)',
    ]);
    expect(
      issuesOf(`${base}runners:\n  nodeSelector: { "runner-fleet.dev/runner": "x", zone: true }\n`),
    ).toEqual([
      'runners.nodeSelector.zone: expected a label value as a string (quote true, false and numbers), got true',
    ]);
    expect(
      issuesOf(`${base}runners:\n  nodeSelector: { "fleet.runner-fleet.dev/gitlab-runner": "x" }\n`),
    ).toEqual([
      'runners.nodeSelector: fleet.runner-fleet.dev/gitlab-runner is kubernetes.nodeLabel, which runner-fleet sets on inventory nodes itself',
    ]);
  });

  it('docker.registryMirrors and docker.logs: what dockerd would refuse to start with', () => {
    const inv = parseInventory(
      `${base}docker: { registryMirrors: "https://mirror.lan:5000", logs: { driver: local, maxSize: 10m, maxFile: 3 } }\n`,
      '/x/fleet.yaml',
    );
    expect(inv.docker).toEqual({
      registryMirrors: ['https://mirror.lan:5000'],
      logs: { driver: 'local', maxSize: '10m', maxFile: 3 },
    });
    expect(
      issuesOf(
        `${base}docker: { registryMirrors: ["mirror.lan:5000", "https://u:p@m.lan", "https://m.lan/?x"], logs: { maxSize: 10 } }\n`,
      ),
    ).toEqual([
      'docker.registryMirrors[0]: expected an http:// or https:// URL (e.g. https://mirror.lan:5000)',
      'docker.registryMirrors[1]: must not contain a user name or password',
      'docker.registryMirrors[2]: expected a URL without ?query or #fragment (dockerd refuses them)',
      'docker.logs.maxSize: expected a non-empty string, got 10',
    ]);
    expect(issuesOf(`${base}docker: { logs: { driver: journald, maxSize: 10m } }\n`)).toEqual([
      'docker.logs.driver: maxSize needs driver json-file or local (other log drivers refuse these log-opts, and dockerd would not start)',
    ]);
    expect(issuesOf(`${base}docker: { logs: { driver: json-file, maxFile: 3 } }\n`)).toEqual([
      'docker.logs.maxFile: needs maxSize with the json-file driver (it rotates only by size)',
    ]);
    // moby daemon/logger/local/config.go: compression (on by default) with one file fails every container start.
    expect(issuesOf(`${base}docker: { logs: { driver: local, maxSize: 10m, maxFile: 1 } }\n`)).toEqual([
      expect.stringMatching(
        /^docker\.logs\.maxFile: 1 with the local driver: every container start would fail .*use maxFile 2 or more$/,
      ),
    ]);
    expect(issuesOf(`${base}docker: { logs: { driver: json-file, maxSize: 10m, maxFile: 1 } }\n`)).toEqual(
      [],
    );
  });
});

describe('docker.prune and snap', () => {
  it('fills the defaults and names each bad field', () => {
    const inv = parseInventory(
      `${base}docker: { prune: { keepStorage: 10GB } }\nsnap: { holdRefresh: true }\n`,
      '/x/fleet.yaml',
    );
    expect(inv.docker.prune).toEqual({ schedule: 'daily', until: '168h', keepStorage: '10GB' });
    expect(inv.snap).toEqual({ holdRefresh: true });
    expect(parseInventory(base, '/x/fleet.yaml').snap).toEqual({ holdRefresh: false });
    expect(
      issuesOf(
        `${base}docker: { prune: { schedule: "daily\\nExecStart=/bin/x", keepStorage: lots, until: 7d, every: 1 } }\nsnap: { holdRefresh: yes please }\n`,
      ),
    ).toEqual([
      'docker.prune.schedule: expected hourly, daily, weekly, monthly or a systemd calendar event such as "*-*-* 03:00:00" (OnCalendar=)',
      "docker.prune.keepStorage: expected a size such as 10GB or 512m (docker builder prune's --keep-storage)",
      "docker.prune.until: expected a duration such as 168h or 24h30m (docker's --filter until=)",
      'docker.prune.every: unknown key (allowed: schedule, keepStorage, until)',
      'snap.holdRefresh: expected true or false, got "yes please"',
    ]);
  });
});

describe('inventory/fleet.example.yaml', () => {
  const text = readFileSync(join(import.meta.dirname, '..', '..', 'inventory', 'fleet.example.yaml'), 'utf8');
  it('parses as shipped, and with the operator settings uncommented', () => {
    expect(parseInventory(text, '/x/fleet.yaml').nodes).toHaveLength(2);
    const lines = text.split('\n');
    const start = lines.findIndex((l) => l.includes('# cache:'));
    const on = lines
      .map((l, i) => (i >= start || l.includes('# version:') ? l.replace(/^(\s*)# /, '$1') : l))
      .join('\n');
    const inv = parseInventory(on, '/x/fleet.yaml');
    expect(inv.runners.cache?.bucketName).toBe('runner-cache');
    expect(inv.runners.metrics).toEqual({ port: 9252, address: '127.0.0.1', annotations: false });
    expect(inv.runners.jobResources).toEqual({ memory: '2g', cpus: '3' });
    expect(inv.docker.logs).toEqual({ driver: 'local', maxSize: '10m', maxFile: 3 });
    expect(inv.docker.prune).toEqual({ schedule: 'daily', keepStorage: '10GB', until: '168h' });
    expect(inv.snap).toEqual({ holdRefresh: true });
    expect(inv.runners.image).toBe('gitlab/gitlab-runner:alpine-v17.9.3');
  });
});

describe('gitlab.caFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-inv-ca-'));
  const cert = '-----BEGIN CERTIFICATE-----\nMIIBfake+/=\n-----END CERTIFICATE-----';
  const withCa = (ref: string) =>
    base.replace('  registry: gitlab.lan:5050', `  registry: gitlab.lan:5050\n  caFile: ${ref}`);

  it('reads the certificates, relative to the inventory, and leaves anything else in the file behind', () => {
    writeFileSync(
      join(dir, 'bundle.pem'),
      `subject=CN=test\n${cert}\n-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n${cert.replace('fake', 'two')}\n`,
    );
    const inv = parseInventory(withCa('file:bundle.pem'), join(dir, 'fleet.yaml'));
    expect(inv.gitlab.ca).toEqual({
      path: join(dir, 'bundle.pem'),
      pem: `${cert}\n${cert.replace('fake', 'two')}\n`,
    });
    expect(parseInventory(base, join(dir, 'fleet.yaml')).gitlab.ca).toBeUndefined();
  });

  it('a reference that is not file:, a missing file or one without a certificate is bad input naming the field', () => {
    expect(issuesOf(withCa('/etc/ca.pem'))[0]).toMatch(/^gitlab\.caFile: expected file:PATH/);
    writeFileSync(join(dir, 'empty.pem'), 'nothing here\n');
    const err = (ref: string) => {
      try {
        parseInventory(withCa(ref), join(dir, 'fleet.yaml'));
      } catch (e) {
        return (e as InputError).issues[0];
      }
    };
    expect(err('file:missing.pem')).toBe(`gitlab.caFile: cannot read ${join(dir, 'missing.pem')} (ENOENT)`);
    expect(err('file:empty.pem')).toMatch(/^gitlab\.caFile: .*empty\.pem holds no PEM certificate/);
  });
});
