// Global setup of the end-to-end projects: the machine's one-time test-fleet setup (packages, the pi users, the
// sudo rule, mount points) runs once here, before parallel workers would race each other's useradd.
import { readFileSync } from 'node:fs';
import { ensureHost } from '../../scripts/testbed/host.js';
import { rootProblem } from './requireRoot.js';

const IP_FORWARD = '/proc/sys/net/ipv4/ip_forward';

export default async function setup(): Promise<() => void> {
  // Where root suites cannot run, each file says so itself (and fails under CI): nothing to prepare here.
  if (rootProblem() !== undefined) return () => {};
  await ensureHost((msg) => console.error(`[e2e setup] ${msg}`));
  // The suites must leave this machine as they found it: a dockerd started in its own network namespace turns
  // forwarding on for good (and then every later run tests a machine that no longer looks fresh).
  const before = readFileSync(IP_FORWARD, 'utf8').trim();
  return () => {
    const after = readFileSync(IP_FORWARD, 'utf8').trim();
    if (after === before) return;
    // A teardown that throws is only printed by vitest: the exit code is what fails the run.
    console.error(
      `FAIL: the end-to-end suites changed this machine's net.ipv4.ip_forward from ${before} to ${after}`,
    );
    process.exitCode = 1;
  };
}
