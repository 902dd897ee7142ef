/**
 * Video with --audio-codec mp3 from a source whose audio is at a low sample rate (a voice or
 * telephony recording). The worker encodes the track into an MP4 intermediate, whose muxer refuses
 * MP3 under 16 kHz ("muxing mp3 at 8000hz is not standard"): the job failed, after the video segments,
 * as INTERNAL "a fault in Tessera" for any output container and the default bitrate. At 16 kHz into
 * Matroska the stitched file failed its own verification (audio starting 69 ms before the video, the
 * encoder's delay). Now refused at planning, naming the track and what to ask for; 16 kHz into MP4,
 * which worked, still works. An AAC rate over what the encoder holds at the track's rate is said.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { videoKind } from '../../coordinator/kinds/video.js';
import { runFfmpeg, runFfprobe } from '../../shared/ffmpeg.js';
import { videoProcessor } from '../../worker/processors/video.js';
import { runKindInProcess, specOf } from '../helpers/media.js';

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

// The rates LAME lowers, said as the audio kind says them (the video kind once refused them, then wrote them silently).
it.each([
  [16000, '256k', 160_000],
  [44100, '16k', 32_000],
])('a %i Hz track asked as mp3 at %s is said to be written at its LAME rate', async (rate, bitrate, written) => {
  const clip = await clipWithAudioAt(rate);
  const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', container: 'mp4', audio_codec: 'mp3', audio_bitrate: bitrate }), [clip], { dir });
  expect(run.errors).toEqual([]);
  const out = run.outputs[0]!;
  const streams = (await runFfprobe<{ streams: { bit_rate: string }[] }>(['-select_streams', 'a', '-show_entries', 'stream=bit_rate', '-i', out.path])).streams;
  // What LAME really wrote (MP4 states it from the size of 1 s: within 5 %), not what was asked.
  expect(Math.abs(Number(streams[0]!.bit_rate) / written - 1)).toBeLessThan(0.05);
  // Observed: no warning at all (the audio kind says "bitrate 256k is written as 160k, ...").
  expect(run.warnings).toEqual([expect.objectContaining({ input: `clip-${rate}.mp4`, message: expect.stringContaining(`written as ${written / 1000}k`) })]);
}, 60_000);

it.each([
  ['256k', 256_000],
  ['16k', 32_000],
])('a 30000 Hz track asked as mp3 at %s: the warning (or its absence) matches the rate LAME writes', async (bitrate, written) => {
  const clip = path.join(dir, `clip-30k-${bitrate}.mkv`);
  await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=s=64x48:r=25:d=1', '-f', 'lavfi', '-i', 'sine=d=1:r=30000', '-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'pcm_s16le', '-shortest', clip]);
  const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', container: 'mp4', audio_codec: 'mp3', audio_bitrate: bitrate }), [clip], { dir });
  expect(run.errors).toEqual([]);
  const a = (await runFfprobe<{ streams: { sample_rate: string; bit_rate: string }[] }>(['-select_streams', 'a', '-show_entries', 'stream=sample_rate,bit_rate', '-i', run.outputs[0]!.path])).streams[0]!;
  // What was written: 32 kHz, at `written` (within 5 %).
  expect(a.sample_rate).toBe('32000');
  expect(Math.abs(Number(a.bit_rate) / written - 1)).toBeLessThan(0.05);
  const said = run.warnings.filter((w) => /audio_bitrate/.test(w.message)).map((w) => w.message);
  // Observed: 256k -> ["audio track 1: audio_bitrate 256k is written as 160k, the most MP3 has at 30000 Hz"] (it is written at 256k);
  //           16k  -> [] (it is written at 32k).
  if (written === Number.parseInt(bitrate, 10) * 1000) expect(said).toEqual([]);
  else expect(said).toEqual([expect.stringContaining(`written as ${written / 1000}k`)]);
}, 60_000);

it('an input refused for its second track (8 kHz) carries no rate warning of its first (16 kHz)', async () => {
  const clip = path.join(dir, 'two-tracks.mkv');
  await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=s=64x48:r=25:d=1', '-f', 'lavfi', '-i', 'sine=d=1:r=16000', '-f', 'lavfi', '-i', 'sine=d=1:r=8000', '-map', '0:v', '-map', '1:a', '-map', '2:a', '-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'pcm_s16le', '-shortest', clip]);
  const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', container: 'mp4', audio_codec: 'mp3', audio_bitrate: '256k' }), [clip], { dir });
  expect(run.errors).toEqual([expect.objectContaining({ input: 'two-tracks.mkv', code: 'INVALID_ARGUMENT', message: expect.stringContaining('audio track 2 is 8000 Hz') })]);
  expect(run.outputs).toEqual([]);
  // Observed: [{ input: 'two-tracks.mkv', message: 'audio track 1: audio_bitrate 256k is written as 160k, the most MP3 has at 16000 Hz' }]
  expect(run.warnings).toEqual([]);
}, 60_000);

it('an AAC audio_bitrate over what the encoder holds at the track\'s rate is said, naming the track and the rate written, not clamped in silence', async () => {
  const clip = path.join(dir, 'voice-8k.mkv');
  await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=s=64x48:r=25:d=1', '-f', 'lavfi', '-i', 'sine=d=1:r=8000', '-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'pcm_s16le', '-shortest', clip]);
  const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', container: 'mp4', audio_codec: 'aac', audio_bitrate: '128k' }), [clip], { dir });
  expect(run.errors).toEqual([]);
  // 6 x 8,000 for one channel: the encoder writes at most 48k (it logs "Too many bits ... clamping").
  expect(run.warnings.map((w) => w.message)).toEqual(['audio track 1: audio_bitrate 128k is written as at most 48k, the most AAC holds at 8000 Hz for mono']);
}, 60_000);
