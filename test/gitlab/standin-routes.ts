// Everything the stand-in serves as GitLab, one row per route: method, path template (standin-http.ts PATH_PARTS), the
// handler, and which part of GitLab answers. A request no row takes is GitLab's 404 (noRoute); /_standin/ is the
// tests' own (standin-control.ts).
import { behindWorkhorse } from './standin-workhorse.js';
import { appendTrace, registryToken, requestJob, updateJob } from './standin-api-jobs.js';
import {
  createUserRunner,
  deleteManager,
  deleteRunnerById,
  listAllRunners,
  listManagers,
  registerRunner,
  resetOwnToken,
  resetTokenById,
  showRunner,
  unregisterRunner,
  updateRunner,
  verifyRunner,
} from './standin-api-runners.js';
import type { StandinContext } from './standin-context.js';
import { serveGit } from './standin-git-serve.js';
import { HttpError, type Route, routePattern } from './standin-http.js';

export interface GitlabRoute extends Route<StandinContext> {
  /**
   * api: the REST API, where the test knobs (answer delay, injected failures) apply; registry: the registry's token
   * endpoint; git: repositories over HTTP
   */
  area: 'api' | 'registry' | 'git';
  /** the body is data (a log), not parameters: Grape reads only the query string */
  bodyIsData?: true;
}

const api = (method: GitlabRoute['method'], path: string, handler: GitlabRoute['handler']): GitlabRoute => ({
  method,
  path,
  handler,
  area: 'api',
});

export const GITLAB_ROUTES: readonly GitlabRoute[] = [
  // lib/api/user_runners.rb
  api('POST', '/api/v4/user/runners', createUserRunner),
  // lib/api/ci/runner.rb: with a runner token
  api('POST', '/api/v4/runners', registerRunner),
  api('DELETE', '/api/v4/runners', unregisterRunner),
  api('POST', '/api/v4/runners/verify', verifyRunner),
  api('POST', '/api/v4/runners/reset_authentication_token', resetOwnToken),
  api('DELETE', '/api/v4/runners/managers', deleteManager),
  api('POST', '/api/v4/jobs/request', behindWorkhorse(requestJob)),
  // lib/api/ci/runner.rb: with a job token
  api('PUT', '/api/v4/jobs/:id', updateJob),
  { ...api('PATCH', '/api/v4/jobs/:id/trace', appendTrace), bodyIsData: true },
  // lib/api/ci/runners.rb: with an access token
  api('GET', '/api/v4/runners/all', listAllRunners),
  api('GET', '/api/v4/runners/:id', showRunner),
  api('PUT', '/api/v4/runners/:id', updateRunner),
  api('DELETE', '/api/v4/runners/:id', deleteRunnerById),
  api('GET', '/api/v4/runners/:id/managers', listManagers),
  api('POST', '/api/v4/runners/:id/reset_authentication_token', resetTokenById),
  // JwtController#auth (app/controllers/jwt_controller.rb)
  { method: 'GET', path: '/jwt/auth', handler: registryToken, area: 'registry' },
  // the repositories (standin-git-serve.ts answers every method)
  { method: '*', path: '/:project.git/:file', handler: serveGit, area: 'git' },
];

/** Whether a request to this path carries data rather than parameters in its body, whatever its method. */
export const bodyIsData = (path: string) =>
  GITLAB_ROUTES.some((r) => r.bodyIsData && routePattern(r.path).test(path));

/**
 * What GitLab answers a request no route takes: the last route of lib/api/api.rb (`route :any, '*path'`) calls
 * error!('404 Not Found', 404), which Grape's JSON error formatter (lib/grape/error_formatter/json.rb) wraps as
 * {"error": …}. Not modelled: Grape's router answers 405 when only the method is wrong, and outside /api/ GitLab's
 * Rails answers with an HTML page; the stand-in says 404 to both, and no client of it sends either.
 */
export const noRoute = () => new HttpError(404, { error: '404 Not Found' });
