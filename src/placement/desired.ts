// Pure: what the cluster should hold (one config.toml per node with a runner), and what fails before any change.
import type { Executor, Inventory } from '../inventory/types.js';
import type { KubeObject } from '../kube/objects.js';
import { CLUSTER_ARCHITECTURES, renderClusterObjects } from '../kube/render.js';
import { renderConfigToml } from '../runners/config-toml.js';
import type { RunnerRecord } from '../runners/records.js';
import { redact } from '../secrets.js';
import type { UnfitNode } from './reasons.js';

/** A stand-in record for a runner that `plan` says would be created: the config can be planned before it exists. */
function plannedRecord(node: string): RunnerRecord {
  return {
    node,
    mode: 'access',
    token: 'created-on-apply',
    systemId: 's_000000000000',
    settings: null,
    createdAt: new Date(0).toISOString(),
  };
}

/** What the cluster should hold, before rendering: the input of renderClusterObjects (and so of convergeCluster). */
export interface DesiredCluster {
  /** the inventory limited to the nodes that have a runner */
  inventory: Inventory;
  executor: Executor;
  configs: Record<string, string>;
  tokens: Record<string, string>;
  systemIds: Record<string, string>;
}

/**
 * One config.toml per inventory node that has a live record; a node whose registration failed keeps no pod.
 * `apply` and `render` both build the cluster objects from this, so `render` writes exactly what `apply` sends.
 * `planned`: nodes `plan` would register, given a stand-in record so their config can be planned.
 */
export function desiredCluster(opts: {
  inventory: Inventory;
  executor: Executor;
  records: RunnerRecord[];
  arch: (node: string) => string;
  /** the MTU each node's job networks can carry (src/docker/mtu.ts); absent: Docker's default */
  mtu?: (node: string) => number | undefined;
  planned?: Set<string>;
}): DesiredCluster {
  const { inventory: inv } = opts;
  const live = new Map(opts.records.filter((r) => !r.retiredAt).map((r) => [r.node, r]));
  const configs: Record<string, string> = {};
  const tokens: Record<string, string> = {};
  const systemIds: Record<string, string> = {};
  for (const node of inv.nodes) {
    const record =
      live.get(node.name) ?? (opts.planned?.has(node.name) ? plannedRecord(node.name) : undefined);
    if (!record) continue;
    configs[node.name] = renderConfigToml({
      inventory: inv,
      node,
      record,
      executor: opts.executor,
      arch: opts.arch(node.name),
      mtu: opts.mtu?.(node.name) ?? node.mtu,
      placement: 'cluster',
    });
    tokens[node.name] = record.token;
    systemIds[node.name] = record.systemId;
  }
  return {
    inventory: { ...inv, nodes: inv.nodes.filter((n) => configs[n.name] !== undefined) },
    executor: opts.executor,
    configs,
    tokens,
    systemIds,
  };
}

/**
 * What can be known to fail before anything changes. `unfit`: nodes whose architecture no runner pod can run on
 * (they get no runner; the others go on). `error`: the cluster objects cannot be rendered at all (a template, or
 * a value config.toml cannot hold), checked with stand-in records for every node.
 */
export function clusterPreflight(
  inv: Inventory,
  executor: Executor,
  arch: (node: string) => string,
): { unfit: Map<string, UnfitNode>; error?: string; objects?: KubeObject[] } {
  const unfit = new Map<string, UnfitNode>();
  for (const node of inv.nodes) {
    const a = arch(node.name);
    if (!CLUSTER_ARCHITECTURES.includes(a)) unfit.set(node.name, { kind: 'architecture', arch: a });
  }
  const fit = inv.nodes.filter((n) => !unfit.has(n.name));
  if (fit.length === 0) return { unfit };
  let objects: KubeObject[];
  try {
    objects = renderClusterObjects(
      desiredCluster({
        inventory: { ...inv, nodes: fit },
        executor,
        records: [],
        arch,
        planned: new Set(fit.map((n) => n.name)),
      }),
    );
  } catch (err) {
    return { unfit, error: redact(err instanceof Error ? err.message : String(err)) };
  }
  return { unfit, objects };
}
