import { defineConfig } from 'vitest/config';

/** Suites that need root and namespaces (the test fleet, a test cluster, a dockerd) or the real runner binary. */
const E2E = [
  'test/e2e/**/*.test.ts',
  'test/testbed.test.ts',
  'test/images.test.ts',
  'test/gitlab/real-runner.test.ts',
  'src/kube/converge.test.ts',
];

export default defineConfig({
  test: {
    testTimeout: 120000,
    hookTimeout: 300000,
    // End-to-end suites share the test fleet and the machine's 2 cores: one file at a time.
    fileParallelism: false,
    reporters: ['default', './test/support/summary-reporter.ts'],
    projects: [
      // `npm run test:unit`: no root, no fleet; seconds.
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'scripts/**/*.test.ts'],
          exclude: E2E,
          sequence: { groupOrder: 0 },
        },
      },
      { extends: true, test: { name: 'e2e', include: E2E, sequence: { groupOrder: 1 } } },
    ],
  },
});
