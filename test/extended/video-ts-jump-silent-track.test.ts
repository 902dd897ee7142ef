/**
 * A broadcast capture's MPEG-TS often declares an audio PID that carries nothing (an audio
 * description or second language the channel did not send: no sample rate). The video kind leaves
 * such a track out and says so, also where the capture's clock jumps (two recordings joined with
 * `cat`) and the kind first copies it as ffmpeg reads it: the mpegts muxer refuses the empty track
 * ("sample rate not set"), and the whole input failed when the copy took every audio track.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { videoKind } from '../../coordinator/kinds/video.js';
import { runFfmpeg, runFfprobe } from '../../shared/ffmpeg.js';
import { videoProcessor } from '../../worker/processors/video.js';
import { runKindInProcess, specOf } from '../helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-ts-jump-silent-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function videoSpan(file: string): Promise<number> {
  const r = await runFfprobe<{ packets?: Array<{ pts_time?: string }> }>(['-select_streams', 'v:0', '-show_entries', 'packet=pts_time', '-i', file]);
  const t = (r.packets ?? []).map((p) => Number(p.pts_time)).sort((a, b) => a - b);
  return t[t.length - 1]! - t[0]!;
}

describe('video kind: an MPEG-TS whose clock jumps, with an audio PID that carries no sound', () => {
  it('joined with cat: the video is made (the empty track left out, as without the jump), not the input failed', async () => {
    // 2 s of picture and sound, and a declared AAC track with no packets (sample_rate 0).
    const part = path.join(dir, 'part.ts');
    await runFfmpeg([
      '-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=s=96x64:r=25:d=2', '-f', 'lavfi', '-i', 'sine=d=2', '-f', 'lavfi', '-i', 'anullsrc,atrim=end_sample=0',
      '-map', '0:v', '-map', '1:a', '-map', '2:a', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '25', '-c:a', 'aac', '-f', 'mpegts', part,
    ]);
    const probe = await runFfprobe<{ streams: Array<{ codec_type: string; sample_rate?: string }> }>(['-show_entries', 'stream=codec_type,sample_rate', '-i', part]);
    expect(probe.streams.filter((s) => s.codec_type === 'audio').map((s) => Number(s.sample_rate))).toEqual([44100, 0]);
    const src = path.join(dir, 'joined.ts');
    const bytes = await readFile(part);
    await writeFile(src, Buffer.concat([bytes, bytes]));

    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', segment_seconds: 1 }), [src], { dir, slots: 2 });
    // Before: [{ code: 'INVALID_ARGUMENT' or 'INTERNAL', message: '...sample rate not set...' }] and no output.
    expect(run.errors).toEqual([]);
    expect(run.outputs).toHaveLength(1);
    expect(await videoSpan(run.outputs[0]!.path)).toBeGreaterThan(3.5);
    expect(run.warnings.map((w) => w.message)).toContainEqual(expect.stringMatching(/carries no sound/));
  }, 60_000);
});
