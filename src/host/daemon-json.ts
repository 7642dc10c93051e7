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
    throw new DaemonJsonError(`${path} is not valid JSON (${(err as Error).message}); fix or remove it by hand, runner-fleet will not overwrite it`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new DaemonJsonError(`${path} must hold a JSON object; runner-fleet will not overwrite it`);
  }
  const existing = (value as DaemonJson)['insecure-registries'];
  if (existing !== undefined && (!Array.isArray(existing) || existing.some((e) => typeof e !== 'string'))) {
    throw new DaemonJsonError(`${path}: "insecure-registries" must be a list of strings; runner-fleet will not overwrite it`);
  }
  return value as DaemonJson;
}

/**
 * Returns daemon.json with every registry in `insecure-registries`, keeping every other key and existing entry
 * in place; `added` lists the registries that were missing.
 */
export function mergeInsecureRegistries(current: DaemonJson, registries: string[]): { merged: DaemonJson; added: string[] } {
  const existing = (current['insecure-registries'] as string[] | undefined) ?? [];
  const added = registries.filter((r) => !existing.includes(r));
  if (added.length === 0) return { merged: current, added };
  return { merged: { ...current, 'insecure-registries': [...existing, ...added] }, added };
}

/** Removes only the given registries (for `destroy --purge-registry-config`). */
export function removeInsecureRegistries(current: DaemonJson, registries: string[]): { merged: DaemonJson; removed: string[] } {
  const existing = (current['insecure-registries'] as string[] | undefined) ?? [];
  const removed = existing.filter((r) => registries.includes(r));
  if (removed.length === 0) return { merged: current, removed };
  const rest = existing.filter((r) => !registries.includes(r));
  const merged = { ...current };
  if (rest.length > 0) merged['insecure-registries'] = rest;
  else delete merged['insecure-registries'];
  return { merged, removed };
}

export function serialiseDaemonJson(value: DaemonJson): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** The state file beside daemon.json (see registryStatePath): which insecure-registries entries runner-fleet added. */
export interface RegistryState {
  'insecure-registries-added': string[];
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
    comment: 'Written by runner-fleet: the insecure-registries entries it added to the daemon.json beside this file. It removes them when the inventory no longer lists them, and never touches other entries.',
    'insecure-registries-added': [...new Set(added)],
  };
  return `${JSON.stringify(state, null, 2)}\n`;
}
