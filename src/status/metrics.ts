// Reads gitlab-runner's Prometheus metrics (runners.metrics) from the node itself, as part of status's one gather.
//
// Over SSH on the node, not through the apiserver's pod proxy: a node can always reach its own pods (the Kubernetes
// network model requires it), and a host runner listens on the node itself, so one way works for both placements
// and needs no route from the workstation or the apiserver into the pod network (which a control plane off the
// nodes, or a firewall, does not give). The node answers with one number, not the whole metrics page.

export const METRICS_SECTION = 'rf-metrics';

/** Where the runner's metrics are, seen from its node: `IP:PORT`; a pod IP, or a host runner's listen address. */
export function metricsTarget(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** Where the node itself reaches a host runner listening on `address`: a wildcard address includes 127.0.0.1. */
export function hostMetricsAddress(address: string): string {
  return address === '0.0.0.0' || address === '::' ? '127.0.0.1' : address;
}

/**
 * A gather section that fetches http://TARGET/metrics with curl or busybox wget (3 s) and prints the sum of every
 * gitlab_runner_jobs series (the jobs running now, over all states and stages), `jobs N`; `unreachable` when the
 * endpoint does not answer, `no-client` when the node has neither program.
 */
export function metricsGatherScript(target: string | undefined): string {
  if (target === undefined) return `echo "@@${METRICS_SECTION}"; echo "no-target"`;
  if (!/^[0-9A-Za-z.:[\]-]+$/.test(target))
    throw new Error(`not a metrics address: ${JSON.stringify(target)}`);
  const url = `http://${target}/metrics`;
  return `echo "@@${METRICS_SECTION}"
if command -v curl >/dev/null 2>&1; then rf_m=$(curl -fsS --max-time 3 '${url}' 2>/dev/null) && rf_ok=1 || rf_ok=0
elif command -v wget >/dev/null 2>&1; then rf_m=$(wget -q -T 3 -O- '${url}' 2>/dev/null) && rf_ok=1 || rf_ok=0
else rf_ok=none; fi
case "$rf_ok" in
  1) printf '%s\\n' "$rf_m" | awk '/^gitlab_runner_jobs[{ ]/ { s += $NF } END { printf "jobs %d\\n", s }' ;;
  none) echo "no-client" ;;
  *) echo "unreachable" ;;
esac`;
}

export type JobsView = { jobs: number } | { error: string };

/** The section's answer; undefined when the gather had none (metrics not configured). */
export function parseJobs(
  sections: Map<string, string[]> | undefined,
  target: string | undefined,
): JobsView | undefined {
  const line = sections
    ?.get(METRICS_SECTION)
    ?.map((l) => l.trim())
    .find(Boolean);
  if (line === undefined) return undefined;
  const m = /^jobs (\d+)$/.exec(line);
  if (m) return { jobs: Number(m[1]) };
  if (line === 'no-target') return { error: 'no runner pod to ask' };
  if (line === 'no-client') return { error: 'the node has neither curl nor wget to read the metrics' };
  return {
    error:
      `the metrics endpoint ${target ?? ''} did not answer (gitlab-runner listens there only once it has started with runners.metrics)`.replace(
        '  ',
        ' ',
      ),
  };
}
