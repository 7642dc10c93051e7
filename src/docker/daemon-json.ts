// Pure daemon.json handling: parse, merge insecure registries, serialise. No I/O.

export type DaemonJson = Record<string, unknown>;

export class DaemonJsonError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DaemonJsonError';
  }
}

/** Parses daemon.json text; an absent or blank file is `{}`. Anything else that is not a JSON object throws. */
export function parseDaemonJson(text: string | undefined, path: string): DaemonJson {
  if (text === undefined || text.trim() === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new DaemonJsonError(
      `${path} is not valid JSON (${(err as Error).message}); fix or remove it by hand, runner-fleet will not overwrite it`,
    );
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new DaemonJsonError(`${path} must hold a JSON object; runner-fleet will not overwrite it`);
  }
  const existing = (value as DaemonJson)['insecure-registries'];
  if (existing !== undefined && (!Array.isArray(existing) || existing.some((e) => typeof e !== 'string'))) {
    throw new DaemonJsonError(
      `${path}: "insecure-registries" must be a list of strings; runner-fleet will not overwrite it`,
    );
  }
  return value as DaemonJson;
}

/**
 * Returns daemon.json with every registry in `insecure-registries`, keeping every other key and existing entry
 * in place; `added` lists the registries that were missing.
 */
export function mergeInsecureRegistries(
  current: DaemonJson,
  registries: string[],
): { merged: DaemonJson; added: string[] } {
  const existing = (current['insecure-registries'] as string[] | undefined) ?? [];
  const added = registries.filter((r) => !existing.includes(r));
  if (added.length === 0) return { merged: current, added };
  return { merged: { ...current, 'insecure-registries': [...existing, ...added] }, added };
}

/**
 * Removes only the given registries. The last one out leaves an empty list, never a missing key: dockerd's SIGHUP
 * reload replaces insecure-registries and registry-mirrors only when daemon.json has the key (moby daemon/reload.go,
 * reloadRegistryConfig: `if conf.IsValueSet("insecure-registries")`), so a key taken out of the file would leave
 * the old entries loaded until dockerd restarts. An empty list the reload does apply.
 */
export function removeInsecureRegistries(
  current: DaemonJson,
  registries: string[],
): { merged: DaemonJson; removed: string[] } {
  const existing = (current['insecure-registries'] as string[] | undefined) ?? [];
  const removed = existing.filter((r) => registries.includes(r));
  if (removed.length === 0) return { merged: current, removed };
  return {
    merged: { ...current, 'insecure-registries': existing.filter((r) => !registries.includes(r)) },
    removed,
  };
}

export function serialiseDaemonJson(value: DaemonJson): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** The state file beside daemon.json (see registryStatePath): which insecure-registries entries runner-fleet added. */
export interface RegistryState {
  'insecure-registries-added': string[];
  /** registry-mirrors entries runner-fleet added (docker.registryMirrors) */
  'registry-mirrors-added'?: string[];
  /** scalar settings runner-fleet set (`log-driver`, `log-opts.max-size`…): the value it wrote and the one it replaced */
  'settings-set'?: Record<string, OwnedSetting>;
}

export interface OwnedSetting {
  value: string;
  /** what the key held before runner-fleet set it; null: it was absent */
  previous: string | null;
}

/** Everything runner-fleet owns in one daemon.json, as the state file records it. */
export interface Ownership {
  insecure: string[];
  mirrors: string[];
  settings: Record<string, OwnedSetting>;
}

export function parseOwnership(text: string | undefined): Ownership {
  const empty: Ownership = { insecure: [], mirrors: [], settings: {} };
  if (text === undefined || text.trim() === '') return empty;
  let value: Partial<RegistryState> | null;
  try {
    value = JSON.parse(text) as Partial<RegistryState> | null;
  } catch {
    return empty;
  }
  const strings = (list: unknown) =>
    Array.isArray(list) ? list.filter((e): e is string => typeof e === 'string') : [];
  const settings: Record<string, OwnedSetting> = {};
  const raw = value?.['settings-set'];
  if (raw && typeof raw === 'object') {
    for (const [key, s] of Object.entries(raw)) {
      if (s && typeof s.value === 'string' && (s.previous === null || typeof s.previous === 'string'))
        settings[key] = { value: s.value, previous: s.previous };
    }
  }
  return {
    insecure: [...new Set(strings(value?.['insecure-registries-added']))],
    mirrors: [...new Set(strings(value?.['registry-mirrors-added']))],
    settings,
  };
}

/** Written only with what is there: a state file with registries alone reads exactly as before these settings existed. */
export function serialiseOwnership(o: Ownership): string {
  const state: RegistryState & { comment: string } = {
    comment:
      'Written by runner-fleet: the entries and settings it added to the daemon.json beside this file. It removes them when the inventory no longer lists them, and never touches other entries.',
    'insecure-registries-added': [...new Set(o.insecure)],
    ...(o.mirrors.length > 0 ? { 'registry-mirrors-added': [...new Set(o.mirrors)] } : {}),
    ...(Object.keys(o.settings).length > 0 ? { 'settings-set': o.settings } : {}),
  };
  return `${JSON.stringify(state, null, 2)}\n`;
}

export function sameOwnership(a: Ownership, b: Ownership): boolean {
  const norm = (o: Ownership) =>
    JSON.stringify({
      i: [...new Set(o.insecure)].sort(),
      m: [...new Set(o.mirrors)].sort(),
      s: Object.entries(o.settings).sort(([x], [y]) => x.localeCompare(y)),
    });
  return norm(a) === norm(b);
}

/** How dockerd picks up a daemon.json key: a SIGHUP reloads some (daemon/reload.go), the others only a restart. */
export type Pickup = 'reload' | 'restart';

/** The daemon.json keys runner-fleet writes besides insecure-registries, and how dockerd takes each. */
export const OWNED_KEYS: Record<'registry-mirrors' | 'log-driver' | 'log-opts', Pickup> = {
  // daemon/reload.go reloadRegistryConfig: registry-mirrors, like insecure-registries, is re-read on SIGHUP.
  'registry-mirrors': 'reload',
  // Read when dockerd starts (daemon/logger config of new containers); a SIGHUP leaves them as they were.
  'log-driver': 'restart',
  'log-opts': 'restart',
};

export interface SettingsWanted {
  mirrors: string[];
  /** `log-driver` and `log-opts.<name>` → value; absent keys are not wanted (runner-fleet's own are taken back) */
  scalars: Record<string, string>;
}

export interface SettingsChange {
  key: keyof typeof OWNED_KEYS;
  detail: string;
}

function getPath(obj: DaemonJson, path: string): unknown {
  const [top, sub] = path.split('.', 2);
  if (sub === undefined) return obj[top];
  const inner = obj[top];
  return inner && typeof inner === 'object' && !Array.isArray(inner)
    ? (inner as Record<string, unknown>)[sub]
    : undefined;
}

function setPath(obj: DaemonJson, path: string, value: string | null): DaemonJson {
  const [top, sub] = path.split('.', 2);
  const out = { ...obj };
  if (sub === undefined) {
    if (value === null) delete out[top];
    else out[top] = value;
    return out;
  }
  const inner = { ...((obj[top] as Record<string, unknown> | undefined) ?? {}) };
  if (value === null) delete inner[sub];
  else inner[sub] = value;
  if (Object.keys(inner).length === 0) delete out[top];
  else out[top] = inner;
  return out;
}

/**
 * Merges docker.registryMirrors and docker.logs into daemon.json the way insecure-registries is merged: only what
 * runner-fleet owns (per `owned`) is ever taken back, and a setting it replaced gets its previous value back.
 * Returns the new file, the new ownership, and each change with the key it touches (which says reload or restart).
 */
export function mergeOwnedSettings(
  current: DaemonJson,
  wanted: SettingsWanted,
  owned: Ownership,
): { merged: DaemonJson; owned: Ownership; changes: SettingsChange[] } {
  let merged = current;
  const changes: SettingsChange[] = [];
  const existing = current['registry-mirrors'];
  if (existing !== undefined && (!Array.isArray(existing) || existing.some((e) => typeof e !== 'string'))) {
    throw new DaemonJsonError(
      'daemon.json: "registry-mirrors" must be a list of strings; runner-fleet will not overwrite it',
    );
  }
  const mirrors = (existing as string[] | undefined) ?? [];
  const norm = (u: string) => u.replace(/\/+$/, '');
  const drop = owned.mirrors.filter(
    (m) => !wanted.mirrors.some((w) => norm(w) === norm(m)) && mirrors.some((e) => norm(e) === norm(m)),
  );
  const add = wanted.mirrors.filter((w) => !mirrors.some((e) => norm(e) === norm(w)));
  const kept = mirrors.filter((e) => !drop.some((d) => norm(d) === norm(e)));
  if (add.length > 0 || drop.length > 0) {
    // An empty list rather than no key, so that a reload drops the last mirror (see removeInsecureRegistries).
    merged = { ...merged, 'registry-mirrors': [...kept, ...add] };
    const what = [
      add.length ? `add ${add.join(', ')} to registry-mirrors` : '',
      drop.length
        ? `remove ${drop.join(', ')} from registry-mirrors (runner-fleet added it; the inventory no longer lists it)`
        : '',
    ];
    changes.push({ key: 'registry-mirrors', detail: what.filter(Boolean).join('; ') });
  }
  const ownedMirrors = [
    ...new Set([
      ...owned.mirrors.filter((m) => !drop.includes(m) && wanted.mirrors.some((w) => norm(w) === norm(m))),
      ...add,
    ]),
  ];

  const settings: Record<string, OwnedSetting> = {};
  const paths = [...new Set([...Object.keys(wanted.scalars), ...Object.keys(owned.settings)])].sort();
  for (const path of paths) {
    const want = wanted.scalars[path];
    const raw = getPath(merged, path);
    const now = raw === undefined ? null : typeof raw === 'string' ? raw : JSON.stringify(raw);
    const mine = owned.settings[path];
    const key = path.split('.')[0] as SettingsChange['key'];
    if (want !== undefined) {
      if (now !== want) {
        merged = setPath(merged, path, want);
        changes.push({ key, detail: `set ${path} to ${want}${now === null ? '' : ` (was ${now})`}` });
      }
      // Recorded only when runner-fleet made the value (or made it before): a value the user had already is theirs.
      if (mine) settings[path] = { value: want, previous: mine.previous };
      else if (now !== want) settings[path] = { value: want, previous: now };
    } else if (mine) {
      // Taken back only if it still holds what runner-fleet wrote; otherwise someone changed it since: theirs now.
      if (now === mine.value) {
        merged = setPath(merged, path, mine.previous);
        changes.push({
          key,
          detail:
            mine.previous === null
              ? `remove ${path} (runner-fleet set it; the inventory no longer does)`
              : `put ${path} back to ${mine.previous} (runner-fleet had set ${mine.value})`,
        });
      }
    }
  }
  return { merged, owned: { insecure: owned.insecure, mirrors: ownedMirrors, settings }, changes };
}

/** docker.logs as daemon.json paths: `log-driver`, `log-opts.max-size`, `log-opts.max-file` (log-opts values are strings). */
export function logScalars(
  logs: { driver?: string; maxSize?: string; maxFile?: number } | undefined,
): Record<string, string> {
  const out: Record<string, string> = {};
  if (logs?.driver !== undefined) out['log-driver'] = logs.driver;
  if (logs?.maxSize !== undefined) out['log-opts.max-size'] = logs.maxSize;
  if (logs?.maxFile !== undefined) out['log-opts.max-file'] = String(logs.maxFile);
  return out;
}

/**
 * The entries runner-fleet recorded as its own. A missing file is none; so is an unreadable one: runner-fleet then
 * removes nothing (it never touches an entry it cannot show it added), and the next write replaces the file.
 */
export function parseRegistryState(text: string | undefined): string[] {
  if (text === undefined || text.trim() === '') return [];
  try {
    const value = JSON.parse(text) as Partial<RegistryState> | null;
    const list = value?.['insecure-registries-added'];
    return Array.isArray(list) ? list.filter((e): e is string => typeof e === 'string') : [];
  } catch {
    return [];
  }
}

export function serialiseRegistryState(added: string[]): string {
  const state: RegistryState & { comment: string } = {
    comment:
      'Written by runner-fleet: the insecure-registries entries it added to the daemon.json beside this file. It removes them when the inventory no longer lists them, and never touches other entries.',
    'insecure-registries-added': [...new Set(added)],
  };
  return `${JSON.stringify(state, null, 2)}\n`;
}
