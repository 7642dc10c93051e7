// The route tables are what the stand-in serves: every row answers, each row's own path finds that row, and a request
// no row takes gets GitLab's 404.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CONTROL_ROUTES } from './standin-control.js';
import { findRoute, routePattern } from './standin-http.js';
import { GITLAB_ROUTES } from './standin-routes.js';
import { startGitlabStandin, type GitlabStandin } from './standin.js';

let gl: GitlabStandin;

beforeAll(async () => {
  gl = await startGitlabStandin();
});
afterAll(() => gl.close());
beforeEach(() => gl.reset());

/** A concrete path for a route template. */
const SAMPLE_PARTS: Record<string, string> = { id: '1', project: 'g/p', file: 'HEAD' };
const samplePath = (template: string) =>
  template.replace(/:([a-z]+)/g, (_, name: string) => SAMPLE_PARTS[name]);
/** '*' routes answer every method; GET stands for them. */
const sampleMethod = (method: string) => (method === '*' ? 'GET' : method);

async function send(method: string, path: string) {
  const res = await fetch(gl.url + path, { method });
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}

const NO_ROUTE = { status: 404, type: 'application/json', text: '{"error":"404 Not Found"}' };

describe('GitLab routes', () => {
  it('each route’s own path finds that route, and no other route comes first', () => {
    for (const route of GITLAB_ROUTES) {
      const found = findRoute(GITLAB_ROUTES, sampleMethod(route.method), samplePath(route.path));
      expect(found?.route, `${route.method} ${route.path}`).toBe(route);
    }
  });

  it('every route answers (with no credentials: what it says then, never the no-route 404)', async () => {
    const project = await fetch(`${gl.url}/_standin/projects`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ path: 'g/p', files: { 'README.md': 'hi\n' } }),
    });
    expect(project.status).toBe(201);
    for (const route of GITLAB_ROUTES) {
      const path = samplePath(route.path);
      const answer = await send(sampleMethod(route.method), path);
      expect(answer, `${route.method} ${path}`).not.toEqual(NO_ROUTE);
      expect(answer.status, `${route.method} ${path}`).toBeLessThan(500);
    }
  });

  it('a path no route takes, or a method its path does not serve, is GitLab’s 404 {"error":"404 Not Found"}', async () => {
    for (const [method, path] of [
      ['GET', '/api/v4/projects'],
      ['GET', '/api/v4/runners/x'],
      ['GET', '/'],
      ['PATCH', '/api/v4/runners/1'],
      ['GET', '/api/v4/runners'],
      ['POST', '/jwt/auth'],
      ['GET', '/api/v4/g/p.git/HEAD'],
    ]) {
      expect(await send(method, path), `${method} ${path}`).toEqual(NO_ROUTE);
      expect(gl.calls({ method, path }).map((c) => c.status)).toEqual([404]);
    }
  });

  it('unrouted requests pass the knobs as API calls do: an injected failure applies to them', async () => {
    gl.failNext({ path: '/api/v4/projects', status: 503 });
    expect((await send('GET', '/api/v4/projects')).status).toBe(503);
    expect(await send('GET', '/api/v4/projects')).toEqual(NO_ROUTE);
  });

  it('templates: :id is digits only, and the API prefix never reaches git', () => {
    expect(routePattern('/api/v4/runners/:id').test('/api/v4/runners/12')).toBe(true);
    expect(routePattern('/api/v4/runners/:id').test('/api/v4/runners/all')).toBe(false);
    expect(routePattern('/:project.git/:file').exec('/a/b.git/info/refs')?.groups).toEqual({
      project: 'a/b',
      file: 'info/refs',
    });
    expect(routePattern('/:project.git/:file').test('/api/v4/b.git/HEAD')).toBe(false);
  });
});

describe('/_standin/ controls', () => {
  it('each control’s own path finds that control', () => {
    for (const route of CONTROL_ROUTES) {
      const found = findRoute(CONTROL_ROUTES, route.method, samplePath(route.path));
      expect(found?.route, `${route.method} ${route.path}`).toBe(route);
    }
  });

  it('every control answers, an unknown one is 404, and none is logged as an API call', async () => {
    for (const route of CONTROL_ROUTES) {
      const path = samplePath(route.path);
      const answer = await send(route.method, path);
      expect(answer.text, `${route.method} ${path}`).not.toBe('{"message":"404 Not Found"}');
      expect(answer.status, `${route.method} ${path}`).toBeLessThan(500);
    }
    expect(await send('GET', '/_standin/nothing')).toEqual({
      status: 404,
      type: 'application/json',
      text: '{"message":"404 Not Found"}',
    });
    expect(gl.calls({ path: /^\/_standin\// })).toEqual([]);
  });
});
