import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['shared/**/*.test.ts', 'coordinator/**/*.test.ts', 'worker/**/*.test.ts', 'client/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: ['dist/**', 'node_modules/**', 'test/chaos/**', 'test/upgrade/**'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // Three files at a time on a 2-core machine: a quarter of the files' time is spent waiting (TTLs,
    // reconnects, a 2 Mbit/s link), and a third file fills it. Measured on 2 cores: 906 s at two,
    // 786-807 s at three, the CPU busy 1,400-1,480 s either way (so four would gain nothing).
    maxWorkers: 3,
    fileParallelism: true,
  },
});
