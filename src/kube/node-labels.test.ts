// Node labels per fleet, as tables: the Node's labels and their managers in, the applies out.
import { describe, expect, it } from 'vitest';
import { planNodeLabelRemoval, planNodeLabels, type NodeLabels } from './node-labels.js';

const A = 'fleet.runner-fleet.dev/a';
const B = 'fleet.runner-fleet.dev/b';
const OLD = 'runner-fleet.dev/runner';
const mA = 'runner-fleet-node-label/a';
const mB = 'runner-fleet-node-label/b';
const legacy = 'runner-fleet-node-label';

const node = (name: string, owned: Record<string, string[]> = {}): NodeLabels => ({
  name,
  labels: Object.fromEntries(Object.keys(owned).map((k) => [k, 'true'])),
  owners: owned,
});

describe('planNodeLabels', () => {
  it("a second fleet labels its nodes with its own key and manager and never touches the first's", () => {
    const nodes = [node('pi1', { [A]: [mA] }), node('pi2', { [A]: [mA] }), node('pi3', { [A]: [mA] })];
    const plan = planNodeLabels({ nodes, wanted: ['pi3'], key: B, namespace: 'b' });
    expect(plan.conflicts).toEqual([]);
    expect(plan.before).toEqual([
      { node: 'pi3', manager: mB, labels: { [B]: 'true' }, detail: `label node pi3 ${B}=true` },
    ]);
    // pi1 and pi2 are not in fleet b's inventory, and fleet b set nothing there: nothing to remove.
    expect(plan.after).toEqual([]);
  });

  it('a node that left the inventory loses only what this fleet set', () => {
    const plan = planNodeLabels({
      nodes: [node('pi1', { [A]: [mA], [B]: [mB] })],
      wanted: [],
      key: A,
      namespace: 'a',
    });
    expect(plan.after).toEqual([
      { node: 'pi1', manager: mA, labels: {}, detail: `remove ${A} from node pi1 (not in the inventory)` },
    ]);
  });

  it("refuses a key another fleet's manager set: both DaemonSets would select those nodes", () => {
    const plan = planNodeLabels({
      nodes: [node('pi1', { 'x/runner': [mA] })],
      wanted: ['pi1'],
      key: 'x/runner',
      namespace: 'b',
    });
    expect(plan.conflicts).toEqual([
      'node pi1: x/runner is also the node label of the fleet in namespace a; each fleet needs its own kubernetes.nodeLabel (the default is one per namespace)',
    ]);
  });

  it("upgrade: the new key first, the old shared label goes after the rollout, only on this fleet's nodes", () => {
    const nodes = [node('pi1', { [OLD]: [legacy] }), node('pi9', { [OLD]: [legacy] })];
    const plan = planNodeLabels({ nodes, wanted: ['pi1'], key: A, namespace: 'a' });
    expect(plan.before.map((a) => [a.node, a.manager, a.labels])).toEqual([['pi1', mA, { [A]: 'true' }]]);
    expect(plan.after).toEqual([
      {
        node: 'pi1',
        manager: legacy,
        labels: {},
        detail: `remove the old shared label ${OLD} from node pi1 (now ${A})`,
      },
    ]);
  });

  it("upgrade with an explicit nodeLabel: the key stays on the node and moves to this fleet's manager", () => {
    const plan = planNodeLabels({
      nodes: [node('pi1', { 'x/runner': [legacy], 'x/other': [legacy] })],
      wanted: ['pi1'],
      key: 'x/runner',
      namespace: 'a',
    });
    expect(plan.before[0].labels).toEqual({ 'x/runner': 'true' });
    // What the shared manager held besides (another old fleet's key) stays held.
    expect(plan.after).toEqual([
      {
        node: 'pi1',
        manager: legacy,
        labels: { 'x/other': 'true' },
        detail: "node pi1: x/runner now belongs to this fleet's field manager alone",
      },
    ]);
  });

  it('a changed nodeLabel keeps the old key until after the rollout, then drops it', () => {
    const plan = planNodeLabels({
      nodes: [node('pi1', { 'x/old': [mA] })],
      wanted: ['pi1'],
      key: A,
      namespace: 'a',
    });
    expect(plan.before[0].labels).toEqual({ 'x/old': 'true', [A]: 'true' });
    expect(plan.after[0]).toMatchObject({ manager: mA, labels: { [A]: 'true' } });
    expect(
      planNodeLabels({ nodes: [node('pi1', { [A]: [mA] })], wanted: ['pi1'], key: A, namespace: 'a' }),
    ).toEqual({ before: [], after: [], conflicts: [] });
  });
});

describe('planNodeLabelRemoval', () => {
  it("removes this fleet's labels, and the old shared one on its own nodes only", () => {
    const nodes = [node('pi1', { [A]: [mA], [OLD]: [legacy] }), node('pi2', { [B]: [mB], [OLD]: [legacy] })];
    const out = planNodeLabelRemoval({ nodes, inventory: ['pi1'], key: A, namespace: 'a' });
    expect(out.map((a) => [a.node, a.manager, a.labels])).toEqual([
      ['pi1', mA, {}],
      ['pi1', legacy, {}],
    ]);
    expect(
      planNodeLabelRemoval({ nodes, inventory: ['pi1'], key: A, namespace: 'a', only: ['pi2'] }),
    ).toEqual([]);
  });
});
