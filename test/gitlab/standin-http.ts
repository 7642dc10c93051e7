// The stand-in's HTTP layer, free of GitLab state: its errors in GitLab's shapes, Grape's parameter parsing and
// coercions, and the route type with its path templates.
import type { IncomingMessage, ServerResponse } from 'node:http';

export type Params = Record<string, unknown>;

/** An answer before it is written: JSON `body`, or `raw` bytes (text/plain unless headers say otherwise). */
export interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  raw?: Buffer;
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown> | null,
    /** headers GitLab sends with this error (Job-Status on 403, Range on 416) */
    readonly headers?: Record<string, string>,
  ) {
    super(`HTTP ${status}`);
  }
}

// GitLab's error shapes: Grape validation → {error}, render_api_error! → {message}.
export const badRequest = (error: string) => new HttpError(400, { error });
export const unauthorized = () => new HttpError(401, { message: '401 Unauthorized' });
export const forbidden = (reason?: string) =>
  new HttpError(403, { message: reason ? `403 Forbidden - ${reason}` : '403 Forbidden' });
export const notFound = (what?: string) =>
  new HttpError(404, { message: what ? `404 ${what} Not Found` : '404 Not Found' });
export const insufficientScope = (scope: string) =>
  new HttpError(403, {
    error: 'insufficient_scope',
    error_description: 'The request requires higher privileges than provided by the access token.',
    scope,
  });

export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    // The runner's trace patches are at most 1 MiB (maxTracePatchSize default) plus headroom; JSON bodies far less.
    if (size > 8 * 1024 * 1024) throw new HttpError(413, { message: '413 Request Entity Too Large' });
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Grape merges query string and body; the body may be JSON, urlencoded or multipart (curl --form). */
export function parseParams(req: IncomingMessage, url: URL, body: string): Params {
  const params: Params = {};
  const addForm = (key: string, value: string) => {
    if (key.endsWith('[]')) {
      const k = key.slice(0, -2);
      params[k] = [...((params[k] as string[] | undefined) ?? []), value];
    } else params[key] = value;
  };
  url.searchParams.forEach((v, k) => addForm(k, v));
  const type = (req.headers['content-type'] ?? '').toLowerCase();
  if (!body.trim()) return params;
  if (type.startsWith('application/json')) {
    let data: unknown;
    try {
      data = JSON.parse(body);
    } catch {
      throw badRequest("The provided content-type 'application/json' body is not valid JSON");
    }
    if (!data || typeof data !== 'object' || Array.isArray(data))
      throw badRequest('body must be a JSON object');
    Object.assign(params, data);
  } else if (type.startsWith('multipart/form-data')) {
    const boundary = /boundary="?([^";]+)"?/.exec(type)?.[1];
    if (!boundary) throw badRequest('multipart body without boundary');
    for (const part of body.split(`--${boundary}`)) {
      const m = /^\r\n([\s\S]*?)\r\n\r\n([\s\S]*)\r\n$/.exec(part);
      const name = m && /name="([^"]+)"/.exec(m[1])?.[1];
      if (m && name) addForm(name, m[2]);
    }
  } else {
    new URLSearchParams(body).forEach((v, k) => addForm(k, v));
  }
  return params;
}

// Grape's coercions, with its messages for values that do not coerce.
export function str(p: Params, key: string): string | undefined {
  const v = p[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' && typeof v !== 'number') throw badRequest(`${key} is invalid`);
  return String(v);
}

export function bool(p: Params, key: string): boolean | undefined {
  const v = p[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string' && ['true', '1', 't', 'yes'].includes(v.toLowerCase())) return true;
  if (typeof v === 'string' && ['false', '0', 'f', 'no'].includes(v.toLowerCase())) return false;
  if (v === 1 || v === 0) return v === 1;
  throw badRequest(`${key} is invalid`);
}

export function int(p: Params, key: string): number | null | undefined {
  if (!(key in p)) return undefined;
  const v = p[key];
  if (v === null || v === '') return null;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : NaN;
  if (!Number.isInteger(n)) throw badRequest(`${key} is invalid`);
  return n;
}

/** tag_list: an array, or a comma-separated string (CommaSeparatedToArray). */
export function tags(p: Params): string[] | undefined {
  const v = p.tag_list;
  if (v === undefined || v === null) return undefined;
  const list = Array.isArray(v)
    ? v.flatMap((t) => String(t).split(','))
    : typeof v === 'string'
      ? v.split(',')
      : null;
  if (!list) throw badRequest('tag_list is invalid');
  return [...new Set(list.map((t) => t.trim()).filter(Boolean))];
}

export function oneOf<T extends string>(p: Params, key: string, values: readonly T[]): T | undefined {
  const v = str(p, key);
  if (v === undefined) return undefined;
  if (!values.includes(v as T)) throw badRequest(`${key} does not have a valid value`);
  return v as T;
}

/** One request as a route handler sees it; `args` holds the path template's named parts. */
export interface Call {
  req: IncomingMessage;
  method: string;
  path: string;
  url: URL;
  params: Params;
  /** the request body as sent */
  body: Buffer;
  args: Record<string, string>;
}

export type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** A route: `path` is a template whose `:name` parts match PATH_PARTS[name]; `handler` gets the running stand-in. */
export interface Route<Ctx> {
  /** the methods it answers; '*' for any (the handler then answers the others itself) */
  method: Method | '*';
  path: string;
  handler: (ctx: Ctx, call: Call) => Reply | Promise<Reply>;
}

/** What each `:name` in a route template matches. */
const PATH_PARTS: Record<string, string> = {
  id: '\\d+',
  // a repository path: anything but the API's own prefix (the API never serves git)
  project: '(?!api/).+?',
  file: '.+',
};

const compiled = new Map<string, RegExp>();

/** The template as an anchored RegExp with a named group per `:name`. */
export function routePattern(template: string): RegExp {
  let re = compiled.get(template);
  if (!re) {
    const source = template.split(/(:[a-z]+)/).map((part) => {
      if (!part.startsWith(':')) return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      const name = part.slice(1);
      if (!(name in PATH_PARTS)) throw new Error(`route ${template}: no pattern for :${name}`);
      return `(?<${name}>${PATH_PARTS[name]})`;
    });
    re = new RegExp(`^${source.join('')}$`);
    compiled.set(template, re);
  }
  return re;
}

/** The first route of `routes` for this method and path, with its template's parts. */
export function findRoute<R extends Pick<Route<never>, 'method' | 'path'>>(
  routes: readonly R[],
  method: string,
  path: string,
): { route: R; args: Record<string, string> } | null {
  for (const route of routes) {
    if (route.method !== '*' && route.method !== method) continue;
    const m = routePattern(route.path).exec(path);
    if (m) return { route, args: { ...m.groups } };
  }
  return null;
}

/** Writes a reply: raw bytes as they are (never a body for HEAD), JSON otherwise, nothing for 204. */
export function writeReply(
  res: ServerResponse,
  method: string,
  reply: Reply,
  headers: Record<string, string>,
) {
  if (reply.raw !== undefined) {
    if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type'))
      headers['content-type'] = 'text/plain';
    res.writeHead(reply.status, headers).end(method === 'HEAD' ? undefined : reply.raw);
  } else if (reply.body !== undefined && reply.status !== 204) {
    headers['content-type'] = 'application/json';
    res.writeHead(reply.status, headers).end(JSON.stringify(reply.body));
  } else res.writeHead(reply.status, headers).end();
}
