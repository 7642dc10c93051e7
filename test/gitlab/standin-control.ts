// The tests' own endpoints under /_standin/ (never GitLab's): read the state, reset, change instance settings, break
// runners and calls on purpose, make projects and queue jobs, read and cancel jobs. Not logged as API calls, never
// delayed or failed by the knobs.
import { CiConfigError, parseCiJob } from './standin-ci.js';
import { type FailRule, type Handler, resetStandin, type StandinContext } from './standin-context.js';
import { badRequest, bool, type Call, notFound, type Reply, type Route, str } from './standin-http.js';
import type { JobVariableInput } from './standin-jobs.js';
import { fullAccessToken } from './standin-registry.js';
import { removeRunner, runnerById } from './standin-runners.js';
import {
  FINISHED,
  finishJob,
  jobById,
  jobView,
  projectByPath,
  queueJob,
  saveProject,
  TRACE_WATCH_TTL_MS,
} from './standin-work.js';

/** masked CI/CD variables: at least 8 characters, one line, no spaces (Ci::Maskable's validation, roughly). */
const MASKABLE = /^[^\s]{8,}$/;

const done = (): Reply => ({ status: 204 });

const setRegistrationTokens =
  (enabled: boolean): Handler =>
  (ctx) => {
    ctx.model.state.registrationTokensEnabled = enabled;
    return done();
  };

const setTokenExpiration: Handler = (ctx, { params: p }) => {
  const seconds = p.seconds;
  if (seconds !== null && !(typeof seconds === 'number' && seconds > 0))
    throw badRequest('seconds: a positive number or null');
  ctx.model.state.runnerTokenExpirationSeconds = seconds;
  return done();
};

const addFailRule: Handler = (ctx, { params: p }) => {
  const rule = p as unknown as FailRule;
  if (typeof rule.path !== 'string' || !Number.isInteger(Number(rule.status)))
    throw badRequest('path and status are required');
  ctx.failRules.push({
    ...rule,
    status: Number(rule.status),
    truncate: rule.truncate === true || String(rule.truncate) === 'true',
    left: Number(rule.times ?? 1),
  });
  return done();
};

const setClock: Handler = (ctx, { params: p }) => {
  const offset = Number(p.offsetSeconds ?? 0);
  if (!Number.isFinite(offset)) throw badRequest('offsetSeconds: a number');
  ctx.clockOffsetSeconds = offset;
  return done();
};

/** `path` is group/project; `files` maps relative names inside the repository to their text. */
function projectInput(c: Call): { path: string; files: Record<string, string> } {
  const path = str(c.params, 'path');
  if (
    !path ||
    !/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)+$/.test(path) ||
    path.split('/').some((s) => s.startsWith('.') || s.endsWith('.git'))
  )
    throw badRequest('path: "group/project" (letters, digits, _ . -)');
  const files = c.params.files ?? {};
  if (
    typeof files !== 'object' ||
    Array.isArray(files) ||
    Object.values(files).some((v) => typeof v !== 'string')
  )
    throw badRequest('files: {name: text}');
  const badName = Object.keys(files).find(
    (n) =>
      n.startsWith('/') ||
      n.split('/').some((seg) => seg === '..' || seg === '.' || seg === '.git' || seg === ''),
  );
  if (badName !== undefined)
    throw badRequest(`files: ${badName} is not a relative path inside the repository`);
  return { path, files: files as Record<string, string> };
}

/** POST /_standin/projects: a new project with these files, or a push of them to an existing one. */
const pushProject: Handler = async (ctx, c) => {
  const { path, files } = projectInput(c);
  const { project, sha } = await saveProject(ctx.model, path, files);
  const body = {
    path: project.path,
    repoUrl: `${ctx.serverUrl}/${project.path}.git`,
    sha,
    id: project.id,
    namespaceId: project.namespaceId,
  };
  return { status: 201, body };
};

/** A variable is a string, or {value, masked?, file?, raw?}; keys as GitLab allows them. */
function jobVariable(key: string, val: unknown): JobVariableInput {
  if (typeof val === 'string' || typeof val === 'number' || typeof val === 'boolean')
    return { value: String(val) };
  if (!val || typeof val !== 'object' || !('value' in val))
    throw badRequest(`variable ${key}: a string or {value, masked?, file?, raw?}`);
  const v = val as { value: unknown; masked?: unknown; file?: unknown; raw?: unknown };
  return { value: String(v.value), masked: Boolean(v.masked), file: Boolean(v.file), raw: Boolean(v.raw) };
}

function parseJobVariables(v: unknown): Record<string, JobVariableInput> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw badRequest('variables must be an object');
  const out: Record<string, JobVariableInput> = {};
  for (const [key, val] of Object.entries(v as Record<string, unknown>)) {
    if (!/^[A-Za-z0-9_]+$/.test(key))
      throw badRequest(`variable key ${key}: only letters, digits and _ are allowed`);
    const input = jobVariable(key, val);
    // GitLab refuses to save a masked variable whose value cannot be masked reliably.
    if (input.masked && !MASKABLE.test(input.value))
      throw badRequest(`variable ${key}: a masked value needs at least 8 characters and no whitespace`);
    out[key] = input;
  }
  return out;
}

/** POST /_standin/jobs: a pipeline with job `job` of `ciYaml` on the project's head. */
/** A project's deploy token or project access token (Settings > Repository / Access tokens), for git over HTTP. */
const addGitToken: Handler = (ctx, { params: p }) => {
  const project = projectByPath(ctx.model, str(p, 'project') ?? '');
  if (!project) throw notFound('Project');
  const scopes = ([] as unknown[]).concat(p.scopes ?? []).map(String);
  const kind = str(p, 'kind');
  if (kind === 'deploy') return { status: 201, body: ctx.gitTokens.createDeployToken(project.id, scopes) };
  if (kind === 'project')
    return { status: 201, body: ctx.gitTokens.createProjectAccessToken(project.id, scopes) };
  throw badRequest('kind: deploy or project');
};

const addJob: Handler = async (ctx, { params: p }) => {
  const projectPath = str(p, 'project');
  const ciYaml = str(p, 'ciYaml');
  const name = str(p, 'job');
  if (!projectPath || ciYaml === undefined || !name) throw badRequest('project, ciYaml and job are required');
  const project = projectByPath(ctx.model, projectPath);
  if (!project) throw notFound('Project');
  let spec;
  try {
    spec = parseCiJob(ciYaml, name);
  } catch (err) {
    if (err instanceof CiConfigError) throw badRequest(err.message);
    throw err;
  }
  const job = await queueJob(ctx.model, project, name, spec, parseJobVariables(p.variables));
  return { status: 201, body: { id: job.id } };
};

const jobOf = (ctx: StandinContext, c: Call) => {
  const job = jobById(ctx.model, Number(c.args.id));
  if (!job) throw notFound('Job');
  return job;
};

export const CONTROL_ROUTES: readonly Route<StandinContext>[] = [
  {
    method: 'GET',
    path: '/_standin/state',
    handler: (ctx) => ({
      status: 200,
      body: { ...ctx.model.state, jobs: ctx.model.jobs.map((j) => jobView(ctx.model, j)) },
    }),
  },
  {
    method: 'POST',
    path: '/_standin/reset',
    handler: (ctx) => {
      resetStandin(ctx);
      return done();
    },
  },
  { method: 'POST', path: '/_standin/registration-tokens/enable', handler: setRegistrationTokens(true) },
  { method: 'POST', path: '/_standin/registration-tokens/disable', handler: setRegistrationTokens(false) },
  { method: 'POST', path: '/_standin/runner-token-expiration', handler: setTokenExpiration },
  {
    method: 'POST',
    path: '/_standin/runners/:id/delete-token',
    handler: (ctx, c) => {
      runnerById(ctx.model, c.args.id).token = null;
      return done();
    },
  },
  {
    method: 'POST',
    path: '/_standin/runners/:id/expire-token',
    handler: (ctx, c) => {
      runnerById(ctx.model, c.args.id).tokenExpiresAt = new Date(Date.now() - 1000).toISOString();
      return done();
    },
  },
  {
    method: 'DELETE',
    path: '/_standin/runners/:id',
    handler: (ctx, c) => {
      removeRunner(ctx.model, runnerById(ctx.model, c.args.id));
      return done();
    },
  },
  { method: 'POST', path: '/_standin/fail', handler: addFailRule },
  {
    method: 'POST',
    path: '/_standin/admin-mode',
    handler: (ctx, c) => {
      ctx.model.state.adminMode = bool(c.params, 'enabled') ?? true;
      return done();
    },
  },
  { method: 'POST', path: '/_standin/clock', handler: setClock },
  {
    method: 'POST',
    path: '/_standin/delay',
    handler: (ctx, c) => {
      ctx.delayMs = Number(c.params.ms ?? 0);
      return done();
    },
  },
  { method: 'POST', path: '/_standin/projects', handler: pushProject },
  { method: 'POST', path: '/_standin/git-tokens', handler: addGitToken },
  { method: 'POST', path: '/_standin/jobs', handler: addJob },
  {
    method: 'GET',
    path: '/_standin/jobs',
    handler: (ctx) => ({ status: 200, body: ctx.model.jobs.map((j) => jobView(ctx.model, j)) }),
  },
  {
    method: 'GET',
    path: '/_standin/registry-token',
    handler: (ctx, c) => {
      // For tests that read the registry after a job: GitLab's own full-access token for the named repositories.
      if (!ctx.signer) throw notFound('Registry');
      const names = ([] as unknown[]).concat(c.params.repository ?? []).map(String);
      return { status: 200, body: { token: fullAccessToken(ctx.signer, names) } };
    },
  },
  {
    method: 'GET',
    path: '/_standin/jobs/:id',
    handler: (ctx, c) => {
      const job = jobOf(ctx, c);
      // Reading the log is "watching" it: GitLab then asks the runner for a patch every 3 s instead of 60 s.
      job.watchedUntil = Date.now() + TRACE_WATCH_TTL_MS;
      return { status: 200, body: jobView(ctx.model, job) };
    },
  },
  {
    method: 'POST',
    path: '/_standin/jobs/:id/cancel',
    handler: (ctx, c) => {
      const job = jobOf(ctx, c);
      // Ci::Build#cancel: a pending or running job is canceled; the runner learns it from Job-Status on its next call.
      if (!FINISHED.includes(job.status)) finishJob(job, 'canceled');
      return { status: 200, body: jobView(ctx.model, job) };
    },
  },
];
