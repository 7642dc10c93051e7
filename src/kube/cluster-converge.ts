// The cluster step: namespace → render → plan (server dry-run) → apply what changes → prune → node labels → rollout wait.
import { InputError } from '../errors.js';
import type { Executor, Inventory, KubernetesConfig } from '../inventory/types.js';
import type { Logger } from '../log.js';
import { changeRecorder, type ClusterReport } from '../report.js';
import { redact } from '../secrets.js';
import { KubeClient, type PlannedObject } from './client.js';
import { daemonSetName, describeObject, objectKey, type KubeObject } from './objects.js';
import { DEFAULT_TERMINATION_GRACE_SECONDS, renderClusterObjects } from './render.js';
import { planNodeLabels, type LabelApply } from './node-labels.js';
import { otherManager, ownershipProblems } from './ownership.js';
import { describeBehind } from './rollout.js';

export { KubeRecordStore, readSecretRecords, writeSecretRecords } from './records-secret.js';

export interface ConvergeClusterInput {
  inventory: Inventory;
  executor: Executor;
  /** node name → config.toml text, one per inventory node */
  configs: Record<string, string>;
  /** plan only: every step asks the apiserver (dry-run) or reads, nothing is written, no rollout wait */
  dryRun: boolean;
  /** node name → runner token; only to check that none leaks outside the Secret */
  tokens?: Record<string, string>;
  /** node name → recorded runner-manager system_id */
  systemIds?: Record<string, string>;
  /** the run's cluster client (RunContext.cluster) */
  client: KubeClient;
  /** default inventory.kubernetes.rolloutTimeout */
  rolloutTimeoutSeconds?: number;
  logger?: Logger;
}

/**
 * A client for the inventory's cluster: kubeconfig (+context), or the text fetched from kubernetes.fromNode. Called
 * only by createRunContext (src/context.ts), so that a run makes one.
 */
export function connectCluster(k: KubernetesConfig, kubeconfigText?: string): KubeClient {
  if (k.fromNode) {
    if (kubeconfigText === undefined)
      throw new InputError([`kubernetes.fromNode: no kubeconfig was fetched from ${k.fromNode}`]);
    return KubeClient.load({
      kubeconfigText,
      context: k.context,
      label: `microk8s config from ${k.fromNode}`,
      requestTimeoutSeconds: k.requestTimeout,
    });
  }
  return KubeClient.load({
    kubeconfig: k.kubeconfig,
    context: k.context,
    label: k.kubeconfig ? 'kubernetes.kubeconfig' : undefined,
    requestTimeoutSeconds: k.requestTimeout,
  });
}

/**
 * Converges the cluster and reports each change. Bad input (a template that renders nonsense, a missing
 * config) throws InputError before anything is touched; everything else ends up in the report's `error`.
 */
export async function convergeCluster(input: ConvergeClusterInput): Promise<ClusterReport> {
  const { inventory: inv, executor, dryRun } = input;
  const ns = inv.kubernetes.namespace;
  const log = input.logger;
  // Printed as it lands on apply; `plan` lists the changes once, at the end.
  const { changes, record } = changeRecorder('cluster', {
    dryRun,
    log,
    say: (c) => `${c.step}: ${c.detail}`,
  });
  const change = (step: string, detail: string): void => record({ step, detail });

  // Pure and first: a broken template stops the run before the cluster is touched.
  const objects = renderClusterObjects({
    inventory: inv,
    executor,
    configs: input.configs,
    tokens: input.tokens,
    systemIds: input.systemIds,
  });
  const client = input.client;
  const nodeNames = inv.nodes.map((n) => n.name);
  const label = inv.kubernetes.nodeLabel;

  try {
    const nodes = await client.listNodes();
    const missing = nodeNames.filter((n) => !nodes.some((c) => c.name === n));
    if (missing.length > 0) {
      throw new Error(
        `inventory nodes not in the cluster: ${missing.join(', ')} (the cluster has: ${nodes.map((n) => n.name).join(', ') || 'no nodes'})`,
      );
    }
    const labels = planNodeLabels({ nodes, wanted: nodeNames, key: label, namespace: ns });
    const refused = [...labels.conflicts, ...(await ownershipProblems(client, objects))];
    if (refused.length > 0) throw new Error(refused.join('; '));
    const applyLabels = async (list: LabelApply[]) => {
      for (const a of list) {
        if (!dryRun) await client.applyNodeLabels(a);
        change('label', a.detail);
      }
    };

    log?.progress('cluster', `${dryRun ? 'planning' : 'converging'} namespace ${ns} on ${client.server}`);
    const namespaceObject = objects.find((o) => o.kind === 'Namespace')!;
    const [nsPlan] = await client.plan([namespaceObject]);
    if (nsPlan.action !== 'unchanged') {
      if (!dryRun) await client.apply(namespaceObject);
      change(
        'namespace',
        `${nsPlan.action} ${describeObject(namespaceObject)}${nsPlan.action === 'update' ? `: ${nsPlan.paths.join(', ')}` : ''}`,
      );
    }
    const namespaceMissing = nsPlan.action === 'create' && dryRun;

    // Labels first: a DaemonSet selecting a new label never finds its nodes bare; old labels go after the rollout.
    await applyLabels(labels.before);
    const rest = objects.filter((o) => o !== namespaceObject);
    const plan = await client.plan(rest, { assumeAbsent: () => namespaceMissing });
    for (const p of plan) {
      if (p.action === 'unchanged') continue;
      // Only what the dry-run says would change is sent: an unchanged object keeps its resourceVersion.
      if (!dryRun) await client.apply(p.object);
      change('apply', describePlanned(p));
    }

    if (!namespaceMissing) {
      const desired = new Set(objects.map(objectKey));
      for (const o of await client.listManaged(ns)) {
        // Marked as someone else's too (a Helm object an older version took over): never deleted.
        if (desired.has(objectKey(o)) || otherManager(o)) continue;
        if (!dryRun) await client.delete(o);
        change('prune', `delete ${describeObject(o)} (no longer wanted)`);
      }
    }

    if (!dryRun) {
      const timeoutSeconds = input.rolloutTimeoutSeconds ?? inv.kubernetes.rolloutTimeout;
      log?.progress(
        'cluster',
        `waiting up to ${timeoutSeconds}s for DaemonSet ${ns}/${daemonSetName(executor)} on ${nodeNames.join(', ')}`,
      );
      const state = await client.waitForDaemonSet(ns, daemonSetName(executor), nodeNames, { timeoutSeconds });
      if (!state.done) {
        // Old pods finishing their jobs: Kubernetes carries on, one node at a time (maxUnavailable: 1).
        const grace = DEFAULT_TERMINATION_GRACE_SECONDS;
        const left = state.behind.length;
        log?.warn(
          'cluster',
          `rollout of ${ns}/${daemonSetName(executor)} goes on after ${timeoutSeconds}s: ${describeBehind(state)}. ` +
            `Each old pod stops taking jobs at once and finishes the running ones within ${grace}s; ` +
            `one node at a time, the ${left} left take up to ${formatSeconds(left * grace)}. Run status to follow it.`,
        );
      }
    }
    await applyLabels(labels.after);
    return { ok: true, changes };
  } catch (err) {
    const message = redact(err instanceof Error ? err.message : String(err));
    log?.error('cluster', message);
    return { ok: false, changes, error: message };
  }
}

/** `45s`, `12 min`, `3.5 h` */
export function formatSeconds(seconds: number): string {
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${Math.round(seconds / 360) / 10} h`;
}

function describePlanned(p: PlannedObject): string {
  const what = describeObject(p.object as KubeObject);
  if (p.action === 'create') return `create ${what}`;
  return `${what}: ${p.detail}`;
}
