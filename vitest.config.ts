import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 120000,
    hookTimeout: 300000,
    // End-to-end suites share the test fleet and the machine's 2 cores: one file at a time.
    fileParallelism: false,
    reporters: ['default', './test/support/summary-reporter.ts'],
  },
});
