import { defineConfig } from 'vitest/config';
import LongestFirstSequencer from './test/support/e2e-sequencer.js';

/**
 * Checks the whole machine against itself before and after (sysctls the kubelets change, iptables, links): it must
 * run while no other slot's fleet comes up or goes down, so it runs alone, after the parallel suites.
 */
const E2E_ALONE = [
  'test/testbed.test.ts',
  // sets this machine's net.ipv4.ip_forward to 0 and to 1 (restored after)
  'test/machine-forwarding.test.ts',
];

/** Suites that need root and namespaces (the test fleet, a test cluster, a dockerd) or the real runner binary. */
const E2E = [
  'test/e2e/**/*.test.ts',
  'test/testbed.test.ts',
  'test/machine-forwarding.test.ts',
  'test/images.test.ts',
  'test/gitlab/real-runner.test.ts',
  'src/kube/cluster-converge.test.ts',
];

export default defineConfig({
  test: {
    testTimeout: 120000,
    hookTimeout: 300000,
    // One file at a time unless a project says otherwise (the e2e-alone suites check the whole machine).
    fileParallelism: false,
    reporters: ['default', './test/support/summary-reporter.ts'],
    // e2e suites longest first (their measured times), so the three workers end together.
    sequence: { sequencer: LongestFirstSequencer },
    projects: [
      // `npm run test:unit`: no root, no fleet; seconds.
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'scripts/**/*.test.ts'],
          exclude: E2E,
          // No unit file starts a daemon or binds a fixed port (fake nodes, in-memory GitLab, temp folders), so they
          // run in parallel, and in the e2e suites' group: vitest queues the e2e suites first (projects by name), so
          // the unit files fill the workers the last e2e suites leave idle. The same group and worker count on
          // purpose: a group of its own would come first, and at the change of groups vitest hands out worker ids
          // (VITEST_POOL_ID, which picks an e2e suite's fleet slot) that the last group's workers still hold, so
          // two suites came up on one slot.
          fileParallelism: true,
          maxWorkers: 3,
          sequence: { groupOrder: 1 },
        },
      },
      // Three suites at a time, each on its own test fleet slot (test/support/e2e-slot.ts): most of an e2e suite's
      // time is waiting on rollouts, pulls and jobs, so three overlap on this machine's 2 cores (the whole npm test:
      // 661 s, longest suites first; four at a time made every suite slower, the CPU being saturated).
      {
        extends: true,
        test: {
          name: 'e2e',
          include: E2E,
          exclude: E2E_ALONE,
          fileParallelism: true,
          maxWorkers: 3,
          setupFiles: ['test/support/e2e-slot.ts'],
          globalSetup: ['test/support/e2e-global.ts'],
          sequence: { groupOrder: 1 },
        },
      },
      {
        extends: true,
        test: {
          name: 'e2e-alone',
          include: E2E_ALONE,
          globalSetup: ['test/support/e2e-global.ts'],
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
