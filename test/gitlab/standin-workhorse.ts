// GitLab Workhorse in front of POST /api/v4/jobs/request (workhorse/internal/builds/register.go, with Omnibus'
// apiCiLongPollingDuration): a runner presenting its token and the last_update its queue key still holds is
// answered by Workhorse itself, 204 once the queue changes or the polling duration passes, and Rails, with its
// heartbeat, never sees that request. So an idle runner's contacted_at moves only when its queue does.
import type { Handler, StandinContext } from './standin-context.js';
import type { Call, Reply } from './standin-http.js';

/** Omnibus GitLab's and the chart's gitlab_workhorse api_ci_long_polling_duration. */
export const LONG_POLLING_DEFAULT_SECONDS = 50;

/** register.go's answer header on every request it handles. */
const POLLING_HEADER = { 'Gitlab-Ci-Builds-Polling': 'yes' };
/** How often the stand-in looks at the queue while a request waits (Workhorse: a Redis notification). */
const WATCH_EVERY_MS = 50;

/** readRunnerRequest: only a JSON body is read; anything else goes to Rails as it came. */
function runnerRequest(c: Call): { token: string; lastUpdate: string } | undefined {
  if (!/^application\/json\b/i.test(String(c.req.headers['content-type'] ?? ''))) return undefined;
  try {
    const body = JSON.parse(c.body.toString('utf8')) as Record<string, unknown>;
    const str = (v: unknown) => (typeof v === 'string' ? v : '');
    return { token: str(body.token), lastUpdate: str(body.last_update) };
  } catch {
    return undefined;
  }
}

/** The Redis key runner:build_queue:<token> as Workhorse GETs it: "" when no runner has it or it expired. */
function queueValue(ctx: StandinContext, token: string): string {
  const runner = ctx.model.state.runners.find((r) => r.token === token);
  if (!runner?.queueValue || runner.queueValueExpiresAt <= Date.now()) return '';
  return runner.queueValue;
}

/**
 * WatchKey: the value already differs (AlreadyChanged) → Rails; else wait for a change (SeenChange), the duration
 * (Timeout) or the runner hanging up. Only AlreadyChanged reaches Rails.
 */
async function watch(
  ctx: StandinContext,
  c: Call,
  token: string,
  lastUpdate: string,
): Promise<'rails' | 'no-content'> {
  if (queueValue(ctx, token) !== lastUpdate) return 'rails';
  const until = Date.now() + ctx.longPollingSeconds * 1000;
  while (Date.now() < until && !c.req.socket.destroyed) {
    await new Promise((r) => setTimeout(r, Math.min(WATCH_EVERY_MS, until - Date.now())));
    if (queueValue(ctx, token) !== lastUpdate) return 'no-content';
  }
  return 'no-content';
}

/** The route's handler behind Workhorse; a long-polling duration of 0 turns Workhorse's handling off, as it does. */
export function behindWorkhorse(rails: Handler): Handler {
  return async (ctx, c): Promise<Reply> => {
    if (ctx.longPollingSeconds === 0) return rails(ctx, c);
    const r = runnerRequest(c);
    const toRails =
      !r || !r.token || !r.lastUpdate || (await watch(ctx, c, r.token, r.lastUpdate)) === 'rails';
    if (!toRails) return { status: 204, headers: POLLING_HEADER };
    const reply = await rails(ctx, c);
    return { ...reply, headers: { ...(reply.headers ?? {}), ...POLLING_HEADER } };
  };
}
