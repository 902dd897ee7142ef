import { defineConfig } from 'vitest/config';

/** `npm run test:chaos`: the bounded chaos run (under 5 minutes), kept out of the default suite. */
export default defineConfig({
  test: {
    include: ['test/chaos/**/*.test.ts'],
    env: { TESSERA_FAIL_ON_CRASH: '1' },
    testTimeout: 290_000,
    hookTimeout: 120_000,
  },
});
