// Pure comparison of a live object with what the apiserver says it would become: which paths change, in words.
import type { KubeObject } from './objects.js';

/** Bookkeeping the server changes on its own; a difference there is not a change of ours. */
const SERVER_METADATA = [
  'managedFields',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'uid',
  'selfLink',
];
/** Annotations the server derives from the spec (a DaemonSet's template generation moves with the template). */
const SERVER_ANNOTATIONS = ['deprecated.daemonset.template.generation'];

/** A JSON copy without server bookkeeping and without status (an apply never writes status). */
export function comparable(obj: unknown): Record<string, unknown> {
  const copy = JSON.parse(JSON.stringify(obj ?? {})) as Record<string, unknown>;
  delete copy.status;
  const meta = copy.metadata as Record<string, unknown> | undefined;
  if (meta) {
    for (const k of SERVER_METADATA) delete meta[k];
    const ann = meta.annotations as Record<string, string> | undefined;
    if (ann) {
      for (const k of SERVER_ANNOTATIONS) delete ann[k];
      if (Object.keys(ann).length === 0) delete meta.annotations;
    }
  }
  return copy;
}

/**
 * Paths where `after` differs from `before`, after comparable(). Lists are compared whole and reported at
 * their own path (a container list is one unit to a reader), map keys that are not identifiers in brackets:
 * `spec.template.spec.containers`, `data["pi1.config.toml"]`.
 */
export function diffPaths(before: unknown, after: unknown): string[] {
  const out: string[] = [];
  walk(comparable(before), comparable(after), '', out);
  return out;
}

function walk(a: unknown, b: unknown, path: string, out: string[]): void {
  if (isPlainObject(a) && isPlainObject(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    for (const k of keys) walk(a[k], b[k], join(path, k), out);
    return;
  }
  if (JSON.stringify(a) !== JSON.stringify(b)) out.push(path || '(root)');
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function join(path: string, key: string): string {
  if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) return path ? `${path}.${key}` : key;
  return `${path}[${JSON.stringify(key)}]`;
}

/**
 * One line for a report. A Secret's values never appear: only which keys were added, removed or changed
 * (the same goes for the rest of the Secret, whose paths are named but whose values are never read).
 */
export function describeChange(before: KubeObject | undefined, after: KubeObject, paths: string[]): string {
  if (after.kind === 'Secret') {
    const beforeData = secretKeys(before);
    const afterData = secretKeys(after);
    const parts: string[] = [];
    const added = [...afterData.keys()].filter((k) => !beforeData.has(k));
    const removed = [...beforeData.keys()].filter((k) => !afterData.has(k));
    const changed = [...afterData.keys()].filter(
      (k) => beforeData.has(k) && beforeData.get(k) !== afterData.get(k),
    );
    if (added.length) parts.push(`added ${added.join(', ')}`);
    if (removed.length) parts.push(`removed ${removed.join(', ')}`);
    if (changed.length) parts.push(`changed ${changed.join(', ')}`);
    const other = paths.filter((p) => !/^(data|stringData)\b/.test(p));
    const summary = [parts.length ? `data: ${parts.join('; ')}` : '', ...other].filter(Boolean);
    return summary.join(', ') || 'no visible change';
  }
  const shown = paths.slice(0, 6);
  const listed =
    shown.join(', ') + (paths.length > shown.length ? ` (+${paths.length - shown.length} more)` : '');
  const upgrade = runnerImageChange(before, after);
  return upgrade ? `${upgrade}; ${listed}` : listed;
}

/**
 * A new gitlab-runner image (runners.version, runners.image) said in words: it is the change a reader must not miss.
 * The DaemonSet rolls it out one node at a time (maxUnavailable: 1), each old pod finishing its jobs first (preStop
 * SIGQUIT, within terminationGracePeriodSeconds).
 */
export function runnerImageChange(before: KubeObject | undefined, after: KubeObject): string | undefined {
  if (after.kind !== 'DaemonSet') return undefined;
  const image = (o: KubeObject | undefined) =>
    (
      (o?.spec as { template?: { spec?: { containers?: { name: string; image?: string }[] } } } | undefined)
        ?.template?.spec?.containers ?? []
    ).find((c) => c.name === 'gitlab-runner')?.image;
  const from = image(before);
  const to = image(after);
  if (!from || !to || from === to) return undefined;
  return `gitlab-runner ${from} → ${to}, one node at a time (each old pod finishes its running jobs first)`;
}

/** key → value, only ever compared, never printed. */
function secretKeys(obj: KubeObject | undefined): Map<string, string> {
  const data = (obj?.data ?? {}) as Record<string, string>;
  return new Map(Object.entries(data).map(([k, v]) => [k, String(v)]));
}
