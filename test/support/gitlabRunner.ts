// The real gitlab-runner 17.9.3 for tests: unpacked once from the shared tools into the user cache, checked by sha256.
// Missing binary: the suite skips loudly, or fails under CI=true (like requireRoot).
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sh } from '../../scripts/testbed/procs.js';

export const GITLAB_RUNNER_VERSION = '17.9.3';
/** /work/shared/tools/gitlab-runner/README.md: sha256 of the unpacked binary */
const RUNNER_SHA256 = '080c4e589e62b87b73b7d6857950fbdbd9a546f8408c677777c7d6ca5df3f56f';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

/** Where the compressed binary may be: RUNNER_FLEET_SHARED_DIR, the repo's ../shared, /work/shared. */
function xzCandidates(): string[] {
  const dirs = [process.env.RUNNER_FLEET_SHARED_DIR, join(repoRoot, '..', 'shared'), '/work/shared'].filter(
    (d): d is string => Boolean(d),
  );
  return dirs.map((d) => join(d, 'tools', 'gitlab-runner', 'gitlab-runner.xz'));
}

let cached: { path?: string; problem?: string } | undefined;

/** The runner binary's path, or why there is none. RUNNER_FLEET_GITLAB_RUNNER names a binary to use as is. */
export function findGitlabRunner(): { path?: string; problem?: string } {
  if (cached) return cached;
  const given = process.env.RUNNER_FLEET_GITLAB_RUNNER;
  if (given)
    return (cached = existsSync(given)
      ? { path: given }
      : { problem: `RUNNER_FLEET_GITLAB_RUNNER=${given} does not exist` });
  const target = join(
    process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'),
    'runner-fleet',
    `gitlab-runner-${GITLAB_RUNNER_VERSION}`,
    'gitlab-runner',
  );
  if (existsSync(target) && sha256(target) === RUNNER_SHA256) return (cached = { path: target });
  const xz = xzCandidates().find((f) => existsSync(f));
  if (!xz)
    return (cached = { problem: `no gitlab-runner binary: none of ${xzCandidates().join(', ')} exists` });
  mkdirSync(dirname(target), { recursive: true });
  const tmp = `${target}.${process.pid}.tmp`;
  // Synchronous: describe.runIf needs the answer while the file is collected. The shell writes the file, so its
  // bytes never pass through this process.
  const r = sh({ sync: true, nothrow: true })`xz -dc ${xz} > ${tmp}`;
  if (!r.ok) {
    rmSync(tmp, { force: true });
    return (cached = { problem: `xz -dc ${xz} failed: ${r.stderr.trim() || `exit ${r.exitCode}`}` });
  }
  const sum = sha256(tmp);
  if (sum !== RUNNER_SHA256) {
    rmSync(tmp, { force: true });
    return (cached = { problem: `${xz} unpacks to sha256 ${sum}, expected ${RUNNER_SHA256}` });
  }
  chmodSync(tmp, 0o755);
  renameSync(tmp, target);
  return (cached = { path: target });
}

/** For describe.runIf: true when the runner is there; otherwise throws under CI, else warns loudly and returns false. */
export function requireGitlabRunner(suite: string): boolean {
  const { problem } = findGitlabRunner();
  if (!problem) return true;
  const message = `${suite} needs the real gitlab-runner ${GITLAB_RUNNER_VERSION}: ${problem}`;
  if (process.env.CI) throw new Error(`${message} (CI is set: failing instead of skipping)`);
  console.warn(`\n*** SKIPPING ${suite}: ${message} ***\n`);
  return false;
}
