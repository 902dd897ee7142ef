/**
 * The image processor tells a bad image from this worker's own trouble. A full disk used to be
 * reported as the photo's INVALID_ARGUMENT (a permanent item error); it is now a retryable
 * failure of the subtask, which the coordinator runs again elsewhere. The full disk is real:
 * the output name is a link to /dev/full, where every write fails with ENOSPC.
 */
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFfmpeg } from '../../shared/ffmpeg.js';
import { runImageBatch } from '../../test/helpers/image-batch.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-imgproc-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const run = (files: Record<string, Buffer>, workDir: string, params: Record<string, unknown> = { width: 64, format: 'jpeg' }) => runImageBatch(dir, files, params, workDir);

describe('image processor failures', () => {
  it('a corrupt image is its own item error; a full disk fails the subtask, retryably, naming neither as bad input', async () => {
    const good = await sharp({ create: { width: 200, height: 100, channels: 3, background: '#357' } }).jpeg().toBuffer();
    const ok = await mkdtemp(path.join(dir, 'ok-'));
    const r = await run({ 'good.jpg': good, 'corrupt.jpg': good.subarray(0, 200) }, ok);
    expect(r.outputs.map((o) => o.name)).toEqual(['good.jpg']);
    expect(r.itemErrors).toEqual([expect.objectContaining({ input: 'corrupt.jpg', code: 'INVALID_ARGUMENT' })]);

    const full = path.join(dir, 'full');
    await mkdir(full);
    await symlink('/dev/full', path.join(full, 'good.jpg'));
    await expect(run({ 'good.jpg': good }, full)).rejects.toMatchObject({ codeName: 'UNAVAILABLE', retryable: true, message: expect.stringMatching(/good\.jpg: .*No space left on device.*this worker's trouble, not the image's/s) });
  });

  it('an input named after the error, or tagged with it, is still judged as an input', async () => {
    const good = await sharp({ create: { width: 200, height: 100, channels: 3, background: '#357' } }).jpeg().toBuffer();
    const r = await run({ 'x: No space left on device.jpg': good.subarray(0, 200) }, await mkdtemp(path.join(dir, 'named-')));
    expect(r.itemErrors).toEqual([expect.objectContaining({ input: 'x: No space left on device.jpg', code: 'INVALID_ARGUMENT' })]);

    // ffmpeg at its default log level prints the input's name and its tags: neither is an error.
    const tagged = path.join(dir, 'x: No space left on device.wav');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'sine=duration=1', '-metadata', 'title=No space left on device', tagged]);
    const { stderr } = await runFfmpeg(['-y', '-i', tagged, '-f', 'null', '-'], { input: 'x: No space left on device.wav' });
    expect(stderr).toContain('No space left on device');
    const corrupt = path.join(dir, 'y: No space left on device.mp4');
    await writeFile(corrupt, Buffer.alloc(5000, 7));
    await expect(runFfmpeg(['-y', '-i', corrupt, '-f', 'null', '-'], { input: 'y: No space left on device.mp4' })).rejects.toMatchObject({ codeName: 'INVALID_ARGUMENT', retryable: false });
  });

  it('ffmpeg that cannot write its output (it exits 0 then) fails retryably, not as the input', async () => {
    const err = await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'sine=duration=1', '-f', 'wav', '/dev/full'], { input: 'tone.wav' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ codeName: 'UNAVAILABLE', retryable: true, message: expect.stringMatching(/^tone\.wav: ffmpeg failed on this machine \(its disk is full\), not because of the input: .*No space left on device/) });
    // The errno rides along: the coordinator waits out its own full disk in a merge, nothing else.
    expect((err as Error).cause).toMatchObject({ code: 'ENOSPC' });
  });
});

/** The decoded RGB of pixel (x, y). */
async function pixelAt(file: string, x: number, y: number): Promise<number[]> {
  const { data, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const i = (y * info.width + x) * info.channels;
  return [data[i]!, data[i + 1]!, data[i + 2]!];
}

/** Largest difference between two colours, per band. */
const colourDiff = (a: number[], b: number[]): number => Math.max(...a.map((v, i) => Math.abs(v - b[i]!)));

describe('image processor geometry', () => {
  it('a portrait photo stored sideways (EXIF 6) with a width and a quarter turn keeps its shape and its corners', async () => {
    // Stored 400 x 200, a red block in its top-left corner: upright it is 200 x 400 with the block
    // top right; width 100 gives 100 x 200, and turned 90 degrees 200 x 100, the block bottom right.
    const stored = await sharp({ create: { width: 400, height: 200, channels: 3, background: '#888' } })
      .composite([{ input: { create: { width: 80, height: 80, channels: 3, background: '#f00' } }, left: 0, top: 0 }])
      .withMetadata({ orientation: 6 })
      .jpeg({ quality: 95 })
      .toBuffer();
    const r = await run({ 'q6.jpg': stored }, await mkdtemp(path.join(dir, 'q6-')), { width: 100, rotate: 90, format: 'png' });
    expect(r.itemErrors).toEqual([]);
    const out = r.outputs[0]!.path;
    const meta = await sharp(out).metadata();
    expect([meta.width, meta.height]).toEqual([200, 100]);
    // Within JPEG's error of the source.
    expect(colourDiff(await pixelAt(out, 195, 95), [255, 0, 0])).toBeLessThan(12);
    for (const [x, y] of [[4, 4], [195, 4], [4, 95]] as const) expect(colourDiff(await pixelAt(out, x, y), [136, 136, 136]), `${x},${y}`).toBeLessThan(12);
  });

  it('a cover or contain box with a quarter turn is the box turned, as on the tiled path', async () => {
    const wide = await sharp({ create: { width: 400, height: 200, channels: 3, background: '#468' } }).png().toBuffer();
    const work = await mkdtemp(path.join(dir, 'box-'));
    for (const fit of ['cover', 'contain', 'fill', 'inside', 'outside']) {
      const r = await run({ [`${fit}.png`]: wide }, work, { width: 100, height: 80, fit, rotate: 270, format: 'png' });
      const box = { cover: [80, 100], contain: [80, 100], fill: [80, 100], inside: [50, 100], outside: [80, 160] }[fit]!;
      const meta = await sharp(r.outputs[0]!.path).metadata();
      expect([meta.width, meta.height], fit).toEqual(box);
    }
  });
});

describe('image processor animations', () => {
  let webp: Buffer;
  let gif: Buffer;
  beforeAll(async () => {
    for (const ext of ['webp', 'gif']) {
      await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=120x90:rate=10:duration=1', '-loop', '0', path.join(dir, `anim.${ext}`)]);
    }
    webp = await readFile(path.join(dir, 'anim.webp'));
    gif = await readFile(path.join(dir, 'anim.gif'));
  });

  it('an animated WebP or GIF resized keeps its 10 frames, in its own format', async () => {
    const r = await run({ 'anim.webp': webp, 'anim.gif': gif }, await mkdtemp(path.join(dir, 'anim-')), { width: 60 });
    expect(r.itemErrors).toEqual([]);
    for (const o of r.outputs) {
      const meta = await sharp(o.path, { animated: true }).metadata();
      expect([meta.format, meta.pages, meta.width, meta.pageHeight], o.name).toEqual([path.extname(o.name).slice(1), 10, 60, 45]);
      expect([meta.delay, meta.loop], o.name).toEqual([Array(10).fill(100), 0]);
      // Each frame is the source's frame resized, not the first one repeated.
      const frame = (n: number): Promise<Buffer> => sharp(o.path, { page: n }).raw().toBuffer();
      expect((await frame(0)).equals(await frame(9)), o.name).toBe(false);
    }
    expect(r.outputs.map((o) => o.name)).toEqual(['anim.webp', 'anim.gif']);
    expect(r.result).toMatchObject({ items: [{ width: 60, height: 45 }, { width: 60, height: 45 }] });
  });

  it('keeps the loop count and delays through the geometry pass (a box resize with a flop): a looping GIF still loops', async () => {
    // Loop 3 and uneven delays, to tell them from the writers' defaults.
    const looped: Record<string, Buffer> = {};
    for (const ext of ['gif', 'webp'] as const) {
      looped[`loop3.${ext}`] = await sharp(gif, { animated: true })[ext]({ loop: 3, delay: [50, 100, 150, 200, 250, 50, 100, 150, 200, 250] }).toBuffer();
    }
    for (const [files, loop] of [[{ 'anim.gif': gif, 'anim.webp': webp }, 0], [looped, 3]] as const) {
      const r = await run(files, await mkdtemp(path.join(dir, 'anim-loop-')), { width: 60, height: 60, flop: true });
      expect(r.itemErrors).toEqual([]);
      for (const o of r.outputs) {
        const want = await sharp(files[o.name as keyof typeof files], { animated: true }).metadata();
        const meta = await sharp(o.path, { animated: true }).metadata();
        expect([meta.pages, meta.loop, meta.delay], o.name).toEqual([10, loop, want.delay]);
      }
    }
  });

  it('a multi-page TIFF made an animated WebP loops for ever on both paths (it says no loop count of its own)', async () => {
    const pages = await sharp(gif, { animated: true }).tiff().toBuffer();
    expect((await sharp(pages, { pages: -1 }).metadata()).pages).toBe(10);
    const loops: number[] = [];
    for (const params of [{ width: 60, format: 'webp' }, { width: 60, height: 60, flop: true, format: 'webp' }]) {
      const r = await run({ 'pages.tif': pages }, await mkdtemp(path.join(dir, 'pages-')), params);
      expect(r.itemErrors).toEqual([]);
      const meta = await sharp(r.outputs[0]!.path, { animated: true }).metadata();
      expect(meta.pages).toBe(10);
      loops.push(meta.loop!);
    }
    // Through the geometry pass (the second) it played once.
    expect(loops).toEqual([0, 0]);
  });

  it('refuses what sharp cannot do frame by frame, and still limits the pixels of all frames', async () => {
    const work = await mkdtemp(path.join(dir, 'anim-refused-'));
    const turned = await run({ 'anim.webp': webp }, work, { width: 60, rotate: 90 });
    expect(turned.itemErrors).toEqual([
      { input: 'anim.webp', code: 'INVALID_ARGUMENT', message: expect.stringMatching(/^anim\.webp: an animated or multi-page image keeps its frames only through .* not rotate; ask for a still format/) },
    ]);
    // A still format takes the first frame, as documented.
    const still = await run({ 'anim.webp': webp }, work, { width: 60, rotate: 90, format: 'png' });
    expect(still.itemErrors).toEqual([]);
    const first = await sharp(still.outputs[0]!.path).metadata();
    expect([first.width, first.height, first.pages ?? 1]).toEqual([45, 60, 1]);

    const saved = process.env['TESSERA_MAX_INPUT_PIXELS'];
    process.env['TESSERA_MAX_INPUT_PIXELS'] = '5000000';
    try {
      // 10 frames of 1200 x 900 = 10.8 Mpx, from a source of 108,000.
      const big = await run({ 'anim.webp': webp }, work, { width: 1200 });
      expect(big.itemErrors).toEqual([
        { input: 'anim.webp', code: 'RESOURCE_EXHAUSTED', message: 'anim.webp: the result would be 10 frames of 1080000 pixels = 10800000 pixels, over the limit of 5000000 pixels (TESSERA_MAX_INPUT_PIXELS)' },
      ]);
      // The source's frames count only where they are kept: 10 frames of 120 x 90 pass 100,000
      // pixels together, one does not. As a still, its first frame is made; as an animation, refused.
      process.env['TESSERA_MAX_INPUT_PIXELS'] = '100000';
      const firstOnly = await run({ 'anim.webp': webp }, work, { width: 60, format: 'png' });
      expect(firstOnly.itemErrors).toEqual([]);
      const kept = await run({ 'anim.webp': webp }, work, { width: 60 });
      expect(kept.itemErrors).toEqual([
        { input: 'anim.webp', code: 'RESOURCE_EXHAUSTED', message: 'anim.webp: image of 10 frames of 120x90 = 108000 pixels is over the limit of 100000 pixels (TESSERA_MAX_INPUT_PIXELS)' },
      ]);
    } finally {
      if (saved === undefined) delete process.env['TESSERA_MAX_INPUT_PIXELS'];
      else process.env['TESSERA_MAX_INPUT_PIXELS'] = saved;
    }
  });
});
