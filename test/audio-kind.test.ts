/**
 * The audio kind end to end in one process (real planner, real worker processor, real merge, files
 * copied between separate coordinator and worker folders), on generated audio:
 * segmented lossless output is bit-identical to one ffmpeg run of the same filters, lossy output is
 * identical to a single-process encode around every join, the loudness gated across segments matches
 * ffmpeg's ebur128, and bad inputs fail alone.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { ffmpegInfo, runFfmpeg, runFfprobe } from '../shared/ffmpeg.js';
import { validateAudioParams } from '../shared/kinds/audio-params.js';
import { encoderArgs, stageAChain, stageBChain } from '../shared/media/audio-filters.js';
import type { FileReport } from '../shared/media/audio-finish.js';
import { fadeSamples, type SegmentPlan } from '../shared/media/audio-pieces.js';
import { probeAudio } from '../shared/media/audio-probe.js';
import { decodedMd5, decodeFloat, ebur128, generateAudio, runAudioInProcess, audioReport, type InProcessResult } from './helpers/audio-media.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-audio-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const report = audioReport;

/** One ffmpeg run over the whole source with the same stage A + stage B filters and encoder. */
async function singleProcess(src: string, raw: Record<string, unknown>, rep: FileReport, out: string, opts: { outLayout?: string; bits?: 16 | 24 } = {}): Promise<string> {
  const params = validateAudioParams(raw);
  const a = stageAChain({ outRate: rep.sampleRate, outLayout: opts.outLayout ?? '', offset: 0, ...fadeSamples(params, rep.sampleRate, rep.frames) });
  const b = stageBChain({ gainDb: rep.gainDb, limit: rep.limit, sampleRate: rep.sampleRate, ffmpegMajor: ffmpegInfo().major });
  await runFfmpeg(['-i', src, '-map', '0:a:0', '-map_metadata', '-1', '-af', b ? `${a},${b}` : a, ...encoderArgs(params.codec, params.bitrate, opts.bits ?? 16), '-y', out]);
  return out;
}

function segmentOffsets(r: InProcessResult): number[] {
  return r.subtasks.map((s) => s.plan as SegmentPlan).filter((p) => p.type === 'segment' && p.index > 0).map((p) => p.offset);
}

describe('audio kind (in process)', () => {
  test('flac: 5.1 at 44.1 kHz, segmented with fades, down-mix and normalisation, is bit-identical to one ffmpeg run', async () => {
    const src = await generateAudio(path.join(dir, 'surround.wav'), { source: 'speech', seconds: 13, rate: 44100, layout: '5.1', ext: 'wav' });
    const raw = { codec: 'flac', channels: 2, fade_in: 2.5, fade_out: 3.3, normalize: true, segment_seconds: 4 };
    const r = await runAudioInProcess(raw, [src], dir);
    expect(r.errors).toEqual([]);
    expect(segmentOffsets(r).length).toBeGreaterThanOrEqual(2);
    const [rep] = await report(r);
    expect(rep!.frames).toBe(13 * 44100);
    const out = r.outputs.find((o) => o.name === 'surround.flac')!.path;
    const ref = await singleProcess(src, raw, rep!, path.join(dir, 'ref.flac'), { outLayout: 'stereo' });
    expect(await decodedMd5(out)).toBe(await decodedMd5(ref));
    const decoded = await decodeFloat(out, dir);
    expect(decoded.channels).toBe(2);
    expect(decoded.samples.length / 2).toBe(13 * 44100);
    // The fades are on the global timeline: silence at the very start and end, full level in the middle.
    expect(Math.abs(decoded.samples[0]!)).toBeLessThan(1e-4);
    expect(Math.abs(decoded.samples[decoded.samples.length - 1]!)).toBeLessThan(1e-3);
  });

  test("a mix to fewer channels is ffmpeg's -ac mix, bit for bit: a loud stereo file to mono, and 5.1 to stereo, never clip", async () => {
    const loud = path.join(dir, 'loud.wav');
    await runFfmpeg(['-f', 'lavfi', '-i', 'sine=f=440:r=44100:d=6', '-af', 'volume=0.9,pan=stereo|c0=c0|c1=c0', '-c:a', 'pcm_s16le', '-y', loud]);
    const five = path.join(dir, 'five.wav');
    await runFfmpeg(['-f', 'lavfi', '-i', 'sine=f=440:r=48000:d=6', '-af', 'volume=0.9,pan=5.1|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0', '-c:a', 'pcm_s16le', '-y', five]);
    for (const [src, channels, name] of [
      [loud, 1, 'loud.wav'],
      [five, 2, 'five.wav'],
    ] as const) {
      const r = await runAudioInProcess({ codec: 'wav', channels, segment_seconds: 2 }, [src], path.join(dir, `out-${channels}`));
      expect(r.errors).toEqual([]);
      const out = r.outputs.find((o) => o.name === name)!.path;
      const ref = path.join(dir, `ref-${channels}.wav`);
      await runFfmpeg(['-i', src, '-ac', String(channels), '-c:a', 'pcm_s16le', '-y', ref]);
      expect(await decodedMd5(out), name).toBe(await decodedMd5(ref));
      const { samples } = await decodeFloat(out, dir);
      expect(samples.filter((x) => Math.abs(x) >= 0.9999).length, `${name}: samples at full scale`).toBe(0);
    }
  });

  test("5.1 with a tone of its own in each channel, mixed to 2 and 4 channels: ffmpeg's -ac layouts (4 channels are 4.0, not quad) and matrix, within 16-bit rounding", async () => {
    // ffmpeg mixes 16-bit samples in integers, Tessera in float: one step of 16 bits apart at most.
    // Before, 4 channels were quad: the centre folded into the sides, 0.6 off (review AUD4).
    const distinct = path.join(dir, 'distinct.wav');
    await runFfmpeg(['-f', 'lavfi', '-i', `aevalsrc=${[300, 500, 700, 50, 900, 1100].map((f) => `0.3*sin(2*PI*${f}*t)`).join('|')}:s=48000:d=6:channel_layout=5.1`, '-c:a', 'pcm_s16le', '-y', distinct]);
    for (const channels of [2, 4]) {
      const r = await runAudioInProcess({ codec: 'wav', channels, segment_seconds: 2 }, [distinct], path.join(dir, `distinct-${channels}`));
      expect(r.errors).toEqual([]);
      const out = r.outputs.find((o) => o.name === 'distinct.wav')!.path;
      const ref = path.join(dir, `distinct-ref-${channels}.wav`);
      await runFfmpeg(['-i', distinct, '-ac', String(channels), '-c:a', 'pcm_s16le', '-y', ref]);
      expect((await probeAudio(out, 'out')).layout).toBe((await probeAudio(ref, 'ref')).layout);
      const [a, b] = [await decodeFloat(out, dir), await decodeFloat(ref, dir)];
      expect(a.samples.length).toBe(b.samples.length);
      let most = 0;
      for (let i = 0; i < a.samples.length; i++) most = Math.max(most, Math.abs(a.samples[i]! - b.samples[i]!));
      expect(most * 32768, `${channels} channels`).toBeLessThanOrEqual(1.0001);
    }
  });

  test('mp3 at 8 kHz and 11.025 kHz, segmented: every sample, though the container states the priming too', async () => {
    for (const rate of [8000, 11025]) {
      const src = path.join(dir, `low-${rate}.wav`);
      await runFfmpeg(['-f', 'lavfi', '-i', `sine=f=440:r=${rate}:d=12`, '-c:a', 'pcm_s16le', '-y', src]);
      const r = await runAudioInProcess({ codec: 'mp3', segment_seconds: 3 }, [src], path.join(dir, `out-${rate}`));
      expect(r.errors, String(rate)).toEqual([]);
      expect(segmentOffsets(r).length).toBeGreaterThanOrEqual(2);
      const { samples, channels } = await decodeFloat(r.outputs.find((o) => o.name === `low-${rate}.mp3`)!.path, dir);
      expect(samples.length / channels, String(rate)).toBe(12 * rate);
    }
  });

  test('wav: resampling 48 kHz -> 44.1 kHz across segments gives the exact sample count and the same samples as one run', async () => {
    const src = await generateAudio(path.join(dir, 'noise.flac'), { source: 'noise', seconds: 10.5, rate: 48000, layout: 'stereo', ext: 'flac' });
    const raw = { codec: 'wav', sample_rate: 44100, segment_seconds: 3 };
    const r = await runAudioInProcess(raw, [src], dir);
    expect(r.errors).toEqual([]);
    const [rep] = await report(r);
    const out = r.outputs.find((o) => o.name === 'noise.wav')!.path;
    // The generated noise is a 24-bit FLAC, so the output keeps 24 bits.
    const ref = await singleProcess(src, raw, rep!, path.join(dir, 'ref.wav'), { bits: 24 });
    const a = await decodeFloat(out, dir);
    const b = await decodeFloat(ref, dir);
    expect(a.samples.length).toBe(b.samples.length);
    expect(a.samples.length / 2).toBe(Math.round(10.5 * 44100));
    expect(await decodedMd5(out)).toBe(await decodedMd5(ref));
    // Written to be able to pass 4 GiB (6 h of 24-bit stereo at 96 kHz): ffmpeg's -rf64 auto keeps
    // room for a 64-bit size (a JUNK chunk before fmt) and makes the file RF64 when it gets there.
    expect((await readFile(out)).subarray(0, 16).toString('latin1')).toMatch(/^RIFF[^]{4}WAVEJUNK$/);
  });

  test('identity stage A: loudness gated across segments equals ffmpeg ebur128 within 0.1 LU; output within 0.5 LU of target and under the ceiling', async () => {
    const src = await generateAudio(path.join(dir, 'speech.wav'), { source: 'speech', seconds: 14, rate: 48000, layout: 'mono', ext: 'wav', amplitude: 0.05 });
    const raw = { codec: 'flac', normalize: true, loudness: -16, true_peak: -1.5, segment_seconds: 3 };
    const r = await runAudioInProcess(raw, [src], dir);
    expect(r.errors).toEqual([]);
    expect(segmentOffsets(r).length).toBeGreaterThanOrEqual(3);
    const [rep] = await report(r);
    const before = await ebur128(src);
    expect(Math.abs(rep!.loudness! - before.integrated)).toBeLessThanOrEqual(0.1);
    const out = r.outputs.find((o) => o.name === 'speech.flac')!.path;
    // No sample-changing stage A here: segments travel as 16-bit PCM, and the result is still exact.
    expect(await decodedMd5(out)).toBe(await decodedMd5(await singleProcess(src, raw, rep!, path.join(dir, 'ref.flac'))));
    const after = await ebur128(out);
    expect(Math.abs(after.integrated - -16)).toBeLessThanOrEqual(0.5);
    expect(after.truePeak).toBeLessThanOrEqual(-1.5 + 0.2);
  });

  test('loud material is true-peak limited and still lands within 0.5 LU of the target', async () => {
    const src = await generateAudio(path.join(dir, 'loud.wav'), { source: 'speech', seconds: 12, rate: 48000, layout: 'stereo', ext: 'wav', amplitude: 0.2 });
    const raw = { codec: 'flac', normalize: true, loudness: -9, true_peak: -1, segment_seconds: 4 };
    const r = await runAudioInProcess(raw, [src], dir);
    expect(r.errors).toEqual([]);
    const [rep] = await report(r);
    expect(rep!.limited).toBe(true);
    const after = await ebur128(r.outputs.find((o) => o.name === 'loud.flac')!.path);
    expect(Math.abs(after.integrated - -9)).toBeLessThanOrEqual(0.5);
    expect(after.truePeak).toBeLessThanOrEqual(-1 + 0.2);
  });

  for (const codec of ['aac', 'mp3', 'opus'] as const) {
    test(`${codec}: decoded output equals a single-process encode around every join (no gap, no click)`, async () => {
      const src = await generateAudio(path.join(dir, 'tone.flac'), { source: 'sine', seconds: 11, rate: 48000, layout: 'stereo', ext: 'flac' });
      const raw = { codec, normalize: true, segment_seconds: 3 };
      const r = await runAudioInProcess(raw, [src], dir);
      expect(r.errors).toEqual([]);
      const [rep] = await report(r);
      const name = r.outputs.find((o) => o.name.startsWith('tone.'))!;
      const ext = name.name.split('.').pop()!;
      const ref = await singleProcess(src, raw, rep!, path.join(dir, `ref.${ext}`));
      const a = await decodeFloat(name.path, dir);
      const b = await decodeFloat(ref, dir);
      expect(a.samples.length).toBe(b.samples.length);
      // Measure: max |tessera - single-process| over +-4096 samples around each join. Threshold 1e-4
      // (-80 dBFS); an encoder restart, a gap or a dropped sample gives differences near full scale.
      const offsets = segmentOffsets(r);
      expect(offsets.length).toBeGreaterThanOrEqual(2);
      for (const j of offsets) {
        let max = 0;
        for (let i = Math.max(0, j - 4096) * 2; i < Math.min(a.samples.length, (j + 4096) * 2); i++) max = Math.max(max, Math.abs(a.samples[i]! - b.samples[i]!));
        expect(max, `join at ${j}`).toBeLessThanOrEqual(1e-4);
      }
      // Decoded length: the source's 11 s; the container trims the priming, ffmpeg may keep the last frame's padding.
      const extra = a.samples.length / 2 - 11 * 48000;
      expect(extra).toBeGreaterThanOrEqual(0);
      expect(extra).toBeLessThan({ aac: 1024, mp3: 1152, opus: 960 }[codec]);
    });
  }

  test('trim and fade-out on an MP3 source: exact trimmed length, fade ends on the last decoded sample', async () => {
    const src = await generateAudio(path.join(dir, 'song.mp3'), { source: 'sine', seconds: 6, rate: 44100, layout: 'stereo', ext: 'mp3' });
    const r = await runAudioInProcess({ codec: 'wav', trim: { start: 1, end: 4.5 }, fade_out: 1 }, [src], dir);
    expect(r.errors).toEqual([]);
    const { samples, channels } = await decodeFloat(r.outputs.find((o) => o.name === 'song.wav')!.path, dir);
    expect(samples.length / channels).toBe(3.5 * 44100);
    const at = (t: number): number => Math.max(...Array.from({ length: 200 }, (_, i) => Math.abs(samples[(Math.round(t * 44100) + i) * channels]!)));
    // Full level before the fade, half-way down 0.5 s before the end, about nothing in the last 200 samples.
    expect(at(1.0)).toBeGreaterThan(0.03);
    expect(at(3.0) / at(1.0)).toBeGreaterThan(0.45);
    expect(at(3.0) / at(1.0)).toBeLessThan(0.55);
    expect(at(3.5 - 200 / 44100) / at(1.0)).toBeLessThan(0.01);
  });

  test('a batch spreads small files over subtasks; bad inputs fail alone with messages naming them', async () => {
    const good = await generateAudio(path.join(dir, 'good.mp3'), { source: 'speech', seconds: 3, rate: 44100, layout: 'stereo', ext: 'mp3' });
    const good2 = await generateAudio(path.join(dir, 'good2.m4a'), { source: 'sine', seconds: 2, rate: 48000, layout: 'mono', ext: 'm4a' });
    const noAudio = path.join(dir, 'picture.mkv');
    await runFfmpeg(['-f', 'lavfi', '-i', 'testsrc=d=1:s=64x48:r=5', '-c:v', 'mpeg4', '-y', noAudio]);
    const junk = path.join(dir, 'notes.txt');
    await writeFile(junk, 'this is not audio\n'.repeat(200));
    const full = await generateAudio(path.join(dir, 'full.flac'), { source: 'noise', seconds: 4, rate: 44100, layout: 'stereo', ext: 'flac' });
    const truncated = path.join(dir, 'cut.flac');
    const bytes = await readFile(full);
    await writeFile(truncated, bytes.subarray(0, Math.floor(bytes.length / 2)));
    // Three whole frames taken out of the middle (a copy that lost a few blocks): it decodes without
    // an error, 0.28 s short of what its STREAMINFO states.
    const damaged = path.join(dir, 'damaged.flac');
    const { packets } = await runFfprobe<{ packets: { pos: string }[] }>(['-show_entries', 'packet=pos', '-i', full]);
    const k = Math.floor(packets.length / 2);
    await writeFile(damaged, Buffer.concat([bytes.subarray(0, Number(packets[k]!.pos)), bytes.subarray(Number(packets[k + 3]!.pos))]));
    const raw = { codec: 'opus', waveform: true };
    const r = await runAudioInProcess(raw, [good, noAudio, junk, truncated, damaged, good2], dir);
    const byInput = new Map(r.errors.map((e) => [e.input, e]));
    expect([...byInput.keys()].sort()).toEqual(['cut.flac', 'damaged.flac', 'notes.txt', 'picture.mkv']);
    expect(byInput.get('damaged.flac')!.message).toMatch(/^damaged\.flac: corrupt file: decoded \d\.\d\d s of the 4\.00 s it states: \d\.\d\d s could not be decoded$/);
    // Segmented, the same file is refused alike.
    const segmented = await runAudioInProcess({ codec: 'wav', segment_seconds: 2 }, [damaged], path.join(dir, 'segmented'));
    expect(segmented.errors).toEqual([expect.objectContaining({ input: 'damaged.flac', code: 'INVALID_ARGUMENT', message: expect.stringMatching(/^damaged\.flac: (corrupt|cannot decode|truncated)/) })]);
    for (const [input, e] of byInput) {
      expect(e.code).toBe('INVALID_ARGUMENT');
      expect(e.message).toContain(input);
    }
    expect(byInput.get('picture.mkv')!.message).toMatch(/no audio stream/);
    expect(byInput.get('cut.flac')!.message).toMatch(/truncated|corrupt/);
    const names = r.outputs.map((o) => o.name).sort();
    expect(names).toEqual(['audio-report.json', 'good.opus', 'good.waveform.json', 'good.waveform.png', 'good2.opus', 'good2.waveform.json', 'good2.waveform.png']);
    const decoded = await decodeFloat(r.outputs.find((o) => o.name === 'good2.opus')!.path, dir);
    // 2 s of mono at 48 kHz, plus at most the padding of the last 20 ms opus frame.
    expect(decoded.samples.length - 2 * 48000).toBeGreaterThanOrEqual(0);
    expect(decoded.samples.length - 2 * 48000).toBeLessThan(960);
    const wf = JSON.parse(await readFile(r.outputs.find((o) => o.name === 'good.waveform.json')!.path, 'utf8')) as { length: number; data: number[]; samples_per_pixel: number; sample_rate: number };
    expect(wf.sample_rate).toBe(48000);
    expect(wf.data.length).toBe(2 * wf.length);
    expect(wf.length).toBe(Math.ceil((3 * 48000) / wf.samples_per_pixel));
    // Speech-like bursts: loud bins while the burst is on (first 0.7 s), near-silent ones in the pauses.
    const bin = (t: number): number => wf.data[2 * Math.floor((t * 48000) / wf.samples_per_pixel) + 1]!;
    expect(bin(0.3)).toBeGreaterThan(8 * bin(0.95));
  });
});
