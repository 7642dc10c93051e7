// The real kubeseal for tests, built by scripts/build-kubeseal.sh (setup.sh runs it) into the test binaries' cache.
// Missing binary: the suite skips loudly, or fails under CI=true (like requireRoot).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheRoot } from '#testbed';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BUILD_SCRIPT = join(repoRoot, 'scripts', 'build-kubeseal.sh');

/** The version the build script builds by default (read from it, so the two cannot drift). */
export function kubesealVersion(): string {
  const m = /^KUBESEAL_VERSION=\$\{KUBESEAL_VERSION:-(v[0-9.]+)\}$/m.exec(readFileSync(BUILD_SCRIPT, 'utf8'));
  if (!m) throw new Error(`${BUILD_SCRIPT}: no KUBESEAL_VERSION default`);
  return m[1];
}

/** The binary's path, or why there is none. RUNNER_FLEET_KUBESEAL names a binary to use as is. */
export function findKubeseal(): { path?: string; problem?: string } {
  const given = process.env.RUNNER_FLEET_KUBESEAL;
  if (given)
    return existsSync(given) ? { path: given } : { problem: `RUNNER_FLEET_KUBESEAL=${given} does not exist` };
  const path = join(cacheRoot(), 'bin', `kubeseal-${kubesealVersion()}`);
  return existsSync(path)
    ? { path }
    : { problem: `${path} is missing: run bash scripts/build-kubeseal.sh (scripts/setup.sh does)` };
}

/** For describe.runIf: true when kubeseal is there; otherwise throws under CI, else warns loudly and returns false. */
export function requireKubeseal(suite: string): boolean {
  const { problem } = findKubeseal();
  if (!problem) return true;
  const message = `${suite} needs the real kubeseal: ${problem}`;
  if (process.env.CI) throw new Error(`${message} (CI is set: failing instead of skipping)`);
  console.warn(`\n*** SKIPPING ${suite}: ${message} ***\n`);
  return false;
}
