// The change recorder: every change collected, told to the log as it lands, and never during a dry run.
import { describe, expect, it } from 'vitest';
import { changeRecorder } from './report.js';

describe('changeRecorder', () => {
  const sink = () => {
    const said: string[] = [];
    return { said, log: { change: (scope: string, m: string) => void said.push(`${scope}: ${m}`) } };
  };

  it('collects and tells the log on apply', () => {
    const { said, log } = sink();
    const { changes, record } = changeRecorder('cluster', {
      dryRun: false,
      log,
      say: (c) => `${c.step}: ${c.detail}`,
    });
    record({ step: 'apply', detail: 'create DaemonSet x' });
    expect(changes).toEqual([{ step: 'apply', detail: 'create DaemonSet x' }]);
    expect(said).toEqual(['cluster: apply: create DaemonSet x']);
  });

  it('only collects during plan, into the list it is given', () => {
    const { said, log } = sink();
    const list = [{ step: 'a', detail: 'before' }];
    const { changes, record } = changeRecorder('pi1', { dryRun: true, log, changes: list });
    record({ step: 'b', detail: 'would' });
    expect(changes).toBe(list);
    expect(list.map((c) => c.detail)).toEqual(['before', 'would']);
    expect(said).toEqual([]);
  });
});
