// Who a request is, as GitLab's API decides it: an access token and its scopes (APIGuard), a runner token with the
// heartbeats it brings (lib/api/ci/helpers/runner.rb authenticate_runner!), a job token (authenticate_job!).
import type { IncomingMessage } from 'node:http';
import type { StandinContext } from './standin-context.js';
import {
  badRequest,
  type Call,
  forbidden,
  HttpError,
  insufficientScope,
  type Params,
  str,
  unauthorized,
} from './standin-http.js';
import type { StandinJob } from './standin-jobs.js';
import type { StandinModel, StandinRunner } from './standin-model.js';
import {
  ensureManager,
  findRunner,
  heartbeatManager,
  heartbeatRunner,
  type RunnerDetails,
} from './standin-runners.js';
import { API_RB_SCOPES, type AccessToken, ENDPOINT_SCOPES, type EndpointFile } from './standin-tokens.js';
import { jobById } from './standin-work.js';

/** API::Ci::Helpers::Runner::LEGACY_SYSTEM_XID: the manager of calls without system_id. */
const LEGACY_SYSTEM_XID = '<legacy>';

const clientIp = (req: IncomingMessage) => (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');

/**
 * The access token of the request, checked against its endpoint file's scope rules. `admin` is what
 * current_user.can_admin_all_resources? says: with Admin Mode on, an administrator's token counts as one only with
 * the admin_mode scope (APIGuard#bypass_session_for_admin_mode?). The stand-in's token users own every group and
 * project, so only instance runners need an administrator.
 */
export function accessFor(
  ctx: StandinContext,
  req: IncomingMessage,
  file: EndpointFile,
  hasId = false,
): AccessToken {
  const header = req.headers['private-token'];
  const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
  const value = (Array.isArray(header) ? header[0] : header) ?? bearer;
  const token = value ? ctx.accessTokens.get(value) : undefined;
  if (!token) throw unauthorized();
  const rules = [...ENDPOINT_SCOPES[file], ...API_RB_SCOPES];
  const call = { method: (req.method ?? 'GET').toUpperCase(), hasId };
  if (!rules.some((r) => r.when(call) && token.scopes.includes(r.scope)))
    throw insufficientScope(rules.map((r) => r.scope).join(' '));
  const admin = token.admin && (!ctx.model.state.adminMode || token.scopes.includes('admin_mode'));
  return { ...token, admin };
}

/** authenticate_update_runner! / authenticate_delete_runner! in runners.rb, for the stand-in's owners. */
export function mayChange(token: AccessToken, runner: StandinRunner): void {
  if (runner.runnerType === 'instance_type' && !token.admin) throw forbidden('No access granted');
}

/** get_runner_details_from_request: name/version/revision/platform/architecture/executor and config.gpus from info. */
function runnerDetails(req: IncomingMessage, p: Params): RunnerDetails {
  const details: RunnerDetails = { ipAddress: clientIp(req) };
  const info = p.info;
  if (info && typeof info === 'object' && !Array.isArray(info)) {
    const i = info as Record<string, unknown>;
    for (const key of ['version', 'revision', 'platform', 'architecture', 'executor'] as const)
      if (typeof i[key] === 'string') details[key] = i[key] as string;
    const config = i.config && typeof i.config === 'object' ? (i.config as Record<string, unknown>) : {};
    details.config = typeof config.gpus === 'string' ? { gpus: config.gpus } : {};
  }
  return details;
}

function runnerByToken(m: StandinModel, p: Params): StandinRunner {
  const token = str(p, 'token');
  if (!token) throw badRequest('token is missing');
  const runner = findRunner(m, token);
  if (!runner) throw forbidden();
  return runner;
}

/**
 * authenticate_runner!(ensure_runner_manager:, update_contacted_at:): 403 for an unknown token, the runner's
 * heartbeat, then the manager of system_id (or '<legacy>') with the request's details.
 */
export function authenticateRunner(
  ctx: StandinContext,
  c: Call,
  opt: { ensureManager?: boolean; updateContactedAt?: boolean } = {},
) {
  const m = ctx.model;
  const runner = runnerByToken(m, c.params);
  const update = opt.updateContactedAt ?? true;
  if (update) heartbeatRunner(m, runner);
  if (opt.ensureManager === false) return { runner, manager: null };
  const manager = ensureManager(m, runner, str(c.params, 'system_id') ?? LEGACY_SYSTEM_XID);
  heartbeatManager(m, manager, runnerDetails(c.req, c.params), update);
  return { runner, manager };
}

const jobToken = (req: IncomingMessage, p: Params) => {
  const header = req.headers['job-token'];
  return str(p, 'token') ?? (Array.isArray(header) ? header[0] : header) ?? '';
};

/**
 * authenticate_job!(heartbeat_runner: true): 403 for an unknown job or token, 403 with Job-Status when the job
 * does not run; then heartbeats of the job's runner and manager (ip only).
 */
export function authenticateJob(ctx: StandinContext, c: Call): StandinJob {
  const m = ctx.model;
  const job = jobById(m, Number(c.args.id));
  if (!job) throw forbidden();
  if (jobToken(c.req, c.params) !== job.token) throw forbidden();
  if (job.status !== 'running') {
    // job_forbidden!: the Job-Status header tells the runner to abort (network/remote_job_state_response.go).
    throw new HttpError(
      403,
      { message: '403 Forbidden - Job is not processing on runner' },
      { 'Job-Status': job.status },
    );
  }
  const runner = m.state.runners.find((r) => r.id === job.runnerId);
  if (runner) {
    heartbeatRunner(m, runner);
    const manager = m.state.managers.find((mg) => mg.runnerId === runner.id && mg.systemId === job.systemId);
    if (manager) heartbeatManager(m, manager, { ipAddress: clientIp(c.req) }, true);
  }
  return job;
}
