// Helpers for end-to-end suites: inventory variants, kubectl against the test cluster, the GitLab stand-in's state.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { sh } from '#testbed';
import type { StandinState } from '../gitlab/standin.js';

export type InventoryDoc = Record<string, any>;

export function readInventory(path: string): InventoryDoc {
  return parse(readFileSync(path, 'utf8')) as InventoryDoc;
}

let counter = 0;
/** Writes a variant of `base` next to `basePath` and returns its path. */
export function writeVariant(
  basePath: string,
  base: InventoryDoc,
  mutate: (inv: InventoryDoc) => void,
): string {
  const copy = structuredClone(base);
  mutate(copy);
  const path = basePath.replace(/\.yaml$/, `.variant-${process.pid}-${++counter}.yaml`);
  writeFileSync(path, stringify(copy));
  return path;
}

/** kubectl from the test cluster's build, as an operator would use it. Synchronous (the suites' expectations read
 * its output inline); a failure throws zx's ProcessOutput with kubectl's exit code and stderr. */
export function kubectl(binDir: string, kubeconfig: string, args: string[]): string {
  return sh({ sync: true })`${join(binDir, 'kubectl')} --kubeconfig ${kubeconfig} ${args}`.stdout;
}

export function kubectlJson<T = any>(binDir: string, kubeconfig: string, args: string[]): T {
  return JSON.parse(kubectl(binDir, kubeconfig, [...args, '-o', 'json'])) as T;
}

export async function standinState(gitlabUrl: string): Promise<StandinState> {
  const res = await fetch(`${gitlabUrl}/_standin/state`);
  return (await res.json()) as StandinState;
}

export async function standinControl(
  gitlabUrl: string,
  path: string,
  method = 'POST',
  body?: unknown,
): Promise<void> {
  const res = await fetch(`${gitlabUrl}/_standin/${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`stand-in ${method} ${path}: ${res.status}`);
}

/**
 * Turns apply's pre-pull off in the fleet's own inventory, for suites that run no job: the images would only cost
 * every apply there a pull into each node's storage. Suites that run jobs keep it, as a user's fleet does.
 */
export function withoutPrepull(inventoryPath: string): void {
  const inv = readInventory(inventoryPath);
  inv.runners = { ...(inv.runners ?? {}), prepull: false };
  writeFileSync(inventoryPath, stringify(inv));
}
