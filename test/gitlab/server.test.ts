// The stand-in as a separate process: state file appears once it listens and disappears on SIGTERM.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import type { StandinServerInfo } from './server.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

async function waitFor<T>(check: () => T | undefined, ms: number): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 100));
  }
}

it('runs detached on --host, writes its URL and pid, serves the API, cleans up on SIGTERM', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-server-'));
  const stateFile = join(dir, 'gitlab.json');
  const child = spawn(
    join(root, 'node_modules/.bin/tsx'),
    [
      'test/gitlab/server.ts',
      '--port',
      '0',
      '--host',
      '127.0.0.2',
      '--state-file',
      stateFile,
      '--tokens-dir',
      join(dir, 'tokens'),
      '--state-dir',
      join(dir, 'repos'),
    ],
    {
      cwd: root,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  try {
    const info = await waitFor(
      () =>
        existsSync(stateFile)
          ? (JSON.parse(readFileSync(stateFile, 'utf8')) as StandinServerInfo)
          : undefined,
      30000,
    );
    expect(info.url).toMatch(/^http:\/\/127\.0\.0\.2:\d+$/);
    expect(info.stateDir).toBe(join(dir, 'repos'));
    const project = await fetch(`${info.url}/_standin/projects`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ path: 'g/p', files: { a: 'b' } }),
    });
    expect(await project.json()).toMatchObject({ repoUrl: `${info.url}/g/p.git` });
    expect(existsSync(join(dir, 'repos', 'repos', 'g', 'p.git', 'info', 'refs'))).toBe(true);
    const token = readFileSync(info.tokenFiles.runnerToken, 'utf8').trim();
    const res = await fetch(`${info.url}/api/v4/runners/verify`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token }),
    });
    expect(res.status).toBe(200);
    expect(readFileSync(stateFile, 'utf8')).not.toContain(token);
    process.kill(info.pid, 'SIGTERM');
    await waitFor(() => (existsSync(stateFile) ? undefined : true), 10000);
    expect(output).not.toContain(token);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});
