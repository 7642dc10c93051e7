// Git over HTTP for the projects' repositories: who may read (Gitlab::Auth#find_for_git_client) and the files of
// git's dumb protocol (standin-git.ts). The one place the stand-in answers git clients; standin-routes.ts routes
// every /<group>/<project>.git/<file> here, whatever the method.
import type { StandinContext } from './standin-context.js';
import { dumbHttpFile } from './standin-git.js';
import type { Call, Reply } from './standin-http.js';
import type { StandinProject } from './standin-jobs.js';
import { projectByPath } from './standin-work.js';

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

/** GET or HEAD /<group>/<project>.git/<file>: a file of the dumb protocol; other methods are 404. */
export function serveGit(ctx: StandinContext, c: Call): Reply {
  const project = projectByPath(ctx.model, c.args.project);
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
