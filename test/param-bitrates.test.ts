/**
 * Bitrates an encoder cannot take. libopus takes at most 256 kb/s per channel and fails on more:
 * an audio job failed on the worker (filed as the input's fault), a video job after every segment
 * was encoded ("a fault in Tessera"). LAME writes at most 320 kb/s (160 under 32 kHz) and at least
 * 32 at 32 kHz and over, and quietly wrote its nearest rate instead of the one asked. Now refused:
 * at submission where the params tell, at planning (naming the file) where the channels decide.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { audioKind } from '../coordinator/kinds/audio.js';
import { videoKind } from '../coordinator/kinds/video.js';
import { runFfmpeg } from '../shared/ffmpeg.js';
import { validateAudioParams } from '../shared/kinds/audio-params.js';
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
    const fresh = (raw: Record<string, unknown>) => () => audioKind.checkNew!(validateAudioParams(raw), {} as never);
    expect(refusal(fresh({ codec: 'mp3', bitrate: '512k' }))).toMatchObject({ code: status.INVALID_ARGUMENT, message: 'bitrate: 512k is over the 320k MP3 allows' });
    expect(refusal(fresh({ codec: 'opus', bitrate: '300k', channels: 1 }))).toMatchObject({ message: 'bitrate: 300k is over the 256k libopus takes for 1 channel (256k each)' });
    expect(refusal(fresh({ codec: 'opus', bitrate: '300k', channels: 2 }))).toBeUndefined();
    expect(validateAudioParams({ codec: 'mp3', bitrate: '512k' }).bitrate).toBe(512_000);
    const video = parseVideoParams({ audio_codec: 'mp3', audio_bitrate: '512k' });
    expect(refusal(() => videoKind.checkNew!(video, { video: { audio_codec: 'mp3', audio_bitrate: '512k' } } as never))).toMatchObject({ message: 'audio_bitrate: 512k is over the 320k MP3 allows' });
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
