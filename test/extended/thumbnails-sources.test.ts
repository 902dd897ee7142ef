/**
 * Thumbnails of MPEG-TS/PS sources (their demuxers seek to any packet, not to a keyframe: the next
 * keyframe was shown, or after the last one nothing came out), of a video that starts after its
 * container (times count from the file's start, as `ffmpeg -ss` and players count them), and the
 * WebVTT index of a several-video job whose names need escaping in a URL.
 */
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { thumbnailsKind } from '../../coordinator/kinds/thumbnails.js';
import { runFfmpeg } from '../../shared/ffmpeg.js';
import { thumbnailsProcessor } from '../../worker/processors/thumbnails.js';
import { makeVideo, runKindInProcess, specOf } from '../helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-thumbs-g-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Every decoded frame of `src`'s video as a tiny raw picture, in presentation order. */
async function decodedFrames(src: string, name: string): Promise<Buffer[]> {
  const fdir = await mkdtemp(path.join(dir, `${name}-frames-`));
  await runFfmpeg(['-y', '-v', 'error', '-i', src, '-map', '0:v:0', '-vsync', 'passthrough', path.join(fdir, '%05d.png')]);
  return Promise.all((await readdir(fdir)).sort().map((f) => tiny(path.join(fdir, f))));
}
const tiny = (f: string): Promise<Buffer> => sharp(f).resize(32, 24, { fit: 'fill' }).removeAlpha().raw().toBuffer();
/** Index of the decoded frame nearest to `thumb`. */
async function nearestFrame(thumb: string, frames: Buffer[]): Promise<number> {
  const t = await tiny(thumb);
  const d = frames.map((f) => f.reduce((s, v, i) => s + Math.abs(v - t[i]!), 0));
  return d.indexOf(Math.min(...d));
}

describe('thumbnails of MPEG-TS / MPEG-PS sources (keyframe every 2 s)', () => {
  it('shows the frame on screen at each time of an MPEG-TS, and makes the one after the last keyframe', async () => {
    // 8 s at 25 fps, keyframes at 0, 2, 4, 6 s. Every 2.5 s: 0, 2.5, 5, 7.5 -> frames 0, 62, 125, 187.
    const src = path.join(dir, 'capture.ts');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=96x64:rate=25:duration=8', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '50', '-f', 'mpegts', src]);
    const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { every: 2.5, width: 48 }), [src], { dir });
    // Before: [{ code: 'DATA_LOSS', message: 'capture.ts: no frame came out for thumb-00004.jpg' }]
    expect(run.errors).toEqual([]);
    const frames = await decodedFrames(src, 'capture');
    const thumbs = run.outputs.filter((o) => o.name.startsWith('thumb-'));
    expect(await Promise.all(thumbs.map((t) => nearestFrame(t.path, frames)))).toEqual([0, 62, 125, 187]);
  });

  it('shows the frame on screen at each time of an MPEG-TS (times before its last keyframe)', async () => {
    // 7 s: every 2.5 s gives 0, 2.5, 5 -> frames 0, 62, 125 (before: 0, 100, 150, the next keyframes).
    const src = path.join(dir, 'capture7.ts');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=96x64:rate=25:duration=7', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '50', '-f', 'mpegts', src]);
    const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { every: 2.5, width: 48 }), [src], { dir });
    expect(run.errors).toEqual([]);
    const frames = await decodedFrames(src, 'capture7');
    const thumbs = run.outputs.filter((o) => o.name.startsWith('thumb-'));
    expect(await Promise.all(thumbs.map((t) => nearestFrame(t.path, frames)))).toEqual([0, 62, 125]);
    // Dense times (one decoding pass) from the keyframe before the first: every 0.6 s.
    const dense = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { every: 0.6, width: 48 }), [src], { dir });
    expect(dense.errors).toEqual([]);
    const shown = await Promise.all(dense.outputs.filter((o) => o.name.startsWith('thumb-')).map((t) => nearestFrame(t.path, frames)));
    expect(shown).toEqual(Array.from({ length: 12 }, (_, i) => i * 15));
  });

  it('shows the frame on screen at each time of an MPEG-PS (.mpg)', async () => {
    const src = path.join(dir, 'dvd.mpg');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=96x64:rate=25:duration=7', '-c:v', 'mpeg2video', '-g', '50', '-f', 'mpeg', src]);
    const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { every: 2.5, width: 48 }), [src], { dir });
    expect(run.errors).toEqual([]);
    const frames = await decodedFrames(src, 'dvd');
    const thumbs = run.outputs.filter((o) => o.name.startsWith('thumb-'));
    expect(await Promise.all(thumbs.map((t) => nearestFrame(t.path, frames)))).toEqual([0, 62, 125]);
  });
});

describe('thumbnails of an MPEG-TS whose video starts seconds after its audio', () => {
  it('makes every thumbnail (the first ones, before the first keyframe, show the first frame)', async () => {
    // Audio from 0 s, video (7 s, keyframe every 2 s) from 3 s.
    const src = path.join(dir, 'late.ts');
    await runFfmpeg([
      '-y', '-v', 'error', '-f', 'lavfi', '-i', 'sine=duration=10', '-itsoffset', '3', '-f', 'lavfi', '-i', 'testsrc2=size=96x64:rate=25:duration=7',
      '-map', '0:a', '-map', '1:v', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '50', '-c:a', 'mp2', '-f', 'mpegts', src,
    ]);
    const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { every: 2.5, width: 48 }), [src], { dir });
    // It failed, INVALID_ARGUMENT "ffmpeg failed: ... Numerical result out of range": the point to
    // decode from planned for 0 s (the keyframe at 3 s, less 0.1) lay after the time, a negative -t.
    expect(run.errors).toEqual([]);
    // Times 0 and 2.5 s (before the video) show its first frame, as `ffmpeg -ss T -i late.ts -frames:v 1` does; at 5 s
    // (6.4 s on the capture clock, the video from 4.411 s) frame 49 is on screen, 50 comes 11 ms later.
    const frames = await decodedFrames(src, 'late');
    const thumbs = run.outputs.filter((o) => o.name.startsWith('thumb-')).sort((x, y) => x.name.localeCompare(y.name));
    expect(await Promise.all(thumbs.slice(0, 3).map((t) => nearestFrame(t.path, frames)))).toEqual([0, 0, 49]);
  });
});

describe('thumbnails of a video that starts after its container (audio first)', () => {
  it('thumbnail at T is the frame on screen at T on the file\'s timeline (`ffmpeg -ss` of that frame\'s time), as the README says', async () => {
    // Video 0..6 s shifted to start at 1.5 s, beside audio from 0: the video stream starts at 1.5 s.
    const video = await makeVideo(dir, 'late-v.mp4', { duration: 6, width: 96, height: 64, gop: 25 });
    const audio = path.join(dir, 'late-a.m4a');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'sine=duration=7.5', '-c:a', 'aac', audio]);
    const src = path.join(dir, 'late.mp4');
    await runFfmpeg(['-y', '-v', 'error', '-itsoffset', '1.5', '-i', video, '-i', audio, '-map', '0:v', '-map', '1:a', '-c', 'copy', src]);
    const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { every: 1, width: 48 }), [src], { dir });
    expect(run.errors).toEqual([]);
    // 2.0 s on the file's (and a player's) timeline is 0.5 s into the video, between frames 12
    // (0.48 s) and 13: frame 12 is on screen, as `ffmpeg -ss 1.98` (its time) takes it.
    const ref = path.join(dir, 'late-ref.png');
    await runFfmpeg(['-y', '-v', 'error', '-ss', '1.98', '-i', src, '-map', '0:v:0', '-frames:v', '1', ref]);
    const frames = await decodedFrames(src, 'late');
    const wanted = await nearestFrame(ref, frames);
    expect(wanted).toBe(12);
    // thumb-00003 is the thumbnail for 2 s (every 1 s from 0). Before: frame 50 (3.5 s, 2 s after the video's first frame).
    const third = run.outputs.find((o) => o.name === 'thumb-00003.jpg')!;
    expect(await nearestFrame(third.path, frames)).toBe(wanted);
  });
});

describe('WebVTT index of a several-video job whose names need escaping in a URL', () => {
  it('each cue resolves (as a player resolves it, relative to the .vtt) to its sprite sheet and #xywh fragment', async () => {
    const sub = await mkdtemp(path.join(dir, 'hash-'));
    const a = await makeVideo(sub, 'Ep #1.mp4', { duration: 1, width: 96, height: 64 });
    const b = await makeVideo(sub, 'Ep #2.mp4', { duration: 1, width: 96, height: 64 });
    const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { count: 2, width: 48, sprite: '2x1' }), [a, b], { dir });
    expect(run.errors).toEqual([]);
    const names = run.outputs.map((o) => o.name);
    expect(names).toContain('Ep #1-sprite.jpg');
    const vtt = await readFile(run.outputs.find((o) => o.name === 'Ep #1-thumbnails.vtt')!.path, 'utf8');
    const targets = vtt.split('\n').filter((l) => l.includes('xywh'));
    expect(targets).toHaveLength(2);
    // Where the .vtt is served from: its own name, URL-escaped.
    const base = `https://cdn.example/thumbs/${encodeURIComponent('Ep #1-thumbnails.vtt')}`;
    for (const [i, line] of targets.entries()) {
      const url = new URL(line, base);
      // Before: "Ep #1-sprite.jpg#xywh=..." resolves to the file "Ep " with the fragment "#1-sprite.jpg#xywh=...".
      expect(decodeURIComponent(url.pathname)).toBe('/thumbs/Ep #1-sprite.jpg');
      expect(url.hash).toBe(`#xywh=${i * 48},0,48,32`);
    }
  });
});
