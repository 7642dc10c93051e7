// The local-process adapter: finds and runs programs on this machine (kubeseal), stdin in, stdout and redacted stderr out.
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { commandTrace } from './log.js';
import { redact } from './secrets.js';

export interface LocalResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The program's path on PATH, or undefined. */
export function findOnPath(program: string, path = process.env.PATH ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, program);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/** Runs a program without a shell; never rejects on a non-zero exit. `input` goes to its stdin. */
export function runLocal(program: string, args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<LocalResult> {
  commandTrace.emit?.('local', [program, ...args].join(' '));
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 60_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr: redact(stderr) }));
    child.stdin.on('error', () => undefined); // a program that exits without reading stdin is not our failure
    child.stdin.end(opts.input ?? '');
  });
}
