// How the stand-in answers one request: read and parse it, route it (/_standin/ to the controls, everything else
// through GITLAB_ROUTES, where API calls and unrouted requests pass the test knobs first), log it, write the answer.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { StandinContext } from './standin-context.js';
import { CONTROL_ROUTES } from './standin-control.js';
import {
  type Call,
  findRoute,
  HttpError,
  notFound,
  parseParams,
  readBody,
  type Reply,
  writeReply,
} from './standin-http.js';
import { now } from './standin-model.js';
import { bodyIsData, GITLAB_ROUTES, noRoute } from './standin-routes.js';

async function control(ctx: StandinContext, c: Call): Promise<Reply> {
  const found = findRoute(CONTROL_ROUTES, c.method, c.path);
  if (!found) throw notFound();
  return found.route.handler(ctx, { ...c, args: found.args });
}

/** The first injected failure rule this call matches, used up by one. */
function takeFailRule(ctx: StandinContext, c: Call) {
  const rule = ctx.failRules.find(
    (r) =>
      r.left > 0 &&
      r.path === c.path &&
      (!r.method || r.method.toUpperCase() === c.method) &&
      (!r.descriptionIncludes || String(c.params.description ?? '').includes(r.descriptionIncludes)),
  );
  if (rule) rule.left--;
  return rule;
}

async function gitlab(ctx: StandinContext, c: Call): Promise<Reply> {
  const found = findRoute(GITLAB_ROUTES, c.method, c.path);
  if (found && found.route.area !== 'api') return found.route.handler(ctx, { ...c, args: found.args });
  if (ctx.delayMs > 0) await new Promise((r) => setTimeout(r, ctx.delayMs));
  const rule = takeFailRule(ctx, c);
  if (rule && !rule.truncate)
    throw new HttpError(rule.status, { message: `${rule.status} injected by the stand-in` });
  if (!found) throw noRoute();
  const reply = await found.route.handler(ctx, { ...c, args: found.args });
  if (!rule?.truncate) return reply;
  // GitLab did the work; the answer lost its second half on the way (a proxy's buffer, a reset connection).
  const text = JSON.stringify(reply.body ?? {});
  return {
    status: rule.status,
    raw: Buffer.from(text.slice(0, Math.floor(text.length / 2))),
    headers: { 'content-type': 'application/json' },
  };
}

async function handle(ctx: StandinContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://standin');
  const method = (req.method ?? 'GET').toUpperCase();
  const path = url.pathname;
  const isControl = path.startsWith('/_standin/');
  let reply: Reply;
  try {
    const body = await readBody(req);
    const params = parseParams(req, url, bodyIsData(path) ? '' : body.toString('utf8'));
    const call: Call = { req, method, path, url, params, body, args: {} };
    reply = isControl ? await control(ctx, call) : await gitlab(ctx, call);
  } catch (err) {
    reply =
      err instanceof HttpError
        ? { status: err.status, body: err.body ?? undefined, headers: err.headers }
        : { status: 500, body: { message: '500 Internal Server Error' } };
  }
  if (!isControl) ctx.model.state.calls.push({ method, path, status: reply.status, at: now() });
  if (res.destroyed) return;
  const headers: Record<string, string> = { ...(reply.headers ?? {}) };
  if (!isControl && ctx.clockOffsetSeconds !== 0)
    headers.date = new Date(Date.now() + ctx.clockOffsetSeconds * 1000).toUTCString();
  writeReply(res, method, reply, headers);
}

/** The request listener for the stand-in's HTTP and HTTPS servers. */
export function standinListener(ctx: StandinContext) {
  return (req: IncomingMessage, res: ServerResponse) => {
    handle(ctx, req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
    });
  };
}
