/**
 * Thumbnails of FLV and AVI sources whose H.264 / MPEG-4 video has B-frames (an OBS or RTMP
 * recording, a DivX/XviD AVI): each thumbnail must be the frame on screen at its time (the last at
 * or before it), as decoding the file from its start shows it. Input seeks near the start of these containers land
 * past the first keyframe (FLV) or on frames without timestamps (AVI).
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { thumbnailsKind } from '../../coordinator/kinds/thumbnails.js';
import { runFfmpeg } from '../../shared/ffmpeg.js';
import { thumbnailsProcessor } from '../../worker/processors/thumbnails.js';
import { runKindInProcess, specOf } from '../helpers/media.js';

let dir: string;
/** The source's pictures as made (testsrc2 at 25 fps, 6 s), tiny: frame n is shown at n / 25 s. */
let truth: Buffer[];
const SOURCE = 'testsrc2=size=96x64:rate=25:duration=6';
const tiny = (f: string): Promise<Buffer> => sharp(f).resize(48, 32, { fit: 'fill' }).removeAlpha().raw().toBuffer();

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-thumbs-bf-'));
  const fdir = await mkdtemp(path.join(dir, 'truth-'));
  await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', SOURCE, path.join(fdir, '%05d.png')]);
  truth = await Promise.all((await readdir(fdir)).sort().map((f) => tiny(path.join(fdir, f))));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Index of the source picture nearest to `thumb`. */
async function shownFrame(thumb: string): Promise<number> {
  const t = await tiny(thumb);
  const d = truth.map((f) => f.reduce((s, v, i) => s + Math.abs(v - t[i]!), 0));
  return d.indexOf(Math.min(...d));
}

async function thumbsOf(src: string, params: Record<string, unknown>): Promise<{ errors: unknown[]; frames: number[] }> {
  const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', params), [src], { dir });
  const thumbs = run.outputs.filter((o) => o.name.startsWith('thumb-')).sort((a, b) => a.name.localeCompare(b.name));
  return { errors: run.errors, frames: await Promise.all(thumbs.map((t) => shownFrame(t.path))) };
}

/** Frame on screen at each time (the last at or before it), every `every` s over 6 s at 25 fps. */
const expected = (every: number): number[] => Array.from({ length: Math.ceil(6 / every) }, (_, i) => Math.floor(i * every * 25 + 1e-9));

describe('thumbnails of an H.264 FLV with B-frames', () => {
  it('makes the thumbnail at 0 s (the first frame) instead of failing DATA_LOSS "no frame came out"', async () => {
    const src = path.join(dir, 'bframes.flv');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', SOURCE, '-c:v', 'libx264', '-preset', 'veryfast', '-bf', '3', '-g', '50', src]);
    const got = await thumbsOf(src, { every: 2.5, width: 48 });
    // Observed: [{ code: 'DATA_LOSS', message: 'bframes.flv: no frame came out for thumb-00001.jpg' }], no thumbnails.
    expect(got.errors).toEqual([]);
    expect(got.frames).toEqual(expected(2.5)); // [0, 62, 125]
  });

  it('with an audio track (as OBS records it): dense thumbnails in the first 2 s are not the keyframe at 2 s', async () => {
    const src = path.join(dir, 'obs.flv');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', SOURCE, '-f', 'lavfi', '-i', 'sine=duration=6', '-c:v', 'libx264', '-preset', 'veryfast', '-bf', '2', '-g', '50', '-c:a', 'aac', src]);
    const got = await thumbsOf(src, { every: 0.5, width: 48 });
    expect(got.errors).toEqual([]);
    // The audio starts a frame or so before the video: allow a frame either way. Observed:
    // [50, 50, 50, 50, 50, 62, ...]: 0, 0.5, 1 and 1.5 s all show the keyframe at 2 s.
    const firstFour = got.frames.slice(0, 4);
    expect(firstFour.map((f, i) => Math.abs(f - Math.floor(i * 12.5)) <= 1), `frames shown: ${firstFour.join(', ')}`).toEqual([true, true, true, true]);
  });
});

describe('thumbnails of an AVI with B-frames (DivX/XviD-style MPEG-4, H.264)', () => {
  for (const [name, codec] of [['xvid.avi', ['-c:v', 'mpeg4', '-bf', '2', '-g', '50']], ['h264.avi', ['-c:v', 'libx264', '-preset', 'veryfast', '-bf', '3', '-g', '50']]] as const) {
    it(`${name}: each thumbnail is the frame at its time`, async () => {
      const src = path.join(dir, name);
      await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', SOURCE, ...codec, src]);
      const got = await thumbsOf(src, { every: 0.5, width: 48 });
      expect(got.errors).toEqual([]);
      // Observed (xvid.avi): [87, 86, 86, 37, 49, 62, ...] (87 = 3.48 s); (h264.avi): [50, 50, 50, 48, 61, 73, ...].
      expect(got.frames).toEqual(expected(0.5));
    });
  }
});
