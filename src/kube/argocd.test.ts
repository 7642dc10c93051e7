// render's Argo CD Application: the fields Argo CD reads, parsed back from the file; bad flags name themselves.
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import {
  APPLICATION_FILE,
  IN_CLUSTER_SERVER,
  applicationFile,
  applicationName,
  normalizeRepoPath,
  readArgoCd,
  repoPathProblem,
  repoUrlProblem,
} from './argocd.js';
import { RENDER_HEADER } from './manifest-files.js';

const src = {
  repoURL: 'https://gitlab.lan/ops/runners.git',
  path: 'clusters/pi',
  targetRevision: 'main',
  namespace: 'argocd',
};

describe('applicationFile', () => {
  it('is one Application that deploys the folder into the runner namespace, synced server-side with prune and selfHeal', () => {
    const f = applicationFile(src, 'gitlab-runner', '/srv/fleet.yaml, executor dood');
    expect(f).toMatchObject({ name: APPLICATION_FILE, plainSecret: false, mode: 0o644 });
    expect(f.content.split('\n')[0]).toBe(RENDER_HEADER);
    const docs = parseAllDocuments(f.content);
    expect(docs).toHaveLength(1);
    expect(docs[0].errors).toEqual([]);
    expect(docs[0].toJS()).toEqual({
      apiVersion: 'argoproj.io/v1alpha1',
      kind: 'Application',
      metadata: {
        name: 'runner-fleet-gitlab-runner',
        namespace: 'argocd',
        labels: { 'app.kubernetes.io/part-of': 'runner-fleet' },
      },
      spec: {
        project: 'default',
        source: {
          repoURL: src.repoURL,
          path: 'clusters/pi',
          targetRevision: 'main',
          directory: { recurse: false },
        },
        destination: { server: IN_CLUSTER_SERVER, namespace: 'gitlab-runner' },
        syncPolicy: { automated: { prune: true, selfHeal: true }, syncOptions: ['ServerSideApply=true'] },
      },
    });
    // Not in DIR itself: neither Argo CD (no recursion) nor `kubectl apply -f DIR` picks it up with the runner objects.
    expect(APPLICATION_FILE).toMatch(/^[^/]+\/[^/]+\.yaml$/);
  });

  it('carries no secrets: no data, no credentials, only what the flags said', () => {
    const text = applicationFile(src, 'ci', 'fleet.yaml').content;
    expect(text).not.toMatch(/password|token|glrt-|^\s*(data|stringData):/im);
    expect(applicationName('x'.repeat(63))).toHaveLength(63);
    expect(applicationName(`${'a'.repeat(49)}-b`)).toBe(`runner-fleet-${'a'.repeat(49)}`);
  });
});

describe('readArgoCd (the --argocd-* flags)', () => {
  it('wants nothing when no flag is given, and defaults revision HEAD and namespace argocd', () => {
    expect(readArgoCd({})).toEqual({ issues: [] });
    expect(readArgoCd({ repo: 'git@gitlab.lan:ops/runners.git', path: './clusters/pi/' })).toEqual({
      issues: [],
      source: {
        repoURL: 'git@gitlab.lan:ops/runners.git',
        path: 'clusters/pi',
        targetRevision: 'HEAD',
        namespace: 'argocd',
      },
    });
    expect(
      readArgoCd({
        repo: 'ssh://git@gitlab.lan:2222/ops/runners.git',
        path: '.',
        revision: 'v1.2.0',
        namespace: 'gitops',
      }).source,
    ).toMatchObject({
      path: '.',
      targetRevision: 'v1.2.0',
      namespace: 'gitops',
    });
  });

  it.each([
    [{ path: 'x' }, /^--argocd-repo: is required/],
    [{ repo: 'https://gitlab.lan/ops/r.git' }, /^--argocd-path: is required/],
    [{ repo: '', path: 'x' }, /^--argocd-repo: expected a repository URL/],
    [{ repo: 'https://gitlab.lan/ops/r.git', path: '  ' }, /^--argocd-path: expected a folder/],
    [
      { repo: 'https://gitlab.lan/ops/r.git', path: 'x', revision: '--upload-pack=evil' },
      /^--argocd-revision: /,
    ],
    [{ repo: 'https://gitlab.lan/ops/r.git', path: 'x', revision: 'main branch' }, /^--argocd-revision: /],
    [
      { repo: 'https://gitlab.lan/ops/r.git', path: 'x', namespace: 'Argo_CD' },
      /^--argocd-namespace: expected a Kubernetes namespace name/,
    ],
  ])('%j is bad input naming the flag', (input, message) => {
    const r = readArgoCd(input);
    expect(r.source).toBeUndefined();
    expect(
      r.issues.some((i) => message.test(i)),
      r.issues.join('\n'),
    ).toBe(true);
  });

  it.each([
    ['https://oauth2:glpat-secret@gitlab.lan/ops/r.git', /must not contain a password/],
    ['https://glpat-secret@gitlab.lan/ops/r.git', /must not contain a user name or token/],
    ['ssh://git:pw@gitlab.lan/ops/r.git', /must not contain a password/],
    ['file:///srv/repo.git', /got file:/],
    ['gitlab.lan/ops/r.git', /expected an https:\/\/, http:\/\/, ssh:\/\/ or git@host:path/],
    ['https://gitlab.lan/ops/r.git?private_token=x', /without \?query/],
    ['https://gitlab.lan/', /no repository path/],
    ['https://gitlab.lan/ops/r .git', /spaces or control characters/],
    ['https://gitlab.lan/ops/r.git\n', /spaces or control characters/],
  ])('--argocd-repo %j is refused', (url, message) => {
    expect(repoUrlProblem(url)).toMatch(message);
    const issues = readArgoCd({ repo: url, path: 'x' }).issues;
    expect(issues[0]).toMatch(/^--argocd-repo: /);
    // The refusal never echoes a credential.
    expect(issues.join('\n')).not.toContain('glpat-secret');
  });

  it.each([
    'https://gitlab.lan/ops/r.git',
    'http://gitea.lan:3000/ops/r',
    'ssh://git@gitlab.lan/ops/r.git',
    'git@github.com:ops/r.git',
  ])('--argocd-repo %j is accepted', (url) => {
    expect(repoUrlProblem(url)).toBeUndefined();
  });

  it.each([
    ['/abs/path', /relative to the repository root/],
    ['../outside', /no \.\. parts/],
    ['a/../../b', /no \.\. parts/],
    ['a\\b', /not \\/],
    ['a\u0000b', /control characters/],
  ])('--argocd-path %j is refused', (path, message) => {
    expect(repoPathProblem(path)).toMatch(message);
    expect(readArgoCd({ repo: 'https://gitlab.lan/ops/r.git', path }).issues[0]).toMatch(/^--argocd-path: /);
  });

  it('normalises the path as Argo CD compares it', () => {
    expect(normalizeRepoPath('./a//b/')).toBe('a/b');
    expect(normalizeRepoPath('./')).toBe('.');
  });
});
