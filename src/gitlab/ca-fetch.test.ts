// fetchTrusting against a real HTTPS server whose certificate comes from a CA made here with openssl.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchTrusting } from './ca-fetch.js';

describe('fetchTrusting', () => {
  let dir: string;
  let server: Server;
  let url: string;
  let ca: string;
  const seen: { method?: string; body: string }[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rf-ca-fetch-'));
    const p = (f: string) => join(dir, f);
    const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
    ssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=t-ca',
      '-keyout',
      p('ca.key'),
      '-out',
      p('ca.pem'),
    );
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=t', '-keyout', p('s.key'), '-out', p('s.csr'));
    writeFileSync(p('san.cnf'), 'subjectAltName = IP:127.0.0.1\n');
    ssl(
      'x509',
      '-req',
      '-in',
      p('s.csr'),
      '-CA',
      p('ca.pem'),
      '-CAkey',
      p('ca.key'),
      '-CAcreateserial',
      '-days',
      '1',
      '-extfile',
      p('san.cnf'),
      '-out',
      p('s.pem'),
    );
    ca = readFileSync(p('ca.pem'), 'utf8');
    server = createServer({ cert: readFileSync(p('s.pem')), key: readFileSync(p('s.key')) }, (req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        seen.push({ method: req.method, body });
        res.writeHead(req.method === 'DELETE' ? 204 : 200, { 'content-type': 'application/json' });
        res.end(req.method === 'DELETE' ? undefined : '{"ok":true}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(() => {
    server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('verifies against the CA, and sends a DELETE body framed', async () => {
    const f = fetchTrusting(ca);
    const res = await f(`${url}/api/v4/version`);
    expect([res.status, await res.json()]).toEqual([200, { ok: true }]);
    const del = await f(`${url}/api/v4/runners`, {
      method: 'DELETE',
      body: '{"token":"x"}',
      headers: { 'content-type': 'application/json' },
    });
    expect(del.status).toBe(204);
    expect(seen.at(-1)).toEqual({ method: 'DELETE', body: '{"token":"x"}' });
  });

  it('rejects as fetch does, with the x509 code in the cause, when the CA did not sign the server', async () => {
    // The server's own leaf is no CA: verification fails as against an unknown authority.
    const wrong = fetchTrusting(readFileSync(join(dir, 's.pem'), 'utf8'));
    const err = (await wrong(`${url}/`).catch((e: unknown) => e)) as TypeError & {
      cause?: { code?: string };
    };
    expect(err).toBeInstanceOf(TypeError);
    expect(err.cause?.code).toMatch(/UNABLE_TO|SELF_SIGNED|LEAF|CERT/);
  });
});
