/**
 * An intra-refresh H.264 that also holds a real IDR past its start (an encoder's forced IDR, or two
 * camera clips joined by stream copy): its recovery points are flagged as keyframes, as in a pure
 * intra-refresh stream, yet the planner's check (any frame at all from a decode begun at the cuts)
 * passes as soon as one cut is the IDR, and the other cuts stay on recovery points (review VID4's
 * failure, back for such a file).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { videoKind } from '../coordinator/kinds/video.js';
import { runFfmpeg, runFfprobe } from '../shared/ffmpeg.js';
import { videoProcessor } from '../worker/processors/video.js';
import { runKindInProcess, specOf } from './helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-intra-refresh-idr-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function framesOf(file: string): Promise<number> {
  const r = await runFfprobe<{ streams: Array<{ nb_read_frames?: string }> }>(['-count_frames', '-select_streams', 'v:0', '-show_entries', 'stream=nb_read_frames', '-i', file]);
  return Number(r.streams[0]?.nb_read_frames);
}

describe('video kind: an intra-refresh H.264 source with an IDR in its middle', () => {
  it('is transcoded whole, as `ffmpeg` transcodes it, not cut at its recovery points', async () => {
    const src = path.join(dir, 'joined.mp4');
    // Two 4 s dashcam-style clips (one IDR at the start, then a recovery point each second) joined
    // by stream copy, as `ffmpeg -f concat -c copy` joins a camera's clips: an IDR at 4 s.
    const clip = path.join(dir, 'clip.mp4');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=25:duration=4', '-c:v', 'libx264', '-preset', 'ultrafast', '-x264-params', 'intra-refresh=1:keyint=25', clip]);
    const list = path.join(dir, 'list.txt');
    await writeFile(list, `file '${clip}'\nfile '${clip}'\n`);
    await runFfmpeg(['-y', '-v', 'error', '-f', 'concat', '-safe', '0', '-i', list, '-c', 'copy', src]);
    const { stderr } = await runFfmpeg(['-v', 'error', '-i', src, '-f', 'null', '-']);
    expect(stderr.trim()).toBe('');
    // Two slots: four segments of 2 s, cut at 2, 4 and 6 s (only 4 s is an IDR).
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', codec: 'h264' }), [src], { dir, slots: 2 });
    expect(run.errors).toEqual([]);
    expect(run.outputs).toHaveLength(1);
    expect(await framesOf(run.outputs[0]!.path)).toBe(200);
  }, 60_000);
});
