// `upgrade-snaps`: refresh the docker and microk8s snaps one node at a time, each once its runner runs no job.
//
// How a node's jobs are known: the runner's own gitlab_runner_jobs metric (runners.metrics), read on the node as
// status reads it. Read just before the refresh, in the same round trip: a job the runner picks up in the seconds
// snapd then takes to download and restart Docker is not protected (README: executor trade-offs).
import type { RunContext } from '../context.js';
import { InputError } from '../errors.js';
import { parseRefresh, refreshScript, type RefreshOutcome } from '../docker/snap-holds.js';
import type { Inventory, NodeSpec } from '../inventory/types.js';
import { selectNodes } from '../inventory/schema.js';
import type { Logger } from '../log.js';
import type { PodView } from '../kube/rollout.js';
import { withRunners } from '../gitlab/auth-modes.js';
import { metricsGatherScript, metricsTarget } from '../status/metrics.js';
import { withNode } from '../ssh.js';
import { redact } from '../secrets.js';

/** How long to wait for a node's running jobs, and between two looks. */
export interface UpgradeSnapsTiming {
  waitSeconds?: number;
  pollSeconds?: number;
}

export interface UpgradeSnapsReport {
  ok: boolean;
  nodes: { name: string; outcome: RefreshOutcome | { kind: 'error'; error: string } | { kind: 'skipped' } }[];
}

/** Nothing contacted: without runners.metrics, runner-fleet cannot see a runner's jobs. */
export function upgradeSnapsPreflight(inv: Inventory): void {
  if (withRunners(inv.gitlab.auth) && !inv.runners.metrics)
    throw new InputError(
      [
        "runners.metrics: upgrade-snaps waits for each node's runner to finish its jobs, which it reads from the runner's metrics; set runners.metrics (and apply) first",
      ],
      'cannot upgrade snaps',
    );
}

export async function runUpgradeSnaps(
  ctx: RunContext,
  timing: UpgradeSnapsTiming = {},
): Promise<UpgradeSnapsReport> {
  const inv = ctx.inventory;
  const selected = selectNodes(inv, ctx.only);
  upgradeSnapsPreflight(inv);
  const targets = await metricsTargets(ctx);
  const nodes: UpgradeSnapsReport['nodes'] = [];
  let failed = false;
  // One node at a time: the others keep running jobs while one node's Docker restarts.
  for (const node of selected.nodes) {
    if (failed) {
      nodes.push({ name: node.name, outcome: { kind: 'skipped' } });
      continue;
    }
    const outcome = await upgradeNode(node, ctx.log, targets, timing);
    nodes.push({ name: node.name, outcome });
    failed =
      outcome.kind === 'error' ||
      outcome.kind === 'failed' ||
      outcome.kind === 'busy' ||
      (outcome.kind === 'refreshed' && !outcome.dockerUp);
  }
  return { ok: !failed, nodes };
}

/** Where each node reaches its runner's metrics; undefined without runners (nothing to wait for). */
async function metricsTargets(ctx: RunContext): Promise<((node: string) => string | undefined) | undefined> {
  const inv = ctx.inventory;
  const metrics = inv.runners.metrics;
  if (!withRunners(inv.gitlab.auth) || !metrics) return undefined;
  if (inv.runners.placement === 'host') return () => metricsTarget('127.0.0.1', metrics.port);
  const client = await ctx.cluster();
  const pods = (await client.listObjects(
    'v1',
    'Pod',
    inv.kubernetes.namespace,
    'app.kubernetes.io/name=gitlab-runner',
  )) as unknown as PodView[];
  return (node) => {
    const pod = pods.find(
      (p) => p.spec?.nodeName === node && p.status?.podIP && !p.metadata.deletionTimestamp,
    );
    return pod ? metricsTarget(pod.status!.podIP!, metrics.port) : undefined;
  };
}

async function upgradeNode(
  node: NodeSpec,
  log: Logger,
  targets: ((node: string) => string | undefined) | undefined,
  timing: UpgradeSnapsTiming,
): Promise<UpgradeSnapsReport['nodes'][number]['outcome']> {
  const waitMs = (timing.waitSeconds ?? 3600) * 1000;
  const pollMs = (timing.pollSeconds ?? 10) * 1000;
  const metrics = targets ? metricsGatherScript(targets(node.name)) : undefined;
  try {
    return await withNode(node, async (conn) => {
      const started = Date.now();
      for (;;) {
        log.progress(node.name, metrics ? 'waiting for the runner to run no job' : 'refreshing');
        const r = await conn.exec(refreshScript(metrics), { sudo: true, step: 'upgrade snaps' });
        const outcome = parseRefresh(r.stdout);
        if (outcome.kind !== 'busy' || Date.now() - started >= waitMs) {
          report(node, outcome, log);
          return outcome;
        }
        log.progress(node.name, `the runner runs ${outcome.jobs} job(s); looking again in ${pollMs / 1000}s`);
        await new Promise((done) => setTimeout(done, pollMs));
      }
    });
  } catch (err) {
    const error = redact(err instanceof Error ? err.message : String(err));
    log.done?.(node.name, false, error);
    return { kind: 'error', error };
  }
}

function report(node: NodeSpec, outcome: RefreshOutcome, log: Logger): void {
  switch (outcome.kind) {
    case 'busy':
      return log.done?.(node.name, false, `the runner still runs ${outcome.jobs} job(s); not refreshed`);
    case 'none':
      return log.done?.(node.name, true, 'neither the docker nor the microk8s snap is installed');
    case 'failed':
      return log.done?.(
        node.name,
        false,
        `snap refresh failed: ${outcome.output.split('\n').slice(-2).join(' | ')}`,
      );
    case 'refreshed':
      if (outcome.refreshed.length > 0) log.change(node.name, `refreshed ${outcome.refreshed.join(', ')}`);
      return log.done?.(
        node.name,
        outcome.dockerUp,
        `${outcome.refreshed.length > 0 ? `refreshed ${outcome.refreshed.join(', ')}` : 'up to date'}${outcome.dockerUp ? '' : '; DOCKER IS NOT ANSWERING'}`,
      );
  }
}

export function formatUpgradeSnapsSummary(r: UpgradeSnapsReport): string {
  const refreshed = r.nodes.filter((n) => n.outcome.kind === 'refreshed' && n.outcome.refreshed.length > 0);
  const skipped = r.nodes.filter((n) => n.outcome.kind === 'skipped').map((n) => n.name);
  return `${r.ok ? 'Snaps upgraded' : 'Snap upgrade stopped'}: ${refreshed.length} node(s) refreshed${skipped.length > 0 ? `; not tried (an earlier node failed): ${skipped.join(', ')}` : ''}.`;
}
