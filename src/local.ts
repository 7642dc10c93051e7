// The local-process adapter: finds and runs programs on this machine (kubeseal), stdin in, stdout and redacted stderr out.
// Every local program runner-fleet itself starts goes through here.
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

/**
 * Runs a program through zx (its quoting: every argument is passed as one word, nothing is expanded); never rejects
 * on a non-zero exit. `input` goes to its stdin. zx is loaded on first use: only render starts local programs, and
 * the other commands should not pay for the import.
 */
export async function runLocal(
  program: string,
  args: string[],
  opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<LocalResult> {
  commandTrace.emit?.('local', [program, ...args].join(' '));
  const { $ } = await import('zx');
  const out = await $({
    input: opts.input ?? '',
    env: opts.env ?? process.env,
    timeout: opts.timeoutMs ?? 60_000,
    nothrow: true,
    quiet: true,
    verbose: false,
  })`${program} ${args}`;
  return { code: out.exitCode, stdout: out.stdout, stderr: redact(out.stderr) };
}
