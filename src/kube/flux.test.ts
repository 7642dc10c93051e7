// render's Flux objects: the fields Flux reads, parsed back from the files; bad flags name themselves.
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { FLUX_FILE, KUSTOMIZE_FILE, fluxFile, kustomizeFile, readFlux } from './flux.js';
import { RENDER_HEADER, type ManifestFile } from './manifest-files.js';

const src = readFlux({ repo: 'http://gitlab.lan/ops/runners.git', path: './clusters/pi/' }).source!;

describe('fluxFile', () => {
  it('is a GitRepository and a Kustomization that applies the folder with prune, in flux-system', () => {
    const f = fluxFile({ ...src, secret: 'runners-git' }, 'gitlab-runner', 'fleet.yaml, executor dood');
    expect(f).toMatchObject({ name: FLUX_FILE, plainSecret: false, mode: 0o644 });
    expect(f.content.split('\n')[0]).toBe(RENDER_HEADER);
    const docs = parseAllDocuments(f.content);
    expect(docs.map((d) => d.errors)).toEqual([[], []]);
    const meta = {
      name: 'runner-fleet-gitlab-runner',
      namespace: 'flux-system',
      labels: { 'app.kubernetes.io/part-of': 'runner-fleet' },
    };
    expect(docs.map((d) => d.toJS() as unknown)).toEqual([
      {
        apiVersion: 'source.toolkit.fluxcd.io/v1',
        kind: 'GitRepository',
        metadata: meta,
        spec: {
          url: 'http://gitlab.lan/ops/runners.git',
          ref: { branch: 'main' },
          interval: '1m',
          secretRef: { name: 'runners-git' },
        },
      },
      {
        apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
        kind: 'Kustomization',
        metadata: meta,
        spec: {
          interval: '1m',
          path: './clusters/pi',
          prune: true,
          sourceRef: { kind: 'GitRepository', name: 'runner-fleet-gitlab-runner' },
          timeout: '2m',
        },
      },
    ]);
    expect(f.content).not.toMatch(/password|token|glrt-|^\s*(data|stringData):/im);
  });
});

describe('kustomizeFile', () => {
  it('lists the runner objects only: no subfolder, no plain-text secrets.yaml, no itself', () => {
    const file = (name: string, plainSecret = false): ManifestFile => ({
      name,
      content: '',
      plainSecret,
      mode: 0o644,
    });
    const k = kustomizeFile(
      [
        file('04-daemonset-gitlab-runner-dood.yaml'),
        file('01-namespace-gitlab-runner.yaml'),
        file('secrets.yaml', true),
        file('argocd/application.yaml'),
        file(FLUX_FILE),
        file('03-sealedsecret-runner-fleet-config.yaml'),
      ],
      'fleet.yaml',
    );
    expect(k.name).toBe(KUSTOMIZE_FILE);
    expect(k.content.split('\n')[0]).toBe(RENDER_HEADER);
    expect(parse(k.content)).toEqual({
      apiVersion: 'kustomize.config.k8s.io/v1beta1',
      kind: 'Kustomization',
      resources: [
        '01-namespace-gitlab-runner.yaml',
        '03-sealedsecret-runner-fleet-config.yaml',
        '04-daemonset-gitlab-runner-dood.yaml',
      ],
    });
  });
});

describe('readFlux (the --flux-* flags)', () => {
  it('wants nothing without flags; defaults branch main, namespace flux-system, interval 1m', () => {
    expect(readFlux({})).toEqual({ issues: [] });
    expect(src).toEqual({
      url: 'http://gitlab.lan/ops/runners.git',
      path: 'clusters/pi',
      branch: 'main',
      namespace: 'flux-system',
      interval: '1m',
    });
    expect(readFlux({ repo: 'https://g/o/r.git', path: '.', interval: '10s' }).source).toMatchObject({
      path: '.',
      interval: '10s',
    });
    expect(fluxFile(readFlux({ repo: 'https://g/o/r.git', path: '.' }).source!, 'ci', 'x').content).toContain(
      'path: ./\n',
    );
  });

  it.each([
    [{ path: 'x' }, /^--flux-repo: expected the repository URL/],
    [{ repo: 'https://g/o/r.git' }, /^--flux-path: is required/],
    [
      { repo: 'https://oauth2:glpat-x@g/o/r.git', path: 'x' },
      /^--flux-repo: must not contain a password .*--flux-secret/,
    ],
    [{ repo: 'git@g:o/r.git', path: 'x' }, /^--flux-repo: expected an https:\/\/ or http:\/\/ URL/],
    [{ repo: 'https://g/o/r.git', path: '../x' }, /^--flux-path: must stay inside/],
    [{ repo: 'https://g/o/r.git', path: 'x', branch: '-evil' }, /^--flux-branch: /],
    [{ repo: 'https://g/o/r.git', path: 'x', namespace: 'Flux' }, /^--flux-namespace: /],
    [{ repo: 'https://g/o/r.git', path: 'x', interval: '5 minutes' }, /^--flux-interval: /],
    [{ repo: 'https://g/o/r.git', path: 'x', secret: 'A_B' }, /^--flux-secret: /],
  ])('%j is bad input naming the flag', (input, message) => {
    const r = readFlux(input);
    expect(r.source).toBeUndefined();
    expect(
      r.issues.some((i) => message.test(i)),
      r.issues.join('\n'),
    ).toBe(true);
    expect(r.issues.join('\n')).not.toContain('glpat-x');
  });
});
