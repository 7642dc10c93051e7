import { describe, expect, it } from 'vitest';
import { fileFact } from './facts.fixture.js';
import { splitGatherOutput } from './facts.js';
import {
  SNAP_HOLDS_STATE,
  parseSnapFacts,
  planSnapHolds,
  planSnapHoldsCleanup,
  snapHoldStepScript,
  type SnapFacts,
} from './snap-holds.js';

const snaps = (installed: SnapFacts['installed'], record?: string): SnapFacts => ({
  installed,
  state: fileFact(SNAP_HOLDS_STATE, record),
});
const snap = (held: boolean) => ({ held, version: '1', rev: '1' });

describe('parseSnapFacts', () => {
  it("reads `snap list`'s Notes column: held among the notes", () => {
    const out =
      '@@rf-snaps\n' +
      'docker    20.10.24  3265  latest/stable  canonical**  held\n' +
      'microk8s  v1.32.0   7000  1.32/stable    canonical**  classic,held\n' +
      `@@file ${SNAP_HOLDS_STATE}\n-\n`;
    const facts = parseSnapFacts(splitGatherOutput(out));
    expect(facts.installed).toEqual({
      docker: { held: true, version: '20.10.24', rev: '3265' },
      microk8s: { held: true, version: 'v1.32.0', rev: '7000' },
    });
    const free = parseSnapFacts(
      splitGatherOutput('@@rf-snaps\nmicrok8s  v1.32.0  7000  1.32/stable  canonical**  classic\n'),
    );
    expect(free.installed).toEqual({ microk8s: { held: false, version: 'v1.32.0', rev: '7000' } });
  });
});

describe('planSnapHolds', () => {
  it('holds the installed snaps that are not held, in one change, recording them first', () => {
    const steps = planSnapHolds({ holdRefresh: true }, snaps({ docker: snap(false), microk8s: snap(false) }));
    expect(steps).toMatchObject([{ kind: 'snap-hold', snaps: ['docker', 'microk8s'] }]);
    const script = snapHoldStepScript(steps[0], (p, c) => `write ${p} ${JSON.stringify(c)}`);
    expect(script).toContain('snap refresh --hold=forever docker microk8s');
    expect(script.indexOf('write')).toBeLessThan(script.indexOf('snap refresh'));
  });

  it('changes nothing once held, and leaves alone a snap that is not installed', () => {
    expect(planSnapHolds({ holdRefresh: true }, snaps({ docker: snap(true) }, 'docker\n'))).toEqual([]);
    expect(planSnapHolds({ holdRefresh: true }, snaps({}))).toEqual([]);
  });

  it('never records (and so never releases) a hold someone else made', () => {
    const steps = planSnapHolds({ holdRefresh: true }, snaps({ docker: snap(true), microk8s: snap(false) }));
    expect(steps).toMatchObject([{ kind: 'snap-hold', snaps: ['microk8s'], record: ['microk8s'] }]);
    expect(planSnapHolds({ holdRefresh: false }, snaps({ docker: snap(true) }))).toEqual([]);
  });

  it('releases only what runner-fleet held when the setting goes, then forgets it', () => {
    const steps = planSnapHolds(
      { holdRefresh: false },
      snaps({ docker: snap(true), microk8s: snap(true) }, 'microk8s\n'),
    );
    expect(steps).toMatchObject([{ kind: 'snap-unhold', snaps: ['microk8s'] }]);
    const script = snapHoldStepScript(steps[0], () => '');
    expect(script).toContain('snap refresh --unhold microk8s');
    expect(script).toContain(`rm -f '${SNAP_HOLDS_STATE}'`);
  });

  it('destroy: nothing without a record', () => {
    expect(planSnapHoldsCleanup(snaps({ docker: snap(true) }))).toBeUndefined();
  });
});
