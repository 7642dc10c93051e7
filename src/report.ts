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
