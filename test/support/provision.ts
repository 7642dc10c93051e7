// Runs provision.ts as a user would (a separate process through tsx) and captures everything it prints.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
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

export function runProvision(args: string[], env: NodeJS.ProcessEnv = {}): Promise<ProvisionRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(REPO, 'node_modules', '.bin', 'tsx'), [join(REPO, 'provision.ts'), ...args], {
      cwd: REPO,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      allOutput.push(stdout, stderr);
      let report: ProvisionRun['report'];
      if (args.includes('--json') && stdout.trim()) {
        try {
          report = JSON.parse(stdout.trim().split('\n').pop()!);
        } catch {
          /* leave undefined: the test will say what was printed */
        }
      }
      resolve({ code, stdout, stderr, report });
    });
  });
}
