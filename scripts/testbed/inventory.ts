// Writes the fleet's inventory YAML: base fields for the nodes and keys, merged with what each service added, checked by the real parser.
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { parseInventory } from '../../src/inventory/schema.js';
import type { NodeInfo } from './node.js';
import type { InventoryFields } from './services.js';

export interface InventoryBase {
  nodes: NodeInfo[];
  identityFile: string;
  knownHosts: string;
}

/** A GitLab that is not there yet: the stand-in service replaces it. Port 1 on loopback refuses at once. */
export const PLACEHOLDER_GITLAB_URL = 'http://127.0.0.1:1';

/**
 * The package-repository stand-in's key (the apt-get stand-in serves GitLab's runner repository URL signed with it):
 * `placement: host` runs fetch this key instead of GitLab's, pinned by its own fingerprint.
 */
export const TESTBED_REPOSITORY_KEY = join(import.meta.dirname, 'repository', 'signing-key.asc');
/** That key's fingerprint (src/host-runner/openpgp.test.ts checks it against the file). */
export const TESTBED_REPOSITORY_FINGERPRINT = 'A0D3D76DCDC5B3A395EAD8371EBFE911B8F8121F';

type Tree = Record<string, unknown>;

function isTree(v: unknown): v is Tree {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function merge(into: Tree, from: Tree): Tree {
  const out: Tree = { ...into };
  for (const [k, v] of Object.entries(from)) {
    if (v === undefined) continue;
    out[k] = isTree(v) && isTree(out[k]) ? merge(out[k] as Tree, v) : v;
  }
  return out;
}

export function renderInventory(base: InventoryBase, extra: InventoryFields[]): string {
  let doc: Tree = {
    gitlab: { url: PLACEHOLDER_GITLAB_URL, registry: [] },
    ssh: { user: 'pi', identityFile: base.identityFile, knownHosts: base.knownHosts, connectTimeout: 10 },
    // 'none' nodes have no Docker yet: the provisioner chooses (auto).
    nodes: base.nodes.map((n) => ({
      name: n.name,
      host: n.host,
      port: n.port,
      docker: n.docker === 'none' ? 'auto' : n.docker,
    })),
    runners: {
      packageRepository: {
        key: `file:${TESTBED_REPOSITORY_KEY}`,
        fingerprint: TESTBED_REPOSITORY_FINGERPRINT,
      },
    },
  };
  for (const fields of extra) doc = merge(doc, fields as Tree);
  return `# The local test fleet (scripts/testbed.ts up). Rewritten on every up.\n${stringify(doc)}`;
}

/** Renders, validates with parseInventory (throws InputError listing every issue) and writes atomically. */
export function writeInventory(path: string, base: InventoryBase, extra: InventoryFields[]): string {
  const text = renderInventory(base, extra);
  parseInventory(text, path);
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
  return text;
}
