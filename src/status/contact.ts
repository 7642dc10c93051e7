// A node's runner contact, one implementation for `status` and `apply`: the node's runner manager as GitLab shows it,
// whether it asked for jobs since a moment, and the wait for that with one deadline for every node.
import { ApiError } from '../errors.js';
import type { GitlabRunnerApi } from '../gitlab/api.js';
import type { RunnerRecord } from '../runners/records.js';
import { redact } from '../secrets.js';
import type { RunnerView } from './health.js';
import { describeProbe, type ProbeResult, type ProbeSite } from './probe.js';

/**
 * A node's runner in GitLab through its record. With a system_id, `contactedAt` is that runner manager's
 * (GET /runners/:id/managers): only the runner process on that node moves it by asking for jobs. Never rejects.
 */
export async function readRunnerView(
  api: Pick<GitlabRunnerApi, 'getRunner' | 'listRunnerManagers'>,
  token: string,
  rec: RunnerRecord,
): Promise<RunnerView> {
  if (rec.id === undefined) return { kind: 'unknown', why: 'the record has no runner id' };
  const id = rec.id;
  try {
    const [r, managers] = await Promise.all([
      api.getRunner(token, id),
      rec.systemId ? api.listRunnerManagers(token, id) : undefined,
    ]);
    const contactedAt = managers
      ? (managers.find((m) => m.system_id === rec.systemId)?.contacted_at ?? null)
      : (r.contacted_at ?? null);
    return {
      kind: 'runner',
      id,
      contactedAt,
      paused: r.paused,
      tokenExpiresAt: rec.tokenExpiresAt ?? null,
      ...(rec.systemId ? { systemId: rec.systemId } : {}),
    };
  } catch (err) {
    const error =
      err instanceof ApiError && err.status === 404
        ? `runner #${id} does not exist in GitLab (run apply)`
        : redact(err instanceof Error ? err.message : String(err)).split('\n')[0];
    return { kind: 'error', id, error };
  }
}

/** Whether the view shows a contact later than `baseline` (GitLab's own clock on both sides); null: any contact. */
export function contactedSince(view: RunnerView, baseline: string | null): boolean {
  if (view.kind !== 'runner' || !view.contactedAt) return false;
  return baseline === null || Date.parse(view.contactedAt) > Date.parse(baseline);
}

export interface ContactClock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const systemClock: ContactClock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

export type ContactOutcome =
  | { kind: 'contacted'; at: string }
  /** no contact of the running process by the deadline; `last` is what GitLab said last */
  | { kind: 'timeout'; last: RunnerView };

/**
 * How much earlier than a runner process's start a contact may show and still count as that process's own: the
 * start (kubelet's startedAt, or /proc) and GitLab's Date header are read to the second.
 */
export const START_MARGIN_MS = 2000;

/** Whether GitLab shows a contact no earlier than the process started (less the margin), on GitLab's clock. */
export function contactedAfterStart(view: RunnerView, startedAt: number | undefined): boolean {
  if (startedAt === undefined || view.kind !== 'runner' || !view.contactedAt) return false;
  return Date.parse(view.contactedAt) >= startedAt - START_MARGIN_MS;
}

export interface ContactWait {
  /** when to give up, on `clock` (one deadline shared by every node's wait) */
  deadline: number;
  intervalMs: number;
  /** when the node's running runner process started, on GitLab's clock (src/status/clocks.ts), if known */
  startedAt?: number;
}

/**
 * Waits until GitLab shows the running runner process's own contact. Behind GitLab's Workhorse an idle runner's
 * polls are answered without Rails (workhorse/internal/builds/register.go: the runner presents the last_update its
 * queue still holds, and gets 204 after up to the long-polling duration), so contacted_at moves only when the queue
 * changes, about once an hour. A process's first request has no last_update and always reaches Rails: a contact no
 * earlier than the process's start is its own. Without a start time, a contact later than the first answer (the
 * baseline: runner-fleet's own verify or an old pod before now does not count) proves it. A failed question is asked
 * again; it never ends the wait early.
 */
export async function waitForContact(
  read: () => Promise<RunnerView>,
  wait: ContactWait,
  clock: ContactClock = systemClock,
): Promise<ContactOutcome> {
  let baseline: string | null | undefined;
  for (;;) {
    const last = await read();
    const fresh = baseline !== undefined && contactedSince(last, baseline);
    if (last.kind === 'runner' && (fresh || contactedAfterStart(last, wait.startedAt)))
      return { kind: 'contacted', at: last.contactedAt! };
    if (baseline === undefined && last.kind === 'runner') baseline = last.contactedAt;
    const left = wait.deadline - clock.now();
    if (left <= 0) return { kind: 'timeout', last };
    await clock.sleep(Math.min(wait.intervalMs, left));
  }
}

/** Why a runner whose contact predates the wait is not proven now: the way to GitLab from where it runs fails. */
export function describeLostContact(
  at: string,
  probe: ProbeResult & { kind: 'failed' },
  site: ProbeSite,
): string {
  return `its runner last asked GitLab for jobs at ${at}; now ${describeProbe(probe, site)}`;
}

/**
 * Why a node's runner is not proven, in one phrase: the wait, then what the probe found from where the runner runs
 * (or what GitLab said, when the path is fine).
 */
export function describeNoContact(
  timeoutSeconds: number,
  last: RunnerView,
  probe: ProbeResult,
  site: ProbeSite,
): string {
  const head = `its runner did not ask GitLab for jobs within ${timeoutSeconds} s`;
  if (probe.kind === 'failed') return `${head}: ${describeProbe(probe, site)}`;
  if (last.kind === 'error') return `${head} (GitLab: ${last.error}); ${describeProbe(probe, site)}`;
  if (probe.kind === 'unknown') return `${head}; ${describeProbe(probe, site)}`;
  return `${head}, though ${describeProbe(probe, site)}: read the runner's log`;
}
