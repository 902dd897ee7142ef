/**
 * The alpha warning looks at the first picture only, and takes an alpha of one value everywhere,
 * 0 included, for one that means nothing (16881d2). A motion-graphics overlay (a lower third, a
 * title, a sticker: PNG or QuickTime Animation in MOV) fades in from nothing: its first picture is
 * fully transparent, its alpha 0 everywhere. The job then drops the alpha of every later picture
 * (the transparent parts come out as opaque colour) without a word, where before 16881d2 it said so.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { videoKind } from '../coordinator/kinds/video.js';
import { runFfmpeg } from '../shared/ffmpeg.js';
import { videoProcessor } from '../worker/processors/video.js';
import { runKindInProcess, specOf } from './helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-alpha-fade-in-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
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
