import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

/**
 * `npm run test:extended`: the integration tests kept out of the default suite for their length
 * (fault injection, hostile and wild inputs, one regression test per edge case found), with the
 * default suite's settings. CI runs them after the default suite.
 */
export default defineConfig({
  test: {
    ...base.test,
    include: ['test/extended/**/*.test.ts'],
    exclude: ['dist/**', 'node_modules/**'],
  },
});
