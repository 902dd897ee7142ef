/**
 * A job whose subtasks are handed out as they are made (a huge image's strips, cut as the
 * coordinator decodes it) counts those not made yet: its progress was the average of the strips
 * known so far, 95% once the first two of nine had finished, and stayed there (it never goes back)
 * for the rest of a six-minute job (review tiles).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateImageParams } from '../shared/kinds/image-params.js';
import { tileConfig } from '../shared/media/tile-config.js';
import { makeSource } from '../test/tiles-helpers.js';
import { allTiles, planTiles } from './kinds/image-tiles.js';
import { jobProgress, type JobRecord, type SubtaskRecord } from './model.js';

const job = (): JobRecord => ({ id: 'j', state: 'running', phase: 0 }) as unknown as JobRecord;
const strip = (group: string, count: number, done: boolean): SubtaskRecord =>
  ({ phase: 0, state: done ? 'succeeded' : 'running', progress: done ? 1 : 0, of: { group, count } }) as unknown as SubtaskRecord;

describe('job progress while subtasks are still being made', () => {
  it('counts the strips not cut yet', () => {
    // Two of nine strips cut and done: 2/9 of the 95% the subtasks carry, not 95%.
    expect(jobProgress(job(), [strip('big.jpg', 9, true), strip('big.jpg', 9, true)])).toBeCloseTo((2 / 9) * 0.95, 5);
  });

  it('adds up several groups and the subtasks of no group', () => {
    const other = { phase: 0, state: 'succeeded', progress: 1 } as unknown as SubtaskRecord;
    // 1 + 1 done of (2 of a's 4) + (1 of b's 3) + 1 other = 4 + 3 + 1 = 8.
    const value = jobProgress(job(), [strip('a', 4, true), strip('a', 4, false), strip('b', 3, true), other]);
    expect(value).toBeCloseTo((3 / 8) * 0.95, 5);
  });

  it('once every strip is made, is the plain average', () => {
    const all = Array.from({ length: 3 }, (_, i) => strip('c', 3, i < 2));
    expect(jobProgress(job(), all)).toBeCloseTo((2 / 3) * 0.95, 5);
  });
});

describe('a huge image cut into strips as it is decoded', () => {
  it('says of each strip how many its input will have', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-progress-groups-'));
    try {
      const src = await makeSource(path.join(dir, 'big.png'), 400, 600);
      // A resize: the strips are cut from the decode, the first now and the others `later`.
      const planning = await planTiles({
        input: { name: 'big.png', path: src, size: 1, sha256: '' },
        params: validateImageParams({ width: 300 }),
        workDir: path.join(dir, 'job'),
        slots: 2,
        signal: new AbortController().signal,
        config: { ...tileConfig({}), maxStripPixels: 20_000 },
      });
      expect(planning.later).toBeDefined();
      const strips = await allTiles(planning);
      expect(strips.length).toBeGreaterThan(2);
      for (const s of strips) expect(s.of).toEqual({ group: 'big.png', count: strips.length });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
