import { describe, expect, it } from 'vitest';
import { fileFact } from './facts.fixture.js';
import { splitGatherOutput } from './facts.js';
import {
  PRUNE_SERVICE_FILE,
  PRUNE_TIMER_FILE,
  parsePruneFacts,
  planPrune,
  planPruneCleanup,
  pruneCommands,
  pruneStepScript,
  renderPruneService,
  renderPruneTimer,
  type PruneFacts,
} from './prune.js';

const prune = { schedule: 'daily', until: '168h', keepStorage: '10GB' };
const none: PruneFacts = {
  service: fileFact(PRUNE_SERVICE_FILE),
  timer: fileFact(PRUNE_TIMER_FILE),
  enabled: false,
};
const installed = (over: Partial<PruneFacts> = {}): PruneFacts => ({
  service: fileFact(PRUNE_SERVICE_FILE, renderPruneService(prune, 'apt')),
  timer: fileFact(PRUNE_TIMER_FILE, renderPruneTimer(prune)),
  enabled: true,
  active: 'active',
  ...over,
});

describe('pruneCommands', () => {
  it('prunes containers, images no container uses, build cache and anonymous volumes, with the until filter', () => {
    expect(pruneCommands(prune, 'apt')).toEqual([
      '/usr/bin/docker container prune --force --filter until=168h',
      '/usr/bin/docker image prune --all --force --filter until=168h',
      '/usr/bin/docker builder prune --all --force --filter until=168h --keep-storage 10GB',
      `-/bin/sh -c '/usr/bin/docker volume ls -q --filter dangling=true | grep -E "^[0-9a-f]{64}$$" | xargs -r /usr/bin/docker volume rm'`,
    ]);
  });

  it("uses the snap's docker on snap nodes, and no --keep-storage when none is set", () => {
    const cmds = pruneCommands({ schedule: 'daily', until: '24h' }, 'snap');
    expect(cmds[0]).toMatch(/^\/snap\/bin\/docker /);
    expect(cmds[2]).not.toContain('--keep-storage');
    expect(renderPruneService(prune, 'snap')).toContain('After=snap.docker.dockerd.service');
  });
});

describe('planPrune', () => {
  it('writes both units, enables and starts the timer on a node without them', () => {
    const steps = planPrune(prune, 'apt', none);
    expect(steps).toHaveLength(1);
    expect(steps[0]).toMatchObject({ kind: 'prune-timer' });
    const step = steps[0] as Extract<(typeof steps)[0], { kind: 'prune-timer' }>;
    expect(step.writes.map((w) => [w.path, w.expectSha256])).toEqual([
      [PRUNE_SERVICE_FILE, 'absent'],
      [PRUNE_TIMER_FILE, 'absent'],
    ]);
    expect(step.writes[1].content).toContain('OnCalendar=daily');
  });

  it('changes nothing when the units are right and the timer is enabled and active', () => {
    expect(planPrune(prune, 'apt', installed())).toEqual([]);
  });

  it('rewrites only the timer when the schedule changes, and restarts it', () => {
    const steps = planPrune({ ...prune, schedule: 'weekly' }, 'apt', installed());
    const step = steps[0] as Extract<(typeof steps)[0], { kind: 'prune-timer' }>;
    expect(step.writes.map((w) => w.path)).toEqual([PRUNE_TIMER_FILE]);
    expect(pruneStepScript(step, (p) => `write ${p}`)).toContain(
      'systemctl restart runner-fleet-docker-prune.timer',
    );
  });

  it('starts a timer that is installed but not running', () => {
    const steps = planPrune(prune, 'apt', installed({ active: 'inactive' }));
    expect(steps).toMatchObject([{ kind: 'prune-timer', writes: [] }]);
  });

  it('removes the timer when docker.prune is dropped, and plans nothing when there was none', () => {
    expect(planPrune(undefined, 'apt', installed())).toMatchObject([{ kind: 'remove-prune-timer' }]);
    expect(planPrune(undefined, 'apt', none)).toEqual([]);
    expect(planPruneCleanup(none)).toBeUndefined();
  });

  it('removal refuses files changed since the gather and disables before removing', () => {
    const step = planPruneCleanup(installed())!;
    const script = pruneStepScript(step, () => '');
    expect(script).toContain('exit 17');
    expect(script.indexOf('disable --now')).toBeLessThan(script.indexOf('rm -f'));
  });
});

describe('parsePruneFacts', () => {
  it('reads the files, the enable link and the timer state from the gather', () => {
    const out = `@@file ${PRUNE_SERVICE_FILE}\n-\n@@file ${PRUNE_TIMER_FILE}\n${Buffer.from('x').toString('base64')}\n@@rf-prune\nenabled\nactive=inactive\n`;
    const facts = parsePruneFacts(splitGatherOutput(out));
    expect(facts).toMatchObject({ enabled: true, active: 'inactive' });
    expect(facts.service.sha256).toBe('absent');
    expect(facts.timer.content).toBe('x');
  });
});
