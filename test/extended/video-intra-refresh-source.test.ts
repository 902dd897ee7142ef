/**
 * A source coded with periodic intra refresh (x264 `--intra-refresh`, as low-latency cameras, drones
 * and streaming encoders write it): one IDR at the start, then recovery points that packet flags
 * mark as keyframes but that are not random access points (a decoder starting there drops the
 * frames until the refresh wave has passed). `ffmpeg` transcodes the intact file without a
 * complaint; the video kind does too, cutting only where a decoder can start (it called the source
 * damaged: review VID4). One with a real IDR past its start (camera clips joined by stream copy) is
 * cut there, and only there (review K11: a check of all cuts together let every cut through).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { videoKind } from '../../coordinator/kinds/video.js';
import { runFfmpeg, runFfprobe } from '../../shared/ffmpeg.js';
import { videoProcessor } from '../../worker/processors/video.js';
import { runKindInProcess, specOf } from '../helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-intra-refresh-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function framesOf(file: string): Promise<number> {
  const r = await runFfprobe<{ streams: Array<{ nb_read_frames?: string }> }>(['-count_frames', '-select_streams', 'v:0', '-show_entries', 'stream=nb_read_frames', '-i', file]);
  return Number(r.streams[0]?.nb_read_frames);
}

describe('video kind: an intra-refresh H.264 source', () => {
  it('is transcoded whole, as `ffmpeg` transcodes it, not refused as damaged', async () => {
    const src = path.join(dir, 'intra-refresh.mp4');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=25:duration=4', '-c:v', 'libx264', '-preset', 'ultrafast', '-x264-params', 'intra-refresh=1:keyint=25', src]);
    // The fixture is intact: ffmpeg decodes every frame without an error line, and a single
    // transcode keeps all 100.
    const { stderr } = await runFfmpeg(['-v', 'error', '-i', src, '-f', 'null', '-']);
    expect(stderr.trim()).toBe('');
    const single = path.join(dir, 'single.mp4');
    await runFfmpeg(['-y', '-v', 'error', '-i', src, '-c:v', 'libx264', '-preset', 'ultrafast', single]);
    expect(await framesOf(single)).toBe(100);

    // Default segmenting (two slots: two segments of 2 s) is enough.
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', codec: 'h264' }), [src], { dir, slots: 2 });
    // It was: no output; DATA_LOSS "segment 2: encoded 42 frames where 50 were planned" (retried,
    // and failing the same on every worker), or, where the decoder logs a complaint about the
    // missing references, INVALID_ARGUMENT "the video is damaged from about ... s: N of its M frames
    // cannot be decoded ...; repair or re-encode the file first".
    expect(run.errors).toEqual([]);
    expect(run.outputs).toHaveLength(1);
    expect(await framesOf(run.outputs[0]!.path)).toBe(100);
  }, 60_000);

  it('with an IDR in its middle is cut there only, and transcoded whole', async () => {
    const src = path.join(dir, 'joined.mp4');
    // Two 4 s clips (an IDR at the start, then a recovery point each second) joined by stream copy,
    // as `ffmpeg -f concat -c copy` joins a camera's clips: an IDR at 4 s.
    const clip = path.join(dir, 'clip.mp4');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=25:duration=4', '-c:v', 'libx264', '-preset', 'ultrafast', '-x264-params', 'intra-refresh=1:keyint=25', clip]);
    const list = path.join(dir, 'list.txt');
    await writeFile(list, `file '${clip}'\nfile '${clip}'\n`);
    await runFfmpeg(['-y', '-v', 'error', '-f', 'concat', '-safe', '0', '-i', list, '-c', 'copy', src]);
    const { stderr } = await runFfmpeg(['-v', 'error', '-i', src, '-f', 'null', '-']);
    expect(stderr.trim()).toBe('');
    // Two slots: four segments of 2 s, planned cuts at 2, 4 and 6 s (only 4 s is an IDR).
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', codec: 'h264' }), [src], { dir, slots: 2 });
    // It was: DATA_LOSS "segment 2: encoded 42 frames where 50 were planned", on every retry.
    expect(run.errors).toEqual([]);
    expect(run.outputs).toHaveLength(1);
    expect(await framesOf(run.outputs[0]!.path)).toBe(200);
    // Still four segments, decoding from the start (0 s) or the IDR (4 s), not one.
    const segments = run.outcomes.map((o) => o.plan as unknown as { type?: string; chunkStarts?: number[] }).filter((p) => p?.type === 'segment');
    expect(segments).toHaveLength(4);
    expect([...new Set(segments.map((p) => Math.round(p.chunkStarts?.[0] ?? Number.NaN)))].sort()).toEqual([0, 4]);
  }, 60_000);
});
