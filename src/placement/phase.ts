// The runner phase of `apply`/`plan` by placement. Each node has one runner at a time: in the cluster (record in
// the Secret, a DaemonSet pod) or on the host (record on the node, the gitlab-runner service). A switch deletes the
// old runner in GitLab, through its record, before the new one is registered; records never move, so neither side
// keeps an orphan.
import type { RunContext } from '../context.js';
import type { HostFacts } from '../docker/facts.js';
import type { ProbeResult } from '../status/probe.js';
import {
  convergeHostRunner,
  hostRunnerFactsOf,
  removeHostRunner,
} from '../host-runner/host-runner-converge.js';
import { indexEntry } from '../host-runner/state.js';
import type { NodeSpec } from '../inventory/types.js';
import type { RunnerRecord } from '../runners/records.js';
import type { Change, ClusterReport, NodeReport } from '../report.js';
import type { NodeConnection } from '../ssh.js';
import { convergeRunners } from './cluster-placement.js';
import { probeOnHost, proveContact, startsOnGitlabClock } from './contact.js';
import { GitlabLog } from './gitlab-log.js';
import {
  readIndex,
  removeHostRunners,
  takeRunnersOutOfCluster,
  updateIndex,
  type HostRunnerResults,
} from './host-placement.js';
import { describeBlock, type DeleteCause, type NodeBlock } from './reasons.js';

/** What `apply`/`plan` call around the host phase; see runnerPhase. */
export interface RunnerPhase {
  /**
   * Per node, after its Docker converged, on the host phase's connection and with its facts (the gather included
   * the host-runner section). Returns the node's error, if its runner could not be put right.
   */
  onNode(
    conn: NodeConnection,
    node: NodeSpec,
    facts: HostFacts,
    record: (c: Change) => void,
  ): Promise<string | undefined>;
  /** After every node: the cluster (placement cluster), nodes gone from the inventory, the host-runner index. */
  afterNodes(facts: Map<string, HostFacts>): Promise<{
    gitlab?: ClusterReport;
    cluster?: ClusterReport;
    nodes: NodeReport[];
    /** nodes whose runner did not contact GitLab in time, with why */
    contact?: Map<string, string>;
  }>;
}

/**
 * The runner phase for this run's placement. Host placement starts taking the selected nodes' runners out of the
 * cluster at once (GitLab first, through the Secret's records), and a node's host runner waits for that, so a
 * node never has a cluster runner and a host runner at the same time. Cluster placement removes a host runner a
 * node still has during its host phase, before the cluster phase registers the node's cluster runner.
 */
export function runnerPhase(ctx: RunContext): RunnerPhase {
  const { inventory: inv, dryRun, log } = ctx;
  const gitlab = new GitlabLog();
  const index = readIndex(inv, log);
  const results: HostRunnerResults = new Map();
  /** host placement: the nodes whose runner this run put up, to wait for their first contact */
  const upNow = new Map<
    string,
    {
      node: NodeSpec;
      record: RunnerRecord;
      startedMs?: number;
      reach?: ProbeResult;
      clock: Pick<HostFacts, 'nodeClockMs' | 'gatheredAt'>;
    }
  >();
  const host = inv.runners.placement === 'host';
  const cause: DeleteCause = { kind: 'placement', placement: inv.runners.placement };

  // Nodes that must not get a new runner this run: their old one could not be deleted.
  const blocked = new Map<string, NodeBlock>();
  const cleanup: Promise<ClusterReport | undefined> = host
    ? takeRunnersOutOfCluster(ctx, gitlab, blocked)
    : Promise.resolve(undefined);
  // Settled before anything awaits it: a rejection is a report, never an unhandled one.
  cleanup.catch(() => undefined);

  return {
    async onNode(conn, node, facts, record) {
      if (host) {
        await cleanup;
        const block = blocked.get(node.name);
        if (block) return describeBlock(block);
        log.progress(node.name, dryRun ? 'planning the host runner' : 'converging the host runner');
        const outcome = await convergeHostRunner(conn, node, facts, ctx, record);
        gitlab.add(outcome.gitlab, inv, cause);
        results.set(node.name, { node: indexEntry(node), present: outcome.present });
        if (outcome.runner && !outcome.error && !dryRun)
          upNow.set(node.name, {
            node,
            record: outcome.runner,
            startedMs: outcome.startedMs,
            reach: outcome.reach,
            clock: facts,
          });
        return outcome.error;
      }
      const hr = hostRunnerFactsOf(node, facts);
      if (!hr.record.bytes && hr.config.sha256 === 'absent') {
        results.set(node.name, { node: indexEntry(node), present: false });
        return undefined;
      }
      log.progress(
        node.name,
        dryRun
          ? 'planning the removal of its host runner'
          : 'removing its host runner (runners.placement is cluster)',
      );
      const outcome = await removeHostRunner(conn, node, hr, ctx, record);
      gitlab.add(outcome.gitlab, inv, cause);
      results.set(node.name, { node: indexEntry(node), present: outcome.present });
      if (outcome.error) blocked.set(node.name, { kind: 'host-runner-not-removed', error: outcome.error });
      return outcome.error;
    },

    async afterNodes(facts) {
      // Nodes in the index that the inventory no longer has: only a whole-fleet run may conclude that.
      const departed = ctx.only ? [] : index.filter((n) => !inv.nodes.some((m) => m.name === n.name));
      let departedReports: NodeReport[] = [];
      if (departed.length > 0) {
        log.progress(
          'gitlab',
          `removing the host runners of ${departed.map((n) => n.name).join(', ')} (not in the inventory any more)`,
        );
        const r = await removeHostRunners(ctx, departed, { kind: 'left-inventory' });
        departedReports = r.nodes;
        gitlab.addReport(r.gitlab);
      }
      // removeHostRunners wrote the departed nodes' part of the index; this run's nodes come on top.
      updateIndex(inv, dryRun, log, readIndex(inv, log), results);
      if (host) {
        const cluster = await cleanup;
        const up = [...upNow.values()];
        const started = up.flatMap((u) =>
          u.startedMs === undefined ? [] : [[u.node.name, u.startedMs] as const],
        );
        const contact = await proveContact({
          ctx,
          records: up.map((u) => u.record),
          site: 'host',
          // The probe this run's gather or steps already ran on the node; a new connection only without one.
          probe: async (name) => upNow.get(name)!.reach ?? probeOnHost(upNow.get(name)!.node, inv),
          starts: await startsOnGitlabClock(
            ctx,
            new Map(started),
            new Map(up.map((u) => [u.node.name, u.clock])),
          ),
        });
        return { gitlab: gitlab.report(), ...(cluster ? { cluster } : {}), nodes: departedReports, contact };
      }
      const r = await convergeRunners(ctx, facts, new Set(blocked.keys()));
      return {
        gitlab: gitlab.report(r.gitlab),
        ...(r.cluster ? { cluster: r.cluster } : {}),
        nodes: departedReports,
        ...(r.contact ? { contact: r.contact } : {}),
      };
    },
  };
}
