// render --out writes where nobody else can, creates files exclusively and never follows a link.
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { InputError } from '../errors.js';
import { RENDER_HEADER, type ManifestFile } from '../kube/manifest-files.js';
import { outputDirProblem, writeRenderOutput } from './render.js';

let base: string;
const files: ManifestFile[] = [
  {
    name: '01-namespace-x.yaml',
    content: `${RENDER_HEADER}\nkind: Namespace\n`,
    plainSecret: false,
    mode: 0o644,
  },
  {
    name: 'secrets.yaml',
    content: `${RENDER_HEADER}\nkind: Secret\ndata: {token: c2VjcmV0}\n`,
    plainSecret: true,
    mode: 0o600,
  },
];

beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'rf-render-'));
  chmodSync(base, 0o700);
});

describe('render output folder', () => {
  it('creates a missing folder 0700 and writes every file with its mode', () => {
    const out = join(base, 'gitops');
    const r = writeRenderOutput(out, files);
    expect(statSync(out).mode & 0o777).toBe(0o700);
    expect(statSync(join(out, 'secrets.yaml')).mode & 0o777).toBe(0o600);
    expect(statSync(join(out, '01-namespace-x.yaml')).mode & 0o777).toBe(0o644);
    expect(readFileSync(join(out, '.gitignore'), 'utf8')).toContain('/secrets.yaml');
    expect(r.secretsFile).toBe(join(out, 'secrets.yaml'));
    expect(readdirSync(out).sort()).toEqual(['.gitignore', '01-namespace-x.yaml', 'secrets.yaml']); // no temp file left
  });

  it('refuses a folder others can write to, or a symlinked one', () => {
    const shared = join(base, 'shared');
    mkdirSync(shared);
    chmodSync(shared, 0o1777);
    expect(outputDirProblem(shared)).toMatch(/can be written by everyone \(mode 1777\)/);
    chmodSync(shared, 0o775);
    expect(outputDirProblem(shared)).toMatch(/can be written by its group/);
    expect(() => writeRenderOutput(shared, files)).toThrow(InputError);
    expect(existsSync(join(shared, 'secrets.yaml'))).toBe(false);
    chmodSync(shared, 0o755);
    symlinkSync(shared, join(base, 'link'));
    expect(outputDirProblem(join(base, 'link'))).toMatch(/is a symlink/);
    expect(outputDirProblem(join(base, 'missing'), { mayBeMissing: true })).toBeUndefined();
  });

  it('never writes through a planted link, at the old fixed temp name or at the file itself', () => {
    const out = join(base, 'gitops');
    mkdirSync(out, { mode: 0o700 });
    const victim = join(base, 'victim');
    writeFileSync(victim, 'untouched\n');
    symlinkSync(victim, join(out, 'secrets.yaml.runner-fleet.tmp'));
    symlinkSync(victim, join(out, 'secrets.yaml'));
    symlinkSync(victim, join(out, '99-old.yaml'));
    writeRenderOutput(out, files);
    expect(readFileSync(victim, 'utf8')).toBe('untouched\n');
    expect(lstatSync(join(out, 'secrets.yaml')).isFile()).toBe(true);
    expect(readFileSync(join(out, 'secrets.yaml'), 'utf8')).toContain('c2VjcmV0');
    // A link is never taken for a file render wrote before: it stays, and so does its target.
    expect(lstatSync(join(out, '99-old.yaml')).isSymbolicLink()).toBe(true);
  });

  it('leaves a symlinked .gitignore alone and says so', () => {
    const out = join(base, 'gitops');
    mkdirSync(out, { mode: 0o700 });
    const elsewhere = join(base, 'ignore');
    writeFileSync(elsewhere, 'node_modules\n');
    symlinkSync(elsewhere, join(out, '.gitignore'));
    expect(writeRenderOutput(out, files).gitignoreSkipped).toBe(join(out, '.gitignore'));
    expect(readFileSync(elsewhere, 'utf8')).toBe('node_modules\n');
  });

  it('removes files it rendered before that are no longer wanted, and nothing else', () => {
    const out = join(base, 'gitops');
    mkdirSync(out, { mode: 0o700 });
    writeFileSync(join(out, '04-daemonset-old.yaml'), `${RENDER_HEADER}\nkind: DaemonSet\n`);
    writeFileSync(join(out, 'mine.yaml'), 'kind: ConfigMap\n');
    expect(writeRenderOutput(out, files).removed).toEqual(['04-daemonset-old.yaml']);
    expect(existsSync(join(out, 'mine.yaml'))).toBe(true);
  });
});
