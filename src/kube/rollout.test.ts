// Unit tests for the rollout judgement: kubectl's status rules plus "every inventory node has a current Ready pod".
import { describe, expect, it } from 'vitest';
import { describeBehind, onlyDraining, rolloutState, type DaemonSetView, type PodView } from './rollout.js';

const ds = (status: DaemonSetView['status'], generation = 2): DaemonSetView => ({
  metadata: {
    name: 'd',
    namespace: 'ns',
    generation,
    annotations: { 'deprecated.daemonset.template.generation': String(generation) },
  },
  status,
});
const pod = (
  name: string,
  node: string,
  ready: boolean,
  gen = '2',
  extra: Partial<PodView['metadata']> = {},
): PodView => ({
  metadata: { name, labels: { 'pod-template-generation': gen }, ...extra },
  spec: { nodeName: node },
  status: {
    phase: ready ? 'Running' : 'Running',
    conditions: [
      { type: 'Ready', status: ready ? 'True' : 'False', reason: ready ? undefined : 'NodeNotReady' },
    ],
  },
});
const done = {
  observedGeneration: 2,
  desiredNumberScheduled: 2,
  updatedNumberScheduled: 2,
  numberAvailable: 2,
};

describe('rolloutState', () => {
  it('is done when status and every node agree', () => {
    expect(rolloutState(ds(done), [pod('a', 'pi1', true), pod('b', 'pi2', true)], ['pi1', 'pi2'])).toEqual({
      done: true,
      waitingFor: undefined,
      behind: [],
    });
  });

  it('waits for the controller to observe the new generation', () => {
    const s = rolloutState(
      ds({ ...done, observedGeneration: 1 }),
      [pod('a', 'pi1', true), pod('b', 'pi2', true)],
      ['pi1', 'pi2'],
    );
    expect(s.done).toBe(false);
    expect(s.waitingFor).toMatch(/new spec/);
  });

  it('names a node whose pod is not Ready, has an old template, or is missing, even when the status looks done', () => {
    // desiredNumberScheduled already dropped the NotReady node: the status alone would say done.
    const s = rolloutState(
      ds({ ...done, desiredNumberScheduled: 1, updatedNumberScheduled: 1, numberAvailable: 1 }),
      [
        pod('a', 'pi1', true),
        pod('b', 'pi2', false),
        pod('c', 'pi3', true, '1'),
        pod('d', 'pi4', true, '2', { deletionTimestamp: 'now' }),
      ],
      ['pi1', 'pi2', 'pi3', 'pi4'],
    );
    expect(s.done).toBe(false);
    expect(s.behind).toEqual([
      { node: 'pi2', why: 'pod b is Running, not Ready (NodeNotReady)' },
      { node: 'pi3', why: 'pod c runs an older template (waits its turn)', graceful: true },
      { node: 'pi4', why: 'no pod' },
    ]);
    expect(describeBehind(s, { pi4: 'no such node in the cluster' })).toBe(
      'not ready on pi2 (pod b is Running, not Ready (NodeNotReady)), pi3 (pod c runs an older template (waits its turn)), pi4 (no such node in the cluster; no pod)',
    );
  });

  it('counts a node that reports NotReady as behind, whatever its pod last said', () => {
    const s = rolloutState(ds(done), [pod('a', 'pi1', true), pod('b', 'pi2', true)], ['pi1', 'pi2'], {
      pi1: true,
      pi2: false,
    });
    expect(s.done).toBe(false);
    expect(describeBehind(s)).toBe('not ready on pi2 (node NotReady)');
  });

  it('an upgrade that is only waiting for old pods to finish their jobs is progress, not failure', () => {
    const upgrading = ds({ ...done, updatedNumberScheduled: 1, numberAvailable: 1 });
    // pi1 updated; pi2's old pod is terminating (draining jobs); pi3's old pod waits its turn.
    const s = rolloutState(
      upgrading,
      [
        pod('a', 'pi1', true),
        pod('b', 'pi2', true, '1', { deletionTimestamp: 'now' }),
        pod('c', 'pi3', true, '1'),
      ],
      ['pi1', 'pi2', 'pi3'],
    );
    expect(s.behind).toEqual([
      { node: 'pi2', why: 'old pod b is finishing its running jobs', graceful: true },
      { node: 'pi3', why: 'pod c runs an older template (waits its turn)', graceful: true },
    ]);
    expect(onlyDraining(s)).toBe(true);
    // A new pod that does not come up is a failure, whatever else drains.
    const broken = rolloutState(
      upgrading,
      [pod('a', 'pi1', false), pod('b', 'pi2', true, '1', { deletionTimestamp: 'now' })],
      ['pi1', 'pi2'],
    );
    expect(onlyDraining(broken)).toBe(false);
  });
});
