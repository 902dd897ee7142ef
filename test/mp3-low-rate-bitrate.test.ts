/**
 * LAME's bitrates at 8, 11.025 and 12 kHz (MPEG-2.5) go up to 64 kb/s, not the 160 kb/s of 16 to 24
 * kHz (MPEG-2). b15863d refuses MP3 bitrates LAME would quietly replace, with 160k as the limit for
 * every rate under 32 kHz: 128k asked for an 8 kHz output is accepted, and the file is written at 64k.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { audioKind } from '../coordinator/kinds/audio.js';
import { runFfmpeg, runFfprobe } from '../shared/ffmpeg.js';
import { validateAudioParams } from '../shared/kinds/audio-params.js';
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

it.each([8000, 11025, 12000])('mp3 at 128k for a %i Hz output is refused at submission (LAME writes at most 64k there)', (rate) => {
  let err: unknown;
  try {
    validateAudioParams({ codec: 'mp3', bitrate: '128k', sample_rate: rate });
  } catch (e) {
    err = e;
  }
  expect(err).toMatchObject({ code: status.INVALID_ARGUMENT, message: expect.stringMatching(/^bitrate: 128k is over the 64k MP3 allows at \d+ Hz/) });
});

it('an 8 kHz file asked as mp3 at 128k is refused at planning, not written at 64k', async () => {
  const run = await runKindInProcess(audioKind, audioProcessor, specOf('audio', { codec: 'mp3', bitrate: '128k' }), [speech8k], { dir });
  const out = run.outputs.find((o) => o.name === 'call.mp3');
  const written = out ? (await runFfprobe<{ streams: { sample_rate: string; bit_rate: string }[] }>(['-show_entries', 'stream=bit_rate,sample_rate', '-i', out.path])).streams.map((st) => `${st.sample_rate},${st.bit_rate}`).join() : 'no output';
  // Observed: no error, the file written as "8000,64000".
  expect({ written, errors: run.errors }).toMatchObject({ written: 'no output', errors: [expect.objectContaining({ input: 'call.wav', code: 'INVALID_ARGUMENT' })] });
}, 30_000);

