import { defineConfig } from 'vitest/config';

/**
 * `npm run test:upgrade`: upgrades with the real binaries of earlier releases, built from the git
 * history (a few minutes the first time), kept out of the default suite.
 */
export default defineConfig({
  test: {
    include: ['test/upgrade/**/*.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 900_000,
    fileParallelism: false,
  },
});
