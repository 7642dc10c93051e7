// Git over HTTP for the projects' repositories: who may read or push (Gitlab::Auth#find_for_git_client), git's smart
// protocol through git http-backend (git-http.ts) and the files of git's dumb protocol (standin-git.ts). The one
// place the stand-in answers git clients; standin-routes.ts routes every /<group>/<project>.git/<file> here,
// whatever the method.
import { join } from 'node:path';
import {
  abilitiesForScopes,
  accessDenied,
  afterReceivePack,
  basicCredentials,
  challenge,
  httpBackend,
  smartService,
  type GitActor,
  type GitService,
} from './git-http.js';
import type { StandinContext } from './standin-context.js';
import { dumbHttpFile, repoDir } from './standin-git.js';
import type { Call, Reply } from './standin-http.js';
import type { StandinProject } from './standin-jobs.js';
import { projectById, projectByPath } from './standin-work.js';

const NOT_FOUND: Reply = { status: 404, raw: Buffer.from('Not Found\n') };

/**
 * User gitlab-ci-token with the token of a running job of the project, or any user with an administrator's access
 * token. Anything else is 401 with a Basic challenge, which is what makes git send the URL's credentials.
 */
function mayRead(ctx: StandinContext, c: Call, project: StandinProject): boolean {
  const basic = /^Basic (.+)$/i.exec(c.req.headers.authorization ?? '')?.[1];
  const [user, ...rest] = basic ? Buffer.from(basic, 'base64').toString('utf8').split(':') : [];
  const password = rest.join(':');
  return (
    (user === 'gitlab-ci-token' &&
      ctx.model.jobs.some(
        (j) => j.projectId === project.id && j.status === 'running' && j.token === password,
      )) ||
    (user !== undefined && ctx.accessTokens.get(password)?.admin === true)
  );
}

/**
 * Who a git client is for `project` (Gitlab::Auth#find_for_git_client, in its order): a running job's token under
 * the user gitlab-ci-token, an access token (any login), a deploy token (its own username); undefined: nobody.
 */
function gitActor(
  ctx: StandinContext,
  project: StandinProject,
  login: string,
  password: string,
): GitActor | Reply | undefined {
  if (login === 'gitlab-ci-token') {
    const job = ctx.model.jobs.find((j) => j.status === 'running' && j.token === password);
    if (job && job.projectId === project.id)
      return { kind: 'job', abilities: ['build_download_code', 'build_push_code'] };
    // GitAccess#check_project_accessibility!: another project's job token, outside the job token allowlist.
    if (job) {
      const from = projectById(ctx.model, job.projectId).path.split('/').pop();
      const to = project.path.split('/').pop();
      return {
        status: 403,
        raw: Buffer.from(`Authentication by CI/CD job token not allowed from ${from} to ${to}.`),
      };
    }
  }
  const token = ctx.accessTokens.get(password);
  if (token?.admin) return { kind: 'access-token', abilities: abilitiesForScopes(token.scopes) };
  return ctx.gitTokens.actor(project.id, login, password);
}

/** git's smart HTTP protocol (git-http.ts): GitLab's authentication and access checks, then git http-backend. */
async function smartGit(
  ctx: StandinContext,
  c: Call,
  project: StandinProject,
  service: GitService,
): Promise<Reply> {
  const cred = basicCredentials(c.req.headers.authorization);
  const actor = cred && gitActor(ctx, project, cred.login, cred.password);
  if (!actor) return challenge();
  if (!('kind' in actor)) return actor;
  const denied = accessDenied(actor, service);
  if (denied) return denied;
  const stateDir = ctx.model.settings.stateDir;
  const reply = await httpBackend({
    repos: join(stateDir, 'repos'),
    projectPath: project.path,
    file: c.args.file,
    method: c.method,
    query: c.url.searchParams,
    headers: c.req.headers,
    body: c.body,
  });
  if (service === 'git-receive-pack' && c.method === 'POST') {
    const sha = await afterReceivePack(repoDir(stateDir, project.path));
    if (sha && sha !== project.sha) Object.assign(project, { beforeSha: project.sha, sha });
  }
  return reply;
}

/**
 * /<group>/<project>.git/<file>: the smart protocol's four requests go to git http-backend; GET or HEAD of any other
 * file is a file of the dumb protocol; other methods are 404.
 */
export async function serveGit(ctx: StandinContext, c: Call): Promise<Reply> {
  const project = projectByPath(ctx.model, c.args.project);
  const service = smartService(c.method, c.args.file, c.url.searchParams);
  if (project && service) return smartGit(ctx, c, project, service);
  if (!project || (c.method !== 'GET' && c.method !== 'HEAD')) return NOT_FOUND;
  if (!mayRead(ctx, c, project))
    return {
      status: 401,
      headers: { 'WWW-Authenticate': 'Basic realm="GitLab"' },
      raw: Buffer.from('HTTP Basic: Access denied\n'),
    };
  const file = dumbHttpFile(ctx.model.settings.stateDir, project.path, c.args.file);
  if (!file) return NOT_FOUND;
  return {
    status: 200,
    headers: { 'content-type': file.type, 'cache-control': 'no-cache' },
    raw: file.body,
  };
}
