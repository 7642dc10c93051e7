// Runs provision as a user would (a separate process: the compiled entry in the e2e projects, else tsx) and captures
// everything it prints.
import { join } from 'node:path';
import { inject } from 'vitest';
import { sh } from '#testbed';
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

/** The compiled entry the e2e projects built for this run (test/support/e2e-global.ts), else tsx on provision.ts. */
function provisionCommand(): string[] {
  const entry = inject('provisionEntry');
  if (entry) return [process.execPath, entry];
  return [join(REPO, 'node_modules', '.bin', 'tsx'), join(REPO, 'provision.ts')];
}

/**
 * `hostsFile`: run it in its own mount namespace with that file as /etc/hosts (root only), as on an operator's machine
 * whose /etc/hosts or LAN DNS knows a name this machine does not. `input`: what provision.ts reads on stdin (a secret
 * piped to a `file:/dev/stdin` reference); none by default.
 */
export async function runProvision(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  opts: { hostsFile?: string; input?: string } = {},
): Promise<ProvisionRun> {
  const command = [...provisionCommand(), ...args];
  const argv = opts.hostsFile
    ? [
        'unshare',
        '--mount',
        'sh',
        '-c',
        'mount --bind "$0" /etc/hosts && exec "$@"',
        opts.hostsFile,
        ...command,
      ]
    : command;
  const {
    exitCode: code,
    stdout,
    stderr,
  } = await sh({
    cwd: REPO,
    env: { ...process.env, ...env },
    nothrow: true,
    ...(opts.input === undefined ? {} : { input: opts.input, stdio: ['pipe', 'pipe', 'pipe'] as const }),
  })`${argv}`;
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
