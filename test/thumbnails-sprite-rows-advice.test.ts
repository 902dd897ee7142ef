/**
 * A sprite sheet refused as taller than 16383 px was told to "ask fewer rows (--sprite Cx1)" even
 * where a single row of its thumbnails is already taller than that (a tall video, JPEG thumbnails,
 * which may be up to 65535 px): the advice was refused again, with the same advice, whatever the
 * user did with --sprite (review T). Where one row is too tall, it names a width that fits.
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
let src: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-thumbs-rows-'));
  // 64x1280 (1:20): at --width 1000 each JPEG thumbnail is 1000x20000, which JPEG holds.
  src = path.join(dir, 'tall.mp4');
  await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'color=gray:size=64x1280:rate=5:duration=1', '-c:v', 'libx264', '-preset', 'ultrafast', src]);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const plan = (sprite: string, width = 1000) => runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { count: 2, width, sprite }), [src], { dir });

describe('a sprite sheet too tall for even one row', () => {
  it('the advice given is not refused again when followed: a width that fits, not a --sprite grid', async () => {
    const first = await plan('1x2');
    expect(first.errors).toHaveLength(1);
    const message = first.errors[0]!.message;
    expect(message).toMatch(/16383/);
    // Before: "ask fewer rows (--sprite 1x1) or a smaller --width", and --sprite 1x1 got the same.
    expect(message).not.toMatch(/--sprite/);
    const width = Number(/--width \((\d+) fits\)/.exec(message)?.[1]);
    expect(width).toBeGreaterThan(0);
    const again = await plan('1x2', width);
    expect(again.errors.map((e) => e.message), `followed the advice "--width ${width}" of: ${message}`).toEqual([]);
  });
});
