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
import { thumbnailsKind } from '../../coordinator/kinds/thumbnails.js';
import { runFfmpeg } from '../../shared/ffmpeg.js';
import { thumbnailsProcessor } from '../../worker/processors/thumbnails.js';
import { runKindInProcess, specOf } from '../helpers/media.js';

let dir: string;
let tall: string;
let veryTall: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-thumbs-rows-'));
  // 64x1280 (1:20): at --width 1000 each JPEG thumbnail is 1000x20000, which JPEG holds.
  tall = path.join(dir, 'tall.mp4');
  await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'color=gray:size=64x1280:rate=5:duration=1', '-c:v', 'libx264', '-preset', 'ultrafast', tall]);
  // 4x2400 (1:600): two rows do not fit even at the narrowest width (16 px: 9600 px a row).
  veryTall = path.join(dir, 'very-tall.mp4');
  await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'color=gray:size=4x2400:rate=5:duration=1', '-c:v', 'libx264', '-preset', 'ultrafast', veryTall]);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const plan = (src: string, sprite: string, width: number) => runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { count: 2, width, sprite }), [src], { dir });

/** Each way out the refusal names, as [sprite, width] (what it leaves as asked, kept). */
function advised(message: string, sprite: string, width: number): [string, number][] {
  const ways: [string, number][] = [];
  for (const m of message.matchAll(/--sprite (\d+x\d+) --width (\d+)\)/g)) ways.push([m[1]!, Number(m[2])]);
  for (const m of message.matchAll(/fewer rows \(--sprite (\d+x\d+)\)/g)) ways.push([m[1]!, width]);
  for (const m of message.matchAll(/--width \((\d+) fits\)/g)) ways.push([sprite, Number(m[1])]);
  return ways;
}

describe('a sprite sheet too tall', () => {
  it('is refused with advice that, each way followed, is taken (a width that fits where one row is too tall; 16 px at the least)', async () => {
    for (const [src, width] of [[tall, 1000], [veryTall, 100]] as const) {
      const first = await plan(src, '1x2', width);
      expect(first.errors).toHaveLength(1);
      const message = first.errors[0]!.message;
      expect(message).toMatch(/16383/);
      const ways = advised(message, '1x2', width);
      // Before: "ask fewer rows (--sprite 1x1)" where one row was already too tall, refused again with
      // the same advice (review T); then "--width (15 fits)", under the 16 px least, for 1:600 (review M).
      expect(ways.length, message).toBeGreaterThan(0);
      for (const [sprite, w] of ways) {
        const again = await plan(src, sprite, w);
        expect(again.errors.map((e) => e.message), `followed "--sprite ${sprite} --width ${w}" of: ${message}`).toEqual([]);
      }
    }
  });
});
