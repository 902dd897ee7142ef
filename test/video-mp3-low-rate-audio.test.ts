/**
 * Video with --audio-codec mp3 from a source whose audio is at a low sample rate (a voice or
 * telephony recording). The worker encodes the track into an MP4 intermediate, whose muxer refuses
 * MP3 under 16 kHz ("muxing mp3 at 8000hz is not standard"): the job failed, after the video segments,
 * as INTERNAL "a fault in Tessera" for any output container and the default bitrate. At 16 kHz into
 * Matroska the stitched file failed its own verification (audio starting 69 ms before the video, the
 * encoder's delay). Now refused at planning, naming the track and what to ask for; 16 kHz into MP4,
 * which worked, still works.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { videoKind } from '../coordinator/kinds/video.js';
import { runFfmpeg } from '../shared/ffmpeg.js';
import { videoProcessor } from '../worker/processors/video.js';
import { runKindInProcess, specOf } from './helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-video-mp3-lowrate-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function clipWithAudioAt(rate: number): Promise<string> {
  const clip = path.join(dir, `clip-${rate}.mp4`);
  await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=s=64x48:r=25:d=1', '-f', 'lavfi', '-i', `sine=d=1:r=${rate}`, '-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'aac', '-shortest', clip]);
  return clip;
}

it.each([
  [8000, 'mkv'],
  [11025, 'mkv'],
  [16000, 'mkv'],
])('a %i Hz track into %s with mp3 audio is refused at planning, naming the track, not failed after the segments', async (rate, container) => {
  const clip = await clipWithAudioAt(rate);
  const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', container, audio_codec: 'mp3' }), [clip], { dir });
  // Was: 8000/11025 INTERNAL "could not write the libmp3lame track ([mp4] ... muxing mp3 at 8000hz is
  // not standard ...); a fault in Tessera"; 16000 into mkv DATA_LOSS "stitched output failed verification".
  expect(run.errors).toEqual([expect.objectContaining({ input: `clip-${rate}.mp4`, code: 'INVALID_ARGUMENT', message: expect.stringMatching(new RegExp(`audio track 1 is ${rate} Hz, which MP3 audio is not written at here.*: ask for --audio-codec aac or opus$`)) })]);
  expect(run.outcomes).toEqual([]);
}, 60_000);

it('a 16 kHz track into mp4 with mp3 audio is delivered, as before', async () => {
  const clip = await clipWithAudioAt(16000);
  const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', container: 'mp4', audio_codec: 'mp3' }), [clip], { dir });
  expect(run.errors).toEqual([]);
  expect(run.outputs.map((o) => o.name)).toEqual(['clip-16000.mp4']);
}, 60_000);

it('an 8 kHz track into mp4 with mp3 audio is delivered, or refused at planning as the input\'s INVALID_ARGUMENT, not failed as INTERNAL', async () => {
  const clip = await clipWithAudioAt(8000);
  const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', container: 'mp4', audio_codec: 'mp3' }), [clip], { dir });
  for (const e of run.errors) expect(e.code, e.message).toBe('INVALID_ARGUMENT');
  // A refusal comes at planning, before any segment is encoded.
  if (run.errors.length) expect(run.outcomes).toEqual([]);
}, 60_000);
