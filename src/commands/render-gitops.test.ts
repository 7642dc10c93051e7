// render --argocd-*: the flags reach render's preflight (exit 2 naming the flag), the Application lands in DIR/argocd/.
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseCli } from '../cli.js';
import { InputError } from '../errors.js';
import { parseInventory } from '../inventory/schema.js';
import { APPLICATION_FILE, applicationFile } from '../kube/argocd.js';
import { RENDER_HEADER, type ManifestFile } from '../kube/manifest-files.js';
import { formatRenderSummary, renderPreflight, writeRenderOutput } from './render.js';

const inv = parseInventory(
  `
gitlab: {url: https://gitlab.lan, registry: gitlab.lan:5050, accessToken: env:GITLAB_TOKEN}
nodes: [{name: pi1, host: 127.0.0.11}]
`,
  '/tmp/inventory.yaml',
);
const src = {
  repoURL: 'https://gitlab.lan/ops/runners.git',
  path: 'clusters/pi',
  targetRevision: 'HEAD',
  namespace: 'argocd',
};
const ns: ManifestFile = {
  name: '01-namespace-gitlab-runner.yaml',
  content: `${RENDER_HEADER}\nkind: Namespace\n`,
  plainSecret: false,
  mode: 0o644,
};

let base: string;
beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'rf-gitops-'));
  chmodSync(base, 0o700);
});

const inputError = (f: () => unknown): string => {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    return (err as InputError).message;
  }
  throw new Error('expected an InputError');
};

describe('render --argocd-* on the command line', () => {
  it('parses the flags for render, refuses them for other commands', () => {
    const req = parseCli([
      'render',
      '--out',
      'gitops',
      '--argocd-repo',
      'git@gitlab.lan:ops/r.git',
      '--argocd-path',
      'pi',
      '--argocd-revision',
      'main',
      '--seal-cert',
      'c.pem',
    ]);
    expect(req.argocd).toEqual({
      repo: 'git@gitlab.lan:ops/r.git',
      path: 'pi',
      revision: 'main',
      namespace: undefined,
    });
    expect(req.sealCert).toBe('c.pem');
    expect(parseCli(['render', '--out', 'gitops']).argocd).toBeUndefined();
    expect(inputError(() => parseCli(['apply', '--argocd-repo', 'https://x/y']))).toMatch(
      /--argocd-repo: only applies to render/,
    );
    expect(inputError(() => parseCli(['plan', '--seal-cert', 'c.pem']))).toMatch(
      /--seal-cert: only applies to render/,
    );
  });

  it('bad values are exit 2 from the preflight, before anything is contacted, each naming its flag', () => {
    const message = inputError(() =>
      renderPreflight(inv, {
        seal: false,
        out: join(base, 'gitops'),
        argocd: { repo: 'https://user:secret@gitlab.lan/ops/r.git', path: '../up', namespace: 'Argo' },
      }),
    );
    expect(message).toMatch(/--argocd-repo: must not contain a password/);
    expect(message).toMatch(/--argocd-path: must stay inside the repository/);
    expect(message).toMatch(/--argocd-namespace: /);
    expect(message).not.toContain('secret@');
    expect(inputError(() => renderPreflight(inv, { seal: false, argocd: { path: 'x' } }))).toMatch(
      /--argocd-repo: is required/,
    );
    expect(
      renderPreflight(inv, { seal: false, argocd: { repo: src.repoURL, path: 'clusters/pi/' } }).argocd,
    ).toEqual(src);
  });
});

describe('render writes the Application into DIR/argocd/', () => {
  it('beside the manifests, not among them; a rerun without it leaves it alone', () => {
    const out = join(base, 'gitops');
    writeRenderOutput(out, [ns, applicationFile(src, 'gitlab-runner', 'fleet.yaml')]);
    expect(readdirSync(out).sort()).toEqual(['01-namespace-gitlab-runner.yaml', 'argocd']);
    expect(lstatSync(join(out, 'argocd')).mode & 0o777).toBe(0o700);
    const app = parse(readFileSync(join(out, APPLICATION_FILE), 'utf8'));
    expect(app.kind).toBe('Application');
    expect(app.spec.source.path).toBe('clusters/pi');
    expect(writeRenderOutput(out, [ns]).removed).toEqual([]);
    expect(existsSync(join(out, APPLICATION_FILE))).toBe(true);
    expect(
      formatRenderSummary({
        ok: true,
        out,
        files: [],
        removed: [],
        application: join(out, APPLICATION_FILE),
        gitlab: [],
        labels: [],
        pending: [],
      }),
    ).toMatch(/kubectl apply -f .*argocd\/application\.yaml/);
  });

  it('refuses a planted argocd link instead of writing through it', () => {
    const out = join(base, 'gitops');
    mkdirSync(out, { mode: 0o700 });
    const elsewhere = join(base, 'elsewhere');
    mkdirSync(elsewhere, { mode: 0o700 });
    symlinkSync(elsewhere, join(out, 'argocd'));
    expect(() => writeRenderOutput(out, [ns, applicationFile(src, 'gitlab-runner', 'fleet.yaml')])).toThrow(
      /--out: .*argocd is a symlink/,
    );
    expect(readdirSync(elsewhere)).toEqual([]);
    expect(readdirSync(out)).toEqual(['argocd']); // nothing written before the refusal
  });
});

describe('render --flux-*', () => {
  it('parses the flags for render only; the preflight names a bad one (exit 2)', () => {
    const req = parseCli([
      'render',
      '--out',
      'x',
      '--flux-repo',
      'https://gitlab.lan/ops/r.git',
      '--flux-path',
      'fleet',
    ]);
    expect(req.flux).toEqual({ repo: 'https://gitlab.lan/ops/r.git', path: 'fleet' });
    expect(() => parseCli(['apply', '--flux-repo', 'https://gitlab.lan/ops/r.git'])).toThrow(
      /--flux-repo: only applies to render/,
    );
    expect(
      renderPreflight(inv, { seal: false, flux: { repo: 'https://gitlab.lan/ops/r.git', path: 'fleet' } })
        .flux,
    ).toMatchObject({ url: 'https://gitlab.lan/ops/r.git', path: 'fleet', namespace: 'flux-system' });
    expect(
      inputError(() => renderPreflight(inv, { seal: false, flux: { repo: 'https://gitlab.lan/ops/r.git' } })),
    ).toMatch(/--flux-path: is required/);
  });

  it('the summary tells to hand flux/sync.yaml to Flux once', () => {
    const text = formatRenderSummary({
      ok: true,
      out: '/srv/ops/fleet',
      files: [{ name: 'flux/sync.yaml', plainSecret: false }],
      removed: [],
      fluxSync: '/srv/ops/fleet/flux/sync.yaml',
      gitlab: [],
      labels: [],
      pending: [],
    });
    expect(text).toContain('hand it to Flux once: kubectl apply -f /srv/ops/fleet/flux/sync.yaml');
  });
});
