// The job endpoints a runner uses (lib/api/ci/runner.rb): ask for a job, report its state, append to its log; and
// GET /jwt/auth, where the registry sends Docker for a token (standin-registry.ts). standin-routes.ts lists them.
import { authenticateJob, authenticateRunner } from './standin-auth.js';
import type { Handler } from './standin-context.js';
import { badRequest, HttpError, int, str } from './standin-http.js';
import { FAILURE_REASONS, jobPayload } from './standin-jobs.js';
import { registryAuth } from './standin-registry.js';
import { ensureQueueValue } from './standin-runners.js';
import {
  finishJob,
  projectById,
  takeJob,
  TRACE_UPDATE_DEFAULT_S,
  TRACE_UPDATE_WATCHED_S,
} from './standin-work.js';

/**
 * POST /jobs/request: X-GitLab-Last-Update is the runner's queue value (ensure_runner_queue_value); a runner that
 * presents the current one gets 204 without a queue scan (runner_queue_value_latest?).
 */
export const requestJob: Handler = (ctx, c) => {
  const m = ctx.model;
  const { runner, manager } = authenticateRunner(ctx, c);
  if (runner.paused) return { status: 204, headers: { 'X-GitLab-Last-Update': ensureQueueValue(runner) } };
  const lastUpdate = str(c.params, 'last_update');
  if (lastUpdate && ensureQueueValue(runner) === lastUpdate)
    return { status: 204, headers: { 'X-GitLab-Last-Update': lastUpdate } };
  const newUpdate = ensureQueueValue(runner);
  const job = takeJob(m, runner, manager!);
  if (!job) return { status: 204, headers: { 'X-GitLab-Last-Update': newUpdate } };
  const body = jobPayload(job, {
    serverUrl: ctx.serverUrl,
    registry: ctx.signer?.hostPort ?? null,
    runner,
    project: projectById(m, job.projectId),
    timeInQueue: (Date.parse(job.startedAt!) - Date.parse(job.queuedAt)) / 1000,
    runningOnInstanceRunners: m.jobs.filter(
      (j) => j.status === 'running' && j.projectId === job.projectId && j !== job,
    ).length,
  });
  return { status: 201, body };
};

/** PUT /jobs/:id: UpdateBuildStateService#update_build_state! (live trace off: no 202 "accepted" round). */
export const updateJob: Handler = (ctx, c) => {
  // Grape's `requires :token` comes before authenticate_job!.
  if (str(c.params, 'token') === undefined) throw badRequest('token is missing');
  const job = authenticateJob(ctx, c);
  const wanted = str(c.params, 'state') ?? '';
  let code = 200;
  if (wanted === 'running') {
    // build.touch: nothing to record here
  } else if (wanted === 'success') finishJob(job, 'success');
  else if (wanted === 'failed') {
    const reason = str(c.params, 'failure_reason');
    // drop_with_exit_code!: a reason GitLab does not know becomes unknown_failure.
    job.failureReason = reason && FAILURE_REASONS.includes(reason) ? reason : 'unknown_failure';
    const exitCode = int(c.params, 'exit_code');
    job.exitCode = exitCode ?? null;
    finishJob(job, 'failed');
  } else code = 400;
  return { status: code, headers: { 'Job-Status': job.status }, raw: Buffer.from(String(code)) };
};

/** PATCH /jobs/:id/trace: the body is the log itself (app/services/ci/append_build_trace_service.rb). */
export const appendTrace: Handler = (ctx, c) => {
  const job = authenticateJob(ctx, c);
  const range = c.req.headers['content-range'];
  if (range === undefined) throw new HttpError(400, { message: '400 Missing header Content-Range' });
  // AppendBuildTraceService: only the start counts (the runner's end is off by one, gitlab-runner#3275);
  // Gitlab::Ci::Trace#append writes nothing unless the start is the current size.
  const start = Number(/^\s*(\d+)/.exec(String(range))?.[1] ?? 0);
  const end = start + c.body.length;
  if (start === job.trace.length) job.trace = Buffer.concat([job.trace, c.body]);
  if (job.trace.length !== end) {
    // The runner resends from the Range end (network/patch_response.go NewOffset).
    throw new HttpError(416, { message: '416 Range Not Satisfiable' }, { Range: `0-${job.trace.length}` });
  }
  const interval = job.watchedUntil > Date.now() ? TRACE_UPDATE_WATCHED_S : TRACE_UPDATE_DEFAULT_S;
  return {
    status: 202,
    headers: {
      'Job-Status': job.status,
      Range: `0-${job.trace.length}`,
      'X-GitLab-Trace-Update-Interval': String(interval),
    },
  };
};

/** GET /jwt/auth: GitLab's registry token endpoint; a job's token works only while the job runs. */
export const registryToken: Handler = (ctx, c) => {
  const r = registryAuth(ctx.signer, c.url.searchParams, c.req.headers.authorization, (token) => {
    const job = ctx.model.jobs.find((j) => j.token === token && j.status === 'running');
    return job ? { projectPath: projectById(ctx.model, job.projectId).path, user: 'root' } : null;
  });
  return r.body === null ? { status: r.status } : { status: r.status, body: r.body };
};
