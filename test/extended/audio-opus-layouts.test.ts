/**
 * Opus holds only the Vorbis layouts (RFC 7845 mapping family 1). A 2.1 or 3.1 source was converted
 * to its own count's layout (3.0, quad), which has no LFE: a down-mix drops it (ffmpeg mixes no LFE
 * into other channels), so a 2.1 music file lost its sub-bass and kept an empty centre, and nothing
 * was said (review AUD3). Such a source is now written as 5.1, every channel in its place, and the
 * job says what the conversion mixes or leaves silent. In process: the real planner, processor and merge.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { runFfmpeg, runFfprobe } from '../../shared/ffmpeg.js';
import { opusLayoutChange } from '../../shared/kinds/audio-params.js';
import { runAudioInProcess } from '../helpers/audio-media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-audio-opus-layouts-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Amplitude of the tone `f` in channel `c` of interleaved `s` (`n` channels, 48 kHz), over 1 s from 0.25 s. */
function amplitude(s: Float32Array, n: number, c: number, f: number): number {
  let re = 0;
  let im = 0;
  for (let i = 0; i < 48000; i++) {
    const x = s[(12000 + i) * n + c]!;
    re += x * Math.cos((2 * Math.PI * f * i) / 48000);
    im += x * Math.sin((2 * Math.PI * f * i) / 48000);
  }
  return (2 * Math.hypot(re, im)) / 48000;
}

test.each([
  ['2.1', [300, 500, 50], { FL: 300, FR: 500, LFE: 50 }, 'Opus has no 2.1 layout: written as 5.1, FC, BL, BR silent'],
  ['3.1', [300, 500, 700, 50], { FL: 300, FR: 500, FC: 700, LFE: 50 }, 'Opus has no 3.1 layout: written as 5.1, BL, BR silent'],
])('a %s source to opus is written as 5.1, its LFE and every channel in place', async (layout, tones, where, warning) => {
  const src = path.join(dir, `${layout}.wav`);
  await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', `aevalsrc=${tones.map((f) => `0.3*sin(2*PI*${f}*t)`).join('|')}:s=48000:d=2:channel_layout=${layout}`, src]);
  const r = await runAudioInProcess({ codec: 'opus' }, [src], path.join(dir, layout));
  expect(r.errors).toEqual([]);
  expect(r.warnings).toEqual([{ input: `${layout}.wav`, message: warning }]);
  const out = r.outputs.find((o) => o.name.endsWith('.opus'))!.path;
  const probe = await runFfprobe<{ streams: Array<{ channels: number; channel_layout: string }> }>(['-show_entries', 'stream=channels,channel_layout', '-i', out]);
  expect(probe.streams[0]).toMatchObject({ channels: 6, channel_layout: '5.1' });
  const raw = path.join(dir, `${layout}.f32`);
  await runFfmpeg(['-y', '-v', 'error', '-i', out, '-f', 'f32le', '-c:a', 'pcm_f32le', raw]);
  const bytes = await readFile(raw);
  const s = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  const order = ['FL', 'FR', 'FC', 'LFE', 'BL', 'BR'];
  for (const [c, name] of order.entries()) {
    const want = (where as Record<string, number>)[name];
    for (const f of tones) expect(amplitude(s, 6, c, f), `${name}: ${f} Hz`).toBeCloseTo(f === want ? 0.3 : 0, 1);
  }
});

test('what a conversion to an Opus layout mixes or leaves silent is said; sides for backs and a layout of its own are not', () => {
  expect(opusLayoutChange('hexagonal', '5.1')).toBe('Opus has no hexagonal layout: written as 5.1, its BC mixed into the channels beside it, and LFE silent');
  expect(opusLayoutChange('7.1(wide)', '7.1')).toBe('Opus has no 7.1(wide) layout: written as 7.1, its FLC, FRC mixed into the channels beside them, and SL, SR silent');
  // A 4.1's back centre goes to the backs, which are then not silent (a review read "BL, BR silent").
  expect(opusLayoutChange('4.1', '5.1')).toBe('Opus has no 4.1 layout: written as 5.1, its BC mixed into the channels beside it');
  expect(opusLayoutChange('5.1(side)', '5.1')).toBeUndefined();
  expect(opusLayoutChange('5.1', '5.1')).toBeUndefined();
  expect(opusLayoutChange('', '5.1')).toBeUndefined();
});
