// Collects the GitLab side of many per-node reconciles into the run's gitlab section.
import type { Inventory } from '../inventory/types.js';
import type { ClusterReport } from '../report.js';
import type { ReconcileResult, RunnerChange, RunnerIssue } from '../runners/reconcile.js';
import { describeCause, type DeleteCause } from './reasons.js';

const LEFT_INVENTORY = describeCause({ kind: 'left-inventory' });

/**
 * The planner says "node left the inventory" for every record it is told to drop; for a node that is still in the
 * inventory the cause is the placement. (Goes once reconcileRunners passes planRegistrations' `dropReason` through.)
 */
function withCause(changes: RunnerChange[], inv: Inventory, cause: DeleteCause): RunnerChange[] {
  const why = describeCause(cause);
  return changes.map((c) =>
    inv.nodes.some((n) => n.name === c.node) ? { ...c, detail: c.detail.replace(LEFT_INVENTORY, why) } : c,
  );
}

export class GitlabLog {
  readonly changes: RunnerChange[] = [];
  readonly errors: RunnerIssue[] = [];

  add(g: Pick<ReconcileResult, 'changes' | 'errors'>, inv: Inventory, cause: DeleteCause): void {
    this.changes.push(...withCause(g.changes, inv, cause));
    this.errors.push(...g.errors);
  }

  /** Another run's gitlab section (the departed nodes' removal), taken as it is. */
  addReport(r: ClusterReport): void {
    this.changes.push(...r.changes.map((c) => ({ ...c, node: '' })));
    if (r.error) this.errors.push({ node: 'gitlab', message: r.error });
  }

  /** `later`: the cluster phase's own section, whose changes came after these. */
  report(later?: ClusterReport): ClusterReport {
    const changes = [
      ...this.changes.map((c) => ({ step: c.step, detail: c.detail })),
      ...(later?.changes ?? []),
    ];
    const errors = [
      ...this.errors.map((e) => `${e.node}: ${e.message}`),
      ...(later?.error ? [later.error] : []),
    ];
    return {
      ok: errors.length === 0 && (later?.ok ?? true),
      changes,
      ...(errors.length > 0 ? { error: errors.join('; ') } : {}),
    };
  }
}
