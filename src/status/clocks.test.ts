import { describe, expect, it } from 'vitest';
import { splitGatherOutput } from '../docker/facts.js';
import { gitlabAheadMs, nodeAheadMs, nodeToGitlab, parseNodeClock } from './clocks.js';

describe('clocks: a start on the node, on GitLab’s clock', () => {
  it('reads the node clock in ms; a date without %N (busybox prints it back) is unknown', () => {
    expect(parseNodeClock(splitGatherOutput('@@node-clock\n1796686092010\n@@end\n'))).toBe(1796686092010);
    expect(parseNodeClock(splitGatherOutput('@@node-clock\n1796686092%3N\n@@end\n'))).toBeUndefined();
    expect(parseNodeClock(undefined)).toBeUndefined();
  });

  it('a node 30 s ahead and GitLab 5 s behind: a start at node 12:00:30 is GitLab 11:59:55; unknown clocks agree', () => {
    const here = Date.UTC(2026, 0, 1, 12, 0, 0);
    const nodeAhead = nodeAheadMs(here + 30_000, here);
    const gitlabAhead = gitlabAheadMs({ date: here - 5000, receivedAt: here });
    expect(nodeToGitlab(here + 30_000, nodeAhead, gitlabAhead)).toBe(here - 5000);
    expect(nodeToGitlab(here, nodeAheadMs(undefined, here), gitlabAheadMs(undefined))).toBe(here);
  });
});
