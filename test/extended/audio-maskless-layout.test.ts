/**
 * A WAV that names no channel layout (plain WAVE_FORMAT_PCM, no channel mask), as many multitrack
 * recorders write them. ffmpeg guesses its count's default layout (4 channels: 4.0, FL FR
 * FC BC), and writes the output with it; its loudness must be weighed by that same layout, else the
 * normalised output misses the target while the report says it met it.
 */
import { readFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { runFfmpeg, runFfprobe } from '../../shared/ffmpeg.js';
import { audioReport, ebur128, runAudioInProcess } from '../helpers/audio-media.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-audio-maskless-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A 16-bit PCM WAV with a plain 16-byte fmt chunk (no WAVE_FORMAT_EXTENSIBLE, so no channel mask). */
async function plainWav(raw: string, out: string, channels: number, rate: number): Promise<void> {
  const data = await readFile(raw);
  const h = Buffer.alloc(44);
  h.write('RIFF', 0, 'latin1');
  h.writeUInt32LE(36 + data.length, 4);
  h.write('WAVEfmt ', 8, 'latin1');
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20);
  h.writeUInt16LE(channels, 22);
  h.writeUInt32LE(rate, 24);
  h.writeUInt32LE(rate * channels * 2, 28);
  h.writeUInt16LE(channels * 2, 32);
  h.writeUInt16LE(16, 34);
  h.write('data', 36, 'latin1');
  h.writeUInt32LE(data.length, 40);
  await writeFile(out, Buffer.concat([h, data]));
}

test('a 4-channel WAV without a channel mask is normalised to the target as ffmpeg weighs it (its guessed 4.0 layout, which the output carries)', async () => {
  // Channel 3 carries the programme, the others a bed 20 dB down.
  const raw = path.join(dir, 'four.raw');
  await runFfmpeg(['-f', 'lavfi', '-i', 'anoisesrc=r=48000:d=3:c=pink:a=0.3:s=2', '-af', 'pan=4c|c0=0.1*c0|c1=0.1*c0|c2=c0|c3=0.1*c0', '-f', 's16le', '-c:a', 'pcm_s16le', '-y', raw]);
  const src = path.join(dir, 'four.wav');
  await plainWav(raw, src, 4, 48000);
  const probed = await runFfprobe<{ streams: Array<{ channels: number; channel_layout?: string }> }>(['-show_streams', '-i', src]);
  expect(probed.streams[0]!.channels).toBe(4);
  expect(probed.streams[0]!.channel_layout ?? 'unknown').toBe('unknown');

  const r = await runAudioInProcess({ codec: 'flac', normalize: true }, [src], dir);
  expect(r.errors).toEqual([]);
  const [rep] = await audioReport(r);
  const out = r.outputs.find((o) => o.name === 'four.flac')!.path;
  const outLayout = (await runFfprobe<{ streams: Array<{ channel_layout?: string }> }>(['-show_streams', '-i', out])).streams[0]!.channel_layout;
  // The source's loudness as ffmpeg's ebur128 reads it, and the output's against the target.
  expect(Math.abs(rep!.loudness! - (await ebur128(src)).integrated), 'report loudness vs ebur128 on the source').toBeLessThanOrEqual(0.2);
  const after = await ebur128(out);
  expect(Math.abs(after.integrated - -16), `output (${outLayout}) reads ${after.integrated} LUFS; report says ${rep!.outputLoudness}`).toBeLessThanOrEqual(0.5);
});
