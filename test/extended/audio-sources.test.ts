/**
 * Sources the audio kind must take as they come (in process: real planner, processor and merge, on
 * generated media): surround layouts that Opus cannot hold as they are (AC3 5.1(side), 2.1, 4.0, more
 * than 8 channels), a complete VBR MP3 without a Xing header (its container length is an estimate),
 * and lengths that do not divide into whole segments.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { runFfmpeg, runFfprobe } from '../../shared/ffmpeg.js';
import type { SegmentPlan } from '../../shared/media/audio-pieces.js';
import { probeAudio } from '../../shared/media/audio-probe.js';
import { decodedMd5, decodeFloat, ebur128, generateAudio, runAudioInProcess, audioReport } from '../helpers/audio-media.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-audio-sources-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const report = audioReport;

/** A 440 Hz tone in `layout`, each channel at its own gain (so a channel that moves can be told apart). */
async function surround(file: string, layout: string, gains: number[], seconds: number, codec: string[]): Promise<string> {
  const pan = gains.map((g, i) => `c${i}=${g}*c0`).join('|');
  await runFfmpeg(['-f', 'lavfi', '-i', `sine=f=440:r=48000:d=${seconds},aformat=channel_layouts=mono,pan=${layout}|${pan}`, ...codec, '-y', file]);
  return file;
}

/** RMS of each channel of interleaved samples. */
function channelRms(samples: Float32Array, channels: number): number[] {
  const sums = new Array<number>(channels).fill(0);
  for (let i = 0; i < samples.length; i++) sums[i % channels]! += samples[i]! ** 2;
  return sums.map((s) => Math.sqrt(s / (samples.length / channels)));
}

describe('audio kind: sources as they come', () => {
  test('opus: 5.1(side) AC3 and 4.0 sources are encoded in the Vorbis layout of their channel count (side -> back), a 2.1 one in 5.1 (its LFE kept), whole and segmented', async () => {
    const gains = [0.5, 0.4, 0.3, 0.2, 0.25, 0.15];
    // The AC3 encoder writes FL FR FC LFE SL SR: what every 5.1 AC3/E-AC3 track decodes to.
    const side = await surround(path.join(dir, 'movie.ac3'), '5.1(side)', gains, 1.5, ['-c:a', 'ac3', '-b:a', '448k']);
    expect((await probeAudio(side, 'movie.ac3')).layout).toBe('5.1(side)');
    const sideLong = await surround(path.join(dir, 'long.ac3'), '5.1(side)', gains, 5, ['-c:a', 'ac3', '-b:a', '448k']);
    const twoOne = await surround(path.join(dir, 'sub.wav'), '2.1', [0.5, 0.4, 0.2], 2, ['-c:a', 'pcm_s16le']);
    const four = await surround(path.join(dir, 'four.wav'), '4.0', [0.5, 0.4, 0.3, 0.2], 2, ['-c:a', 'pcm_s16le']);
    const r = await runAudioInProcess({ codec: 'opus', segment_seconds: 2 }, [side, sideLong, twoOne, four], dir);
    expect(r.errors).toEqual([]);
    expect(r.subtasks.filter((s) => (s.plan as SegmentPlan).type === 'segment').length).toBe(3);
    const want: Record<string, { layout: string; seconds: number }> = {
      'movie.opus': { layout: '5.1', seconds: 1.5 },
      'long.opus': { layout: '5.1', seconds: 5 },
      'sub.opus': { layout: '5.1', seconds: 2 },
      'four.opus': { layout: 'quad', seconds: 2 },
    };
    for (const [name, w] of Object.entries(want)) {
      const out = r.outputs.find((o) => o.name === name);
      expect(out, name).toBeDefined();
      const p = await probeAudio(out!.path, name);
      expect([name, p.codec, p.layout]).toEqual([name, 'opus', w.layout]);
      const { samples, channels } = await decodeFloat(out!.path, dir);
      expect(Math.abs(samples.length / channels / 48000 - w.seconds), name).toBeLessThan(0.03);
    }
    // Side left/right land on back left/right at their own level (not dropped, not mixed elsewhere).
    for (const name of ['movie.opus', 'long.opus']) {
      const { samples, channels } = await decodeFloat(r.outputs.find((o) => o.name === name)!.path, dir);
      const rms = channelRms(samples, channels);
      for (const c of [0, 1, 2, 4, 5]) expect(Math.abs(20 * Math.log10(rms[c]! / rms[0]! / (gains[c]! / gains[0]!))), `${name} channel ${c}`).toBeLessThan(1);
    }
  });

  test('aac: an AC3 5.1(side) track normalised is written as AAC 5.1 (side -> back); a 3.1 one keeps its channels and reaches the target as ebur128 weighs it', async () => {
    // The AAC encoder has no 5.1(side) configuration: it wrote a program config element that decodes
    // with no layout, and the loudness check (ebur128) refused that, failing the file as a bad input.
    const noise = (s: number): string => `anoisesrc=r=48000:d=3:c=pink:a=0.15:s=${s},aformat=channel_layouts=mono`;
    const movie = path.join(dir, 'movie.mka');
    await runFfmpeg(['-filter_complex', `${noise(1)}[a];${noise(2)}[b];${noise(3)}[c];${noise(4)}[d];${noise(5)}[e];${noise(6)}[f];[a][b][c][d][e][f]join=inputs=6:channel_layout=5.1(side)`, '-c:a', 'ac3', '-b:a', '448k', '-y', movie]);
    // A 3.1 (FL FR FC LFE, AC3's 3/0 + LFE): weighed as quad, its centre and LFE counted as backs,
    // it came out 2 LU under the target.
    const tv = path.join(dir, 'tv.wav');
    await runFfmpeg(['-filter_complex', `${noise(1)}[a];${noise(2)}[b];${noise(3)}[c];${noise(4)}[d];[a][b][c][d]join=inputs=4:channel_layout=3.1:map=0.0-FL|1.0-FR|2.0-FC|3.0-LFE`, '-c:a', 'pcm_s16le', '-y', tv]);
    const r = await runAudioInProcess({ codec: 'aac', normalize: true }, [movie, tv], dir);
    expect(r.errors).toEqual([]);
    const out = (name: string): string => r.outputs.find((o) => o.name === name)!.path;
    expect((await probeAudio(out('movie.m4a'), 'movie.m4a')).layout).toBe('5.1');
    expect(Math.abs((await ebur128(out('movie.m4a'))).integrated - -16)).toBeLessThanOrEqual(0.5);
    // AAC reads a 3.1 back without a layout: measured as what it was written as.
    expect((await probeAudio(out('tv.m4a'), 'tv.m4a')).channels).toBe(4);
    expect(Math.abs((await ebur128(out('tv.m4a'), 'channelmap=channel_layout=3.1')).integrated - -16)).toBeLessThanOrEqual(0.5);
    const flac = await runAudioInProcess({ codec: 'flac', normalize: true }, [tv], path.join(dir, 'flac'));
    expect(flac.errors).toEqual([]);
    expect((await probeAudio(flac.outputs[0]!.path, 'tv.flac')).layout).toBe('3.1');
    expect(Math.abs((await ebur128(flac.outputs[0]!.path)).integrated - -16)).toBeLessThanOrEqual(0.5);
  });

  test("the source's tags (title, artist, album) are kept, as a plain ffmpeg conversion keeps them; its gapless and gain tags are not", async () => {
    const src = path.join(dir, 'song.flac');
    const tags = ['title=My Title', 'artist=Some Artist', 'album=The Album', 'REPLAYGAIN_TRACK_GAIN=-7.5 dB'].flatMap((t) => ['-metadata', t]);
    await runFfmpeg(['-f', 'lavfi', '-i', 'anoisesrc=r=44100:d=1.5:c=pink:a=0.2,aformat=channel_layouts=stereo', ...tags, '-c:a', 'flac', '-y', src]);
    for (const codec of ['mp3', 'flac', 'opus', 'aac']) {
      const r = await runAudioInProcess({ codec }, [src], path.join(dir, codec));
      expect(r.errors).toEqual([]);
      const p = await runFfprobe<{ format?: { tags?: Record<string, string> }; streams?: Array<{ tags?: Record<string, string> }> }>(['-show_format', '-show_streams', '-i', r.outputs[0]!.path]);
      const got = Object.fromEntries(Object.entries({ ...p.format?.tags, ...p.streams?.[0]?.tags }).map(([k, v]) => [k.toLowerCase(), v]));
      expect(got, codec).toMatchObject({ title: 'My Title', artist: 'Some Artist', album: 'The Album' });
      expect(got['replaygain_track_gain'], codec).toBeUndefined();
    }
  });

  test('opus: a 10-channel source (no Vorbis layout) is encoded with discrete channels (mapping family 255)', async () => {
    const tones = Array.from({ length: 10 }, (_, i) => `sine=f=${300 + 50 * i}:r=48000:d=1[s${i}]`).join(';');
    const src = path.join(dir, 'array.wav');
    await runFfmpeg(['-filter_complex', `${tones};${Array.from({ length: 10 }, (_, i) => `[s${i}]`).join('')}amerge=inputs=10`, '-c:a', 'pcm_s16le', '-y', src]);
    expect((await probeAudio(src, 'array.wav')).channels).toBe(10);
    const r = await runAudioInProcess({ codec: 'opus' }, [src], dir);
    expect(r.errors).toEqual([]);
    const out = r.outputs.find((o) => o.name === 'array.opus')!;
    expect((await probeAudio(out.path, 'array.opus')).channels).toBe(10);
    const { samples, channels } = await decodeFloat(out.path, dir);
    expect(channels).toBe(10);
    expect(Math.abs(samples.length / 10 - 48000)).toBeLessThan(960);
  });

  test('a complete VBR MP3 without a Xing header is not refused as truncated; an MP3 cut in half still is (whole and segmented)', async () => {
    // A quiet start makes the first frame's bitrate (what ffmpeg estimates the length from) tiny:
    // ffprobe announces about twice the real 5 s, far past what the truncation check tolerates.
    const vbr = path.join(dir, 'vbr.mp3');
    await runFfmpeg([
      '-f', 'lavfi', '-i', 'anullsrc=r=44100:cl=stereo:d=1', '-f', 'lavfi', '-i', 'anoisesrc=r=44100:d=4:a=0.5',
      '-filter_complex', '[0][1]concat=n=2:v=0:a=1', '-c:a', 'libmp3lame', '-q:a', '0', '-write_xing', '0', '-y', vbr,
    ]);
    expect((await probeAudio(vbr, 'vbr.mp3')).duration).toBeGreaterThan(7);
    const full = await generateAudio(path.join(dir, 'full.mp3'), { source: 'noise', seconds: 6, rate: 44100, layout: 'stereo', ext: 'mp3' });
    const cut = path.join(dir, 'cut.mp3');
    const bytes = await readFile(full);
    await writeFile(cut, bytes.subarray(0, Math.floor(bytes.length / 2)));
    // Default segments: both are rendered whole on a worker; 2 s segments: both are decoded and cut by the planner.
    for (const raw of [{}, { segment_seconds: 2 }]) {
      const r = await runAudioInProcess(raw, [vbr, cut], path.join(dir, `run-${Object.keys(raw).length}`));
      const what = JSON.stringify(raw);
      expect(r.errors.map((e) => e.input), what).toEqual(['cut.mp3']);
      expect(r.errors[0]!.code).toBe('INVALID_ARGUMENT');
      expect(r.errors[0]!.message).toMatch(/^cut\.mp3: truncated file: decoded [23]\.\d\d s of the 6\.\d\d s it announces/);
      const [rep] = await report(r);
      // 5 s of audio; the MP3 decoder keeps the encoder's priming and padding without a LAME header.
      expect(Math.abs(rep!.frames / 44100 - 5), what).toBeLessThan(0.1);
      const { samples, channels } = await decodeFloat(r.outputs.find((o) => o.name === 'vbr.m4a')!.path, dir);
      expect(Math.abs(samples.length / channels / 44100 - 5), what).toBeLessThan(0.1);
    }
  });

  test('a Matroska file whose picture runs past its sound is not refused as truncated (whole and segmented)', async () => {
    // Matroska states no stream durations: the container's 8 s is the picture's, the sound is 4 s,
    // which its track's DURATION tag says.
    const mkv = path.join(dir, 'clip.mkv');
    await runFfmpeg(['-f', 'lavfi', '-i', 'testsrc2=size=64x48:rate=5:duration=8', '-f', 'lavfi', '-i', 'sine=f=440:r=48000:d=4', '-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'flac', '-y', mkv]);
    const probe = await probeAudio(mkv, 'clip.mkv');
    expect(probe.duration).toBeCloseTo(4, 1);
    expect(probe.durationIsAudio).toBe(true);
    for (const raw of [{}, { segment_seconds: 2 }]) {
      const r = await runAudioInProcess(raw, [mkv], path.join(dir, `mkv-${Object.keys(raw).length}`));
      expect(r.errors, JSON.stringify(raw)).toEqual([]);
      const [rep] = await report(r);
      expect(Math.abs(rep!.frames / rep!.sampleRate - 4), JSON.stringify(raw)).toBeLessThan(0.05);
    }
  });

  test('9.5 s in segments of about 2 s: even whole-second segments (2, 2, 2, 2, 1.5), output equal to one run', async () => {
    const src = await generateAudio(path.join(dir, 'talk.wav'), { source: 'speech', seconds: 9.5, rate: 48000, layout: 'stereo', ext: 'wav' });
    const r = await runAudioInProcess({ codec: 'flac', segment_seconds: 2 }, [src], dir);
    expect(r.errors).toEqual([]);
    const [rep] = await report(r);
    const plans = r.subtasks.map((s) => s.plan as SegmentPlan).sort((a, b) => a.index - b.index);
    const ends = [...plans.slice(1).map((p) => p.offset), rep!.frames];
    expect(plans.map((p, i) => (ends[i]! - p.offset) / 48000)).toEqual([2, 2, 2, 2, 1.5]);
    // Identity stage A: the joined output is the source, sample for sample.
    expect(await decodedMd5(r.outputs.find((o) => o.name === 'talk.flac')!.path)).toBe(await decodedMd5(src));
  });
});
