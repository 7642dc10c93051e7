// Runs `provision.ts apply --json` as a user would (a subprocess through npx tsx) and reads its report.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { measure, type Measured } from './measure.js';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface ProvisionRun {
  measured: Measured;
  ok: boolean;
  changed: number;
  /** what provision.ts itself counted */
  ssh?: { connections: number; roundTrips: number };
  error?: string;
}

interface Report {
  ok: boolean;
  changed: number;
  nodes: { name: string; ok: boolean; error?: string }[];
  ssh?: { connections: number; roundTrips: number };
}

/** `npx tsx provision.ts apply`, the README's command, so tsx's and npx's start-up are part of the time. */
export async function runProvision(
  inventory: string,
  concurrency: number,
  opts: { only?: string[]; env?: NodeJS.ProcessEnv; compiled?: boolean } = {},
): Promise<ProvisionRun> {
  const only = opts.only ? ['--only', opts.only.join(',')] : [];
  // compiled: `node dist/provision.js` (npm run build), the entry for cron and CI: no npx, no tsx.
  const entry = opts.compiled
    ? ['node', 'dist/provision.js']
    : ['npx', '--no-install', 'tsx', 'provision.ts'];
  const measured = await measure(
    [
      ...entry,
      'apply',
      '--inventory',
      inventory,
      '--json',
      '--concurrency',
      String(concurrency),
      '--quiet',
      ...only,
    ],
    {
      cwd: REPO,
      env: opts.env,
      timeoutMs: 20 * 60_000,
    },
  );
  try {
    const report = JSON.parse(measured.stdout.trim().split('\n').pop() ?? '') as Report;
    const failed = report.nodes.filter((n) => !n.ok);
    return {
      measured,
      ok: measured.code === 0 && report.ok,
      changed: report.changed,
      ssh: report.ssh,
      error: failed.length > 0 ? failed.map((n) => `${n.name}: ${n.error}`).join('; ') : undefined,
    };
  } catch {
    return {
      measured,
      ok: false,
      changed: -1,
      error: `exit ${measured.code}, no JSON report: ${measured.stderr.trim().split('\n').slice(-5).join(' | ')}`,
    };
  }
}
