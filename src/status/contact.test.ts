// The contact wait: a baseline from GitLab's first answer, a later contact proves the runner, one shared deadline.
import { describe, expect, it } from 'vitest';
import type { GitlabRunnerApi, RunnerDetails, RunnerManager } from '../gitlab/api.js';
import { ApiError } from '../errors.js';
import type { RunnerRecord } from '../runners/records.js';
import type { RunnerView } from './health.js';
import {
  contactedSince,
  describeNoContact,
  readRunnerView,
  START_MARGIN_MS,
  waitForContact,
  type ContactClock,
} from './contact.js';
import { parseProbe, probeTargets } from './probe.js';

const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 12, 0, s)).toISOString();
const view = (contactedAt: string | null): RunnerView => ({ kind: 'runner', id: 7, contactedAt });

/** A clock that only moves when the wait sleeps. */
function fakeClock(): ContactClock & { t: number } {
  const c = { t: 0, now: () => c.t, sleep: async (ms: number) => void (c.t += ms) };
  return c;
}

const reads = (views: RunnerView[]) => {
  let i = 0;
  return async () => views[Math.min(i++, views.length - 1)];
};

describe('contactedSince', () => {
  it('only a contact after the baseline counts; without a baseline any contact does', () => {
    expect(contactedSince(view(at(5)), at(4))).toBe(true);
    expect(contactedSince(view(at(4)), at(4))).toBe(false);
    expect(contactedSince(view(null), null)).toBe(false);
    expect(contactedSince(view(at(1)), null)).toBe(true);
    expect(contactedSince({ kind: 'error', error: 'HTTP 500' }, null)).toBe(false);
  });
});

describe('waitForContact', () => {
  it('the first answer is the baseline: a contact before the wait (an old pod, a verify) proves nothing', async () => {
    const clock = fakeClock();
    const r = await waitForContact(
      reads([view(at(1)), view(at(1)), view(at(9))]),
      { deadline: 60_000, intervalMs: 3000 },
      clock,
    );
    expect(r).toEqual({ kind: 'contacted', at: at(9) });
    expect(clock.t).toBe(6000);
  });

  it('never contacted, then a first contact', async () => {
    const r = await waitForContact(
      reads([view(null), view(at(2))]),
      { deadline: 60_000, intervalMs: 3000 },
      fakeClock(),
    );
    expect(r).toEqual({ kind: 'contacted', at: at(2) });
  });

  it('gives up at the deadline with what GitLab said last; the last sleep is cut to the deadline', async () => {
    const clock = fakeClock();
    const r = await waitForContact(reads([view(at(1))]), { deadline: 10_000, intervalMs: 3000 }, clock);
    expect(r).toEqual({ kind: 'timeout', last: view(at(1)) });
    expect(clock.t).toBe(10_000);
  });

  it('a failed question is asked again; the baseline waits for the first real answer', async () => {
    const err: RunnerView = { kind: 'error', id: 7, error: 'HTTP 502' };
    const r = await waitForContact(
      reads([err, view(at(1)), view(at(4))]),
      { deadline: 60_000, intervalMs: 1000 },
      fakeClock(),
    );
    expect(r).toEqual({ kind: 'contacted', at: at(4) });
    const never = await waitForContact(reads([err]), { deadline: 5000, intervalMs: 1000 }, fakeClock());
    expect(never).toEqual({ kind: 'timeout', last: err });
  });

  it('nodes waiting in parallel share one deadline', async () => {
    const clock = fakeClock();
    const deadline = clock.now() + 9000;
    const [a, b] = await Promise.all([
      waitForContact(reads([view(null), view(null), view(at(3))]), { deadline, intervalMs: 3000 }, clock),
      waitForContact(reads([view(null)]), { deadline, intervalMs: 3000 }, clock),
    ]);
    expect(a.kind).toBe('contacted');
    expect(b.kind).toBe('timeout');
    expect(clock.t).toBeLessThanOrEqual(deadline + 3000 * 2);
  });

  // Behind Workhorse an idle runner's contacted_at stays put for up to an hour: its own first contact, already
  // made when the wait starts, must prove it without a second one.
  it('a contact no earlier than the running process started proves it at once, though it is the baseline', async () => {
    const clock = fakeClock();
    const started = Date.parse(at(5));
    const r = await waitForContact(
      reads([view(at(6))]),
      { deadline: 60_000, intervalMs: 3000, startedAt: started },
      clock,
    );
    expect(r).toEqual({ kind: 'contacted', at: at(6) });
    expect(clock.t).toBe(0);
  });

  it("a contact before the process started is the previous process's: the wait goes on (within the margin it counts)", async () => {
    const started = Date.parse(at(10));
    const before = await waitForContact(
      reads([view(at(7))]),
      { deadline: 9000, intervalMs: 3000, startedAt: started },
      fakeClock(),
    );
    expect(before.kind).toBe('timeout');
    const late = await waitForContact(
      reads([view(at(7)), view(at(12))]),
      { deadline: 9000, intervalMs: 3000, startedAt: started },
      fakeClock(),
    );
    expect(late).toEqual({ kind: 'contacted', at: at(12) });
    const margin = await waitForContact(
      reads([view(at(9))]),
      { deadline: 9000, intervalMs: 3000, startedAt: started },
      fakeClock(),
    );
    expect(margin.kind).toBe('contacted');
    expect(START_MARGIN_MS).toBe(2000);
  });
});

describe('readRunnerView', () => {
  const rec = { node: 'pi1', id: 7, systemId: 'r_0123456789ab', tokenExpiresAt: null } as RunnerRecord;
  const api = (managers: Partial<RunnerManager>[], fail?: Error) =>
    ({
      getRunner: async () => {
        if (fail) throw fail;
        return { contacted_at: at(50), paused: false } as RunnerDetails;
      },
      listRunnerManagers: async () => managers as RunnerManager[],
    }) as unknown as GitlabRunnerApi;

  it("the node's manager by system_id, never the runner's own contacted_at (verify moves that)", async () => {
    expect(
      await readRunnerView(api([{ system_id: 'r_0123456789ab', contacted_at: at(3) }]), 't', rec),
    ).toEqual({
      kind: 'runner',
      id: 7,
      contactedAt: at(3),
      paused: false,
      tokenExpiresAt: null,
      systemId: 'r_0123456789ab',
    });
    expect(
      (await readRunnerView(api([{ system_id: 'r_other000000', contacted_at: at(3) }]), 't', rec)).kind ===
        'runner',
    ).toBe(true);
    expect(await readRunnerView(api([], new ApiError('gitlab', 404, 'Not found')), 't', rec)).toEqual({
      kind: 'error',
      id: 7,
      error: 'runner #7 does not exist in GitLab (run apply)',
    });
  });
});

describe('describeNoContact', () => {
  const targets = probeTargets({ gitlab: { url: 'http://198.18.0.1:8929', registries: [] } } as never);
  it('the first failing hop from where the runner runs; GitLab trouble or a clean path otherwise', () => {
    const tcp = parseProbe('probe-hop 0 dns ok 198.18.0.1\nprobe-hop 0 tcp fail nc: timed out', targets);
    expect(describeNoContact(120, view(null), tcp, 'pod')).toBe(
      'its runner did not ask GitLab for jobs within 120 s: cannot connect to 198.18.0.1:8929 (GitLab) from the runner pod (nc: timed out)',
    );
    expect(describeNoContact(30, view(null), { kind: 'ok' }, 'host')).toBe(
      "its runner did not ask GitLab for jobs within 30 s, though GitLab and the registries answer from the node: read the runner's log",
    );
    expect(
      describeNoContact(
        30,
        { kind: 'error', id: 7, error: 'HTTP 500' },
        { kind: 'unknown', why: 'no pod' },
        'pod',
      ),
    ).toBe(
      'its runner did not ask GitLab for jobs within 30 s (GitLab: HTTP 500); could not probe from the runner pod: no pod',
    );
  });
});
