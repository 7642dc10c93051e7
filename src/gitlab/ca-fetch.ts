// A fetch for GitLab behind a private CA (gitlab.caFile): Node's global fetch takes no CA per request, node:https does.
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';

/**
 * The part of fetch api.ts uses (method, headers, string body, signal; redirects are never followed), verifying
 * HTTPS against `ca` instead of the system's roots. Network and TLS errors reject as fetch's do: a TypeError whose
 * `cause` carries the code (e.g. UNABLE_TO_VERIFY_LEAF_SIGNATURE).
 */
export function fetchTrusting(ca: string): typeof globalThis.fetch {
  return (async (input: string | URL | Request, init: RequestInit = {}) => {
    const url = new URL(input instanceof Request ? input.url : input);
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const headers = Object.fromEntries(new Headers(init.headers).entries());
    // Node sends a DELETE body unframed unless its length is given (no chunked encoding for DELETE by default).
    if (typeof init.body === 'string') headers['content-length'] = String(Buffer.byteLength(init.body));
    return await new Promise<Response>((resolve, reject) => {
      const req = send(
        url,
        { method: init.method ?? 'GET', headers, ca, signal: init.signal ?? undefined },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (err) => reject(new TypeError('fetch failed', { cause: err })));
          res.on('end', () => {
            const out = new Headers();
            for (const [k, v] of Object.entries(res.headers))
              for (const one of Array.isArray(v) ? v : v === undefined ? [] : [v]) out.append(k, one);
            const status = res.statusCode ?? 0;
            const body =
              status === 204 || status === 304 || init.method === 'HEAD' ? null : Buffer.concat(chunks);
            resolve(new Response(body, { status, statusText: res.statusMessage ?? '', headers: out }));
          });
        },
      );
      req.on('error', (err) => {
        if (err.name === 'AbortError') reject(init.signal?.reason ?? err);
        else reject(new TypeError('fetch failed', { cause: err }));
      });
      if (typeof init.body === 'string') req.write(init.body);
      req.end();
    });
  }) as typeof globalThis.fetch;
}
