// `apply` and `plan`: converge every node's Docker, then runners in GitLab, then the cluster; report what changed.
import { accessSync, constants } from 'node:fs';
import { InputError } from '../errors.js';
import { convergeHost, type HostResult } from '../host/converge.js';
import { hostRunnerGatherScript } from '../host-runner/facts.js';
import type { Executor, Inventory, NodeSpec } from '../inventory/types.js';
import type { Logger } from '../log.js';
import { mapPool } from '../pool.js';
import { buildReport, type Change, type NodeReport, type RunReport } from '../report.js';
import { redact, resolveSecret } from '../secrets.js';
import { connectNode, type NodeConnection } from '../ssh.js';
import { selectNodes } from '../inventory/schema.js';
import type { RunnerPhase } from './runners.js';

export interface ConvergeOptions {
  dryRun: boolean;
  concurrency: number;
  log: Logger;
}

/** Problems that make the run pointless before any node is contacted (exit 2). */
export function preflight(inv: Inventory): void {
  const issues: string[] = [];
  const seen = new Set<string>();
  inv.nodes.forEach((n, i) => {
    for (const [key, path] of [['identityFile', n.identityFile], ['knownHosts', n.knownHosts]] as const) {
      if (seen.has(path)) continue;
      seen.add(path);
      try {
        accessSync(path, constants.R_OK);
      } catch {
        const field = path === inv.ssh[key] ? `ssh.${key}` : `nodes[${i}].${key}`;
        issues.push(`${field}: cannot read ${path}`);
      }
    }
  });
  if (inv.gitlab.auth.kind !== 'none') {
    try {
      resolveSecret(inv.gitlab.auth.token);
    } catch (err) {
      if (err instanceof InputError) issues.push(...err.issues);
      else throw err;
    }
  }
  if (issues.length > 0) throw new InputError(issues, 'cannot start');
}

export interface NodeOutcome {
  report: NodeReport;
  host?: HostResult;
}

/** The runner phase's part of a node's host phase: a gather section, and a step on the same connection. */
interface NodeRunnerStep {
  gatherExtra: string;
  onNode: RunnerPhase['onNode'];
}

/** One node's host phase; never throws: failures land in the report. */
async function convergeNode(node: NodeSpec, inv: Inventory, opts: ConvergeOptions, runners?: NodeRunnerStep): Promise<NodeOutcome> {
  const changes: Change[] = [];
  let conn: NodeConnection | undefined;
  try {
    opts.log.progress(node.name, `connecting to ${node.user}@${node.host}:${node.port}`);
    conn = await connectNode(node);
    opts.log.progress(node.name, opts.dryRun ? 'planning' : 'converging Docker');
    const record = (c: Change) => {
      changes.push(c);
      if (!opts.dryRun) opts.log.change(node.name, c.detail);
    };
    const host = await convergeHost(conn, node, inv.gitlab.registries, { dryRun: opts.dryRun, onChange: record, gatherExtra: runners?.gatherExtra, docker: inv.docker });
    const runnerError = runners ? await runners.onNode(conn, node, host.facts, record) : undefined;
    if (runnerError) {
      opts.log.error(node.name, runnerError);
      opts.log.done?.(node.name, false, 'failed');
      return { report: { name: node.name, ok: false, changes, error: runnerError }, host };
    }
    opts.log.done?.(node.name, true, `${opts.dryRun ? 'would change' : 'changed'} ${changes.length}; Docker ${host.facts.docker?.version ?? '(not installed yet)'} (${host.plan.flavour}), ${host.facts.arch}`);
    return { report: { name: node.name, ok: true, changes }, host };
  } catch (err) {
    const message = redact(err instanceof Error ? err.message : String(err));
    opts.log.error(node.name, message);
    opts.log.done?.(node.name, false, 'failed');
    return { report: { name: node.name, ok: false, changes, error: message } };
  } finally {
    conn?.close();
  }
}

/**
 * Hosts first (Docker and the registry on each selected node), then runners in GitLab, then the cluster.
 * `inv` is the whole inventory; `only` limits the host phase and keeps the other nodes' runners as they are.
 */
export async function runConverge(inv: Inventory, opts: ConvergeOptions & { executor: Executor; only?: string[] }): Promise<RunReport> {
  const selected = selectNodes(inv, opts.only);
  preflight(selected);
  // The runner phases load the GitLab and Kubernetes clients (client-node alone takes ~1.7 s to import): start
  // loading them now so that it overlaps the SSH work, and not at all for a hosts-only inventory.
  const withRunners = inv.gitlab.auth.kind !== 'none';
  const phase = withRunners
    ? import('./runners.js').then((m) => m.runnerPhase({ inventory: inv, only: opts.only, executor: opts.executor, dryRun: opts.dryRun, log: opts.log }))
    : undefined;
  phase?.catch(() => undefined); // awaited below; never an unhandled rejection meanwhile
  // The host-runner facts join each node's one gather: everything for host placement; in cluster placement only
  // what shows a host runner left over from host placement, which must go before the node's cluster runner comes.
  const runners: NodeRunnerStep | undefined = phase && {
    gatherExtra: hostRunnerGatherScript(inv.runners.placement === 'host' ? 'full' : 'probe', inv.runners.packageRepository.url),
    onNode: async (...args) => (await phase).onNode(...args),
  };
  const outcomes = await mapPool(selected.nodes, opts.concurrency, (node) => convergeNode(node, inv, opts, runners));
  const facts = new Map(outcomes.filter((o) => o.host).map((o) => [o.report.name, o.host!.facts]));
  let after: Awaited<ReturnType<RunnerPhase['afterNodes']>>;
  try {
    after = phase
      ? await (await phase).afterNodes(facts)
      : (opts.log.progress('gitlab', 'no gitlab token in the inventory: hosts only, no runners registered and no cluster changes'), { nodes: [] });
  } catch (err) {
    // Nodes have changed by now: whatever goes wrong is a failed run with its report (exit 1), never "bad input".
    const error = redact(err instanceof Error ? err.message : String(err));
    opts.log.error('gitlab', error);
    after = { gitlab: { ok: false, changes: [], error }, nodes: [] };
  }
  return buildReport([...outcomes.map((o) => o.report), ...after.nodes], after.gitlab, after.cluster);
}

export function formatSummary(report: RunReport, dryRun: boolean): string {
  const verb = dryRun ? 'would change' : 'changed';
  const rows = report.nodes.map((n) => {
    const status = n.ok ? 'ok' : 'FAILED';
    const lines = [`  ${n.name.padEnd(16)} ${status.padEnd(7)} ${n.changes.length} ${verb}${n.error ? `: ${n.error}` : ''}`];
    for (const c of n.changes) lines.push(`      - ${c.detail}`);
    return lines.join('\n');
  });
  for (const [name, section] of [['gitlab', report.gitlab], ['cluster', report.cluster]] as const) {
    if (!section) continue;
    rows.push(`  ${name.padEnd(16)} ${(section.ok ? 'ok' : 'FAILED').padEnd(7)} ${section.changes.length} ${verb}${section.error ? `: ${section.error}` : ''}`);
    for (const c of section.changes) rows.push(`      - ${c.detail}`);
  }
  const failed = [...report.nodes.filter((n) => !n.ok).map((n) => n.name), ...(report.gitlab?.ok === false ? ['gitlab'] : []), ...(report.cluster?.ok === false ? ['cluster'] : [])];
  const head = report.ok ? (report.changed === 0 ? 'Converged: nothing to change.' : `Converged: ${report.changed} ${verb}.`) : `Failed: ${failed.join(', ')}.`;
  return `${dryRun ? 'Plan' : 'Summary'}\n${rows.join('\n')}\n${dryRun ? `${report.changed} change(s) planned; nothing was changed.` : head}`;
}
