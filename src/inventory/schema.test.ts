import { describe, expect, it } from 'vitest';
import { InputError } from '../errors.js';
import { parseInventory } from './schema.js';

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

  it('runners.pullPolicy: one or a list of gitlab-runner spellings, each once; runners.helperImage without spaces', () => {
    const inv = parseInventory(`${base}runners: { pullPolicy: if-not-present }\n`, '/x/fleet.yaml');
    expect(inv.runners.pullPolicy).toEqual(['if-not-present']);
    expect(parseInventory(base, '/x/fleet.yaml').runners.pullPolicy).toBeUndefined();
    expect(issuesOf(`${base}runners: { pullPolicy: [always, IfNotPresent, always] }\n`)).toEqual([
      'runners.pullPolicy[1]: expected always | if-not-present | never, got "IfNotPresent"',
      'runners.pullPolicy[2]: always is listed twice',
    ]);
    expect(issuesOf(`${base}runners: { pullPolicy: [] }\n`)).toEqual(['runners.pullPolicy: expected at least one policy']);
    expect(issuesOf(`${base}runners: { helperImage: "reg.lan/helper:{arch} latest" }\n`)[0]).toMatch(/^runners\.helperImage: expected an image reference/);
  });

  it('names the path of a bad docker value', () => {
    expect(issuesOf(base.replace('docker: snap', 'docker: brew'))).toEqual(['nodes[1].docker: expected apt | snap | auto, got "brew"']);
  });

  it('rejects unknown keys, duplicate names and hosts', () => {
    const text = `${base}  - name: pi1\n    host: 10.0.0.2\n    colour: red\n`;
    const issues = issuesOf(text);
    expect(issues).toContain('nodes[2].colour: unknown key (allowed: name, host, port, user, identityFile, knownHosts, docker, microk8s)');
    expect(issues).toContain('nodes[2].name: duplicate node name "pi1" (also nodes[0])');
    expect(issues).toContain('nodes[2].host: duplicate host 10.0.0.2:22 (also nodes[1])');
  });

  it('rejects a registry with a scheme', () => {
    expect(issuesOf(base.replace('registry: gitlab.lan:5050', 'registry: [http://gitlab.lan:5050]'))).toEqual([
      'gitlab.registry[0]: expected host:port without a scheme (e.g. gitlab.lan:5050)',
    ]);
  });

  it('rejects a bad executor from the inventory or the command line', () => {
    expect(issuesOf(`${base}runners:\n  executor: kubernetes\n`)).toEqual(['runners.executor: expected shell | dind | dood, got "kubernetes"']);
    expect(issuesOf(base, { executor: 'docker' })).toEqual(['--executor: expected shell | dind | dood, got "docker"']);
  });

  it('accepts secrets only by reference and never echoes an inline token', () => {
    const issues = issuesOf(base.replace('registry: gitlab.lan:5050', 'registry: gitlab.lan:5050\n  accessToken: glpat-abcdefghijklmnop'));
    expect(issues).toEqual(['gitlab.accessToken: expected a reference `env:NAME` or `file:PATH` (secrets are never written inline)']);
    expect(issues.join()).not.toContain('glpat-');
  });

  it('host placement needs the shell executor', () => {
    expect(issuesOf(`${base}runners:\n  placement: host\n`)).toEqual(['runners.placement: host placement needs the shell executor (executor is dood)']);
    expect(issuesOf(`${base}runners:\n  placement: host\n  executor: shell\n`)).toEqual([]);
  });

  it('installs host runners from GitLab\'s repository unless a mirror and its pinned key are named', () => {
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
    expect(issuesOf(`${base}runners:\n  packageRepository:\n    key: /k.asc\n    fingerprint: F640\n`)).toEqual([
      'runners.packageRepository.key: expected an http(s):// URL or file:PATH',
      "runners.packageRepository.fingerprint: expected the key's full fingerprint (40 hex digits, spaces allowed)",
    ]);
  });

  it('reports YAML syntax errors and duplicate keys', () => {
    expect(issuesOf('gitlab: [\n')[0]).toMatch(/YAML/);
    expect(issuesOf(`${base}nodes: []\n`)[0]).toMatch(/YAML/);
  });
});
