import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['shared/**/*.test.ts', 'coordinator/**/*.test.ts', 'worker/**/*.test.ts', 'client/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: ['dist/**', 'node_modules/**', 'test/chaos/**', 'test/upgrade/**'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // Three files at a time on a 2-core machine: at two, for a fifth of the run one of them was
    // waiting (TTLs, reconnects, a 2 Mbit/s link) rather than computing, and a third file fills
    // that. Measured here: 906 s at two, 786-807 s at three (docs/performance.md, session 52).
    maxWorkers: 3,
    fileParallelism: true,
  },
});
