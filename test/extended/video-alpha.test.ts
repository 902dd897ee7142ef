/**
 * A video's alpha channel. A source with alpha into VP9 WebM: `ffmpeg -c:v libvpx-vp9` keeps it;
 * the job dropped it without a word, though it says so of everything else it leaves out. Now it
 * warns, where the alpha is in use: not of a capture tool's opaque 32-bit RGB (a false warning
 * when it was first added), and of an overlay whose first picture is fully transparent (a fade-in;
 * missed when "one value everywhere" was taken for unused).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { videoKind } from '../../coordinator/kinds/video.js';
import { runFfmpeg, runFfprobe } from '../../shared/ffmpeg.js';
import { videoProcessor } from '../../worker/processors/video.js';
import { runKindInProcess, specOf } from '../helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-alpha-webm-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Whether a WebM's VP9 track carries alpha (the ALPHA_MODE tag the libvpx decoder reads it by). */
async function hasAlpha(file: string): Promise<boolean> {
  const r = await runFfprobe<{ streams: Array<{ tags?: Record<string, string> }> }>(['-select_streams', 'v:0', '-show_entries', 'stream_tags', '-i', file]);
  return Object.entries(r.streams[0]?.tags ?? {}).some(([k, v]) => k.toLowerCase() === 'alpha_mode' && v === '1');
}

describe('video kind: a source with alpha into VP9 WebM', () => {
  it('keeps the alpha as `ffmpeg` does, or at least says it was dropped', async () => {
    const src = path.join(dir, 'overlay.mov');
    // Opaque on the left, transparent on the right.
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=96x64:rate=25:duration=1,format=rgba,geq=r=r(X\\,Y):g=g(X\\,Y):b=b(X\\,Y):a=if(lt(X\\,48)\\,255\\,0)', '-c:v', 'png', src]);
    const single = path.join(dir, 'single.webm');
    await runFfmpeg(['-y', '-v', 'error', '-i', src, '-c:v', 'libvpx-vp9', '-deadline', 'realtime', '-cpu-used', '8', single]);
    expect(await hasAlpha(single)).toBe(true);
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', container: 'webm' }), [src], { dir, slots: 2 });
    expect(run.errors).toEqual([]);
    const kept = await hasAlpha(run.outputs[0]!.path);
    // Was: neither. The transparent half came out as opaque colour, and the job said nothing (while a
    // subtitle track, cover art or an attachment left out is a warning).
    expect(kept || run.warnings.some((w) => /alpha|transparen/i.test(w.message))).toBe(true);
  }, 60_000);
});

describe('video kind: alpha warning', () => {
  it('a clip whose first pictures are opaque and whose later ones are transparent (a title fading out) is warned of', async () => {
    const src = path.join(dir, 'fades-out.mov');
    // Opaque for the first second, then transparent on the left (alpha = x).
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=96x64:rate=25:duration=2,format=rgba,geq=r=r(X\\,Y):g=g(X\\,Y):b=b(X\\,Y):a=if(lt(T\\,1)\\,255\\,X)', '-c:v', 'png', src]);
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast' }), [src], { dir, slots: 2 });
    expect(run.errors).toEqual([]);
    // Was: no warning (only the first picture was looked at), the output opaque.
    expect(run.warnings).toEqual([{ input: 'fades-out.mov', message: 'its alpha channel (rgba) is left out: the output is opaque' }]);
  }, 60_000);

  it('a 32-bit uncompressed AVI whose pictures are all opaque is made without an alpha warning', async () => {
    const src = path.join(dir, 'capture.avi');
    // Every pixel's alpha 255 (format=bgra from an opaque source).
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=96x64:rate=25:duration=1,format=bgra', '-c:v', 'rawvideo', src]);
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast' }), [src], { dir, slots: 2 });
    expect(run.errors).toEqual([]);
    // Observed: [{ input: 'capture.avi', message: 'its alpha channel (bgra) is left out: the output is opaque' }]
    expect(run.warnings).toEqual([]);
  }, 60_000);
});

describe('video kind: alpha warning', () => {
  it('an overlay whose first picture is fully transparent (a fade-in) is said to lose its alpha', async () => {
    const src = path.join(dir, 'lower-third.mov');
    // Alpha 0 everywhere in the first 0.2 s, then opaque on the left half, transparent on the right.
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=96x64:rate=25:duration=1,format=rgba,geq=r=r(X\\,Y):g=g(X\\,Y):b=b(X\\,Y):a=if(lt(T\\,0.2)\\,0\\,if(lt(X\\,48)\\,255\\,0))', '-c:v', 'qtrle', src]);
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast' }), [src], { dir, slots: 2 });
    expect(run.errors).toEqual([]);
    // Observed: [] (no warning; the output's right half is opaque colour from 0.2 s on).
    expect(run.warnings.some((w) => /alpha/i.test(w.message))).toBe(true);
  }, 60_000);
});

describe('video kind: alpha warning of a deep alpha', () => {
  it.each([
    ['ProRes 4444 (yuva444p12le)', 'prores4444.mov', ['-c:v', 'prores_ks', '-profile:v', '4444', '-pix_fmt', 'yuva444p10le']],
    ['FFV1 yuva420p10le', 'ffv1-yuva10.mkv', ['-c:v', 'ffv1', '-pix_fmt', 'yuva420p10le']],
    ['FFV1 gbrap12le', 'ffv1-gbrap12.mkv', ['-c:v', 'ffv1', '-pix_fmt', 'gbrap12le']],
    ['16-bit PNG in MOV (rgba64be)', 'png64.mov', ['-c:v', 'png', '-pix_fmt', 'rgba64be']],
  ] as const)('a fully opaque %s is not said to lose its alpha', async (_, name, args) => {
    const src = path.join(dir, name);
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=64x48:rate=25:duration=0.4,format=rgba', ...args, src]);
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast' }), [src], { dir, slots: 2 });
    expect(run.errors).toEqual([]);
    // Observed: "its alpha channel (yuva444p12le) is left out: the output is opaque" (nothing is lost).
    expect(run.warnings.filter((w) => /alpha/i.test(w.message))).toEqual([]);
  }, 60_000);

  it('a half-transparent FFV1 yuva420p10le is still said to lose its alpha', async () => {
    const src = path.join(dir, 'half-yuva10.mkv');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=64x48:rate=25:duration=0.4,format=rgba,colorchannelmixer=aa=0.5', '-c:v', 'ffv1', '-pix_fmt', 'yuva420p10le', src]);
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast' }), [src], { dir, slots: 2 });
    expect(run.warnings.filter((w) => /alpha/i.test(w.message))).toHaveLength(1);
  }, 60_000);
});

describe('video kind: alpha warning of a VP9 WebM with alpha', () => {
  it('a half-transparent VP9 WebM (alpha_mode=1) is said to lose its alpha', async () => {
    const src = path.join(dir, 'overlay.webm');
    // ffprobe reports yuv420p (the alpha is in BlockAdditional; only libvpx-vp9 decodes it).
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=64x48:rate=10:duration=0.5,format=yuva420p,colorchannelmixer=aa=0.5', '-c:v', 'libvpx-vp9', '-deadline', 'realtime', '-cpu-used', '8', src]);
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast' }), [src], { dir, slots: 2 });
    expect(run.errors).toEqual([]);
    // Observed: [] (the output is opaque, nothing said).
    expect(run.warnings.some((w) => /alpha/i.test(w.message))).toBe(true);
  }, 60_000);
});
