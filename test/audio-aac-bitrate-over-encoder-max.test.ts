/**
 * README "Bitrate": a bitrate the encoder cannot take is refused, and where an encoder writes
 * another rate than the one asked (LAME at a low sample rate) the job says so, naming the file.
 * ffmpeg's AAC encoder holds at most 6144 bits per channel per 1024-sample frame (6 x the sample
 * rate per channel: 132.3k for mono at 22.05 kHz, 48k at 8 kHz) and quietly clamps anything more:
 * the job says so (it said nothing: review AU3).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { runFfprobe } from '../shared/ffmpeg.js';
import { generateAudio, runAudioInProcess } from './helpers/audio-media.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-audio-aac-rate-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('aac: a bitrate over what the encoder can write at the output rate is refused or said, not silently lowered (as MP3 is said)', async () => {
  const src = await generateAudio(path.join(dir, 'voice.wav'), { source: 'noise', seconds: 3, rate: 44100, layout: 'mono', ext: 'wav', amplitude: 0.5 });
  // The MP3 analogue is said: "bitrate 256k is written as 160k ...".
  const mp3 = await runAudioInProcess({ codec: 'mp3', bitrate: '256k', sample_rate: 22050 }, [src], path.join(dir, 'mp3'));
  expect(mp3.warnings.map((w) => w.message).join('\n')).toMatch(/written as 160k/);

  const r = await runAudioInProcess({ codec: 'aac', bitrate: '256k', sample_rate: 22050, channels: 1 }, [src], path.join(dir, 'aac'));
  const out = r.outputs.find((o) => o.name === 'voice.m4a');
  if (!out) {
    // Refused: fine, if it names the file.
    expect(r.errors[0]?.input).toBe('voice.wav');
    return;
  }
  const probe = await runFfprobe<{ streams: Array<{ bit_rate?: string }> }>(['-show_streams', '-i', out.path]);
  const written = Number(probe.streams[0]!.bit_rate);
  // ffmpeg writes at most ~132k here; the job must not pass that off as the 256k asked without a word.
  expect(written).toBeLessThan(200_000);
  expect(r.warnings.map((w) => `${w.input}: ${w.message}`).join('\n'), `asked 256k, written ${written} b/s`).toMatch(/voice\.wav: .*bitrate/);
});
