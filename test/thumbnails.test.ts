import { mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { thumbnailsKind } from '../coordinator/kinds/thumbnails.js';
import { runFfmpeg, runFfprobe } from '../shared/ffmpeg.js';
import { DENSE_GAP_SECONDS, grabBySeeking, grabInOnePass, thumbnailsProcessor, type GrabSpec } from '../worker/processors/thumbnails.js';
import { makeVideo, runKindInProcess, specOf } from './helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-thumbs-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Mean absolute difference (0..255) between two images of the same size. */
async function difference(a: Buffer | string, b: Buffer | string, width: number, height: number): Promise<number> {
  const [x, y] = await Promise.all([a, b].map((img) => sharp(img).resize(width, height, { fit: 'fill' }).removeAlpha().raw().toBuffer()));
  let sum = 0;
  for (let i = 0; i < x!.length; i++) sum += Math.abs(x![i]! - y![i]!);
  return sum / x!.length;
}

describe('thumbnails kind (plan -> process -> merge in-process)', () => {
  it('grabs one frame every T seconds across several subtasks, plus a sprite sheet and its WebVTT index', async () => {
    const src = await makeVideo(dir, 'clip.mp4', { duration: 6, width: 320, height: 180 });
    const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { every: 0.5, width: 96, sprite: '4x2' }), [src], { dir, slots: 2 });
    expect(run.errors).toEqual([]);
    expect(run.outcomes.length).toBeGreaterThan(1);
    const thumbs = run.outputs.filter((o) => o.name.startsWith('thumb-'));
    expect(thumbs.map((t) => t.name)).toEqual(Array.from({ length: 12 }, (_, i) => `thumb-${String(i + 1).padStart(5, '0')}.jpg`));
    for (const t of thumbs) expect(await sharp(t.path).metadata()).toMatchObject({ format: 'jpeg', width: 96, height: 54 });
    // Thumbnail 5 is the frame at 2.0 s: compare with that frame decoded directly.
    const ref = path.join(dir, 'ref.png');
    await runFfmpeg(['-y', '-ss', '2', '-i', src, '-frames:v', '1', ref]);
    const diffs = await Promise.all(thumbs.map((t) => difference(t.path, ref, 96, 54)));
    expect(diffs.indexOf(Math.min(...diffs))).toBe(4);

    const sheets = run.outputs.filter((o) => o.name.startsWith('sprite'));
    expect(sheets.map((s) => s.name)).toEqual(['sprite-1.jpg', 'sprite-2.jpg']);
    expect(await sharp(sheets[0]!.path).metadata()).toMatchObject({ width: 4 * 96, height: 2 * 54 });
    expect(await sharp(sheets[1]!.path).metadata()).toMatchObject({ width: 4 * 96, height: 54 });
    // Thumbnail 6 sits at column 2, row 2 of the first sheet.
    const cell = await sharp(sheets[0]!.path).extract({ left: 96, top: 54, width: 96, height: 54 }).png().toBuffer();
    const cellDiffs = await Promise.all(thumbs.map((t) => difference(cell, t.path, 96, 54)));
    expect(cellDiffs.indexOf(Math.min(...cellDiffs))).toBe(5);

    const vtt = await readFile(run.outputs.find((o) => o.name === 'thumbnails.vtt')!.path, 'utf8');
    const cues = vtt.split('\n\n').slice(1).map((c) => c.trim()).filter((c) => c);
    expect(vtt.startsWith('WEBVTT')).toBe(true);
    expect(cues).toHaveLength(12);
    expect(cues[5]).toBe('00:00:02.500 --> 00:00:03.000\nsprite-1.jpg#xywh=96,54,96,54');
    expect(cues[11]).toBe('00:00:05.500 --> 00:00:06.000\nsprite-2.jpg#xywh=288,0,96,54');
  });

  it('makes a sprite of fewer thumbnails than its columns as wide as they are (--count 5 --sprite 60x1 at 320 px: 1600 px, was refused as 60 columns)', async () => {
    const src = await makeVideo(dir, 'five.mp4', { duration: 2, width: 320, height: 180 });
    const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { count: 5, width: 320, sprite: '60x1' }), [src], { dir, slots: 2 });
    expect(run.errors).toEqual([]);
    const sheets = run.outputs.filter((o) => o.name.startsWith('sprite'));
    expect(sheets).toHaveLength(1);
    expect(await sharp(sheets[0]!.path).metadata()).toMatchObject({ width: 5 * 320, height: 180 });
  });

  it('takes N evenly spaced WebP thumbnails, upright for rotated sources', async () => {
    const src = await makeVideo(dir, 'portrait.mp4', { duration: 2, width: 160, height: 90, rotate: 90 });
    const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { count: 5, width: 45, format: 'webp' }), [src], { dir });
    expect(run.errors).toEqual([]);
    expect(run.outputs).toHaveLength(5);
    for (const t of run.outputs) expect(await sharp(t.path).metadata()).toMatchObject({ format: 'webp', width: 45, height: 80 });
    expect(run.warnings).toEqual([]);
  });

  it('warns when more thumbnails are asked than the video has frames, and still makes them all', async () => {
    // 1 s at 5 fps: 5 frames.
    const src = await makeVideo(dir, 'short.mp4', { duration: 1, width: 64, height: 48, fps: 5 });
    const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { count: 8, width: 32 }), [src], { dir });
    expect(run.errors).toEqual([]);
    expect(run.outputs).toHaveLength(8);
    expect(run.warnings).toEqual([{ input: 'short.mp4', message: '8 thumbnails asked of a video of 5 frame(s): 3 or more show the same frame as another' }]);
  });

  it('keeps the thumbnails of inputs with the same base name apart (clip.mp4, clip.mkv, clip.mp4.mkv, other.mp4)', async () => {
    const sub = await mkdtemp(path.join(dir, 'same-base-'));
    const a = await makeVideo(sub, 'clip.mp4', { duration: 1, width: 64, height: 48 });
    const b = await makeVideo(sub, 'clip.mkv', { duration: 1, width: 96, height: 48 });
    const c = await makeVideo(sub, 'other.mp4', { duration: 1, width: 64, height: 48 });
    const d = await makeVideo(sub, 'clip.mp4.mkv', { duration: 1, width: 64, height: 48 });
    const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { count: 2, width: 32 }), [a, b, c, d], { dir });
    expect(run.errors).toEqual([]);
    expect(run.outputs.map((o) => o.name).sort()).toEqual(
      ['clip.mkv', 'clip.mp4', 'clip.mp4.mkv', 'other'].flatMap((p) => [`${p}-thumb-00001.jpg`, `${p}-thumb-00002.jpg`]),
    );
    // Each is its own input's frame: 64x48 and 96x48 sources give different heights at 32 px wide.
    for (const o of run.outputs) expect((await sharp(o.path).metadata()).height).toBe(o.source === 'clip.mkv' ? 16 : 24);
  });

  it('sizes thumbnails and sprites to the displayed aspect of non-square pixels, with square pixels', async () => {
    // 360x288 stored with 64:45 pixels displays as 512x288 (16:9, an anamorphic PAL frame).
    const src = path.join(dir, 'anamorphic.mp4');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=360x288:rate=25:duration=2', '-vf', 'setsar=64/45', '-c:v', 'libx264', '-preset', 'ultrafast', src]);
    const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { count: 2, width: 320, sprite: '2x1' }), [src], { dir });
    expect(run.errors).toEqual([]);
    const thumbs = run.outputs.filter((o) => o.name.startsWith('thumb-'));
    expect(thumbs).toHaveLength(2);
    for (const t of thumbs) {
      expect(await sharp(t.path).metadata()).toMatchObject({ width: 320, height: 180 });
      const sar = (await runFfprobe<{ streams: Array<{ sample_aspect_ratio?: string }> }>(['-f', 'image2', '-show_entries', 'stream=sample_aspect_ratio', '-i', t.path])).streams[0]!.sample_aspect_ratio;
      expect(['1:1', '0:1', undefined]).toContain(sar);
    }
    expect(await sharp(run.outputs.find((o) => o.name === 'sprite.jpg')!.path).metadata()).toMatchObject({ width: 640, height: 180 });
  });

  it('shows the frame at each time of an MP4 trimmed by stream copy, not the frames its edit list hides', async () => {
    const whole = await makeVideo(dir, 'untrimmed.mp4', { duration: 4, gop: 25, audioChannels: 1 });
    const src = path.join(dir, 'trimmed.mp4');
    // Stream copy starts at the keyframe at 1.0 s; the edit list hides the 0.3 s before 1.3 s.
    await runFfmpeg(['-y', '-v', 'error', '-ss', '1.3', '-i', whole, '-c', 'copy', src]);
    const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { every: 1, width: 96 }), [src], { dir });
    expect(run.errors).toEqual([]);
    const thumbs = run.outputs.filter((o) => o.name.startsWith('thumb-'));
    expect(thumbs).toHaveLength(3);
    // Thumbnail 2 is the frame shown at 1.0 s: decoded directly it is nearer than its neighbours 0.3 s away.
    const refs = await Promise.all(['0.7', '1', '1.3'].map(async (t) => {
      const ref = path.join(dir, `trimmed-${t}.png`);
      await runFfmpeg(['-y', '-v', 'error', '-ss', t, '-i', src, '-frames:v', '1', ref]);
      return ref;
    }));
    const diffs = await Promise.all(refs.map((r) => difference(thumbs[1]!.path, r, 96, 72)));
    expect(diffs.indexOf(Math.min(...diffs))).toBe(1);
  });

  it('refuses thumbnails every T seconds that would pass the limit, naming the input and the count', async () => {
    const src = path.join(dir, 'long.mp4');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=32x32:rate=1:duration=401', '-c:v', 'libx264', '-preset', 'ultrafast', src]);
    const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { every: 0.04, width: 16 }), [src], { dir });
    expect(run.outputs).toEqual([]);
    expect(run.errors).toEqual([{ input: 'long.mp4', code: 'INVALID_ARGUMENT', message: 'long.mp4: every 0.04 s over 401 s = 10025 thumbnails, over the limit of 10000' }]);
  });

  it('refuses a sprite sheet taller than WebP and JPEG hold (a portrait video), naming the input and the rows that fit', async () => {
    // 9:16: thumbnails 320 px wide are 568 px tall; 30 rows would make a sheet 17,040 px tall.
    const src = await makeVideo(dir, 'tall.mp4', { duration: 2, width: 90, height: 160 });
    const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { count: 30, width: 320, format: 'webp', sprite: '1x30' }), [src], { dir });
    expect(run.outputs).toEqual([]);
    expect(run.errors).toEqual([{ input: 'tall.mp4', code: 'INVALID_ARGUMENT', message: expect.stringMatching(/^tall\.mp4: a sprite sheet of 30 rows of 320x568 px thumbnails would be 17040 px tall, over the 16383-pixel limit: ask fewer rows \(--sprite 1x28\) or a smaller --width \(\d+ fits\)$/) }]);
  });

  it('refuses thumbnails taller than their format or ffmpeg can make (a very tall video), naming the input and a width that fits', async () => {
    const src = await makeVideo(dir, 'sliver.mp4', { duration: 1, width: 16, height: 480 });
    const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { count: 1, width: 4096 }), [src], { dir });
    // Before, a worker ran it and ffmpeg's own words came back: "Picture size 4096x122880 is invalid".
    expect(run.outcomes).toEqual([]);
    expect(run.errors).toEqual([{ input: 'sliver.mp4', code: 'INVALID_ARGUMENT', message: expect.stringMatching(/^sliver\.mp4: its 4096x122880 px thumbnails would be larger than JPEG or ffmpeg can make: ask a smaller --width \(\d+ fits\)$/) }]);
  });

  it('reports a file without video against that input', async () => {
    const wav = path.join(dir, 'tone.wav');
    await runFfmpeg(['-y', '-f', 'lavfi', '-i', 'sine=duration=1', wav]);
    const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { count: 3 }), [wav], { dir });
    expect(run.outputs).toEqual([]);
    expect(run.errors).toEqual([{ input: 'tone.wav', code: 'INVALID_ARGUMENT', message: 'tone.wav: has no video stream' }]);
  });
});

describe('thumbnails: one decoding pass for dense times gives the frames one seek each gives', () => {
  /** Grabs `times` both ways into folders of their own and expects the same files, byte for byte. */
  async function bothWays(src: string, name: string, times: number[], format: GrabSpec['format'] = 'jpeg'): Promise<void> {
    const work = path.join(dir, `${name}-work`);
    const [seeked, passed] = [path.join(dir, `${name}-seek`), path.join(dir, `${name}-pass`)];
    await Promise.all([work, seeked, passed].map((d) => mkdir(d, { recursive: true })));
    const ext = format === 'jpeg' ? 'jpg' : 'webp';
    const spec = (to: string): GrabSpec => ({ input: src, times, outputs: times.map((_, i) => path.join(to, `t${i}.${ext}`)), width: 64, height: 36, format, threads: 1, source: name });
    await grabBySeeking(spec(seeked));
    expect(await grabInOnePass(spec(passed), work)).toBe(true);
    for (let i = 0; i < times.length; i++) {
      const [a, b] = await Promise.all([seeked, passed].map((d) => readFile(path.join(d, `t${i}.${ext}`))));
      expect(a!.equals(b!), `${name}: the frame for ${times[i]} s`).toBe(true);
    }
    // The pass leaves nothing else behind in its work folder.
    expect(await readdir(work)).toEqual([]);
  }

  it('at, between and closer than the frames of a 25 fps clip, up to its last frame', async () => {
    const src = await makeVideo(dir, 'cfr.mp4', { duration: 3, width: 128, height: 72, gop: 25 });
    // Frames every 0.04 s: exactly on them, just after, several times within one frame, and the last frame (2.96 s) twice.
    await bothWays(src, 'cfr', [0, 0.02, 0.04, 0.041, 0.05, 0.06, 0.3, 0.31, 1, 1.013, 1.04, 2.5, 2.96, 2.96]);
    await bothWays(src, 'cfr-webp', [0.5, 0.52, 0.9, 1.5], 'webp');
  });

  it('in one decode split into branches of 48 times (130 times), a frame shared across a branch boundary', async () => {
    const src = await makeVideo(dir, 'branches.mp4', { duration: 7, width: 128, height: 72, gop: 25 });
    // 0.045 s apart over 25 fps frames: some times share a frame; times 48 and 49 (the first two
    // branches' last and first) lie within one frame.
    const times = Array.from({ length: 130 }, (_, i) => Math.round(i * 0.045 * 1000) / 1000);
    times[48] = times[47]! + 0.001;
    await bothWays(src, 'branches', times);
  });

  it('still seeks for times further apart than a pass is worth, and finds their frames', async () => {
    const every = DENSE_GAP_SECONDS + 0.5;
    const src = await makeVideo(dir, 'sparse.mp4', { duration: 4 * every, width: 128, height: 72 });
    const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { every, width: 64 }), [src], { dir });
    expect(run.errors).toEqual([]);
    const thumbs = run.outputs.filter((o) => o.name.startsWith('thumb-'));
    expect(thumbs).toHaveLength(4);
    // Thumbnail 3 is the frame at 2 x every: compare with that frame decoded directly.
    const ref = path.join(dir, 'sparse-ref.png');
    await runFfmpeg(['-y', '-v', 'error', '-ss', String(2 * every), '-i', src, '-frames:v', '1', ref]);
    const diffs = await Promise.all(thumbs.map((t) => difference(t.path, ref, 64, 36)));
    expect(diffs.indexOf(Math.min(...diffs))).toBe(2);
  });

  it('across the rate changes of a VFR source and the edit list of a stream-copied MP4', async () => {
    const vfr = await makeVideo(dir, 'vfr.mkv', { duration: 4, width: 128, height: 72, vfr: true });
    // 24 fps for a second, then 60 fps for one, and again.
    await bothWays(vfr, 'vfr', Array.from({ length: 60 }, (_, i) => 0.7 + i * 0.013));
    const whole = await makeVideo(dir, 'to-trim.mp4', { duration: 4, width: 128, height: 72, gop: 25 });
    const trimmed = path.join(dir, 'trimmed-pass.mp4');
    // Starts at the keyframe at 1.0 s; the edit list hides what comes before 1.3 s.
    await runFfmpeg(['-y', '-v', 'error', '-ss', '1.3', '-i', whole, '-c', 'copy', trimmed]);
    await bothWays(trimmed, 'trimmed', [0, 0.01, 0.2, 0.25, 0.5, 0.75, 1, 1.25, 1.5]);
  });
});
