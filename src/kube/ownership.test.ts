// Objects and Pod Security levels of others: refused with who manages them and how to go on.
import { describe, expect, it } from 'vitest';
import type { KubeObject } from './objects.js';
import { foreignObjects, otherManager, podSecurityConflict } from './ownership.js';

const sa = (metadata: Partial<KubeObject['metadata']> = {}): KubeObject => ({
  apiVersion: 'v1',
  kind: 'ServiceAccount',
  metadata: { name: 'gitlab-runner', namespace: 'ci', ...metadata },
});
const ours = { 'app.kubernetes.io/managed-by': 'runner-fleet' };

describe('foreignObjects', () => {
  it('refuses a Helm ServiceAccount, naming it, its manager, and how to rename or adopt it', () => {
    const helm = sa({
      labels: { 'app.kubernetes.io/managed-by': 'Helm' },
      managedFields: [{ manager: 'helm', operation: 'Update' }],
    });
    const [problem] = foreignObjects([sa({ labels: ours })], [helm]);
    expect(problem).toBe(
      "ServiceAccount ci/gitlab-runner exists and is not runner-fleet's (app.kubernetes.io/managed-by: Helm): " +
        'runner-fleet will not take it over. Use another kubernetes.namespace, or remove or rename that object, or ' +
        'adopt it explicitly with `kubectl -n ci label serviceaccount gitlab-runner ' +
        'app.kubernetes.io/managed-by=runner-fleet --overwrite` (then runner-fleet manages it, and destroy deletes it)',
    );
  });

  it('an object without our label (kubectl create) is refused; ours, an adopted one and absent ones are not', () => {
    const made = sa({ managedFields: [{ manager: 'kubectl-create', operation: 'Update' }] });
    expect(foreignObjects([sa()], [made])[0]).toMatch(/\(field managers kubectl-create\)/);
    expect(foreignObjects([sa(), sa()], [sa({ labels: ours }), undefined])).toEqual([]);
  });

  it('a Helm object an older version took over (our label, Helm annotation) is still Helm’s', () => {
    const taken = sa({ labels: ours, annotations: { 'meta.helm.sh/release-name': 'runner' } });
    expect(otherManager(taken)).toBe('Helm release runner');
    expect(foreignObjects([sa()], [taken])).toHaveLength(1);
  });

  it('leaves the Namespace to the namespace rules (a namespace of others is used, and released by destroy)', () => {
    const ns: KubeObject = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ci' } };
    expect(foreignObjects([ns], [ns])).toEqual([]);
  });
});

describe('podSecurityConflict', () => {
  const ns = (labels: Record<string, string>): KubeObject => ({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: 'ci', labels },
  });
  it('refuses a level below privileged and says how to allow the runner pods explicitly', () => {
    expect(podSecurityConflict(ns({ 'pod-security.kubernetes.io/enforce': 'restricted' }))).toMatch(
      /^Namespace ci has pod-security\.kubernetes\.io\/enforce=restricted: .* `kubectl label namespace ci pod-security\.kubernetes\.io\/enforce=privileged --overwrite`/,
    );
  });
  it('a namespace without a level, with privileged, or none at all is fine', () => {
    expect(podSecurityConflict(ns({}))).toBeUndefined();
    expect(podSecurityConflict(ns({ 'pod-security.kubernetes.io/enforce': 'privileged' }))).toBeUndefined();
    expect(podSecurityConflict(undefined)).toBeUndefined();
  });
});
