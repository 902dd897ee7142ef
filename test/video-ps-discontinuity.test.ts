/**
 * MPEG-PS (a DVD recorder's .vob/.mpg, accepted since the cut generates missing PTS) and MPEG-TS
 * whose clock restarts part-way -- two recordings joined with `cat`, a DVD recorder's chapter, a
 * broadcast capture across a programme change. `ffmpeg` reads the jump as a discontinuity and
 * converts every frame; split into segments, the video kind failed the file as DATA_LOSS.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { videoKind } from '../coordinator/kinds/video.js';
import { runFfmpeg, runFfprobe } from '../shared/ffmpeg.js';
import { videoProcessor } from '../worker/processors/video.js';
import { runKindInProcess, specOf } from './helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-ps-discont-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function frames(file: string): Promise<number> {
  const r = await runFfprobe<{ streams: Array<{ nb_read_packets: string }> }>(['-count_packets', '-select_streams', 'v:0', '-show_entries', 'stream=nb_read_packets', '-i', file]);
  return Number(r.streams[0]!.nb_read_packets);
}

describe('video kind: an MPEG-PS whose clock restarts', () => {
  it('two 2 s VOBs joined end to end keep all 100 frames when split into segments, as ffmpeg keeps them', async () => {
    const part = path.join(dir, 'part.vob');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=96x64:rate=25:duration=2', '-c:v', 'mpeg2video', '-g', '12', '-f', 'vob', part]);
    const src = path.join(dir, 'joined.vob');
    const bytes = await readFile(part);
    await writeFile(src, Buffer.concat([bytes, bytes]));
    const plain = path.join(dir, 'plain.mp4');
    await runFfmpeg(['-y', '-v', 'error', '-i', src, '-c:v', 'libx264', '-preset', 'ultrafast', plain]);
    expect(await frames(plain)).toBe(100);
    // One segment (the default size for 4 s) encodes every frame; segments of 1 s do not.
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', segment_seconds: 1 }), [src], { dir, slots: 2 });
    // Observed: [{ input: 'joined.vob', code: 'DATA_LOSS', message: 'segment 1: encoded 24 frames where 50 were planned' }]
    expect(run.errors).toEqual([]);
    expect(await frames(run.outputs[0]!.path)).toBe(100);
  }, 60_000);
});
