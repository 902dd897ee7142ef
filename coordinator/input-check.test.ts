/**
 * The submit-time input checks on real files made by sharp: JPEG and PNG headers read from the
 * bytes already in memory give the same verdicts as reading the file, a header longer than that
 * head still gets its real size, and formats whose frames lie further in are counted in full.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PREFETCHED_INPUTS, type SpoolFile } from '../shared/job-kind.js';
import { validateImageParams } from '../shared/kinds/image-params.js';
import { validateAudioParams, type AudioJobParams } from '../shared/kinds/audio-params.js';
import { parseVideoParams } from '../shared/kinds/video-params.js';
import { resolveLimits } from '../shared/limits.js';
import { runFfmpeg } from '../shared/ffmpeg.js';
import { checkInput, inputChecker, takeHeaderProbe } from './input-check.js';
import { probeMedia } from '../shared/media/probe.js';
import { probeAudio } from '../shared/media/audio-probe.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-input-check-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function spoolFile(name: string, bytes: Buffer): Promise<SpoolFile> {
  const file = path.join(dir, name);
  await writeFile(file, bytes);
  return { name, path: file, size: (await stat(file)).size, sha256: '' };
}

/** Rewrites the frame size in a JPEG's SOF0 marker: a header that claims far more pixels than the data holds. */
function claimSize(jpeg: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(jpeg);
  const sof = out.indexOf(Buffer.from([0xff, 0xc0]));
  out.writeUInt16BE(height, sof + 5);
  out.writeUInt16BE(width, sof + 7);
  return out;
}

/** The bytes of an input the check reads first (input-check.ts HEAD_BYTES). */
const HEAD = 64 * 1024;

/** A JPEG of noise: large for its size, like a photo. */
async function noiseJpeg(width: number, height: number): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: '#777', noise: { type: 'gaussian', mean: 128, sigma: 40 } } })
    .jpeg({ quality: 80 })
    .toBuffer();
}

/** Two 64 KiB application segments (APP15) right after SOI: the frame header starts past the first 128 KiB. */
function padHeader(jpeg: Buffer): Buffer {
  const segment = Buffer.alloc(2 + 65535, 0x20);
  segment.writeUInt16BE(0xffef, 0);
  segment.writeUInt16BE(65535, 2);
  return Buffer.concat([jpeg.subarray(0, 2), segment, segment, jpeg.subarray(2)]);
}

describe('image header checks', () => {
  it('a JPEG claiming 60000 x 50000 is refused naming its size and the limit: whole, from its head, and with its header past the head', async () => {
    const limits = resolveLimits({ maxPixels: 100_000_000 });
    const small = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#369' } }).jpeg().toBuffer();
    const large = await noiseJpeg(600, 400);
    const cases = [
      ['small-bomb.jpg', claimSize(small, 60000, 50000)],
      ['bomb.jpg', claimSize(large, 60000, 50000)],
      ['padded-bomb.jpg', padHeader(claimSize(large, 60000, 50000))],
    ] as const;
    // Under the head size, read whole; over it with the header inside the head; over it with the header beyond.
    expect(cases.map(([, b]) => b.length > HEAD)).toEqual([false, true, true]);
    for (const [name, bytes] of cases) {
      const verdict = await checkInput('image', await spoolFile(name, bytes), limits);
      expect(verdict).toEqual({ input: name, code: 'RESOURCE_EXHAUSTED', message: `${name}: 60000x50000 = 3000000000 pixels is over the limit --max-pixels=100000000` });
    }
  });

  it('a camera-sized JPEG and a PNG are accepted with their dimensions; a header past the head is read from the file', async () => {
    const limits = resolveLimits();
    const photo = await noiseJpeg(4000, 3000);
    const png = await sharp({ create: { width: 1500, height: 1000, channels: 4, background: '#8438' } }).png().toBuffer();
    expect(photo.length).toBeGreaterThan(HEAD);
    for (const [name, bytes, width, height] of [
      ['photo.jpg', photo, 4000, 3000],
      ['padded.jpg', padHeader(photo), 4000, 3000],
      ['image.png', png, 1500, 1000],
    ] as const) {
      const file = await spoolFile(name, bytes);
      expect(await checkInput('image', file, limits)).toBeUndefined();
      expect(file.dims).toEqual({ width, height, orientation: 1 });
    }
  });

  it('an animated GIF larger than the head has every frame counted', async () => {
    // 40 frames of noise, 160 x 120: well over 64 KiB, so its frame count is read from the file.
    const frames = 40;
    const raw = Buffer.alloc(160 * 120 * frames * 3);
    for (let i = 0; i < raw.length; i++) raw[i] = (i * 2654435761) >>> 24;
    const gif = await sharp(raw, { raw: { width: 160, height: 120 * frames, channels: 3, pageHeight: 120 } }).gif().toBuffer();
    expect(gif.length).toBeGreaterThan(64 * 1024);
    const verdict = await checkInput('image', await spoolFile('anim.gif', gif), resolveLimits({ maxFrames: 30 }));
    expect(verdict).toEqual({ input: 'anim.gif', code: 'RESOURCE_EXHAUSTED', message: 'anim.gif: 40 frames is over the limit --max-frames=30' });
  });

  it("with the job's params, a result over --max-pixels is refused as the input's error: a 64 x 48 JPEG asked for 1,000,000 x 1,000,000", async () => {
    const photo = await spoolFile('tiny.jpg', await sharp({ create: { width: 64, height: 48, channels: 3, background: '#369' } }).jpeg().toBuffer());
    const limits = resolveLimits();
    const huge = validateImageParams({ width: 1_000_000, height: 1_000_000, fit: 'fill' });
    expect(await checkInput('image', photo, limits, undefined, undefined, huge)).toEqual({
      input: 'tiny.jpg',
      code: 'RESOURCE_EXHAUSTED',
      message: `tiny.jpg: the result would be 1000000x1000000 = 1000000000000 pixels, over the limit --max-pixels=${limits.maxPixels}; ask for a smaller width or height`,
    });
    // Through the checker as a submission runs it; a sensible size passes.
    const checks = inputChecker('image', resolveLimits({ maxPixels: 1_000_000 }), undefined, validateImageParams({ width: 2000 }));
    expect((await checks.result([photo])).errors).toEqual([expect.objectContaining({ input: 'tiny.jpg', code: 'RESOURCE_EXHAUSTED', message: expect.stringContaining('2000x1500 = 3000000 pixels, over the limit --max-pixels=1000000') })]);
    expect(await checkInput('image', photo, limits, undefined, undefined, validateImageParams({ width: 2000 }))).toBeUndefined();
  });

  it("a pyramidal TIFF's reduced-resolution levels are not counted as frames (review I)", async () => {
    const tif = await sharp({ create: { width: 1024, height: 768, channels: 3, background: '#b4783c' } }).tiff({ pyramid: true, tile: true, tileWidth: 256, tileHeight: 256 }).toBuffer();
    // 786,432 pixels: under a limit of 1 Mpx as one image, over it counted as three.
    const limits = resolveLimits({ maxPixels: 1_000_000, maxFrames: 2 });
    expect(await checkInput('image', await spoolFile('pyramid.tif', tif), limits, undefined, undefined, validateImageParams({ format: 'tiff' }))).toBeUndefined();
  });

  it('an animation that keeps its frames counts them in its result', async () => {
    // Frames that differ (the encoder merges equal ones).
    const raw = Buffer.alloc(40 * 30 * 10 * 3);
    for (let i = 0; i < raw.length; i++) raw[i] = Math.floor(i / (40 * 30 * 3)) * 25;
    const gif = await spoolFile('frames.gif', await sharp(raw, { raw: { width: 40, height: 30 * 10, channels: 3, pageHeight: 30 } }).gif().toBuffer());
    const limits = resolveLimits({ maxPixels: 1_000_000 });
    // 400 x 300 is 120,000 pixels a frame, 1.2 Mpx for the 10 frames a GIF keeps; a PNG keeps one.
    expect(await checkInput('image', gif, limits, undefined, undefined, validateImageParams({ width: 400 }))).toMatchObject({
      code: 'RESOURCE_EXHAUSTED',
      message: 'frames.gif: the result would be 400x300x10 frames = 1200000 pixels, over the limit --max-pixels=1000000; ask for a smaller width or height',
    });
    expect(await checkInput('image', gif, limits, undefined, undefined, validateImageParams({ width: 400, format: 'png' }))).toBeUndefined();
  });

  it("a broken image fails as its own input, by name (not by the coordinator's path to it)", async () => {
    const photo = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#369' } }).jpeg().toBuffer();
    const file = await spoolFile('cut.jpg', photo.subarray(0, 40));
    const verdict = await checkInput('image', file, resolveLimits());
    expect(verdict).toMatchObject({ input: 'cut.jpg', code: 'INVALID_ARGUMENT', message: expect.stringContaining('cut.jpg: not a decodable image') });
    expect(verdict!.message).not.toContain(path.dirname(file.path));
  });

  it('a HEIC photo (HEVC-coded HEIF, as phones write) is refused at submission saying why, where this libvips cannot decode HEVC', async () => {
    // 32 x 32, written by libheif with x265. It was accepted, then failed on a worker as "not a
    // decodable image (bad seek to 1024)", blaming a good photo.
    const heic = Buffer.from('AAAAHGZ0eXBoZWljAAAAAG1pZjFoZWljbWlhZgAAAa1tZXRhAAAAAAAAACFoZGxyAAAAAAAAAABwaWN0AAAAAAAAAAAAAAAAAAAAAA5waXRtAAAAAAACAAAAEGlkYXQAAAAAACAAIAAAADhpbG9jAQAAAERAAAIAAQAAAAAAAAHRAAEAAAAAAAAArgACAAEAAAAAAAAAAQAAAAAAAAAIAAAAOGlpbmYAAAAAAAIAAAAVaW5mZQIAAAEAAQAAaHZjMQAAAAAVaW5mZQIAAAAAAgAAZ3JpZAAAAADYaXBycAAAALZpcGNvAAAAdmh2Y0MBA3AAAAAAAAAAAAAe8AD8/fj4AAAPAyAAAQAYQAEMAf//A3AAAAMAkAAAAwAAAwAeugJAIQABACpCAQEDcAAAAwCQAAADAAADAB6gIIEFlurkprm4EBAwIAAAAwAgAAADACEiAAEABkQBwXPAiQAAABRpc3BlAAAAAAAAAEAAAABAAAAAFGlzcGUAAAAAAAAAIAAAACAAAAAQcGl4aQAAAAADCAgIAAAAGmlwbWEAAAAAAAAAAgABAoECAAICA4QAAAAaaXJlZgAAAAAAAAAOZGltZwACAAEAAQAAALZtZGF0AAAAqigBrwY46WWHTLbhH7VvfwV1Z1lO4Pl3CG03o8mp7Vgog468Fzz6KE31MT45cFIT1LEA/QbF8RT93/8xpRfF2z2PNPvW1jpRo2TSn/9FOXJZEhY8oIlfT/Xh7IxleSCZF00vGbX8EPO0XfbCfye+HzTf5U4vuZHulOaut5w722f2SEZtTgP/iDDWldAh/5Gw1d7C6JnVyY8M8SrGNotttwTNDOHd5FfS7Dv8', 'base64');
    const decodes = await sharp(heic).raw().toBuffer().then(() => true, () => false);
    const verdict = await checkInput('image', await spoolFile('IMG_0001.HEIC', heic), resolveLimits());
    if (decodes) expect(verdict).toBeUndefined();
    else expect(verdict).toEqual({ input: 'IMG_0001.HEIC', code: 'INVALID_ARGUMENT', message: 'IMG_0001.HEIC: HEIC (HEVC-coded HEIF) cannot be decoded by this build of libvips, which has no HEVC decoder; convert it to JPEG or AVIF first' });
  });

  it('an animated GIF cut short (which libvips decodes without a word, frames missing) is refused at submission', async () => {
    const raw = Buffer.alloc(40 * 30 * 10 * 3);
    for (let i = 0; i < raw.length; i++) raw[i] = (i * 2654435761) >>> 24;
    const gif = await sharp(raw, { raw: { width: 40, height: 30 * 10, channels: 3, pageHeight: 30 } }).gif().toBuffer();
    expect(await checkInput('image', await spoolFile('whole.gif', gif), resolveLimits())).toBeUndefined();
    // Zero padding after the trailer is no cut.
    expect(await checkInput('image', await spoolFile('padded.gif', Buffer.concat([gif, Buffer.alloc(100)])), resolveLimits())).toBeUndefined();
    expect(await checkInput('image', await spoolFile('cut.gif', gif.subarray(0, gif.length >> 1)), resolveLimits())).toEqual({
      input: 'cut.gif',
      code: 'INVALID_ARGUMENT',
      message: 'cut.gif: a GIF cut short (it does not reach its trailer): a copy or upload that stopped early?',
    });
  });
});

describe('inputChecker', () => {
  it('starts checking each input when it is added and gives the verdicts in the order asked', async () => {
    const good = await sharp({ create: { width: 32, height: 32, channels: 3, background: '#000' } }).png().toBuffer();
    const files = await Promise.all([
      spoolFile('a.png', good),
      spoolFile('b.txt', Buffer.from('plain text, not an image\n')),
      spoolFile('c.png', good),
    ]);
    const checks = inputChecker('image', resolveLimits());
    // Added out of order (as shared-storage lookups may finish); checked before any result is asked for.
    checks.add(files[2]!);
    checks.add(files[0]!);
    for (let i = 0; i < 200 && (files[0]!.dims === undefined || files[2]!.dims === undefined); i++) await sleep(10);
    expect([files[0]!.dims, files[1]!.dims, files[2]!.dims].map((d) => (d ? d.width * d.height : undefined))).toEqual([1024, undefined, 1024]);
    // One never added is checked when the result is asked for.
    const r = await checks.result(files);
    expect(r.accepted.map((f) => f.name)).toEqual(['a.png', 'c.png']);
    expect(r.errors).toEqual([{ input: 'b.txt', code: 'INVALID_ARGUMENT', message: expect.stringContaining('b.txt: content is not an accepted image format') }]);
  });

  it("hands the kind's prefetch the first inputs that pass, in order, once each, and none after stop", async () => {
    const good = await sharp({ create: { width: 32, height: 32, channels: 3, background: '#000' } }).png().toBuffer();
    const [bad, a, b, c] = await Promise.all([
      spoolFile('p0.txt', Buffer.from('not an image\n')),
      spoolFile('p1.png', good),
      spoolFile('p2.png', good),
      spoolFile('p3.png', good),
    ]);
    const seen: Array<{ name: string; aborted: boolean }> = [];
    let signal: AbortSignal | undefined;
    const checks = inputChecker('image', resolveLimits(), undefined, undefined, (file, s) => {
      seen.push({ name: file.name, aborted: s.aborted });
      signal = s;
    });
    // Two checks run at once: the refused one and p1, then p2 and p3.
    for (const f of [bad!, a!, b!, c!]) checks.add(f);
    const r = await checks.result([bad!, a!, b!, c!]);
    await sleep(20);
    expect(r.accepted.map((f) => f.name)).toEqual(['p1.png', 'p2.png', 'p3.png']);
    // In the order they were added, whichever check ended first (p2's may end before p1's).
    expect(seen).toEqual([{ name: 'p1.png', aborted: false }, { name: 'p2.png', aborted: false }].slice(0, PREFETCHED_INPUTS));
    // A submission that fails after its checks stops what the prefetch started.
    await checks.stop();
    expect(signal?.aborted).toBe(true);

    const stopped: string[] = [];
    const early = inputChecker('image', resolveLimits(), undefined, undefined, (file) => stopped.push(file.name));
    early.add(a!);
    await early.stop();
    await sleep(20);
    expect(stopped).toEqual([]);
  });

  it('after stop, what had not started is never checked and there is no verdict to give', async () => {
    const good = await sharp({ create: { width: 32, height: 32, channels: 3, background: '#000' } }).png().toBuffer();
    const files = await Promise.all(Array.from({ length: 6 }, (_, i) => spoolFile(`s${i}.png`, good)));
    const checks = inputChecker('image', resolveLimits());
    for (const f of files) checks.add(f);
    await checks.stop();
    // At most the two running at once had started.
    expect(files.filter((f) => f.dims !== undefined).length).toBeLessThanOrEqual(2);
    await expect(checks.result(files)).rejects.toThrow('the input checks were stopped');
  });
});

describe('video and thumbnails inputs', () => {
  /** A file made by ffmpeg from lavfi sources, spooled under `name`. */
  async function media(name: string, args: string[]): Promise<SpoolFile> {
    const file = path.join(dir, name);
    await runFfmpeg(['-y', '-v', 'error', ...args, file]);
    return { name, path: file, size: (await stat(file)).size, sha256: '' };
  }

  it("keeps the check's probe of a passed input for its planner, once, and parses to what probing again gives", async () => {
    const limits = resolveLimits();
    const clip = await media('probe.mkv', ['-f', 'lavfi', '-i', 'testsrc2=s=160x120:r=25:d=1', '-f', 'lavfi', '-i', 'sine=d=1', '-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'flac']);
    const tone = await media('probe.flac', ['-f', 'lavfi', '-i', 'sine=d=1']);
    expect(await checkInput('video', clip, limits)).toBeUndefined();
    expect(await checkInput('audio', tone, limits)).toBeUndefined();
    const clipProbe = takeHeaderProbe(clip);
    const toneProbe = takeHeaderProbe(tone);
    expect(takeHeaderProbe(clip)).toBeUndefined();
    expect(await probeMedia(clip.path, { input: clip.name, given: clipProbe })).toEqual(await probeMedia(clip.path, { input: clip.name }));
    expect(await probeAudio(tone.path, tone.name, undefined, toneProbe)).toEqual(await probeAudio(tone.path, tone.name));
    // A refused input leaves nothing behind.
    expect(await checkInput('video', tone, limits)).toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(takeHeaderProbe(tone)).toBeUndefined();
  });

  it('an audio-only file is refused at submission for video and thumbnails (cover art is no video), accepted for audio', async () => {
    const limits = resolveLimits();
    const tone = await media('tone.m4a', ['-f', 'lavfi', '-i', 'sine=d=1', '-c:a', 'aac']);
    const withArt = await media('art.mp4', [
      '-f', 'lavfi', '-i', 'sine=d=1', '-f', 'lavfi', '-i', 'color=c=red:s=32x32:d=0.1', '-map', '0', '-map', '1', '-frames:v', '1',
      '-c:a', 'aac', '-c:v', 'png', '-disposition:v', 'attached_pic',
    ]);
    for (const kind of ['video', 'thumbnails']) {
      for (const f of [tone, withArt]) {
        expect(await checkInput(kind, f, limits)).toEqual({ input: f.name, code: 'INVALID_ARGUMENT', message: `${f.name}: has no video stream` });
      }
    }
    expect(await checkInput('audio', tone, limits)).toBeUndefined();
  });

  it('a video without sound is refused for audio; an MP4 whose index is cut short is called damaged, not without video', async () => {
    const limits = resolveLimits();
    const silent = await media('silent.mp4', ['-f', 'lavfi', '-i', 'testsrc2=s=160x120:r=25:d=2', '-c:v', 'libx264', '-preset', 'ultrafast']);
    // A trim that starts after the end of the audio: refused from the header, as the planner would.
    const tone = await media('tone45.m4a', ['-f', 'lavfi', '-i', 'sine=d=4.5', '-c:a', 'aac']);
    const trimmed = (start: number): AudioJobParams => validateAudioParams({ trim: { start, end: start + 10 } });
    expect(await checkInput('audio', tone, limits, undefined, undefined, trimmed(5))).toEqual({ input: 'tone45.m4a', code: 'INVALID_ARGUMENT', message: expect.stringMatching(/^tone45\.m4a: trim\.start 5 s is past the end \(4\.5\d s\)$/) });
    expect(await checkInput('audio', tone, limits, undefined, undefined, trimmed(2))).toBeUndefined();
    // Audio stream-copied into a container that cannot hold its codec: refused from the header too.
    const clip = await media('with-aac.mp4', ['-f', 'lavfi', '-i', 'testsrc2=s=160x120:r=25:d=1', '-f', 'lavfi', '-i', 'sine=d=1', '-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'aac']);
    expect(await checkInput('video', clip, limits, undefined, undefined, parseVideoParams({ audio_codec: 'copy', container: 'webm' }))).toEqual({
      input: 'with-aac.mp4',
      code: 'INVALID_ARGUMENT',
      message: 'with-aac.mp4: its aac audio cannot be copied into webm; choose an audio codec such as opus',
    });
    expect(await checkInput('video', clip, limits, undefined, undefined, parseVideoParams({ audio_codec: 'copy', container: 'mkv' }))).toBeUndefined();
    expect(await checkInput('audio', silent, limits)).toEqual({ input: 'silent.mp4', code: 'INVALID_ARGUMENT', message: 'silent.mp4: has no audio stream' });
    // The index (moov, at the end) cut 96 bytes in: ffprobe reads the container and finds no stream.
    const bytes = await readFile(silent.path);
    const cut = { ...silent, name: 'cut-index.mp4', path: path.join(path.dirname(silent.path), 'cut-index.mp4') };
    await writeFile(cut.path, bytes.subarray(0, bytes.lastIndexOf('moov') + 96));
    cut.size = bytes.lastIndexOf('moov') + 96;
    for (const [kind, what] of [['video', 'video'], ['audio', 'audio']] as const) {
      const failure = await checkInput(kind, cut, limits);
      expect(failure?.code).toBe('INVALID_ARGUMENT');
      expect(failure?.message).toMatch(new RegExp(`^cut-index\\.mp4: (has no ${what} stream \\(no stream at all: a file cut short or damaged\\?\\)|not a readable media file)`));
    }
  });

  it('an MP4 cut short behind its front index (faststart) is refused at submission; the whole file passes', async () => {
    const limits = resolveLimits();
    const whole = await media('fast.mp4', [
      '-f', 'lavfi', '-i', 'testsrc2=s=160x120:r=25:d=4', '-f', 'lavfi', '-i', 'sine=d=4',
      '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '25', '-c:a', 'aac', '-movflags', '+faststart',
    ]);
    expect(await checkInput('video', whole, limits)).toBeUndefined();
    expect(await checkInput('thumbnails', whole, limits)).toBeUndefined();
    const bytes = await readFile(whole.path);
    for (const [name, keep] of [['cut-early.mp4', 0.6], ['cut-late.mp4', 0.98]] as const) {
      const cut = await spoolFile(name, bytes.subarray(0, Math.floor(bytes.length * keep)));
      expect(await checkInput('video', cut, limits)).toEqual({ input: name, code: 'INVALID_ARGUMENT', message: `${name}: truncated file: its index lists media past the end of the file (a copy or upload cut short?)` });
    }
  });

  it("a submission stopped while an MP4's check runs stops both of its probes, and neither's end goes unhandled (which ended the coordinator)", async () => {
    // The tail probe of an MP4 for a picture kind runs beside the header probe; it was given no
    // handler until the header probe ended. Stopped together (the client's Ctrl-C, another input
    // over --max-file-bytes), the tail's rejection could come first: unhandled, and Node 20 ended
    // the coordinator, every client's jobs with it (review soak: within 1-4 tries).
    const clip = await media('stopped.mp4', ['-f', 'lavfi', '-i', 'testsrc2=s=160x120:r=25:d=1', '-c:v', 'libx264', '-preset', 'ultrafast']);
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      for (let i = 0; i < 24; i++) {
        const stop = new AbortController();
        const check = checkInput('video', clip, resolveLimits(), stop.signal);
        await sleep(i % 8 * 3);
        stop.abort(new DOMException('call cancelled by the client', 'AbortError'));
        await check.catch(() => undefined);
        // A rejection left unhandled is reported after the microtasks that could have handled it.
        await sleep(5);
      }
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    expect(unhandled).toEqual([]);
  });
});
