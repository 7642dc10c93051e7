// Vitest settings: long timeouts for the real test fleet, files one at a time (they share ports and processes).
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: { testTimeout: 120000, hookTimeout: 300000, fileParallelism: false },
});
