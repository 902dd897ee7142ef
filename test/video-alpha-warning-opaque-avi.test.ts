/**
 * The alpha warning is given from the decoder's pixel format alone. A 32-bit uncompressed AVI (a
 * screen or capture tool's BI_RGB DIB: its fourth byte is padding, every picture opaque) decodes as
 * `bgra`, and the job warns that its alpha channel is left out and the output is opaque, though
 * nothing is left out: the output is the picture the source shows.
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
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-alpha-opaque-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('video kind: alpha warning', () => {
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
