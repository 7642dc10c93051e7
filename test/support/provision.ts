// Runs provision.ts as a user would (a separate process through tsx) and captures everything it prints.
import { join } from 'node:path';
import { sh } from '../../scripts/testbed/procs.js';
import type { RunReport } from '../../src/report.js';

export const REPO = join(import.meta.dirname, '..', '..');

export interface ProvisionRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** the --json report, when one was printed */
  report?: RunReport & { ssh?: { connections: number; roundTrips: number } };
}

/** Every byte any run printed, for the "no token anywhere" checks. */
export const allOutput: string[] = [];

/** `input`: what provision.ts reads on stdin (a secret piped to a `file:/dev/stdin` reference); none by default. */
export async function runProvision(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  input?: string,
): Promise<ProvisionRun> {
  const tsx = join(REPO, 'node_modules', '.bin', 'tsx');
  const {
    exitCode: code,
    stdout,
    stderr,
  } = await sh({
    cwd: REPO,
    env: { ...process.env, ...env },
    nothrow: true,
    ...(input === undefined ? {} : { input, stdio: ['pipe', 'pipe', 'pipe'] as const }),
  })`${tsx} ${join(REPO, 'provision.ts')} ${args}`;
  allOutput.push(stdout, stderr);
  let report: ProvisionRun['report'];
  if (args.includes('--json') && stdout.trim()) {
    try {
      report = JSON.parse(stdout.trim().split('\n').pop()!);
    } catch {
      /* leave undefined: the test will say what was printed */
    }
  }
  return { code, stdout, stderr, report };
}
