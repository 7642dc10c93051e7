// Pure: the cluster objects as files for a GitOps repository, one per object; Secrets kept apart (git-ignored, or sealed).
import { stringify } from 'yaml';
import { describeObject, objectKey, type KubeObject } from './objects.js';

/** First line of every file render writes: how render recognises its own files (and removes the stale ones). */
export const RENDER_HEADER = '# Rendered by runner-fleet (provision.ts render); do not edit, render again.';
/** Every plain-text Secret goes here, and .gitignore lists it. */
export const SECRETS_FILE = 'secrets.yaml';
export const GITIGNORE = '.gitignore';

export interface ManifestFile {
  /** relative to the output folder */
  name: string;
  content: string;
  /** holds Secret values in plain text (base64 is not encryption): never commit it */
  plainSecret: boolean;
  /** file mode to write it with */
  mode: number;
}

/** `03-daemonset-gitlab-runner-dood.yaml`: the prefix keeps `kubectl apply -f DIR` in render order (Namespace first). */
export function manifestFileName(index: number, o: Pick<KubeObject, 'kind' | 'metadata'>): string {
  const safe = (s: string) => s.toLowerCase().replace(/[^a-z0-9.-]+/g, '-');
  return `${String(index + 1).padStart(2, '0')}-${safe(o.kind)}-${safe(o.metadata.name)}.yaml`;
}

/**
 * One file per object in render order. Secrets go to SECRETS_FILE together (mode 0600), unless `sealed` holds
 * a SealedSecret (YAML text from kubeseal) for them: then that file replaces the Secret in the sequence.
 */
export function manifestFiles(
  objects: KubeObject[],
  opts: { source: string; sealed?: Map<string, string> },
): ManifestFile[] {
  const header = `${RENDER_HEADER}\n# From ${opts.source}.\n`;
  const files: ManifestFile[] = [];
  const secrets: KubeObject[] = [];
  objects.forEach((o, i) => {
    if (o.kind === 'Secret') {
      const sealed = opts.sealed?.get(objectKey(o));
      if (sealed !== undefined) {
        files.push({
          name: manifestFileName(i, { kind: 'SealedSecret', metadata: o.metadata }),
          content: `${header}${sealed.replace(/^---\n/, '')}`,
          plainSecret: false,
          mode: 0o644,
        });
      } else {
        secrets.push(o);
      }
      return;
    }
    files.push({
      name: manifestFileName(i, o),
      content: `${header}${stringify(o)}`,
      plainSecret: false,
      mode: 0o644,
    });
  });
  if (secrets.length > 0) {
    const docs = secrets.map((s) => `# ${describeObject(s)}\n${stringify(s)}`).join('---\n');
    files.push({
      name: SECRETS_FILE,
      content: `${header}# Plain-text Secrets (base64 is not encryption): listed in .gitignore; apply them out of band or use --seal.\n${docs}`,
      plainSecret: true,
      mode: 0o600,
    });
  }
  return files;
}

/** .gitignore with SECRETS_FILE listed, keeping whatever the user already has there. */
export function gitignoreWith(current: string | undefined): string | undefined {
  const lines = (current ?? '').split('\n').map((l) => l.trim());
  if (lines.includes(SECRETS_FILE) || lines.includes(`/${SECRETS_FILE}`)) return undefined;
  const base = current && !current.endsWith('\n') ? `${current}\n` : (current ?? '');
  return `${base}# runner-fleet render: plain-text Secrets never go into git\n/${SECRETS_FILE}\n`;
}

/** Files in the folder render wrote before (by their header) that this render no longer writes. */
export function staleFiles(
  existing: { name: string; firstLine: string }[],
  wanted: ManifestFile[],
): string[] {
  const keep = new Set(wanted.map((f) => f.name));
  return existing.filter((f) => f.firstLine === RENDER_HEADER && !keep.has(f.name)).map((f) => f.name);
}
