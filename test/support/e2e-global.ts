// Global setup of the end-to-end projects: the machine's one-time test-fleet setup (packages, the pi users, the
// sudo rule, mount points) runs once here, before parallel workers would race each other's useradd.
import { ensureHost } from '../../scripts/testbed/host.js';
import { rootProblem } from './requireRoot.js';

export default async function setup(): Promise<void> {
  // Where root suites cannot run, each file says so itself (and fails under CI): nothing to prepare here.
  if (rootProblem() !== undefined) return;
  await ensureHost((msg) => console.error(`[e2e setup] ${msg}`));
}
