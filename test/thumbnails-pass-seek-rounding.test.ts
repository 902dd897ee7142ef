/**
 * The one decoding pass that dense thumbnails take must give, for a time that falls exactly on a
 * frame, that frame, as `ffmpeg -ss T -i src -frames:v 1` (and the seeking path) gives it: the
 * pass's seek to the first time is rounded into the stream's time base, which moves every later
 * frame's timestamp by up to half a tick (39 us at MP4's 1/12800), more than the 1 us of slack it
 * had: the frame after was taken.
 */
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { thumbnailsKind } from '../coordinator/kinds/thumbnails.js';
import { runFfmpeg } from '../shared/ffmpeg.js';
import { grabBySeeking, grabInOnePass, thumbnailsProcessor, type GrabSpec } from '../worker/processors/thumbnails.js';
import { makeVideo, runKindInProcess, specOf } from './helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-thumbs-round-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const tiny = (f: string): Promise<Buffer> => sharp(f).resize(32, 24, { fit: 'fill' }).removeAlpha().raw().toBuffer();
const distance = async (a: string, b: string): Promise<number> => {
  const [x, y] = await Promise.all([tiny(a), tiny(b)]);
  return x.reduce((s, v, i) => s + Math.abs(v - y[i]!), 0);
};

describe('dense thumbnails at times exactly on a frame', () => {
  it('--count 3 of a 2 s 25 fps MP4: thumbnail 2 (1.0 s) is the frame at 1.0 s, not the one after', async () => {
    const src = await makeVideo(dir, 'two.mp4', { duration: 2, width: 96, height: 64 });
    // count 3 over 2 s: times 1/3, 1 and 5/3 s, 2/3 s apart: one decoding pass from 1/3 s.
    const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { count: 3, width: 48 }), [src], { dir });
    expect(run.errors).toEqual([]);
    const second = run.outputs.find((o) => o.name === 'thumb-00002.jpg')!;
    const refs = await Promise.all(['1', '1.04'].map(async (t) => {
      const ref = path.join(dir, `ref-${t}.png`);
      await runFfmpeg(['-y', '-v', 'error', '-ss', t, '-i', src, '-frames:v', '1', ref]);
      return ref;
    }));
    const [atTime, next] = await Promise.all(refs.map((r) => distance(second.path, r)));
    // Observed: the thumbnail is the frame at 1.04 s (frame 26), not the one at 1.0 s (frame 25).
    expect(atTime, 'nearer the frame at 1.0 s than the one at 1.04 s').toBeLessThan(next!);
  });

  it('grabInOnePass gives the same files as grabBySeeking for times 1/3, 1 and 5/3 s', async () => {
    const src = await makeVideo(dir, 'pass.mp4', { duration: 2, width: 96, height: 64 });
    const times = [1 / 3, 1, 5 / 3];
    const [seeked, passed, work] = ['seek', 'pass', 'work'].map((d) => path.join(dir, d));
    await Promise.all([seeked, passed, work].map((d) => mkdir(d!, { recursive: true })));
    const spec = (to: string): GrabSpec => ({ input: src, times, outputs: times.map((_, i) => path.join(to, `t${i}.jpg`)), width: 48, height: 32, format: 'jpeg', threads: 1, source: 'pass.mp4' });
    await grabBySeeking(spec(seeked!));
    expect(await grabInOnePass(spec(passed!), work!)).toBe(true);
    const same = await Promise.all(times.map(async (_, i) => (await readFile(path.join(seeked!, `t${i}.jpg`))).equals(await readFile(path.join(passed!, `t${i}.jpg`)))));
    // Observed: [true, false, true]: the pass took the frame at 1.04 s for 1.0 s.
    expect(same).toEqual([true, true, true]);
  });
});
