// The runner endpoints: registration, verify and delete with a runner token (lib/api/ci/runner.rb), creation with an
// access token (lib/api/user_runners.rb), listing, reading, changing, resetting and deleting by id
// (lib/api/ci/runners.rb). standin-routes.ts lists them.
import { accessFor, authenticateRunner, mayChange } from './standin-auth.js';
import type { Handler } from './standin-context.js';
import {
  managerEntity,
  resetTokenResult,
  runnerDetails,
  runnerRegistration,
  runnerSummary,
} from './standin-entities.js';
import {
  badRequest,
  bool,
  forbidden,
  HttpError,
  int,
  notFound,
  oneOf,
  type Params,
  str,
  tags,
} from './standin-http.js';
import {
  ACCESS_LEVELS,
  newRunner,
  RUNNER_TYPES,
  runnerAuthToken,
  type StandinRunner,
} from './standin-model.js';
import { removeRunner, resetToken, runnerById, tickQueue } from './standin-runners.js';

const RUNNER_FIELDS = [
  'description',
  'paused',
  'active',
  'tag_list',
  'run_untagged',
  'locked',
  'access_level',
  'maximum_timeout',
  'maintenance_note',
];

/** Runner attributes shared by create and update; undefined means "not given". */
function runnerAttributes(p: Params): Partial<StandinRunner> {
  if (p.active !== undefined && p.paused !== undefined)
    throw badRequest('active, paused are mutually exclusive');
  const out: Partial<StandinRunner> = {};
  const description = str(p, 'description');
  if (description !== undefined) out.description = description;
  const paused = bool(p, 'paused');
  const active = bool(p, 'active');
  if (paused !== undefined) out.paused = paused;
  if (active !== undefined) out.paused = !active;
  const tagList = tags(p);
  if (tagList !== undefined) out.tagList = tagList;
  const runUntagged = bool(p, 'run_untagged');
  if (runUntagged !== undefined) out.runUntagged = runUntagged;
  const locked = bool(p, 'locked');
  if (locked !== undefined) out.locked = locked;
  const accessLevel = oneOf(p, 'access_level', ACCESS_LEVELS);
  if (accessLevel !== undefined) out.accessLevel = accessLevel;
  const maximumTimeout = int(p, 'maximum_timeout');
  if (maximumTimeout !== undefined) {
    if (maximumTimeout !== null && maximumTimeout < 600)
      throw new HttpError(400, { message: { maximum_timeout: ['needs to be at least 10 minutes'] } });
    out.maximumTimeout = maximumTimeout;
  }
  const note = str(p, 'maintenance_note');
  if (note !== undefined) out.maintenanceNote = note;
  return out;
}

/** POST /user/runners (Ci::Runners::CreateRunnerService). */
export const createUserRunner: Handler = (ctx, { req, params: p }) => {
  const token = accessFor(ctx, req, 'lib/api/user_runners.rb');
  const runnerType = oneOf(p, 'runner_type', RUNNER_TYPES);
  if (!runnerType) throw badRequest('runner_type is missing, runner_type does not have a valid value');
  const groupId = int(p, 'group_id');
  const projectId = int(p, 'project_id');
  if (runnerType === 'group_type' && !groupId)
    throw new HttpError(400, { message: '400 Bad request - group_id is required for group_type runners' });
  if (runnerType === 'project_type' && !projectId)
    throw new HttpError(400, {
      message: '400 Bad request - project_id is required for project_type runners',
    });
  // CreateRunnerService: InstanceRunnerStrategy#authorized_user? is can?(:create_instance_runner), admins only.
  if (runnerType === 'instance_type' && !token.admin) throw forbidden('Insufficient permissions');
  const attrs = runnerAttributes(p);
  const runner = newRunner(
    ctx.model,
    {
      runnerType,
      groupId: runnerType === 'group_type' ? groupId! : null,
      projectId: runnerType === 'project_type' ? projectId! : null,
      createdVia: 'user',
      ...attrs,
    },
    runnerAuthToken(runnerType, false),
  );
  ctx.model.state.runners.push(runner);
  return { status: 201, body: runnerRegistration(runner) };
};

/** POST /runners: registration with the instance's registration token (Ci::Runners::RegisterRunnerService). */
export const registerRunner: Handler = (ctx, { params: p }) => {
  const { state } = ctx.model;
  const token = str(p, 'token');
  if (token === undefined) throw badRequest('token is missing');
  // As RegisterRunnerService: with registration disallowed any presented token gets 410, valid or not.
  if (token && !state.registrationTokensEnabled)
    throw new HttpError(410, { message: '410 Gone - runner registration disallowed' });
  if (token !== ctx.tokens.registrationToken) throw forbidden('invalid token supplied');
  const attrs = runnerAttributes(p);
  // Runners registered with a registration token get a token without the glrt- prefix: t1_… for the instance's.
  const runner = newRunner(
    ctx.model,
    { runnerType: 'instance_type', createdVia: 'registration', ...attrs },
    runnerAuthToken('instance_type', true),
  );
  state.runners.push(runner);
  return { status: 201, body: runnerRegistration(runner) };
};

/** POST /runners/verify. */
export const verifyRunner: Handler = (ctx, c) => {
  // runner.rb: a runner created in the UI (glrt-) counts as contacted only once it polls for jobs, so verify
  // makes its manager row but writes no contacted_at (authenticate_runner!(update_contacted_at: false)).
  const token = str(c.params, 'token') ?? '';
  const { runner } = authenticateRunner(ctx, c, { updateContactedAt: !token.startsWith('glrt-') });
  return { status: 200, body: runnerRegistration(runner) };
};

/** POST /runners/reset_authentication_token: with the runner's own token. */
export const resetOwnToken: Handler = (ctx, c) => {
  const { runner } = authenticateRunner(ctx, c);
  resetToken(ctx.model, runner);
  return { status: 201, body: resetTokenResult(runner) };
};

/** POST /runners/:id/reset_authentication_token: the same with an access token (gitlab-runner's ResetTokenWithPAT). */
export const resetTokenById: Handler = (ctx, c) => {
  const token = accessFor(ctx, c.req, 'lib/api/ci/runners.rb', true);
  const runner = runnerById(ctx.model, c.args.id);
  mayChange(token, runner);
  resetToken(ctx.model, runner);
  return { status: 201, body: resetTokenResult(runner) };
};

/** DELETE /runners: the runner of the token unregisters itself. */
export const unregisterRunner: Handler = (ctx, c) => {
  removeRunner(ctx.model, authenticateRunner(ctx, c).runner);
  return { status: 204 };
};

/** DELETE /runners/managers: one manager of the token's runner (gitlab-runner unregister with system_id). */
export const deleteManager: Handler = (ctx, c) => {
  const { runner } = authenticateRunner(ctx, c, { ensureManager: false });
  const systemId = str(c.params, 'system_id');
  if (!systemId) throw badRequest('system_id is missing');
  const { managers } = ctx.model.state;
  const i = managers.findIndex((mg) => mg.runnerId === runner.id && mg.systemId === systemId);
  if (i < 0) throw notFound('Runner manager not found');
  managers.splice(i, 1);
  return { status: 204 };
};

/** GET /runners/all: every runner, for administrators; filtered by tag_list and type, paginated. */
export const listAllRunners: Handler = (ctx, { req, params: p, url }) => {
  // authenticated_as_admin!: plain 403 for a non-administrator (or one without admin_mode in Admin Mode).
  const token = accessFor(ctx, req, 'lib/api/ci/runners.rb');
  if (!token.admin) throw forbidden();
  const wanted = tags(p) ?? [];
  const type = oneOf(p, 'type', RUNNER_TYPES);
  const list = ctx.model.state.runners.filter(
    (r) => wanted.every((t) => r.tagList.includes(t)) && (!type || r.runnerType === type),
  );
  const perPage = Math.min(100, Math.max(1, Number(url.searchParams.get('per_page') ?? 20) || 20));
  const page = Math.max(1, Number(url.searchParams.get('page') ?? 1) || 1);
  const slice = list.slice((page - 1) * perPage, page * perPage);
  const hasNext = page * perPage < list.length;
  return {
    status: 200,
    body: slice.map(runnerSummary),
    headers: {
      'x-page': String(page),
      'x-per-page': String(perPage),
      'x-total': String(list.length),
      'x-next-page': hasNext ? String(page + 1) : '',
    },
  };
};

/** GET /runners/:id/managers. */
export const listManagers: Handler = (ctx, c) => {
  accessFor(ctx, c.req, 'lib/api/ci/runners.rb', true);
  const runner = runnerById(ctx.model, c.args.id);
  const managers = ctx.model.state.managers.filter((mg) => mg.runnerId === runner.id);
  return { status: 200, body: managers.map((mg) => managerEntity(ctx.model, mg)) };
};

/** GET /runners/:id: authenticate_show_runner!, and instance runners are visible to every signed-in user. */
export const showRunner: Handler = (ctx, c) => {
  accessFor(ctx, c.req, 'lib/api/ci/runners.rb', true);
  return { status: 200, body: runnerDetails(runnerById(ctx.model, c.args.id)) };
};

/** PUT /runners/:id. */
export const updateRunner: Handler = (ctx, c) => {
  const token = accessFor(ctx, c.req, 'lib/api/ci/runners.rb', true);
  const runner = runnerById(ctx.model, c.args.id);
  mayChange(token, runner);
  if (!RUNNER_FIELDS.some((f) => f in c.params))
    throw badRequest(`${RUNNER_FIELDS.join(', ')} are missing, at least one parameter must be provided`);
  Object.assign(runner, runnerAttributes(c.params));
  // Ci::Runners::UpdateRunnerService ticks the queue: new tags or an unpaused runner may match other jobs.
  tickQueue(runner);
  return { status: 200, body: runnerDetails(runner) };
};

/** DELETE /runners/:id. */
export const deleteRunnerById: Handler = (ctx, c) => {
  const token = accessFor(ctx, c.req, 'lib/api/ci/runners.rb', true);
  const runner = runnerById(ctx.model, c.args.id);
  mayChange(token, runner);
  removeRunner(ctx.model, runner);
  return { status: 204 };
};
