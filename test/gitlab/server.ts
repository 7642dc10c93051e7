// Runs the GitLab stand-in as its own process for the test fleet: writes {url, pid, ...} to --state-file, removes it on exit.
// Usage: tsx test/gitlab/server.ts --port P --state-file F --tokens-dir D [--host H] [--registration-tokens off]
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startGitlabStandin } from './standin.js';

/** What --state-file holds: how another process finds and stops the stand-in (never a token, only the token files). */
export interface StandinServerInfo {
  url: string;
  pid: number;
  host: string;
  port: number;
  tokensDir: string;
  tokenFiles: Record<string, string>;
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
    },
    strict: true,
  });
  const stateFile = values['state-file'];
  const tokensDir = values['tokens-dir'];
  if (!stateFile || !tokensDir) {
    process.stderr.write('usage: tsx test/gitlab/server.ts --port P --state-file F --tokens-dir D [--host H] [--registration-tokens on|off]\n');
    process.exit(2);
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`--port: expected 0-65535, got ${values.port}\n`);
    process.exit(2);
  }
  const standin = await startGitlabStandin({
    port,
    host: values.host,
    tokensDir: resolve(tokensDir),
    registrationTokensEnabled: values['registration-tokens'] !== 'off',
  });
  const info: StandinServerInfo = {
    url: standin.url,
    pid: process.pid,
    host: values.host!,
    port: standin.port,
    tokensDir: resolve(tokensDir),
    tokenFiles: standin.tokenFiles!,
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
