import { defineConfig } from 'vitest/config';

/**
 * `npm run test:timed`: tests whose bound is a time (how long the coordinator's event loop may
 * stall), kept out of the default suite: run them alone on a quiet machine, as the benchmarks are
 * (docs/performance.md). A shared, loaded host stretches what they measure past their bounds.
 */
export default defineConfig({
  test: {
    include: ['test/timed/**/*.test.ts'],
    env: { TESSERA_FAIL_ON_CRASH: '1' },
    testTimeout: 120_000,
    hookTimeout: 60_000,
    fileParallelism: false,
  },
});
