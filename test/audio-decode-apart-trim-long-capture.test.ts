/**
 * Review K17: a short clip trimmed from a long capture waits for the decoding process to decode the
 * whole capture.
 *
 * A trim that keeps less than segment_seconds is rendered whole on a worker, however long the
 * source (audio-plan.ts planFile). Decoded apart (an MPEG-TS, an MP3...), the chain's process stops
 * at the trim's end, but the decoding process goes on to the end of the file: runProcess drains
 * the pipe of a reader that has stopped ("the rest is drained into nothing"), so the decoder never
 * sees the broken pipe that bothRuns expects, and renderStageA waits for it. Before the change, one
 * process stopped at the trim's end: a 10 s clip from the start of a 30-minute AC-3 capture took
 * 0.6 s, now 6.5 s; a 6-hour capture (the default media limit) takes minutes of a worker's slot.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { runFfmpeg } from '../shared/ffmpeg.js';
import { runAudioInProcess } from './helpers/audio-media.js';

let dir: string;
/** 20 s of AC-3 stereo in MPEG-TS, and the same looped to 80 minutes (continuous timestamps). */
let short: string;
let long: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-apart-long-'));
  short = path.join(dir, 'short.ts');
  long = path.join(dir, 'long.ts');
  await runFfmpeg(['-f', 'lavfi', '-i', 'sine=f=440:r=48000:d=20', '-ac', '2', '-c:a', 'ac3', '-b:a', '64k', '-f', 'mpegts', '-y', short]);
  await runFfmpeg(['-stream_loop', '239', '-i', short, '-c', 'copy', '-f', 'mpegts', '-y', long]);
}, 60_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function clip(src: string, tag: string): Promise<number> {
  const t0 = Date.now();
  const r = await runAudioInProcess({ codec: 'wav', trim: { start: 1, end: 3 } }, [src], path.join(dir, tag));
  expect(r.errors).toEqual([]);
  expect(r.subtasks).toHaveLength(1);
  return Date.now() - t0;
}

test('a 2 s clip from the start of an 80-minute capture takes about as long as from a 20 s one', async () => {
  const fromShort = await clip(short, 'short');
  const fromLong = await clip(long, 'long');
  // Observed: ~0.5 s from the short file, ~10 s from the long one (the decoder ran to its end).
  expect(fromLong).toBeLessThan(3 * fromShort + 1500);
}, 120_000);
