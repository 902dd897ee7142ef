/**
 * Bitrates an encoder cannot take. libopus takes at most 256 kb/s per channel and fails on more:
 * an audio job failed on the worker (filed as the input's fault), a video job after every segment
 * was encoded ("a fault in Tessera"); MP3 has no rate over 320 kb/s. Now refused: at submission
 * where the params tell (a new submission only: a stored job of an earlier version still runs), at
 * planning (naming the file) where the channels decide. MP3 at 8, 11.025 and 12 kHz goes up to 64
 * kb/s, at 16 to 24 kHz to 160, and at least 32 from 32 kHz: LAME wrote its nearest rate without a
 * word (128k asked at 8 kHz came out at 64k); the job says so.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { audioKind } from '../coordinator/kinds/audio.js';
import { videoKind } from '../coordinator/kinds/video.js';
import { runFfmpeg, runFfprobe } from '../shared/ffmpeg.js';
import { mp3RateWritten, validateAudioParams } from '../shared/kinds/audio-params.js';
import { parseVideoParams } from '../shared/kinds/video-params.js';
import { audioProcessor } from '../worker/processors/audio.js';
import { videoProcessor } from '../worker/processors/video.js';
import { runKindInProcess, specOf } from './helpers/media.js';

let dir: string;
let mono: string;
let clip: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-bitrates-'));
  mono = path.join(dir, 'mono.wav');
  clip = path.join(dir, 'clip.mp4');
  await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'sine=d=1:r=48000', '-ac', '1', mono]);
  await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=s=64x48:r=25:d=1', '-f', 'lavfi', '-i', 'sine=d=1:r=48000', '-ac', '2', '-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'aac', '-shortest', clip]);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const refusal = (f: () => unknown): unknown => {
  try {
    f();
  } catch (err) {
    return err;
  }
  return undefined;
};

describe('at submission, where the params tell', () => {
  it('mp3 over 320k; opus over 256k a channel with the channels given (a new submission only: a stored job of an earlier version still runs)', () => {
    const fresh = (raw: Record<string, unknown>) => () => audioKind.refuseNew!(validateAudioParams(raw), {} as never);
    expect(refusal(fresh({ codec: 'mp3', bitrate: '512k' }))).toMatchObject({ code: status.INVALID_ARGUMENT, message: 'bitrate: 512k is over the 320k MP3 allows' });
    expect(refusal(fresh({ codec: 'opus', bitrate: '300k', channels: 1 }))).toMatchObject({ message: 'bitrate: 300k is over the 256k libopus takes for 1 channel (256k each)' });
    expect(refusal(fresh({ codec: 'opus', bitrate: '300k', channels: 2 }))).toBeUndefined();
    expect(validateAudioParams({ codec: 'mp3', bitrate: '512k' }).bitrate).toBe(512_000);
    const video = parseVideoParams({ audio_codec: 'mp3', audio_bitrate: '512k' });
    expect(refusal(() => videoKind.refuseNew!(video, { video: { audio_codec: 'mp3', audio_bitrate: '512k' } } as never))).toMatchObject({ message: 'audio_bitrate: 512k is over the 320k MP3 allows' });
  });
});

describe('at planning, where the file decides', () => {
  it('audio: opus at 300k for a mono file is the file\'s INVALID_ARGUMENT, before anything is encoded', async () => {
    const run = await runKindInProcess(audioKind, audioProcessor, specOf('audio', { codec: 'opus', bitrate: '300k' }), [mono], { dir });
    expect(run.outputs.filter((o) => o.name !== 'audio-report.json')).toEqual([]);
    expect(run.errors).toEqual([expect.objectContaining({ input: 'mono.wav', code: 'INVALID_ARGUMENT', message: 'mono.wav: bitrate 300k is over the 256k libopus takes for 1 channel (256k each) (this file is mono at 48000 Hz)' })]);
  });

  it('video: opus at 1M for a stereo track is refused at planning, not after every segment', async () => {
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', audio_codec: 'opus', audio_bitrate: '1M' }), [clip], { dir });
    expect(run.outputs).toEqual([]);
    expect(run.errors).toEqual([expect.objectContaining({ input: 'clip.mp4', code: 'INVALID_ARGUMENT', message: 'clip.mp4: audio_bitrate 1000k is over the 512k libopus takes for 2 channels (256k each) (audio track 1: 2 channels at 48000 Hz)' })]);
  });
});

describe('MP3 rates LAME lowers at a low sample rate (said, not refused: a version before took such jobs)', () => {
  it('what LAME writes: at most 64k under 16 kHz, 160k under 32 kHz, and at least 32k from 32 kHz', () => {
    expect([8000, 11025, 12000, 16000, 22050, 44100].map((rate) => mp3RateWritten(128_000, rate))).toEqual([64_000, 64_000, 64_000, undefined, undefined, undefined]);
    expect([mp3RateWritten(192_000, 22050), mp3RateWritten(8_000, 48000), mp3RateWritten(320_000, 48000)]).toEqual([160_000, 32_000, undefined]);
    // Accepted as before: a job of an earlier version with such params still validates.
    expect(validateAudioParams({ codec: 'mp3', bitrate: '128k', sample_rate: 8000 }).bitrate).toBe(128_000);
  });

  it('an 8 kHz file asked as mp3 at 128k is written at 64k, and the job says so', async () => {
    const speech8k = path.join(dir, 'call.wav');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'anoisesrc=d=2:a=0.2:c=pink:r=8000', '-ac', '1', speech8k]);
    const run = await runKindInProcess(audioKind, audioProcessor, specOf('audio', { codec: 'mp3', bitrate: '128k' }), [speech8k], { dir });
    expect(run.errors).toEqual([]);
    const out = run.outputs.find((o) => o.name === 'call.mp3')!;
    const written = (await runFfprobe<{ streams: { sample_rate: string; bit_rate: string }[] }>(['-show_entries', 'stream=bit_rate,sample_rate', '-i', out.path])).streams.map((st) => `${st.sample_rate},${st.bit_rate}`).join();
    expect(written).toBe('8000,64000');
    expect(run.warnings).toEqual([{ input: 'call.wav', message: 'bitrate 128k is written as 64k, the most MP3 has at 8000 Hz' }]);
  }, 30_000);
});
