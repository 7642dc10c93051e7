// Global setup of the end-to-end projects: the machine's one-time test-fleet setup (packages, the pi users, the
// sudo rule, mount points) runs once here, before parallel workers would race each other's useradd.
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { ensureHost } from '#testbed';
import { rootProblem } from './requireRoot.js';

const REPO = join(import.meta.dirname, '..', '..');

declare module 'vitest' {
  export interface ProvidedContext {
    /** the compiled entry (scripts/build.ts) the suites run provision through; see runProvision */
    provisionEntry: string;
  }
}

/**
 * The compiled entry, built once per run from this checkout: the suites start provision some 150 times, and tsx's
 * loader costs ~1.5 s of CPU each time on this 2-core machine. The operator's terminal, chaos and ci-snippet paths
 * still start `tsx provision.ts`, as the README's command does.
 */
function buildEntry(project: TestProject): () => void {
  const dir = `.e2e-entry-${process.pid}-${project.name}`;
  execFileSync(join(REPO, 'node_modules', '.bin', 'tsx'), [join(REPO, 'scripts', 'build.ts')], {
    cwd: REPO,
    env: { ...process.env, RUNNER_FLEET_BUILD_DIR: dir },
    stdio: 'inherit',
  });
  project.provide('provisionEntry', join(REPO, dir, 'provision.js'));
  return () => rmSync(join(REPO, dir), { recursive: true, force: true });
}

const IP_FORWARD = '/proc/sys/net/ipv4/ip_forward';

export default async function setup(project: TestProject): Promise<() => void> {
  const removeEntry = buildEntry(project);
  // Where root suites cannot run, each file says so itself (and fails under CI): nothing to prepare here.
  if (rootProblem() !== undefined) return removeEntry;
  await ensureHost((msg) => console.error(`[e2e setup] ${msg}`));
  // The suites must leave this machine as they found it: a dockerd started in its own network namespace turns
  // forwarding on for good (and then every later run tests a machine that no longer looks fresh).
  const before = readFileSync(IP_FORWARD, 'utf8').trim();
  return () => {
    removeEntry();
    const after = readFileSync(IP_FORWARD, 'utf8').trim();
    if (after === before) return;
    // A teardown that throws is only printed by vitest: the exit code is what fails the run.
    console.error(
      `FAIL: the end-to-end suites changed this machine's net.ipv4.ip_forward from ${before} to ${after}`,
    );
    process.exitCode = 1;
  };
}
