// Runs the GitLab stand-in as its own process for the test fleet: writes {url, pid, ...} to --state-file, removes it on exit.
// Usage: tsx test/gitlab/server.ts --port P --state-file F --tokens-dir D [--host H] [--registration-tokens off]
//          [--state-dir DIR] [--runner-token-expiration SECONDS] [--contacted-at-persist-every MIN_MS,MAX_MS] [--external-url URL]
//          [--registry HOST:PORT --registry-key PEM_FILE]
//          [--tls-cert PEM --tls-key PEM]   (HTTPS as well, on another port: tlsUrl in the state file)
// --host is the address it listens on and the host of the URL it reports (the testbed passes 198.18.<slot>.1).
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startGitlabStandin } from './standin.js';

/** What --state-file holds: how another process finds and stops the stand-in (never a token, only the token files). */
export interface StandinServerInfo {
  url: string;
  /** with --tls-cert: the HTTPS URL (jobs see it as CI_SERVER_URL) */
  tlsUrl?: string;
  pid: number;
  host: string;
  port: number;
  tokensDir: string;
  tokenFiles: Record<string, string>;
  /** the project repositories live here */
  stateDir: string;
  startedAt: string;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      host: { type: 'string', default: '127.0.0.1' },
      'state-file': { type: 'string' },
      'tokens-dir': { type: 'string' },
      'registration-tokens': { type: 'string', default: 'on' },
      'state-dir': { type: 'string' },
      'runner-token-expiration': { type: 'string' },
      'contacted-at-persist-every': { type: 'string' },
      'external-url': { type: 'string' },
      registry: { type: 'string' },
      'registry-key': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
    },
    strict: true,
  });
  const stateFile = values['state-file'];
  const tokensDir = values['tokens-dir'];
  if (!stateFile || !tokensDir) {
    process.stderr.write(
      'usage: tsx test/gitlab/server.ts --port P --state-file F --tokens-dir D [--host H] [--registration-tokens on|off] [--state-dir DIR] [--runner-token-expiration S] [--contacted-at-persist-every MIN_MS,MAX_MS] [--external-url URL] [--registry HOST:PORT --registry-key PEM_FILE]\n',
    );
    process.exit(2);
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`--port: expected 0-65535, got ${values.port}\n`);
    process.exit(2);
  }
  const expiration = values['runner-token-expiration'];
  if (expiration !== undefined && !(Number(expiration) > 0)) {
    process.stderr.write(`--runner-token-expiration: expected seconds > 0, got ${expiration}\n`);
    process.exit(2);
  }
  const every = values['contacted-at-persist-every']?.split(',').map(Number);
  if (
    every &&
    (every.length !== 2 || every.some((n) => !Number.isFinite(n) || n < 0) || every[0] > every[1])
  ) {
    process.stderr.write(
      `--contacted-at-persist-every: expected MIN_MS,MAX_MS, got ${values['contacted-at-persist-every']}\n`,
    );
    process.exit(2);
  }
  if ((values.registry === undefined) !== (values['registry-key'] === undefined)) {
    process.stderr.write(
      '--registry and --registry-key go together (the registry trusts tokens signed with that key)\n',
    );
    process.exit(2);
  }
  // Next to the tokens by default, so one directory holds all the stand-in keeps.
  const stateDir = resolve(values['state-dir'] ?? resolve(tokensDir, '..', 'gitlab-standin-state'));
  const standin = await startGitlabStandin({
    port,
    host: values.host,
    tokensDir: resolve(tokensDir),
    registrationTokensEnabled: values['registration-tokens'] !== 'off',
    stateDir,
    runnerTokenExpirationSeconds: expiration !== undefined ? Number(expiration) : null,
    contactedAtPersistEveryMs: every as [number, number] | undefined,
    externalUrl: values['external-url'],
    registry: values.registry
      ? { hostPort: values.registry, keyPem: readFileSync(values['registry-key']!, 'utf8') }
      : undefined,
    ...(values['tls-cert'] && values['tls-key']
      ? {
          tls: {
            cert: readFileSync(values['tls-cert'], 'utf8'),
            key: readFileSync(values['tls-key'], 'utf8'),
          },
        }
      : {}),
  });
  const info: StandinServerInfo = {
    url: standin.url,
    ...(standin.tlsUrl ? { tlsUrl: standin.tlsUrl } : {}),
    pid: process.pid,
    host: values.host!,
    port: standin.port,
    tokensDir: resolve(tokensDir),
    tokenFiles: standin.tokenFiles!,
    stateDir,
    startedAt: new Date().toISOString(),
  };
  // Written atomically and only once listening, so a reader that sees the file can connect.
  const file = resolve(stateFile);
  writeFileSync(`${file}.tmp`, `${JSON.stringify(info, null, 2)}\n`, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
  process.stdout.write(`gitlab stand-in listening on ${standin.url} (pid ${process.pid})\n`);

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await standin.close();
    rmSync(file, { force: true });
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGHUP', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`gitlab stand-in failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
