/**
 * LAME's bitrates at 8, 11.025 and 12 kHz (MPEG-2.5) go up to 64 kb/s, at 16 to 24 kHz (MPEG-2) up
 * to 160 kb/s; asked for more, it writes its most without a word (128k asked for an 8 kHz output
 * came out at 64k, and the job said nothing). The job says so, naming the file and the rate written.
 * Not a refusal: a version before this one took such a job, which must still run when resumed, or
 * on a worker of this version.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { audioKind } from '../coordinator/kinds/audio.js';
import { runFfmpeg, runFfprobe } from '../shared/ffmpeg.js';
import { mp3RateWritten, validateAudioParams } from '../shared/kinds/audio-params.js';
import { audioProcessor } from '../worker/processors/audio.js';
import { runKindInProcess, specOf } from './helpers/media.js';

let dir: string;
let speech8k: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-mp3-lowrate-'));
  speech8k = path.join(dir, 'call.wav');
  await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'anoisesrc=d=2:a=0.2:c=pink:r=8000', '-ac', '1', speech8k]);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

it('what LAME writes: at most 64k under 16 kHz, 160k under 32 kHz, and at least 32k from 32 kHz', () => {
  expect([8000, 11025, 12000, 16000, 22050, 44100].map((rate) => mp3RateWritten(128_000, rate))).toEqual([64_000, 64_000, 64_000, undefined, undefined, undefined]);
  expect([mp3RateWritten(192_000, 22050), mp3RateWritten(8_000, 48000), mp3RateWritten(320_000, 48000)]).toEqual([160_000, 32_000, undefined]);
  // Accepted as before: a job of an earlier version with such params still validates.
  expect(validateAudioParams({ codec: 'mp3', bitrate: '128k', sample_rate: 8000 }).bitrate).toBe(128_000);
});

it('an 8 kHz file asked as mp3 at 128k is written at 64k, and the job says so', async () => {
  const run = await runKindInProcess(audioKind, audioProcessor, specOf('audio', { codec: 'mp3', bitrate: '128k' }), [speech8k], { dir });
  expect(run.errors).toEqual([]);
  const out = run.outputs.find((o) => o.name === 'call.mp3')!;
  const written = (await runFfprobe<{ streams: { sample_rate: string; bit_rate: string }[] }>(['-show_entries', 'stream=bit_rate,sample_rate', '-i', out.path])).streams.map((st) => `${st.sample_rate},${st.bit_rate}`).join();
  expect(written).toBe('8000,64000');
  expect(run.warnings).toEqual([{ input: 'call.wav', message: 'bitrate 128k is written as 64k, the most MP3 has at 8000 Hz' }]);
}, 30_000);
