import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

/**
 * `npm run test:timed`: tests whose bound is a time (how long the coordinator's event loop may
 * stall), kept out of the default suite: run them alone on a quiet machine, as the benchmarks are
 * (docs/performance.md). A shared, loaded host stretches what they measure past their bounds.
 */
export default defineConfig({
  test: {
    ...base.test,
    include: ['test/timed/**/*.test.ts'],
    exclude: ['dist/**', 'node_modules/**'],
    fileParallelism: false,
  },
});
