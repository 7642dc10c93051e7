// Gate for suites that need root and namespaces (the test fleet): under CI they fail, elsewhere they skip loudly.
import { sh } from '#testbed';

let cached: string | undefined | null = null;

/** Why this machine cannot run root/namespace suites, or undefined when it can. */
export function rootProblem(): string | undefined {
  if (cached !== null) return cached;
  if (process.getuid?.() !== 0) cached = `not root (uid ${process.getuid?.() ?? 'unknown'})`;
  else {
    // Synchronous: describe.runIf needs the answer while the file is collected.
    const r = sh({ sync: true, nothrow: true })`unshare --mount --propagation private true`;
    cached = r.ok ? undefined : `\`unshare --mount\` failed: ${r.stderr.trim() || `exit ${r.exitCode}`}`;
  }
  return cached;
}

/**
 * Call at the top of a test file; use the result with `describe.runIf(...)`. Returns true when the suite can
 * run. When it cannot: throws under CI (so the file fails instead of passing on nothing), otherwise warns
 * loudly and returns false (the suite is skipped).
 */
export function requireRoot(suite: string): boolean {
  const problem = rootProblem();
  if (problem === undefined) return true;
  const message = `${suite} needs root and mount namespaces: ${problem}`;
  if (process.env.CI) throw new Error(`${message} (CI is set: failing instead of skipping)`);
  console.warn(`\n*** SKIPPING ${suite}: ${message} ***\n`);
  return false;
}
