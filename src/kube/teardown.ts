// The cluster half of `destroy`: find what runner-fleet made (managed objects, node labels, records, the namespace if it made it) and remove it.
import type { Logger } from '../log.js';
import { changeRecorder, type Change, type ClusterReport } from '../report.js';
import { redact } from '../secrets.js';
import type { KubeClient } from './client.js';
import { planNodeLabelRemoval, type LabelApply } from './node-labels.js';
import { otherManager } from './ownership.js';
import {
  FIELD_MANAGER,
  LOCK_LEASE,
  MANAGED_BY,
  MANAGED_BY_LABEL,
  NODE_LABEL_MANAGER,
  PART_OF_LABEL,
  RECORDS_MANAGER,
  RECORDS_SECRET,
  describeObject,
  type KubeObject,
} from './objects.js';

/** Every field manager runner-fleet applies with. */
export const OUR_MANAGERS: readonly string[] = [FIELD_MANAGER, RECORDS_MANAGER, NODE_LABEL_MANAGER];

export interface TeardownPlan {
  namespace: string;
  /** our managed objects, DaemonSets first (their pods go before the config they read) */
  objects: KubeObject[];
  /** this fleet's node labels going: its own manager's everywhere, the old shared manager's on its nodes */
  labels: LabelApply[];
  /** the records Secret exists (removed only once GitLab holds none of our runners) */
  records: boolean;
  /** delete: runner-fleet created it and it holds nothing else; release: someone else's namespace, take our labels back */
  namespaceAction: 'delete' | 'release' | 'none';
  /** why the namespace stays, when it does and it matters */
  namespaceNote?: string;
  /** objects with runner-fleet's label that someone else's marks say are theirs: they stay */
  kept: string[];
  /** uids of our objects: what they own (pods, controller revisions) is ours too */
  ourUids: string[];
}

/** Field managers that ever wrote to the object. */
export function managersOf(o: KubeObject): string[] {
  return [
    ...new Set(((o.metadata.managedFields ?? []) as { manager?: string }[]).map((e) => e.manager ?? '')),
  ];
}

/** Only runner-fleet's managers ever wrote to it: runner-fleet created it (someone else's create leaves its own entry). */
export function createdByUs(o: KubeObject): boolean {
  const managers = managersOf(o);
  return managers.length > 0 && managers.every((m) => OUR_MANAGERS.includes(m));
}

/** Ours by label, or owned by one of ours (a DaemonSet's pods and ControllerRevisions). */
export function isOurs(o: KubeObject, ourUids: ReadonlySet<string>): boolean {
  const labels = o.metadata.labels ?? {};
  if (labels[MANAGED_BY_LABEL] === MANAGED_BY || labels[PART_OF_LABEL] === MANAGED_BY) return true;
  const owners = (o.metadata.ownerReferences ?? []) as { uid?: string }[];
  return owners.some((r) => r.uid !== undefined && ourUids.has(r.uid));
}

/** What Kubernetes itself puts in every namespace, and events, which are history, not objects anyone made. */
export function isNamespaceFurniture(o: KubeObject): boolean {
  if (o.kind === 'Event') return true;
  if (o.kind === 'ConfigMap' && o.metadata.name === 'kube-root-ca.crt') return true;
  return o.kind === 'ServiceAccount' && o.metadata.name === 'default';
}

/** Objects in the namespace that are neither ours nor Kubernetes' own. */
export function othersObjects(objects: KubeObject[], ourUids: ReadonlySet<string>): KubeObject[] {
  return objects.filter(
    (o) => !isOurs(o, ourUids) && !isNamespaceFurniture(o) && !o.metadata.deletionTimestamp,
  );
}

/** One line per removal, for the confirmation prompt and the report. Empty: nothing to remove. */
export function teardownChanges(
  plan: TeardownPlan,
  opts: { records: boolean } = { records: true },
): Change[] {
  const out: Change[] = [];
  for (const o of plan.objects) out.push({ step: 'delete', detail: `delete ${describeObject(o)}` });
  for (const a of plan.labels) out.push({ step: 'label', detail: a.detail });
  if (plan.records && opts.records)
    out.push({
      step: 'delete',
      detail: `delete Secret ${plan.namespace}/${RECORDS_SECRET} (runner records)`,
    });
  if (plan.namespaceAction === 'delete')
    out.push({
      step: 'delete',
      detail: `delete Namespace ${plan.namespace} (runner-fleet created it; nothing else is in it)`,
    });
  if (plan.namespaceAction === 'release')
    out.push({
      step: 'label',
      detail: `remove runner-fleet's labels from Namespace ${plan.namespace} (it was there before runner-fleet; it stays)`,
    });
  return out;
}

/** Lists every object in the namespace (discovery, so CRD kinds too); `unlisted` names what could not be asked. */
async function everythingIn(
  client: KubeClient,
  ns: string,
): Promise<{ objects: KubeObject[]; unlisted: string[] }> {
  const { kinds, unlisted } = await client.listNamespacedKinds();
  const objects: KubeObject[] = [];
  const seen = new Set<string>();
  for (const k of kinds) {
    // The same kind served under two groups (events) is listed once.
    if (k.kind === 'Event' || seen.has(`${k.apiVersion}/${k.kind}`)) continue;
    seen.add(`${k.apiVersion}/${k.kind}`);
    try {
      objects.push(...(await client.listObjects(k.apiVersion, k.kind, ns)));
    } catch {
      unlisted.push(`${k.kind}.${k.apiVersion}`);
    }
  }
  return { objects, unlisted };
}

/** Reads what would be removed; changes nothing. */
export async function planTeardown(
  client: KubeClient,
  ns: string,
  fleet: { nodeLabel: string; nodes: readonly string[] },
): Promise<TeardownPlan> {
  const labels = planNodeLabelRemoval({
    nodes: await client.listNodes(),
    inventory: fleet.nodes,
    key: fleet.nodeLabel,
    namespace: ns,
  });
  const base: TeardownPlan = {
    namespace: ns,
    objects: [],
    labels,
    records: false,
    namespaceAction: 'none',
    ourUids: [],
    kept: [],
  };
  const nsObject = await client.read({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
  // Gone, or on its way out: whatever is left in it goes with it.
  if (!nsObject || nsObject.metadata.deletionTimestamp) return base;

  const managed = await client.listManaged(ns);
  const recordsSecret = await client.read({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: RECORDS_SECRET, namespace: ns },
  });
  // Only what runner-fleet made (or was told to adopt): an object also marked as another's was taken over, not made.
  const kept = managed
    .filter((o) => otherManager(o))
    .map((o) => `${describeObject(o)} stays: ${otherManager(o)} manages it, whatever its labels say`);
  const mine = managed.filter((o) => !otherManager(o));
  const objects = [
    ...mine.filter((o) => o.kind === 'DaemonSet'),
    ...mine.filter((o) => o.kind !== 'DaemonSet'),
  ];
  // The fleet lock is runner-fleet's too (destroy holds it while it works): never a reason to keep the namespace.
  const lease = await client.read({
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: LOCK_LEASE, namespace: ns },
  });
  const ourUids = [...objects, ...(recordsSecret ? [recordsSecret] : []), ...(lease ? [lease] : [])]
    .map((o) => String(o.metadata.uid ?? ''))
    .filter(Boolean);
  const plan: TeardownPlan = { ...base, objects, records: recordsSecret !== undefined, ourUids, kept };

  if (createdByUs(nsObject)) {
    const { objects: all, unlisted } = await everythingIn(client, ns);
    const others = othersObjects(all, new Set(ourUids));
    if (others.length > 0) {
      plan.namespaceNote = `Namespace ${ns} stays: it holds objects runner-fleet did not make (${others.slice(0, 5).map(describeObject).join(', ')}${others.length > 5 ? ', …' : ''})`;
    } else if (unlisted.length > 0) {
      plan.namespaceNote = `Namespace ${ns} stays: could not check ${unlisted.slice(0, 5).join(', ')} for objects of others`;
    } else {
      plan.namespaceAction = 'delete';
    }
  } else if (managersOf(nsObject).some((m) => OUR_MANAGERS.includes(m))) {
    plan.namespaceAction = 'release';
  }
  return plan;
}

/**
 * Removes what the plan found. `keepRecords`: GitLab still has runners whose tokens only the records hold, so the
 * records Secret (and with it the namespace) stays for the next destroy to finish the job.
 */
export async function runTeardown(
  client: KubeClient,
  plan: TeardownPlan,
  opts: { keepRecords: boolean; log?: Logger },
): Promise<ClusterReport> {
  const { changes, record } = changeRecorder('cluster', { dryRun: false, log: opts.log });
  const done = (step: string, detail: string) => record({ step, detail });
  const ns = plan.namespace;
  try {
    for (const o of plan.objects) {
      await client.delete(o);
      done('delete', `deleted ${describeObject(o)}`);
    }
    for (const a of plan.labels) {
      await client.applyNodeLabels(a);
      done('label', a.detail);
    }
    if (plan.records && !opts.keepRecords) {
      await client.delete({
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: RECORDS_SECRET, namespace: ns },
      });
      done('delete', `deleted Secret ${ns}/${RECORDS_SECRET}`);
    }
    if (plan.namespaceAction === 'delete' && !opts.keepRecords) {
      // Asked again right before: something may have moved in since the plan.
      const { objects, unlisted } = await everythingIn(client, ns);
      const others = othersObjects(objects, new Set(plan.ourUids));
      if (others.length > 0 || unlisted.length > 0) {
        opts.log?.warn(
          'cluster',
          `Namespace ${ns} stays: ${others.length > 0 ? `it now holds ${others.slice(0, 3).map(describeObject).join(', ')}` : `could not check ${unlisted.join(', ')}`}`,
        );
      } else {
        await client.delete({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
        done('delete', `deleted Namespace ${ns} (its pods finish terminating in the background)`);
      }
    } else if (plan.namespaceAction === 'release') {
      // Applying the bare object drops the fields each of our managers owned alone; others' labels stay.
      for (const manager of [FIELD_MANAGER, RECORDS_MANAGER]) {
        await client.apply(
          { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } },
          { fieldManager: manager },
        );
      }
      done('label', `removed runner-fleet's labels from Namespace ${ns}`);
    }
    return { ok: true, changes };
  } catch (err) {
    const message = redact(err instanceof Error ? err.message : String(err));
    opts.log?.error('cluster', message);
    return { ok: false, changes, error: message };
  }
}
