// destroy in the cluster, the pure parts: whose namespace it is, whose objects are in it, what the prompt lists.
import { describe, expect, it } from 'vitest';
import type { KubeObject } from './objects.js';
import { createdByUs, isOurs, othersObjects, teardownChanges, type TeardownPlan } from './teardown.js';

const ns = (...managers: string[]): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Namespace',
  metadata: {
    name: 'gitlab-runner',
    managedFields: managers.map((manager) => ({ manager, operation: 'Apply' })),
  },
});
const obj = (kind: string, name: string, meta: Record<string, unknown> = {}): KubeObject => ({
  apiVersion: 'v1',
  kind,
  metadata: { name, namespace: 'gitlab-runner', ...meta },
});

describe('createdByUs', () => {
  it('only when every field manager is one of ours', () => {
    expect(createdByUs(ns('runner-fleet-records', 'runner-fleet'))).toBe(true);
    expect(createdByUs(ns('kubectl-create', 'runner-fleet'))).toBe(false);
    expect(createdByUs(ns())).toBe(false);
  });
});

describe('othersObjects', () => {
  it("skips ours (by label or owner), Kubernetes' furniture and what is already going", () => {
    const ds = new Set(['uid-ds']);
    const objects = [
      obj('Pod', 'runner-abc', { ownerReferences: [{ uid: 'uid-ds' }] }),
      obj('ControllerRevision', 'gitlab-runner-dood-5f', { ownerReferences: [{ uid: 'uid-ds' }] }),
      obj('Secret', 'runner-fleet-records', { labels: { 'app.kubernetes.io/part-of': 'runner-fleet' } }),
      obj('ConfigMap', 'kube-root-ca.crt'),
      obj('ServiceAccount', 'default'),
      obj('Service', 'leaving', { deletionTimestamp: 'now' }),
      obj('Service', 'cache'),
      obj('SealedSecret', 'registry-auth'),
    ];
    expect(othersObjects(objects, ds).map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([
      'Service/cache',
      'SealedSecret/registry-auth',
    ]);
    expect(
      isOurs(obj('Secret', 'x', { labels: { 'app.kubernetes.io/managed-by': 'runner-fleet' } }), new Set()),
    ).toBe(true);
  });
});

describe('teardownChanges', () => {
  const plan: TeardownPlan = {
    namespace: 'gitlab-runner',
    objects: [
      {
        apiVersion: 'apps/v1',
        kind: 'DaemonSet',
        metadata: { name: 'gitlab-runner-dood', namespace: 'gitlab-runner' },
      },
    ],
    labels: [
      {
        node: 'pi1',
        manager: 'runner-fleet-node-label/gitlab-runner',
        labels: {},
        detail: 'remove fleet.runner-fleet.dev/gitlab-runner from node pi1',
      },
    ],
    records: true,
    namespaceAction: 'delete',
    ourUids: [],
    kept: [],
  };
  it('lists every removal; an empty plan lists nothing (destroy says "nothing to remove")', () => {
    expect(teardownChanges(plan).map((c) => c.detail)).toEqual([
      'delete DaemonSet gitlab-runner/gitlab-runner-dood',
      'remove fleet.runner-fleet.dev/gitlab-runner from node pi1',
      'delete Secret gitlab-runner/runner-fleet-records (runner records)',
      'delete Namespace gitlab-runner (runner-fleet created it; nothing else is in it)',
    ]);
    expect(
      teardownChanges({ ...plan, objects: [], labels: [], records: false, namespaceAction: 'none' }),
    ).toEqual([]);
  });
});
