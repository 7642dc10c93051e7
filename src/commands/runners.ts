// The runner phases of `apply`/`plan`: register runners in GitLab (records in a Secret), then converge the cluster.
import { GitlabApi } from '../gitlab/api.js';
import type { HostFacts } from '../host/facts.js';
import type { Executor, Inventory } from '../inventory/types.js';
import { KubeRecordStore, connectCluster, convergeCluster } from '../kube/converge.js';
import type { KubeClient } from '../kube/client.js';
import type { Logger } from '../log.js';
import type { ClusterReport } from '../report.js';
import { renderConfigToml } from '../runners/config-toml.js';
import { reconcileRunners, type ReconcileResult } from '../runners/reconcile.js';
import { parseRecords, type RecordStore, type RunnerRecord } from '../runners/records.js';
import { redact } from '../secrets.js';
import { connectNode } from '../ssh.js';

export interface RunnerPhaseInput {
  /** the whole inventory: with --only, the other nodes' runners must be left alone, not taken for removed */
  inventory: Inventory;
  only?: string[];
  executor: Executor;
  dryRun: boolean;
  log: Logger;
  /** facts gathered by the host phase this run, by node name */
  facts: Map<string, HostFacts>;
}

export interface RunnerPhaseResult {
  gitlab?: ClusterReport;
  cluster?: ClusterReport;
}

const message = (err: unknown) => redact(err instanceof Error ? err.message : String(err));

/** `kubernetes.fromNode`: the admin kubeconfig that microk8s prints on that node. */
export async function kubeconfigFromNode(inv: Inventory): Promise<string | undefined> {
  const name = inv.kubernetes.fromNode;
  if (!name) return undefined;
  const node = inv.nodes.find((n) => n.name === name)!;
  const conn = await connectNode(node);
  try {
    const r = await conn.check('microk8s config', { sudo: true, step: `microk8s config on ${name}` });
    return r.stdout;
  } finally {
    conn.close();
  }
}

/** Records as the store holds them, validated (tokens registered for redaction, never echoed). */
export function typedStore(client: KubeClient, namespace: string, dryRun: boolean): RecordStore {
  const raw = new KubeRecordStore<unknown>(client, namespace, { dryRun });
  return {
    load: async () => parseRecords(await raw.load(), `Secret ${namespace}/runner-fleet-records`),
    save: (records: RunnerRecord[]) => raw.save(records),
  };
}

/** A stand-in record for a runner that `plan` says would be created: the config can be planned before it exists. */
function plannedRecord(node: string): RunnerRecord {
  return { node, mode: 'access', token: 'created-on-apply', systemId: 's_000000000000', settings: null, createdAt: new Date(0).toISOString() };
}

export async function convergeRunners(input: RunnerPhaseInput): Promise<RunnerPhaseResult> {
  const { inventory: inv, dryRun, log } = input;
  if (inv.gitlab.auth.kind === 'none') {
    log.progress('gitlab', 'no gitlab token in the inventory: hosts only, no runners registered and no cluster changes');
    return {};
  }

  let client: KubeClient;
  try {
    client = connectCluster(inv.kubernetes, await kubeconfigFromNode(inv));
  } catch (err) {
    const error = message(err);
    log.error('cluster', error);
    return { gitlab: { ok: false, changes: [], error: `not attempted: ${error}` }, cluster: { ok: false, changes: [], error } };
  }

  // GitLab first: the cluster's config.toml needs each node's runner token.
  let reconciled: ReconcileResult;
  let gitlab: ClusterReport;
  try {
    log.progress('gitlab', `${dryRun ? 'planning' : 'reconciling'} runners at ${inv.gitlab.url} (${inv.gitlab.auth.kind})`);
    reconciled = await reconcileRunners(inv, typedStore(client, inv.kubernetes.namespace, dryRun), GitlabApi.fromConfig(inv.gitlab), { dryRun, only: input.only, log });
    for (const w of reconciled.warnings) log.warn('gitlab', `${w.node}: ${w.message}`);
    gitlab = {
      ok: reconciled.errors.length === 0,
      changes: reconciled.changes.map((c) => ({ step: c.step, detail: c.detail })),
      ...(reconciled.errors.length > 0 ? { error: reconciled.errors.map((e) => `${e.node}: ${e.message}`).join('; ') } : {}),
    };
  } catch (err) {
    const error = message(err);
    log.error('gitlab', error);
    return { gitlab: { ok: false, changes: [], error }, cluster: { ok: false, changes: [], error: 'not attempted: runner registration failed' } };
  }

  // One config.toml per inventory node that has a runner; a node whose registration failed keeps no pod.
  let archByNode = new Map<string, string>();
  try {
    archByNode = new Map((await client.listNodes()).map((n) => [n.name, n.labels['kubernetes.io/arch']]));
  } catch {
    /* convergeCluster reports an unreachable cluster itself */
  }
  const creating = new Set(reconciled.actions.filter((a) => a.kind === 'create' || a.kind === 'join').map((a) => a.node));
  const desired = desiredCluster({
    inventory: inv,
    executor: input.executor,
    records: reconciled.records,
    arch: (node) => archByNode.get(node) ?? input.facts.get(node)?.arch ?? 'arm64',
    planned: dryRun ? creating : undefined,
  });
  const cluster = await convergeCluster({ ...desired, dryRun, client, logger: log });
  return { gitlab, cluster };
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
export function desiredCluster(opts: { inventory: Inventory; executor: Executor; records: RunnerRecord[]; arch: (node: string) => string; planned?: Set<string> }): DesiredCluster {
  const { inventory: inv } = opts;
  const live = new Map(opts.records.filter((r) => !r.retiredAt).map((r) => [r.node, r]));
  const configs: Record<string, string> = {};
  const tokens: Record<string, string> = {};
  const systemIds: Record<string, string> = {};
  for (const node of inv.nodes) {
    const record = live.get(node.name) ?? (opts.planned?.has(node.name) ? plannedRecord(node.name) : undefined);
    if (!record) continue;
    configs[node.name] = renderConfigToml({ inventory: inv, node, record, executor: opts.executor, arch: opts.arch(node.name) });
    tokens[node.name] = record.token;
    systemIds[node.name] = record.systemId;
  }
  return { inventory: { ...inv, nodes: inv.nodes.filter((n) => configs[n.name] !== undefined) }, executor: opts.executor, configs, tokens, systemIds };
}
