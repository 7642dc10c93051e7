// The contact probe: targets from the inventory, its output parsed to the first failing hop, and the words for it.
import { describe, expect, it } from 'vitest';
import { describeProbe, parseProbe, probeScript, probeTargets } from './probe.js';

const targets = probeTargets({
  gitlab: { url: 'http://198.18.0.1:8929/', registries: ['198.18.0.2:5000'] },
} as never);

describe('probeTargets and probeScript', () => {
  it("GitLab's /api/v4/version, then each registry's /v2/, with default ports", () => {
    expect(targets).toEqual([
      { kind: 'gitlab', host: '198.18.0.1', port: 8929, url: 'http://198.18.0.1:8929/api/v4/version' },
      { kind: 'registry', host: '198.18.0.2', port: 5000, url: 'http://198.18.0.2:5000/v2/' },
    ]);
    const https = probeTargets({
      gitlab: { url: 'https://gitlab.lan/gl', registries: ['reg.lan'] },
    } as never);
    expect(https.map((t) => [t.host, t.port, t.url])).toEqual([
      ['gitlab.lan', 443, 'https://gitlab.lan/gl/api/v4/version'],
      ['reg.lan', 80, 'http://reg.lan/v2/'],
    ]);
  });

  it('probes each target in order, quoted, and stops at the first failure', () => {
    const script = probeScript(targets);
    expect(script).toContain("probe 0 '198.18.0.1' 8929 'http://198.18.0.1:8929/api/v4/version' || exit 0");
    expect(script).toContain("probe 1 '198.18.0.2' 5000 'http://198.18.0.2:5000/v2/' || exit 0");
    expect(script).toContain('code=${out##*http_code=} out=${out%http_code=*}');
  });
});

describe('parseProbe', () => {
  it('every hop answered: ok, whatever the HTTP status below 500', () => {
    const out = [
      'probe-hop 0 dns ok 198.18.0.1',
      'probe-hop 0 tcp ok -',
      'probe-hop 0 http ok 401',
      'probe-hop 1 dns ok 198.18.0.2',
      'probe-hop 1 tcp ok -',
      'probe-hop 1 http ok 200',
    ].join('\n');
    expect(parseProbe(out, targets)).toEqual({ kind: 'ok' });
  });

  it('the first failing hop, with the address the name resolved to', () => {
    const named = probeTargets({ gitlab: { url: 'http://gitlab.lan:8929', registries: [] } } as never);
    const out = 'probe-hop 0 dns ok 198.18.0.1\nprobe-hop 0 tcp fail nc: timed out\n';
    const r = parseProbe(out, named);
    expect(r).toMatchObject({ kind: 'failed', hop: 'tcp', address: '198.18.0.1', detail: 'nc: timed out' });
    expect(describeProbe(r, 'pod')).toBe(
      'cannot connect to 198.18.0.1:8929 (gitlab.lan) (GitLab) from the runner pod (nc: timed out)',
    );
  });

  it('words each hop, from the pod or the node', () => {
    const tcp = parseProbe('probe-hop 0 dns ok 198.18.0.1\nprobe-hop 0 tcp fail nc: timed out', targets);
    expect(describeProbe(tcp, 'pod')).toBe(
      'cannot connect to 198.18.0.1:8929 (GitLab) from the runner pod (nc: timed out)',
    );
    const dns = parseProbe('probe-hop 0 dns fail name does not resolve', targets);
    expect(describeProbe(dns, 'host')).toBe(
      'cannot resolve 198.18.0.1 (GitLab) from the node (name does not resolve)',
    );
    // A pod does not read the node's /etc/hosts: the words name the setting that puts the name there.
    expect(describeProbe(dns, 'pod')).toBe(
      "cannot resolve 198.18.0.1 (GitLab) from the runner pod (name does not resolve); pods do not read the node's /etc/hosts: if the node resolves 198.18.0.1, give its address in gitlab.hostAliases",
    );
    const http = parseProbe(
      'probe-hop 0 dns ok 198.18.0.1\nprobe-hop 0 tcp ok -\nprobe-hop 0 http fail no answer within 10 s',
      targets,
    );
    expect(describeProbe(http, 'pod')).toBe(
      'no HTTP answer from http://198.18.0.1:8929/api/v4/version (GitLab) from the runner pod (no answer within 10 s)',
    );
    const bad = parseProbe(
      'probe-hop 0 dns ok 198.18.0.1\nprobe-hop 0 tcp ok -\nprobe-hop 0 http ok 502',
      targets,
    );
    expect(describeProbe(bad, 'pod')).toBe(
      'GitLab answers http://198.18.0.1:8929/api/v4/version with HTTP 502 from the runner pod',
    );
    const reg = parseProbe(
      'probe-hop 0 dns ok 198.18.0.1\nprobe-hop 0 tcp ok -\nprobe-hop 0 http ok 401\nprobe-hop 1 dns ok 198.18.0.2\nprobe-hop 1 tcp fail Connection refused',
      targets,
    );
    expect(describeProbe(reg, 'pod')).toBe(
      'cannot connect to 198.18.0.2:5000 (the registry 198.18.0.2:5000) from the runner pod (Connection refused)',
    );
  });

  it('a skipped hop (no tool for it) is no failure; no output at all is unknown', () => {
    expect(parseProbe('probe-hop 0 dns skip no getent or nslookup\nprobe-hop 0 tcp ok -\n', targets)).toEqual(
      {
        kind: 'ok',
      },
    );
    expect(parseProbe('sh: not found\n', targets)).toEqual({
      kind: 'unknown',
      why: 'the probe printed nothing',
    });
  });
});

describe('the probe script, run by sh here', () => {
  /** Runs the probe with `sh` and the machine's tools, or with only busybox's applets on PATH. */
  async function run(script: string, busybox: boolean): Promise<string> {
    const { execFile } = await import('node:child_process');
    const { mkdtempSync, symlinkSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    let env = process.env;
    let shell = 'sh';
    if (busybox) {
      const dir = mkdtempSync(`${tmpdir()}/rf-bb-`);
      for (const a of [
        'sh',
        'awk',
        'tr',
        'cut',
        'sed',
        'printf',
        'nslookup',
        'nc',
        'wget',
        'timeout',
        'grep',
      ])
        symlinkSync('/bin/busybox', `${dir}/${a}`);
      env = { PATH: dir };
      shell = `${dir}/sh`;
    }
    return new Promise((resolve) =>
      execFile(shell, ['-c', script], { env, timeout: 30_000 }, (_err, stdout) => resolve(stdout)),
    );
  }

  it.each([false, true])(
    'busybox only: %s — an answer is ok, a closed port is a failed TCP hop',
    async (bb) => {
      const { existsSync } = await import('node:fs');
      if (bb && !existsSync('/bin/busybox')) return;
      const { createServer } = await import('node:http');
      const server = createServer((_req, res) => res.writeHead(401).end());
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const port = (server.address() as { port: number }).port;
      const closed = createServer();
      await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
      const closedPort = (closed.address() as { port: number }).port;
      await new Promise((resolve) => closed.close(resolve));
      try {
        const up = probeTargets({
          gitlab: { url: `http://127.0.0.1:${port}`, registries: [`127.0.0.1:${port}`] },
        } as never);
        expect(parseProbe(await run(probeScript(up), bb), up)).toEqual({ kind: 'ok' });
        const down = probeTargets({
          gitlab: { url: `http://127.0.0.1:${port}`, registries: [`127.0.0.1:${closedPort}`] },
        } as never);
        expect(parseProbe(await run(probeScript(down), bb), down)).toMatchObject({
          kind: 'failed',
          hop: 'tcp',
          target: { kind: 'registry', port: closedPort },
        });
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    },
  );
});

describe('the TLS hop (gitlab.caFile)', () => {
  const ca = { path: '/inv/ca.pem', pem: 'x' };
  const https = probeTargets({
    gitlab: { url: 'https://gitlab.lan:8443', registries: ['reg.lan:5000'], ca },
    runners: { placement: 'cluster' },
  } as never);

  it("registries become HTTPS, and every HTTPS target is checked against the runner's copy of the CA", () => {
    expect(https.map((t) => [t.url, t.ca])).toEqual([
      ['https://gitlab.lan:8443/api/v4/version', '/secrets/runner-fleet-ca.crt'],
      ['https://reg.lan:5000/v2/', '/secrets/runner-fleet-ca.crt'],
    ]);
    const host = probeTargets({
      gitlab: { url: 'https://gitlab.lan', registries: [], ca },
      runners: { placement: 'host' },
    } as never);
    expect(host[0].ca).toBe('/etc/gitlab-runner/runner-fleet-ca.crt');
    expect(probeScript(https)).toContain(
      "probe 1 'reg.lan' 5000 'https://reg.lan:5000/v2/' '/secrets/runner-fleet-ca.crt' || exit 0",
    );
  });

  it('names an unknown authority as an x509 failure, apart from connect and HTTP failures', () => {
    const out = [
      'probe-hop 0 dns ok 198.18.0.1',
      'probe-hop 0 tcp ok -',
      'probe-hop 0 tls fail curl: (60) SSL certificate problem: unable to get local issuer certificate',
    ].join('\n');
    const r = parseProbe(out, https);
    expect(r).toMatchObject({ kind: 'failed', hop: 'tls' });
    expect(describeProbe(r, 'pod')).toBe(
      "x509: the certificate of GitLab does not verify from the runner pod against /secrets/runner-fleet-ca.crt (gitlab.caFile, the runner's tls-ca-file) (curl: (60) SSL certificate problem: unable to get local issuer certificate)",
    );
    const plain = parseProbe(
      'probe-hop 0 dns ok 1.2.3.4\nprobe-hop 0 tcp ok -\nprobe-hop 0 tls fail x',
      targets,
    );
    expect(describeProbe(plain, 'host')).toContain("against the system's CAs (set gitlab.caFile");
  });
});
