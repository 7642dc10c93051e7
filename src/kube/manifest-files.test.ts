// render's files: one per object in apply order, Secrets apart (0600, git-ignored) or sealed, stale files found by header.
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import {
  RENDER_HEADER,
  SECRETS_FILE,
  gitignoreWith,
  manifestFileName,
  manifestFiles,
  staleFiles,
} from './manifest-files.js';
import type { KubeObject } from './objects.js';

const ns: KubeObject = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'gitlab-runner' } };
const sa: KubeObject = {
  apiVersion: 'v1',
  kind: 'ServiceAccount',
  metadata: { name: 'gitlab-runner', namespace: 'gitlab-runner' },
};
const secret: KubeObject = {
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { name: 'runner-fleet-config', namespace: 'gitlab-runner' },
  data: { 'pi1.config.toml': Buffer.from('token = "glrt-secret123456"').toString('base64') },
};
const ds: KubeObject = {
  apiVersion: 'apps/v1',
  kind: 'DaemonSet',
  metadata: { name: 'gitlab-runner-dood', namespace: 'gitlab-runner' },
  spec: {},
};

describe('manifestFiles', () => {
  it('writes one file per object, numbered in render order, and every Secret to secrets.yaml (0600)', () => {
    const files = manifestFiles([ns, sa, secret, ds], { source: 'fleet.yaml' });
    expect(files.map((f) => f.name)).toEqual([
      '01-namespace-gitlab-runner.yaml',
      '02-serviceaccount-gitlab-runner.yaml',
      '04-daemonset-gitlab-runner-dood.yaml',
      SECRETS_FILE,
    ]);
    const secretsFile = files.find((f) => f.plainSecret)!;
    expect(secretsFile.mode).toBe(0o600);
    const docs = parseAllDocuments(secretsFile.content).map((d) => d.toJS());
    expect(docs).toEqual([secret]);
    for (const f of files) expect(f.content.split('\n')[0]).toBe(RENDER_HEADER);
    expect(
      files
        .filter((f) => !f.plainSecret)
        .some((f) => f.content.includes('runner-fleet-config') && f.content.includes('data')),
    ).toBe(false);
    expect(parseAllDocuments(files[2].content)[0].toJS()).toEqual(ds);
  });

  it("puts a SealedSecret in the Secret's place and writes no secrets.yaml", () => {
    const sealed = new Map([
      ['Secret/gitlab-runner/runner-fleet-config', 'apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\n'],
    ]);
    const files = manifestFiles([ns, sa, secret, ds], { source: 'fleet.yaml', sealed });
    expect(files.map((f) => f.name)).toContain('03-sealedsecret-runner-fleet-config.yaml');
    expect(files.some((f) => f.name === SECRETS_FILE || f.plainSecret)).toBe(false);
  });

  it('names files safely', () => {
    expect(manifestFileName(9, { kind: 'ConfigMap', metadata: { name: 'A_b/c' } })).toBe(
      '10-configmap-a-b-c.yaml',
    );
  });
});

describe('gitignoreWith', () => {
  it("adds secrets.yaml once, keeping the user's lines", () => {
    expect(gitignoreWith(undefined)).toMatch(/^# .*\n\/secrets\.yaml\n$/);
    expect(gitignoreWith('node_modules')).toMatch(/^node_modules\n# .*\n\/secrets\.yaml\n$/);
    expect(gitignoreWith('x\n/secrets.yaml\n')).toBeUndefined();
    expect(gitignoreWith('secrets.yaml\n')).toBeUndefined();
  });
});

describe('staleFiles', () => {
  it('removes only files render wrote (by header) that it no longer writes', () => {
    const wanted = manifestFiles([ns, ds], { source: 's' });
    const existing = [
      { name: '01-namespace-gitlab-runner.yaml', firstLine: RENDER_HEADER },
      { name: '04-daemonset-gitlab-runner-shell.yaml', firstLine: RENDER_HEADER },
      { name: 'kustomization.yaml', firstLine: 'resources:' },
    ];
    expect(staleFiles(existing, wanted)).toEqual(['04-daemonset-gitlab-runner-shell.yaml']);
  });
});
