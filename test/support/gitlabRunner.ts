// The real gitlab-runner 17.9.3 for tests: the testbed's own (unpacked once into its cache, checked by sha256).
// Missing binary: the suite skips loudly, or fails under CI=true (like requireRoot).
import { GITLAB_RUNNER_VERSION, GitlabRunnerMissingError, runnerBinary } from '#testbed';

let cached: { path?: string; problem?: string } | undefined;

/** The runner binary's path (the testbed's, unpacked and checked once), or why there is none. */
export function findGitlabRunner(): { path?: string; problem?: string } {
  if (cached) return cached;
  try {
    return (cached = { path: runnerBinary('gitlab-runner') });
  } catch (err) {
    if (!(err instanceof GitlabRunnerMissingError)) throw err;
    return (cached = { problem: err.message });
  }
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
