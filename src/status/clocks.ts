// Three clocks meet in the contact proof: a runner process's start (the node's clock), GitLab's contacted_at (GitLab's)
// and this machine's. Each remote clock is read against this machine's at the moment it answered, so this machine's own
// clock cancels out: a process start on the node becomes a moment on GitLab's clock.
import type { GatherOutput } from '../docker/gather.js';

/** GitLab's clock as one HEAD read it: its `Date` (ms), and this machine's clock when the answer came. */
export interface GitlabClock {
  date: number;
  receivedAt: number;
}

/** The gather's last section: the node's clock in ms, read as the gather ends (printAtEnd sends its answer then). */
export const NODE_CLOCK_GATHER = 'echo "@@node-clock"; date +%s%3N';

/** The node's clock at the end of the gather, in ms; undefined when the node's `date` has no %N (busybox). */
export function parseNodeClock(gathered: GatherOutput | undefined): number | undefined {
  const line = gathered?.sections.get('node-clock')?.[0]?.trim() ?? '';
  return /^\d{12,}$/.test(line) ? Number(line) : undefined;
}

/** How far the node's clock is ahead of this machine's, in ms (0 when unknown: the clocks are taken to agree). */
export function nodeAheadMs(nodeClockMs: number | undefined, gatheredAt: number | undefined): number {
  return nodeClockMs === undefined || gatheredAt === undefined ? 0 : nodeClockMs - gatheredAt;
}

/** How far GitLab's clock is ahead of this machine's, in ms (0 when GitLab's Date could not be read). */
export function gitlabAheadMs(clock: GitlabClock | undefined): number {
  return clock ? clock.date - clock.receivedAt : 0;
}

/** A moment on the node's clock, on GitLab's. */
export function nodeToGitlab(nodeMs: number, nodeAhead: number, gitlabAhead: number): number {
  return nodeMs - nodeAhead + gitlabAhead;
}
