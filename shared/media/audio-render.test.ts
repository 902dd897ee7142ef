/**
 * The final encode's loudness measured while it encodes (encodeFinal with `measure`), against real
 * ffmpeg: the file it writes through the tee muxer is the file a plain encode writes, the stream the
 * measuring side reads decodes (once its delay and padding are dropped) to the very samples a player
 * decodes from the file, and the loudness read beside the encode is the one read from the file after
 * it. An encode that fails still fails, and nothing waits on a pipe.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFfmpeg } from '../ffmpeg.js';
import { outputEncoding } from './audio-filters.js';
import { encodeFinal, measureEncoded, MEASURED_WHILE_ENCODED, type LossyCodec } from './audio-render.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-render-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const LAYOUTS: Record<number, string> = { 1: 'mono', 2: 'stereo', 6: '5.1' };

/**
 * A float WAV of speech-like bursts (0.3 s on, 0.2 s off, exactly periodic): its gated loudness moves
 * by tenths of a LU when the 400 ms blocks shift by a few milliseconds, so a measurement that reads
 * other samples than the file holds shows.
 */
async function piece(name: string, rate: number, channels: number, seconds: number): Promise<string> {
  const file = path.join(dir, name);
  const graph = `sine=f=180:r=${rate}:d=${seconds}[t];anoisesrc=r=${rate}:d=${seconds}:c=pink:a=0.1:s=5[n];[t][n]amix=2,volume='if(lt(mod(t,0.5),0.3),0.7,0.003)':eval=frame,aformat=sample_fmts=flt:channel_layouts=${LAYOUTS[channels]}`;
  await runFfmpeg(['-filter_complex', graph, '-c:a', 'pcm_f32le', '-y', file]);
  return file;
}

/** Interleaved float samples of `file` (or of bytes in `format`) as ffmpeg decodes them. */
async function decode(source: string | { bytes: Buffer; format: string }): Promise<Float32Array> {
  const out = path.join(dir, `decoded-${Math.random().toString(36).slice(2)}.f32`);
  if (typeof source === 'string') await runFfmpeg(['-i', source, '-f', 'f32le', '-y', out]);
  else {
    const raw = path.join(dir, `raw-${Math.random().toString(36).slice(2)}`);
    await writeFile(raw, source.bytes);
    await runFfmpeg(['-f', source.format, '-i', raw, '-f', 'f32le', '-y', out]);
  }
  const b = await readFile(out);
  return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
}

const cases: { codec: LossyCodec; rate: number; channels: number }[] = [
  { codec: 'mp3', rate: 44100, channels: 2 },
  { codec: 'mp3', rate: 22050, channels: 1 },
  { codec: 'aac', rate: 48000, channels: 6 },
  { codec: 'aac', rate: 44100, channels: 1 },
  { codec: 'opus', rate: 48000, channels: 2 },
];

describe('the final encode measured while it encodes', () => {
  it.each(cases)('$codec at $rate Hz, $channels channel(s): the same file, the same samples, the same loudness', async ({ codec, rate, channels }) => {
    const seconds = 6.3;
    const src = await piece(`${codec}-${rate}-${channels}.wav`, rate, channels, seconds);
    const frames = Math.round(seconds * rate);
    const encoder = outputEncoding(codec, 96_000, 16, channels);
    const ext = codec === 'aac' ? 'm4a' : codec;
    const base = { pieces: [src], input: 'talk.wav', chain: 'volume=2.5dB', encoder, workDir: dir };
    const plain = path.join(dir, `plain-${codec}-${rate}-${channels}.${ext}`);
    const teed = path.join(dir, `teed-${codec}-${rate}-${channels}.${ext}`);
    expect(await encodeFinal({ ...base, out: plain })).toBeUndefined();
    const measured = await encodeFinal({ ...base, out: teed, measure: { codec, frames } });

    // The tee muxer writes the file a plain encode writes (Ogg picks a random stream serial number
    // each time, in its page headers and their checksums: there the samples are compared).
    if (codec === 'opus') expect(Buffer.from((await decode(teed)).buffer).equals(Buffer.from((await decode(plain)).buffer))).toBe(true);
    else expect((await readFile(teed)).equals(await readFile(plain))).toBe(true);
    // The loudness read beside the encode is the one read from the file.
    const after = await measureEncoded(teed, 'talk.wav');
    expect(measured).toEqual(after);
    expect(Number.isFinite(after.lufs)).toBe(true);

    // What the measuring side reads: the pipe's stream, its delay (and for MP3 its end padding) dropped.
    const how = MEASURED_WHILE_ENCODED[codec];
    const chunks: Buffer[] = [];
    const sink = new Writable({ write: (c: Buffer, _e, done) => (chunks.push(c), done()) });
    await runFfmpeg(['-i', src, '-map', '0:a:0', '-map_metadata', '-1', '-af', 'volume=2.5dB', ...encoder.codec, '-f', how.muxer, 'pipe:3'], { pipe3: sink });
    const fromPipe = await decode({ bytes: Buffer.concat(chunks), format: how.demuxer });
    const fromFile = await decode(teed);
    const start = how.delay * channels;
    const end = how.trimEnd ? start + frames * channels : fromPipe.length;
    expect(end - start).toBe(fromFile.length);
    expect(Buffer.from(fromPipe.buffer, fromPipe.byteOffset + start * 4, (end - start) * 4).equals(Buffer.from(fromFile.buffer, fromFile.byteOffset, fromFile.byteLength))).toBe(true);
  });

  it('an encode that fails still fails, naming the input, and the measuring side does not keep it waiting', async () => {
    const encoder = outputEncoding('mp3', 128_000, 16, 2);
    const t0 = Date.now();
    await expect(
      encodeFinal({ pieces: [path.join(dir, 'no-such-piece.wav')], input: 'gone.flac', chain: '', encoder, out: path.join(dir, 'never.mp3'), workDir: dir, measure: { codec: 'mp3', frames: 44100 } }),
    ).rejects.toThrow(/^gone\.flac: ffmpeg failed/);
    expect(Date.now() - t0).toBeLessThan(20_000);
  });

  it('an abort stops both processes at once', async () => {
    const src = await piece('long.wav', 44100, 2, 240);
    const encoder = outputEncoding('mp3', 128_000, 16, 2);
    const ac = new AbortController();
    const running = encodeFinal({ pieces: [src], input: 'long.wav', chain: '', encoder, out: path.join(dir, 'aborted.mp3'), workDir: dir, signal: ac.signal, measure: { codec: 'mp3', frames: 240 * 44100 } });
    setTimeout(() => ac.abort(new Error('stop here')), 300);
    const t0 = Date.now();
    await expect(running).rejects.toThrow('stop here');
    expect(Date.now() - t0).toBeLessThan(5_000);
  });
});
