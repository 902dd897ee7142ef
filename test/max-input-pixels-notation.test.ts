/**
 * TESSERA_MAX_INPUT_PIXELS is read with Number() where images are opened (envInt): "2e9" has always
 * been a limit of 2,000,000,000 pixels, a whole number sharp takes. The start-up check added for it
 * refuses such a value as "not a whole number": a coordinator or worker configured so no longer starts.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maxInputPixels } from '../shared/media/image-pipeline.js';
import { runCli } from './helpers/cluster.js';
import { cleanEnv } from './helpers/process-logs.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-max-pixels-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('TESSERA_MAX_INPUT_PIXELS in exponent notation', () => {
  it('"2e9" is the limit the image path uses, and the coordinator starts with it', async () => {
    const before = process.env['TESSERA_MAX_INPUT_PIXELS'];
    process.env['TESSERA_MAX_INPUT_PIXELS'] = '2e9';
    try {
      expect(maxInputPixels()).toBe(2_000_000_000);
    } finally {
      if (before === undefined) delete process.env['TESSERA_MAX_INPUT_PIXELS'];
      else process.env['TESSERA_MAX_INPUT_PIXELS'] = before;
    }
    const r = await runCli(['coordinator', '--listen', '127.0.0.1:0', '--http', 'off', '--data-dir', path.join(dir, 'data'), '--print-config'], {
      env: { ...cleanEnv(), TESSERA_MAX_INPUT_PIXELS: '2e9' },
      timeoutMs: 30_000,
    });
    // Observed: exit 2, "TESSERA_MAX_INPUT_PIXELS=2e9: must be a whole number of pixels from 1 to 9007199254740991".
    expect({ code: r.code, stderr: r.stderr.trim() }).toEqual({ code: 0, stderr: '' });
  });
});
