/**
 * A 6.1 source converted to Opus (the audio kind writes 7 channels as Vorbis 6.1, OPUS_LAYOUTS[7]):
 * each channel must come back from the output as the channel it was. ffmpeg's libopus wrapper
 * writes 6.1 with its channels in the wrong Vorbis slots (its decoder, and libopus's own
 * multistream decoder, read the source's front centre from the side-left slot's position: the
 * centre plays from the back, the back centre from the front, the side-left from the back), so
 * dialogue moves to a surround. Each source channel carries its own tone; the test names each
 * output channel by its loudest frequency.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { runFfmpeg, runFfprobe } from '../../shared/ffmpeg.js';
import { runAudioInProcess } from '../helpers/audio-media.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-audio-opus61-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** ffmpeg's 6.1 order, and the tone each source channel carries (Hz: a whole number of cycles in 0.5 s). */
const CHANNELS = ['FL', 'FR', 'FC', 'LFE', 'BC', 'SL', 'SR'];
const TONES = [500, 700, 300, 60, 1100, 1300, 1500];

/** The frequency (Hz, to 2 Hz) with the most energy in each channel of `file`, decoded by ffmpeg in its own 6.1 order. */
async function dominantTones(file: string): Promise<number[]> {
  const raw = path.join(dir, `${path.basename(file)}.f32`);
  await runFfmpeg(['-i', file, '-map', '0:a:0', '-f', 'f32le', '-c:a', 'pcm_f32le', '-y', raw]);
  const buf = await readFile(raw);
  const s = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
  const n = 24000; // 0.5 s from 0.25 s in
  const tones: number[] = [];
  for (let c = 0; c < 7; c++) {
    let best = 0;
    let bestPower = -1;
    for (const f of TONES) {
      let re = 0;
      let im = 0;
      for (let i = 0; i < n; i++) {
        const x = s[(12000 + i) * 7 + c]!;
        re += x * Math.cos((2 * Math.PI * f * i) / 48000);
        im += x * Math.sin((2 * Math.PI * f * i) / 48000);
      }
      if (re * re + im * im > bestPower) [best, bestPower] = [f, re * re + im * im];
    }
    tones.push(best);
  }
  return tones;
}

test('a 6.1 source converted to opus keeps each channel in its place', async () => {
  const src = path.join(dir, 'film.wav');
  const inputs = TONES.flatMap((f) => ['-f', 'lavfi', '-i', `sine=f=${f}:r=48000:d=1`]);
  const join = `${TONES.map((_, i) => `[${i}:a]`).join('')}join=inputs=7:channel_layout=6.1:map=${CHANNELS.map((c, i) => `${i}.0-${c}`).join('|')}[a]`;
  await runFfmpeg([...inputs, '-filter_complex', join, '-map', '[a]', '-y', src]);
  expect(await dominantTones(src)).toEqual(TONES);

  const r = await runAudioInProcess({ codec: 'opus', bitrate: '448k' }, [src], dir);
  expect(r.errors).toEqual([]);
  const out = r.outputs.find((o) => o.name === 'film.opus')!.path;
  const probe = await runFfprobe<{ streams: Array<{ channels: number; channel_layout: string }> }>(['-show_entries', 'stream=channels,channel_layout', '-i', out]);
  expect(probe.streams[0]).toMatchObject({ channels: 7, channel_layout: '6.1' });
  const got = await dominantTones(out);
  // Observed: FC carries the SL tone (1300), BC the FC tone (300), SL the BC tone (1100).
  expect(Object.fromEntries(CHANNELS.map((c, i) => [c, got[i]]))).toEqual(Object.fromEntries(CHANNELS.map((c, i) => [c, TONES[i]])));
});
