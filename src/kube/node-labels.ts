// Pure: which labels each fleet's field manager sets on which Node, so that one fleet never takes another's away.
import { LEGACY_NODE_LABEL } from '../inventory/fields.js';
import { LEGACY_NODE_LABEL_MANAGER, NODE_LABEL_MANAGER, nodeLabelManager } from './objects.js';

/** A Node as the planner needs it: its labels, and which field managers own each label (Apply entries). */
export interface NodeLabels {
  name: string;
  labels: Record<string, string>;
  /** label key → the field managers whose Apply owns it */
  owners: Record<string, string[]>;
}

/** The labels one field manager applies on one Node: everything it set before and does not name here goes. */
export interface LabelApply {
  node: string;
  manager: string;
  labels: Record<string, string>;
  detail: string;
}

export interface NodeLabelPlan {
  /** before the objects change: wanted nodes get the label (what the manager had stays until `after`) */
  before: LabelApply[];
  /** after the rollout: old labels of this fleet go, and the manager older versions shared lets go of this fleet's */
  after: LabelApply[];
  /** another fleet's field manager owns this fleet's label key: both DaemonSets would run on those nodes */
  conflicts: string[];
}

const pick = (labels: Record<string, string>, keys: string[]) =>
  Object.fromEntries(keys.filter((k) => labels[k] !== undefined).map((k) => [k, labels[k]]));

/** Label keys `manager` owns on the node. */
export const ownedBy = (n: NodeLabels, manager: string): string[] =>
  Object.keys(n.owners).filter((k) => n.owners[k].includes(manager));

/** The namespace of another fleet whose node-label manager owns `key` on this node, if any. */
function otherFleets(n: NodeLabels, key: string, namespace: string): string[] {
  const mine = nodeLabelManager(namespace);
  return (n.owners[key] ?? [])
    .filter((m) => m.startsWith(`${NODE_LABEL_MANAGER}/`) && m !== mine)
    .map((m) => m.slice(NODE_LABEL_MANAGER.length + 1));
}

/**
 * Where a version before per-fleet managers labelled this fleet's nodes: on the nodes this fleet wants, that shared
 * manager lets go of the old default key and of this fleet's key (the fleet's own manager holds it by then). On any
 * other node the old label may be another fleet's, so it stays.
 */
function releaseLegacy(n: NodeLabels, key: string): LabelApply | undefined {
  const held = ownedBy(n, LEGACY_NODE_LABEL_MANAGER);
  const going = held.filter((k) => k === key || k === LEGACY_NODE_LABEL);
  if (going.length === 0) return undefined;
  const gone = going.filter((k) => k !== key);
  return {
    node: n.name,
    manager: LEGACY_NODE_LABEL_MANAGER,
    labels: pick(
      n.labels,
      held.filter((k) => !going.includes(k)),
    ),
    detail:
      gone.length > 0
        ? `remove the old shared label ${gone.join(', ')} from node ${n.name} (now ${key})`
        : `node ${n.name}: ${key} now belongs to this fleet's field manager alone`,
  };
}

/** What converge does to node labels for a fleet (namespace) wanting `key` on the nodes `wanted`. */
export function planNodeLabels(input: {
  nodes: NodeLabels[];
  wanted: readonly string[];
  key: string;
  namespace: string;
}): NodeLabelPlan {
  const { key, namespace } = input;
  const manager = nodeLabelManager(namespace);
  const plan: NodeLabelPlan = { before: [], after: [], conflicts: [] };
  for (const n of input.nodes) {
    const others = otherFleets(n, key, namespace);
    if (others.length > 0)
      plan.conflicts.push(
        `node ${n.name}: ${key} is also the node label of the fleet in namespace ${others.join(', ')}; ` +
          'each fleet needs its own kubernetes.nodeLabel (the default is one per namespace)',
      );
    const mine = ownedBy(n, manager);
    if (input.wanted.includes(n.name)) {
      if (!mine.includes(key) || n.labels[key] !== 'true')
        plan.before.push({
          node: n.name,
          manager,
          labels: { ...pick(n.labels, mine), [key]: 'true' },
          detail: `label node ${n.name} ${key}=true`,
        });
      const old = mine.filter((k) => k !== key);
      if (old.length > 0)
        plan.after.push({
          node: n.name,
          manager,
          labels: { [key]: 'true' },
          detail: `remove ${old.join(', ')} from node ${n.name} (kubernetes.nodeLabel is ${key})`,
        });
      const legacy = releaseLegacy(n, key);
      if (legacy) plan.after.push(legacy);
    } else if (mine.length > 0) {
      plan.after.push({
        node: n.name,
        manager,
        labels: {},
        detail: `remove ${mine.join(', ')} from node ${n.name} (not in the inventory)`,
      });
    }
  }
  return plan;
}

/**
 * Taking this fleet's labels away (host placement, destroy): its manager's from `nodes` (default every node), and the
 * old shared manager's from those of them in the inventory.
 */
export function planNodeLabelRemoval(input: {
  nodes: NodeLabels[];
  inventory: readonly string[];
  key: string;
  namespace: string;
  only?: readonly string[];
}): LabelApply[] {
  const manager = nodeLabelManager(input.namespace);
  const out: LabelApply[] = [];
  for (const n of input.nodes) {
    if (input.only && !input.only.includes(n.name)) continue;
    const mine = ownedBy(n, manager);
    if (mine.length > 0)
      out.push({
        node: n.name,
        manager,
        labels: {},
        detail: `remove ${mine.join(', ')} from node ${n.name}`,
      });
    if (!input.inventory.includes(n.name)) continue;
    const legacy = releaseLegacy(n, input.key);
    if (legacy)
      out.push({
        ...legacy,
        detail: `remove the old shared label ${Object.keys(n.owners)
          .filter((k) => n.owners[k].includes(LEGACY_NODE_LABEL_MANAGER) && !(k in legacy.labels))
          .join(', ')} from node ${n.name}`,
      });
  }
  return out;
}
