// Pure judgement of a DaemonSet rollout from its status and its pods: done, or which nodes are behind and why.
import { RunFailedError } from '../errors.js';

/** The parts of a DaemonSet the judgement reads (plain JSON). */
export interface DaemonSetView {
  metadata: { name: string; namespace?: string; generation?: number; annotations?: Record<string, string> };
  status?: {
    observedGeneration?: number;
    desiredNumberScheduled?: number;
    updatedNumberScheduled?: number;
    numberAvailable?: number;
  };
}

export interface PodView {
  metadata: { name: string; labels?: Record<string, string>; deletionTimestamp?: unknown };
  spec?: { nodeName?: string };
  status?: {
    phase?: string;
    /** for status's metrics read on the node */ podIP?: string;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
    /** when each container's current run started (the node's clock, to the second) */
    containerStatuses?: { name: string; state?: { running?: { startedAt?: string } } }[];
  };
}

export interface RolloutState {
  done: boolean;
  /** what `kubectl rollout status` would be waiting for, if anything */
  waitingFor?: string;
  /**
   * inventory nodes without a current, Ready pod, with the reason. `graceful`: the node is only waiting for a
   * graceful stop (its old pod is finishing running jobs, or waits its turn behind one that is): progress, not failure.
   */
  behind: { node: string; why: string; graceful?: boolean }[];
}

const TEMPLATE_GENERATION_ANNOTATION = 'deprecated.daemonset.template.generation';
const POD_TEMPLATE_GENERATION_LABEL = 'pod-template-generation';

/**
 * Done when the status says so, as `kubectl rollout status` judges it (observedGeneration caught up,
 * every scheduled pod updated and available), and every inventory node has a current pod that is Ready.
 * The second half matters: a node the scheduler may not use (NotReady, tainted) drops out of
 * desiredNumberScheduled, so the status alone would call a rollout done that skipped a node. A node whose
 * kubelet reports NotReady (`nodeReady[node] === false`) counts as behind even with a pod that last said
 * Ready: nobody vouches for that pod any more (the node controller only marks pods NotReady when the
 * kubelet goes silent, not when it reports trouble).
 */
export function rolloutState(
  ds: DaemonSetView,
  pods: PodView[],
  nodes: string[],
  nodeReady: Record<string, boolean> = {},
): RolloutState {
  const s = ds.status ?? {};
  const desired = s.desiredNumberScheduled ?? 0;
  let waitingFor: string | undefined;
  if ((s.observedGeneration ?? 0) < (ds.metadata.generation ?? 0))
    waitingFor = 'the DaemonSet controller to see the new spec';
  else if ((s.updatedNumberScheduled ?? 0) < desired)
    waitingFor = `${s.updatedNumberScheduled ?? 0} of ${desired} pods updated`;
  else if ((s.numberAvailable ?? 0) < desired)
    waitingFor = `${s.numberAvailable ?? 0} of ${desired} updated pods available`;

  const generation = ds.metadata.annotations?.[TEMPLATE_GENERATION_ANNOTATION];
  const behind: RolloutState['behind'] = [];
  for (const node of nodes) {
    if (nodeReady[node] === false) {
      behind.push({ node, why: 'node NotReady' });
      continue;
    }
    const onNode = pods.filter((p) => p.spec?.nodeName === node && !p.metadata.deletionTimestamp);
    const isCurrent = (p: PodView) =>
      !generation ||
      !p.metadata.labels?.[POD_TEMPLATE_GENERATION_LABEL] ||
      p.metadata.labels[POD_TEMPLATE_GENERATION_LABEL] === generation;
    if (onNode.length === 0) {
      // A pod being deleted is the runner finishing its jobs (preStop sends SIGQUIT, then up to the grace period).
      const stopping = pods.find(
        (p) => p.spec?.nodeName === node && p.metadata.deletionTimestamp && !isCurrent(p),
      );
      if (stopping)
        behind.push({
          node,
          why: `old pod ${stopping.metadata.name} is finishing its running jobs`,
          graceful: true,
        });
      else behind.push({ node, why: 'no pod' });
      continue;
    }
    const current = onNode.filter(isCurrent);
    if (current.length === 0) {
      behind.push({
        node,
        why: `pod ${onNode[0].metadata.name} runs an older template (waits its turn)`,
        graceful: podReady(onNode[0]),
      });
      continue;
    }
    if (!current.some(podReady)) {
      const p = current[0];
      const ready = p.status?.conditions?.find((c) => c.type === 'Ready');
      const detail = ready?.reason ? ` (${ready.reason})` : '';
      behind.push({
        node,
        why: `pod ${p.metadata.name} is ${p.status?.phase ?? 'Pending'}, not Ready${detail}`,
      });
    }
  }
  return { done: waitingFor === undefined && behind.length === 0, waitingFor, behind };
}

export function podReady(p: PodView): boolean {
  return p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

/** A rollout that did not finish in time; `nodes` are the inventory nodes still behind. */
export class RolloutTimeoutError extends RunFailedError {
  constructor(
    readonly daemonSet: string,
    readonly timeoutSeconds: number,
    readonly nodes: string[],
    detail: string,
  ) {
    super(`DaemonSet ${daemonSet} did not roll out within ${timeoutSeconds}s: ${detail}`);
    this.name = 'RolloutTimeoutError';
  }
}

/**
 * Whether a rollout that is not done is only waiting for graceful stops: every node behind is draining or waiting
 * its turn, and at least one is. A fleet-wide upgrade takes up to (nodes ÷ maxUnavailable) × the grace period, far
 * longer than any sensible wait, so that is reported as progress.
 */
export function onlyDraining(state: RolloutState): boolean {
  return !state.done && state.behind.length > 0 && state.behind.every((b) => b.graceful);
}

/** `pi2 (node NotReady; no pod), pi3 (pod x is Pending, not Ready)` */
export function describeBehind(state: RolloutState, nodeNotes: Record<string, string> = {}): string {
  const parts = state.behind.map(
    (b) => `${b.node} (${[nodeNotes[b.node], b.why].filter(Boolean).join('; ')})`,
  );
  if (parts.length === 0 && state.waitingFor) return `waiting for ${state.waitingFor}`;
  return `not ready on ${parts.join(', ')}`;
}
