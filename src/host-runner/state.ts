// The host-runner index beside the inventory: which nodes carry a host runner and how to reach them, so that a node
// deleted from the inventory can still have its runner removed. No secrets: the records stay on the nodes.
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import type { NodeSpec } from '../inventory/types.js';

export type IndexedNode = Pick<
  NodeSpec,
  'name' | 'host' | 'port' | 'user' | 'identityFile' | 'knownHosts' | 'connectTimeout'
>;

interface IndexFile {
  /** for people opening the file */
  about: string;
  version: 1;
  nodes: IndexedNode[];
}

/** `inventory/fleet.yaml` → `inventory/fleet.state.json`: one index per inventory, never shared by two fleets. */
export function hostRunnerIndexPath(inventorySource: string): string {
  return `${inventorySource.replace(/\.ya?ml$/i, '')}.state.json`;
}

export function indexEntry(n: NodeSpec | IndexedNode): IndexedNode {
  return {
    name: n.name,
    host: n.host,
    port: n.port,
    user: n.user,
    identityFile: n.identityFile,
    knownHosts: n.knownHosts,
    connectTimeout: n.connectTimeout,
  };
}

export function readHostRunnerIndex(path: string): IndexedNode[] {
  if (!existsSync(path)) return [];
  let doc: Partial<IndexFile>;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8')) as Partial<IndexFile>;
  } catch {
    throw new Error(`${path} is not valid JSON (runner-fleet's index of host runners; fix or remove it)`);
  }
  if (doc.version !== 1 || !Array.isArray(doc.nodes))
    throw new Error(`${path}: not a runner-fleet host-runner index (version 1)`);
  return doc.nodes.filter(
    (n): n is IndexedNode =>
      typeof n?.name === 'string' && typeof n.host === 'string' && Number.isInteger(n.port),
  );
}

/** Writes the index when it changed (sorted by name); removes the file when no node has a host runner. */
export function writeHostRunnerIndex(path: string, nodes: IndexedNode[]): boolean {
  const sorted = [...nodes].sort((a, b) => a.name.localeCompare(b.name)).map(indexEntry);
  const current = existsSync(path) ? readFileSync(path, 'utf8') : undefined;
  if (sorted.length === 0) {
    if (current === undefined) return false;
    rmSync(path, { force: true });
    return true;
  }
  const doc: IndexFile = {
    about:
      'Written by runner-fleet: the nodes that run a host-placed gitlab-runner, so that one removed from the inventory can still be cleaned up. Keep it beside the inventory.',
    version: 1,
    nodes: sorted,
  };
  const text = `${JSON.stringify(doc, null, 2)}\n`;
  if (text === current) return false;
  writeFileSync(`${path}.tmp`, text, { mode: 0o644 });
  renameSync(`${path}.tmp`, path);
  return true;
}
