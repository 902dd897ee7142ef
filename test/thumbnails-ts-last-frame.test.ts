/**
 * A thumbnail whose time is the last frame's (every time past it is moved onto it: `--count` of
 * more than half the frames, or more than the frames, which the README says only warns) must come
 * out. In a 59.94 fps MPEG-TS the seek point's rounding into 90 kHz ticks moves the frame's
 * timestamp by a tick (11 us), past the 1 us of slack `gte(t, ...)` left it: no frame came out and
 * the input failed DATA_LOSS.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { thumbnailsKind } from '../coordinator/kinds/thumbnails.js';
import { runFfmpeg } from '../shared/ffmpeg.js';
import { thumbnailsProcessor } from '../worker/processors/thumbnails.js';
import { runKindInProcess, specOf } from './helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-thumbs-tslast-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('thumbnails of a 59.94 fps MPEG-TS at its last frame', () => {
  it('--count 100 of a 3 s capture (180 frames) makes all 100, the last one its last frame', async () => {
    const src = path.join(dir, 'capture5994.ts');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=64x48:rate=60000/1001:duration=3', '-c:v', 'libx264', '-preset', 'veryfast', '-g', '60', '-f', 'mpegts', src]);
    const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { count: 100, width: 32 }), [src], { dir });
    // Observed: [{ code: 'DATA_LOSS', message: 'capture5994.ts: no frame came out for thumb-00100.jpg' }], no thumbnails.
    expect(run.errors).toEqual([]);
    expect(run.outputs.filter((o) => o.name.startsWith('thumb-'))).toHaveLength(100);
  });

  it('--count 28 of 23 frames warns and still makes them all, as the README says', async () => {
    const src = path.join(dir, 'short5994.ts');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=64x48:rate=60000/1001', '-frames:v', '23', '-c:v', 'libx264', '-preset', 'veryfast', '-g', '12', '-f', 'mpegts', src]);
    const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { count: 28, width: 32 }), [src], { dir });
    // Observed: [{ code: 'DATA_LOSS', message: 'short5994.ts: no frame came out for thumb-00028.jpg' }].
    expect(run.errors).toEqual([]);
    expect(run.outputs).toHaveLength(28);
    expect(run.warnings).toEqual([{ input: 'short5994.ts', message: '28 thumbnails asked of a video of 23 frame(s): 5 or more show the same frame as another' }]);
  });
});
