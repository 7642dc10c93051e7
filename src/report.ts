// The run report: what changed where. Printed as a table for people, as JSON with --json.

export interface Change {
  step: string;
  detail: string;
}

export interface NodeReport {
  name: string;
  ok: boolean;
  changes: Change[];
  error?: string;
}

export interface ClusterReport {
  ok: boolean;
  changes: Change[];
  error?: string;
}

export interface RunReport {
  ok: boolean;
  changed: number;
  nodes: NodeReport[];
  gitlab?: ClusterReport;
  cluster?: ClusterReport;
  /** SSH connections opened and command round trips made, over all nodes */
  ssh?: { connections: number; roundTrips: number };
}

export function buildReport(nodes: NodeReport[], gitlab?: ClusterReport, cluster?: ClusterReport): RunReport {
  const sections = [...nodes, ...(gitlab ? [gitlab] : []), ...(cluster ? [cluster] : [])];
  return {
    ok: sections.every((s) => s.ok),
    changed: sections.reduce((n, s) => n + s.changes.length, 0),
    nodes,
    ...(gitlab ? { gitlab } : {}),
    ...(cluster ? { cluster } : {}),
  };
}

/**
 * The one change recorder: collects a scope's changes and tells the log each one as it lands, so a failure later
 * still shows what was done; in a dry run it only collects (`plan` prints the list, nothing "changed").
 */
export function changeRecorder(
  scope: string,
  opts: {
    dryRun: boolean;
    log?: { change(scope: string, message: string): void };
    changes?: Change[];
    say?: (c: Change) => string;
  },
): { changes: Change[]; record: (c: Change) => void } {
  const changes = opts.changes ?? [];
  return {
    changes,
    record: (c) => {
      changes.push(c);
      if (!opts.dryRun) opts.log?.change(scope, opts.say ? opts.say(c) : c.detail);
    },
  };
}
