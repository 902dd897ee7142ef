/**
 * The audio kind on inputs at the edges (in process: the real planner, worker processor and merge, on
 * generated audio): WAVs whose header states no size (written to a pipe), WAVs cut short, trims shorter
 * than a sample, normalisation of files shorter than one 400 ms loudness block, the message of a
 * loudness setting without normalize, the output's true peak in audio-report.json (a peak right
 * before a join measured as in one piece), a segment whose statistics come back damaged, and files
 * whose headers say less or other than they hold (a 0 data size, a container longer than its sound,
 * no length at all, 20-bit samples) or that cannot be converted as asked.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { TesseraError } from '../../shared/errors.js';
import { ffmpegBinaries, runFfmpeg } from '../../shared/ffmpeg.js';
import { mergeAudio } from '../../coordinator/kinds/audio-merge.js';
import { createLogger } from '../../shared/logger.js';
import type { MergeContext, SubtaskOutcome } from '../../shared/job-kind.js';
import type { AudioJobParams } from '../../shared/kinds/audio-params.js';
import type { FileRender, SegmentPlan } from '../../shared/media/audio-pieces.js';
import { checkNewAudioParams, validateAudioParams } from '../../shared/kinds/audio-params.js';
import { probeAudio } from '../../shared/media/audio-probe.js';
import { withoutProgress } from '../../shared/media/audio-render.js';
import { wavHeader } from '../../shared/media/audio-wav.js';
import { audioReport, decodeFloat, ebur128, generateAudio, runAudioInProcess } from '../helpers/audio-media.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-audio-edge-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/**
 * `ffmpeg -f lavfi -i <graph> -f wav - > file`: the wav muxer cannot seek back on a pipe, so the RIFF
 * and data sizes stay 0xFFFFFFFF ("to the end").
 */
function pipedWav(file: string, graph: string): string {
  const fd = openSync(file, 'w');
  try {
    const r = spawnSync(ffmpegBinaries().ffmpeg, ['-hide_banner', '-nostdin', '-v', 'error', '-f', 'lavfi', '-i', graph, '-c:a', 'pcm_s16le', '-f', 'wav', 'pipe:1'], { stdio: ['ignore', fd, 'pipe'] });
    if (r.status !== 0) throw new Error(`ffmpeg failed: ${String(r.stderr)}`);
  } finally {
    closeSync(fd);
  }
  return file;
}

/** FLAC in Matroska written to a pipe: the muxer cannot go back to write the length, so none is stated. */
function pipedMka(file: string, graph: string): string {
  const fd = openSync(file, 'w');
  try {
    const r = spawnSync(ffmpegBinaries().ffmpeg, ['-hide_banner', '-nostdin', '-v', 'error', '-f', 'lavfi', '-i', graph, '-c:a', 'flac', '-f', 'matroska', 'pipe:1'], { stdio: ['ignore', fd, 'pipe'] });
    if (r.status !== 0) throw new Error(`ffmpeg failed: ${String(r.stderr)}`);
  } finally {
    closeSync(fd);
  }
  return file;
}

function invalid(fn: () => unknown): TesseraError {
  try {
    fn();
  } catch (err) {
    if (err instanceof TesseraError) return err;
    throw err;
  }
  throw new Error('no error thrown');
}

describe('audio inputs at the edges', () => {
  test('a WAV written to a pipe (sizes 0xFFFFFFFF) is processed in full, whole and segmented', async () => {
    // 4.5 s of 48 kHz mono s16: 432000 bytes, not a multiple of the demuxer's packet size.
    const src = pipedWav(path.join(dir, 'piped.wav'), 'sine=f=440:r=48000:d=4.5');
    const head = await readFile(src);
    expect(head.readUInt32LE(4)).toBe(0xffffffff);
    for (const segment_seconds of [180, 2]) {
      const out = path.join(dir, `run-${segment_seconds}`);
      const r = await runAudioInProcess({ codec: 'mp3', segment_seconds }, [src], out);
      expect(r.errors).toEqual([]);
      const [rep] = await audioReport(r);
      expect(rep!.frames).toBe(4.5 * 48000);
      expect(rep!.pieces).toBe(segment_seconds === 2 ? 2 : 1);
      const probe = await probeAudio(r.outputs.find((o) => o.name === 'piped.mp3')!.path, 'piped.mp3');
      expect(Math.abs(probe.duration - 4.5)).toBeLessThan(0.06);
    }
  });

  test('a WAV cut short (its header states more than it holds) is refused as truncated, with no ffmpeg progress in the message', async () => {
    const full = await generateAudio(path.join(dir, 'full.wav'), { source: 'sine', seconds: 4, rate: 48000, layout: 'stereo', ext: 'wav' });
    const bytes = await readFile(full);
    // Sample-aligned (as `head -c 1000078 st48.wav`) and not.
    const aligned = path.join(dir, 'cut-aligned.wav');
    await writeFile(aligned, bytes.subarray(0, 44 + 2 * 48000 * 4));
    const odd = path.join(dir, 'cut-odd.wav');
    await writeFile(odd, bytes.subarray(0, 44 + 2 * 48000 * 4 + 3));
    const r = await runAudioInProcess({ codec: 'flac' }, [aligned, odd], dir);
    expect(r.errors.map((e) => e.input).sort()).toEqual(['cut-aligned.wav', 'cut-odd.wav']);
    for (const e of r.errors) {
      expect(e.code).toBe('INVALID_ARGUMENT');
      expect(e.message).toMatch(new RegExp(`^${e.input.replace('.', '\\.')}: truncated file: 2\\.00 s present of the 4\\.00 s its header declares$`));
    }
  });

  test('a truncated FLAC is still refused as truncated or corrupt, and no ffmpeg progress line reaches the message', async () => {
    const full = await generateAudio(path.join(dir, 'full.flac'), { source: 'noise', seconds: 3, rate: 44100, layout: 'stereo', ext: 'flac' });
    const bytes = await readFile(full);
    const cut = path.join(dir, 'cut.flac');
    await writeFile(cut, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const r = await runAudioInProcess({ codec: 'mp3' }, [cut], dir);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]!.code).toBe('INVALID_ARGUMENT');
    expect(r.errors[0]!.message).toMatch(/^cut\.flac: .*(truncated|corrupt)/);
    expect(r.errors[0]!.message).not.toMatch(/size=|time=\d|bitrate=|speed=/);
  });

  test('withoutProgress drops ffmpeg progress fragments and keeps the error', () => {
    const raw = 'size=       8kB time=00:00:00.04 bitrate=1536.0kbits/s speed=N/A    \r[wav @ 0x55] Packet corrupt (stream = 0, dts = NOPTS).; piped.wav: corrupt input packet in stream 0';
    expect(withoutProgress(raw)).toBe('[wav @ 0x55] Packet corrupt (stream = 0, dts = NOPTS).; piped.wav: corrupt input packet in stream 0');
    expect(withoutProgress('[flac @ 0x1] invalid frame header; Error while decoding stream #0:0: Invalid data found')).toBe('[flac @ 0x1] invalid frame header; Error while decoding stream #0:0: Invalid data found');
  });

  test('a trim shorter than 10 ms is refused: in the params, and where it runs past the end of the file; 10 ms is encoded', async () => {
    const e = invalid(() => checkNewAudioParams(validateAudioParams({ codec: 'mp3', trim: { start: 9.99999, end: 10 } })));
    expect(e.codeName).toBe('INVALID_ARGUMENT');
    expect(e.message).toBe('trim: 9.99999..10 s keeps 0.00001 s of audio; a trim must keep at least 0.01 s');
    const src = await generateAudio(path.join(dir, 'tone.wav'), { source: 'sine', seconds: 2, rate: 48000, layout: 'stereo', ext: 'wav' });
    const past = await runAudioInProcess({ codec: 'mp3', trim: { start: 1.995, end: 3 } }, [src], path.join(dir, 'past'));
    expect(past.errors).toEqual([{ input: 'tone.wav', code: 'INVALID_ARGUMENT', message: 'tone.wav: trim.start 1.995 s leaves 0.005 s before the end (2.00 s); a trim must keep at least 0.01 s' }]);
    const ok = await runAudioInProcess({ codec: 'mp3', trim: { start: 1, end: 1.01 } }, [src], path.join(dir, 'ok'));
    expect(ok.errors).toEqual([]);
    expect((await audioReport(ok))[0]!.frames).toBe(480);
    const decoded = await decodeFloat(ok.outputs.find((o) => o.name === 'tone.mp3')!.path, dir);
    expect(decoded.samples.length / decoded.channels).toBeGreaterThanOrEqual(480);
  });

  test('a file too short to resample (one sample at 44.1 kHz, for Opus) says so and what keeps its rate, not that it has no samples', async () => {
    const one = path.join(dir, 'one.wav');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'sine=r=44100:d=1', '-ac', '1', '-af', 'atrim=end_sample=1', one]);
    const opus = await runAudioInProcess({ codec: 'opus' }, [one], path.join(dir, 'one-opus'));
    // Observed: "one.wav: no audio to encode: the decoded file has no samples" (ffmpeg's resampler
    // gives none for so few; a single `ffmpeg -c:a libopus` writes an Ogg with no sound in it).
    expect(opus.errors).toEqual([{
      input: 'one.wav',
      code: 'INVALID_ARGUMENT',
      message: "one.wav: no audio to encode: it is too short to resample from 44100 Hz to 48000 Hz (ffmpeg's resampler gives no samples for under about half a millisecond of audio); opus cannot take 44100 Hz: choose a codec that keeps it (aac, mp3, flac, wav)",
    }]);
    const asked = await runAudioInProcess({ codec: 'flac', sample_rate: 48000 }, [one], path.join(dir, 'one-flac48'));
    expect(asked.errors[0]?.message).toMatch(/too short to resample from 44100 Hz to 48000 Hz .*; leave sample_rate out to keep 44100 Hz$/);
    // Asked of Opus, which takes no 44.1 kHz, leaving it out would not keep it (review self).
    const opusAsked = await runAudioInProcess({ codec: 'opus', sample_rate: 48000 }, [one], path.join(dir, 'one-opus48'));
    expect(opusAsked.errors[0]?.message).toMatch(/; opus cannot take 44100 Hz: choose a codec that keeps it \(aac, mp3, flac, wav\)$/);
    // At its own rate it is encoded, its one sample kept.
    const flac = await runAudioInProcess({ codec: 'flac' }, [one], path.join(dir, 'one-flac'));
    expect(flac.errors).toEqual([]);
    expect((await audioReport(flac))[0]!.frames).toBe(1);
  });

  test('a fade longer than the audio kept spans all of it, with a warning naming the file', async () => {
    const src = await generateAudio(path.join(dir, 'short-fade.wav'), { source: 'sine', seconds: 2, rate: 44100, layout: 'mono', ext: 'wav' });
    const r = await runAudioInProcess({ codec: 'flac', fade_in: 5 }, [src], path.join(dir, 'long-fade'));
    expect(r.errors).toEqual([]);
    expect(r.outputs.map((o) => o.name)).toContain('short-fade.flac');
    expect(r.warnings).toEqual([{ input: 'short-fade.wav', message: 'fade-in 5 s is longer than the 2.00 s of audio kept: it spans all of it' }]);
    const plain = await runAudioInProcess({ codec: 'flac', fade_in: 1 }, [src], path.join(dir, 'short-fade'));
    expect(plain.warnings).toEqual([]);
  });

  test('normalising a file shorter than one 400 ms loudness block fails that file with a reason; silence still gets gain 0', async () => {
    const short = await generateAudio(path.join(dir, 'blip.wav'), { source: 'sine', seconds: 0.3, rate: 48000, layout: 'stereo', ext: 'wav' });
    const silence = path.join(dir, 'quiet.wav');
    pipedWav(silence, 'anullsrc=r=48000:cl=stereo:d=1');
    const r = await runAudioInProcess({ codec: 'wav', normalize: true }, [short, silence], dir);
    expect(r.errors).toEqual([
      { input: 'blip.wav', code: 'INVALID_ARGUMENT', message: 'blip.wav: too short to normalise: 0.300 s of audio, and EBU R128 loudness needs at least 0.4 s; submit this file without normalize (--normalize, --loudness, --true-peak)' },
    ]);
    const reports = await audioReport(r);
    expect(reports.map((x) => x.input)).toEqual(['quiet.wav']);
    // Digital silence has no peak: null, as its loudness (before, its source peak read -200 dBTP).
    expect(reports[0]).toMatchObject({ loudness: null, gainDb: 0, outputTruePeak: null, truePeak: null, sourceTruePeak: null });
    // Without normalize the short file is fine.
    const plain = await runAudioInProcess({ codec: 'wav' }, [short], path.join(dir, 'plain'));
    expect(plain.errors).toEqual([]);
    // Silence is not warned of.
    expect(r.warnings).toEqual([]);
  });

  test('normalising a file all under the -70 LUFS gate (sound, not silence) leaves it as it is, and says so', async () => {
    const faint = path.join(dir, 'faint.wav');
    pipedWav(faint, 'anoisesrc=c=pink:r=48000:a=0.001:d=5');
    const r = await runAudioInProcess({ codec: 'flac', normalize: true }, [faint], path.join(dir, 'faint'));
    expect(r.errors).toEqual([]);
    const [report] = await audioReport(r);
    expect(report).toMatchObject({ loudness: null, gainDb: 0 });
    // Was: no word of it, the file 54 LU under the target asked.
    expect(r.warnings).toEqual([{ input: 'faint.wav', message: expect.stringMatching(/^not normalised: all of it is under the -70 LUFS absolute gate of EBU R128 loudness \(its true peak is -\d+\.\d dBTP\), so it has no loudness to bring to the -16 LUFS asked; it is left as it is$/) }]);
  });

  test('a loudness setting without normalize is refused with a message that names the setting to add', () => {
    const tp = invalid(() => validateAudioParams({ true_peak: -1 }));
    expect(tp.codeName).toBe('INVALID_ARGUMENT');
    expect(tp.message).toBe('true_peak: true_peak -1 dBTP applies only to loudness normalisation, which is off: also set normalize: true (CLI: --normalize)');
    const both = invalid(() => validateAudioParams({ loudness: -20, true_peak: -2 }));
    expect(both.message).toBe('loudness/true_peak: loudness -20 LUFS and true_peak -2 dBTP apply only to loudness normalisation, which is off: also set normalize: true (CLI: --normalize)');
    expect(validateAudioParams({ true_peak: -1, normalize: true }).truePeak).toBe(-1);
  });

  test('audio-report.json gives the output true peak next to the source one (lossless: source + gain, measured when limited; lossy: measured with its loudness)', async () => {
    // Speech-like bursts have a high crest factor: brought to -9 LUFS they peak over the ceiling. A sine does not.
    const loud = await generateAudio(path.join(dir, 'loud.wav'), { source: 'speech', seconds: 3, rate: 48000, layout: 'stereo', ext: 'wav', amplitude: 0.2 });
    const quiet = await generateAudio(path.join(dir, 'soft.wav'), { source: 'sine', seconds: 3, rate: 48000, layout: 'stereo', ext: 'wav', amplitude: 0.05 });
    for (const codec of ['mp3', 'flac'] as const) {
      const r = await runAudioInProcess({ codec, normalize: true, loudness: -9, true_peak: -1 }, [loud, quiet], path.join(dir, codec));
      expect(r.errors).toEqual([]);
      for (const rep of await audioReport(r)) {
        expect(rep.sourceTruePeak).toBe(rep.truePeak);
        const measured = await ebur128(r.outputs.find((o) => o.name === rep.output)!.path);
        if (codec === 'mp3') {
          // Measured on the encoder's stream as it was written: the samples a player decodes from
          // the file, so ebur128 reads the same figure from the file.
          expect(rep.outputTruePeak, rep.input).toBe(measured.truePeak);
          continue;
        }
        // ebur128 prints 0.1 dB; the lossless estimate is exact but for the 16-bit rounding.
        expect(Math.abs(rep.outputTruePeak! - measured.truePeak)).toBeLessThanOrEqual(0.15);
        if (rep.input === 'loud.wav') {
          // Gain alone would push the peak over the ceiling; the limited output sits under it.
          expect(rep.limited).toBe(true);
          expect(rep.truePeak! + rep.gainDb).toBeGreaterThan(-1);
          expect(rep.outputTruePeak!).toBeLessThan(-1 + 0.3);
        } else {
          expect(rep.limited).toBe(false);
          expect(Math.abs(rep.outputTruePeak! - (rep.truePeak! + rep.gainDb))).toBeLessThan(codec === 'flac' ? 0.01 : 1);
        }
      }
    }
    // Not normalised: a lossy output is not measured (a whole pass for a figure nobody asked for).
    const plain = await runAudioInProcess({ codec: 'mp3' }, [quiet], path.join(dir, 'plain'));
    expect((await audioReport(plain)).map((r) => r.outputTruePeak)).toEqual([null]);
  });
});

/**
 * 8 s of a quiet 997 Hz tone at 48 kHz mono (float WAV) with a 6-sample burst (+ + - - + +) ending on
 * the last sample before `at` seconds: its inter-sample peak is about 2.7 dB over its samples.
 */
async function burstBefore(file: string, at: number): Promise<string> {
  const n0 = at * 48000 - 6;
  const expr = `0.1*sin(2*PI*997*t)+if(between(n\\,${n0}\\,${n0 + 5})\\,0.3*if(lt(mod(n-${n0}\\,4)\\,2)\\,1\\,-1)\\,0)`;
  await runFfmpeg(['-f', 'lavfi', '-i', `aevalsrc=${expr}:s=48000:d=8`, '-c:a', 'pcm_f32le', '-y', file]);
  return file;
}

describe('a peak right before a join', () => {
  test('is measured as in one piece, and the limited output keeps under the true-peak ceiling, segmented or whole', async () => {
    const src = await burstBefore(path.join(dir, 'burst.wav'), 4);
    const raw = { codec: 'flac', normalize: true, loudness: -16, true_peak: -1.5 };
    const seg = await runAudioInProcess({ ...raw, segment_seconds: 4 }, [src], path.join(dir, 'seg'));
    const whole = await runAudioInProcess({ ...raw, segment_seconds: 60 }, [src], path.join(dir, 'whole'));
    expect([seg.errors, whole.errors]).toEqual([[], []]);
    const [s] = await audioReport(seg);
    const [w] = await audioReport(whole);
    expect([s!.pieces, w!.pieces]).toEqual([2, 1]);
    // Before, the segmented analysis never oversampled the 6 samples before the join: -9.1 against -6.4 dBTP.
    expect(s!.sourceTruePeak).toBeCloseTo(w!.sourceTruePeak!, 1);
    expect([s!.limited, w!.limited]).toEqual([true, true]);
    // ...and the output, whole or segmented, then went 1.7 dB over the ceiling (+0.2 dBTP): a sample-peak
    // limiter 1 dB under it does not hold a burst whose inter-sample peak rises 2.7 dB over its samples.
    for (const [r, report] of [[seg, s], [whole, w]] as const) {
      const measured = (await ebur128(r.outputs.find((o) => o.name === 'burst.flac')!.path)).truePeak;
      expect(measured).toBeLessThanOrEqual(-1.5 + 0.1);
      expect(report!.outputTruePeak).toBe(measured);
    }
  });
});

describe('a segment that comes back damaged', () => {
  test('statistics that do not parse or lack a field fail their file as DATA_LOSS; the rest of the batch is published', async () => {
    const spool = path.join(dir, 'spool');
    await mkdir(spool, { recursive: true });
    const body = path.join(spool, 'body.wav');
    await runFfmpeg(['-f', 'lavfi', '-i', 'sine=r=8000:d=2', '-c:a', 'pcm_s16le', '-y', body]);
    const file: FileRender = { input: 'long.wav', output: 'long.flac', sourceRate: 8000, outRate: 8000, outLayout: '', weightLayout: 'mono', bits: 16, totalFrames: 16000 };
    const plan: SegmentPlan = { type: 'segment', file, segmentInput: 'segment.wav', index: 0, count: 1, offset: 0, preRoll: 0 };
    const small = path.join(spool, 'small.flac');
    await writeFile(small, 'made by a worker');
    const cases = [
      ['{"frames":16000,"sampleRate":8000,', "long.wav: segment 0's statistics do not parse"],
      ['{"frames":16000,"sampleRate":8000,"channels":1,"samplePeak":0.5,"truePeak":0.5}', "long.wav: segment 0's statistics lack their loudness sub-blocks"],
      ['null', "long.wav: segment 0's statistics lack their frames"],
    ];
    for (const [text, message] of cases) {
      const stats = path.join(spool, 'stats.json');
      await writeFile(stats, text!);
      const segment: SubtaskOutcome = { index: 0, phase: 0, label: 'segment', plan, items: ['long.wav'], ok: true, itemErrors: [], result: {}, worker: 'w', outputs: [{ name: 'body.wav', path: body, size: 0, sha256: '' }, { name: 'stats.json', path: stats, size: 0, sha256: '' }] };
      const whole: SubtaskOutcome = { index: 1, phase: 0, label: 'file small.wav', items: ['small.wav'], ok: true, itemErrors: [], worker: 'w', plan: { type: 'whole', files: [{ ...file, input: 'small.wav', output: 'small.flac' }] }, outputs: [{ name: 'small.flac', path: small, size: 16, sha256: '' }], result: { files: [] } };
      const out = path.join(dir, `out-${cases.findIndex((c) => c[0] === text)}`);
      await mkdir(out);
      const ctx = { jobId: 'j', params: validateAudioParams({ codec: 'flac', segment_seconds: 2 }), workDir: dir, signal: new AbortController().signal, log: createLogger('test', 'silent'), warn: () => undefined, phase: 0, results: [segment, whole], history: [], outputDir: out } as unknown as MergeContext<AudioJobParams>;
      const merged = await mergeAudio(ctx);
      expect(merged.errors, text).toEqual([expect.objectContaining({ input: 'long.wav', code: 'DATA_LOSS', message: expect.stringContaining(message!) })]);
      expect(merged.outputs?.map((o) => o.name), text).toEqual(['small.flac']);
    }
  });
});

const peak = (s: Float32Array, from: number, n: number): number => Math.max(...Array.from(s.subarray(from, from + n), Math.abs));

describe('files whose headers say less or other than they hold, and conversions that cannot be made', () => {
  test('a streamed WAV whose header states 0 data bytes ("to the end") is converted in full when segmented too, as when rendered whole', async () => {
    // 5 s of 48 kHz mono s16; RIFF and data sizes 0, as some writers leave a header they cannot seek back to.
    const src = await generateAudio(path.join(dir, 'zero.wav'), { source: 'sine', seconds: 5, rate: 48000, layout: 'mono', ext: 'wav' });
    const b = await readFile(src);
    b.writeUInt32LE(0, 4);
    b.writeUInt32LE(0, b.indexOf('data') + 4);
    await writeFile(src, b);
    for (const segment_seconds of [180, 2]) {
      // Before, segment_seconds 2 threw a RangeError out of cutWav (0 frames read), failing the whole job.
      const r = await runAudioInProcess({ codec: 'flac', segment_seconds }, [src], path.join(dir, `run-${segment_seconds}`));
      expect(r.errors).toEqual([]);
      const [rep] = await audioReport(r);
      expect(rep!.frames).toBe(5 * 48000);
    }
  });

  test('a trim that starts past the decoded audio of a long file fails that file alone (INVALID_ARGUMENT), not the whole job with a RangeError', async () => {
    // Matroska: the container's 8 s are the picture's, the sound is 4 s. trim.start 5 s passes the
    // probe's check (5 < 8) and plans segments (3 s > 2 s); once decoded, there are no frames to cut.
    const mkv = path.join(dir, 'clip.mkv');
    await runFfmpeg(['-f', 'lavfi', '-i', 'testsrc2=size=64x48:rate=5:duration=8', '-f', 'lavfi', '-i', 'sine=f=440:r=48000:d=4', '-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'flac', '-y', mkv]);
    const good = await generateAudio(path.join(dir, 'good.wav'), { source: 'sine', seconds: 9, rate: 48000, layout: 'stereo', ext: 'wav' });
    const r = await runAudioInProcess({ codec: 'flac', trim: { start: 5, end: 0 }, segment_seconds: 2 }, [mkv, good], dir);
    expect(r.errors.map((e) => [e.input, e.code])).toEqual([['clip.mkv', 'INVALID_ARGUMENT']]);
    expect(r.outputs.map((o) => o.name)).toContain('good.flac');
  });

  test('a fade-in on a file whose length the container does not state (Matroska written to a pipe) is applied', async () => {
    const src = pipedMka(path.join(dir, 'live.mka'), 'sine=f=440:r=48000:d=3,volume=3');
    expect((await probeAudio(src, 'live.mka')).duration).toBe(0);
    const r = await runAudioInProcess({ codec: 'wav', fade_in: 1 }, [src], dir);
    expect(r.errors).toEqual([]);
    const { samples } = await decodeFloat(r.outputs.find((o) => o.name === 'live.wav')!.path, dir);
    expect(samples.length).toBe(3 * 48000);
    // Full level (0.375) from 1 s on; the first 200 samples of a 1 s fade-in are under 0.2 % of it.
    expect(peak(samples, 96000, 200)).toBeGreaterThan(0.3);
    expect(peak(samples, 0, 200)).toBeLessThan(0.01);
  });

  test("the waveform of a file whose length the container does not state has its bins sized on the decoded length (at most ~20,000)", async () => {
    // 210 s at 1 kHz: past the ~20,000 bins at 100 a second, and quick to decode.
    const src = pipedMka(path.join(dir, 'long.mka'), 'sine=f=100:r=1000:d=210');
    expect((await probeAudio(src, 'long.mka')).duration).toBe(0);
    const r = await runAudioInProcess({ codec: 'wav', waveform: true }, [src], dir);
    expect(r.errors).toEqual([]);
    const json = JSON.parse(await readFile(r.outputs.find((o) => o.name === 'long.waveform.json')!.path, 'utf8')) as { samples_per_pixel: number; length: number };
    // 210 s at 50 bins a second (100 would make 21,000), as for the same file with its length stated.
    expect([json.samples_per_pixel, json.length]).toEqual([20, 10_500]);
  });

  test('a PCM WAV of 20-bit samples in 3 bytes (wBitsPerSample 20), which ffmpeg decodes, is converted rather than refused', async () => {
    const frames = 48000 * 3;
    const data = Buffer.alloc(frames * 2 * 3);
    for (let i = 0; i < frames * 2; i++) data.writeIntLE(Math.round(Math.sin(i / 20) * 300000) & ~0xf, i * 3, 3);
    const h = wavHeader('s24', 48000, 2, frames);
    h.writeUInt16LE(20, 34); // WAVE_FORMAT_PCM, 20 valid bits in a 3-byte container
    const src = path.join(dir, 'w20.wav');
    await writeFile(src, Buffer.concat([h, data]));
    // ffmpeg reads it as pcm_s24le.
    await runFfmpeg(['-i', src, '-f', 'null', '-']);
    for (const segment_seconds of [180, 2]) {
      const r = await runAudioInProcess({ codec: 'flac', segment_seconds }, [src], path.join(dir, `run-${segment_seconds}`));
      expect(r.errors).toEqual([]);
      expect((await audioReport(r))[0]!.frames).toBe(frames);
    }
  });

  test('flac: a sample_rate the FLAC encoder cannot write (over 65535 Hz and not a multiple of 10) is refused by the params, not by every file at encode', () => {
    expect(() => validateAudioParams({ codec: 'flac', sample_rate: 96001 })).toThrow(/^sample_rate: flac cannot encode 96001 Hz/);
    expect(validateAudioParams({ codec: 'flac', sample_rate: 96000 }).sampleRate).toBe(96000);
  });

  test('a complete 10-channel WAV that cannot be mixed down to mp3 stereo is not called "truncated or corrupt"', async () => {
    const tones = Array.from({ length: 10 }, (_, i) => `sine=f=${300 + 50 * i}:r=48000:d=1[s${i}]`).join(';');
    const src = path.join(dir, 'array.wav');
    await runFfmpeg(['-filter_complex', `${tones};${Array.from({ length: 10 }, (_, i) => `[s${i}]`).join('')}amerge=inputs=10`, '-c:a', 'pcm_s16le', '-y', src]);
    // The file is whole: converted as it is, it passes. Before, the mp3 said "truncated or corrupt".
    const wav = await runAudioInProcess({ codec: 'wav' }, [src], path.join(dir, 'wav'));
    expect(wav.errors).toEqual([]);
    const r = await runAudioInProcess({ codec: 'mp3' }, [src], path.join(dir, 'mp3'));
    expect(r.errors.map((e) => e.code)).toEqual(['INVALID_ARGUMENT']);
    expect(r.errors[0]!.message).not.toMatch(/truncated or corrupt/);
  });
});

// Sources at a rate the output codec cannot hold, as they come in the wild: old Mac sound (22254 Hz),
// NTSC pull-down audio (44056 Hz), hi-res masters (192 kHz). `ffmpeg -i in out` picks the codec's
// nearest rate; every such file was written at 48 kHz (review AWILD2).
describe('a source rate the codec cannot take', () => {
  for (const [rate, codec, ext, enc] of [[22254, 'mp3', 'mp3', 'libmp3lame'], [44056, 'mp3', 'mp3', 'libmp3lame'], [192000, 'aac', 'm4a', 'aac'], [22050, 'opus', 'opus', 'libopus']] as const) {
    test(`${rate} Hz to ${codec} is written at the rate ffmpeg chooses`, async () => {
      const src = path.join(dir, `src-${rate}.wav`);
      await runFfmpeg(['-f', 'lavfi', '-i', `sine=f=440:r=${rate}:d=1`, '-c:a', 'pcm_s16le', '-y', src]);
      const ref = path.join(dir, `ref.${ext}`);
      await runFfmpeg(['-i', src, '-c:a', enc, '-y', ref]);
      // Opus decodes at 48 kHz whatever it was encoded at: the rate it was given is its header's
      // input sample rate (OpusHead, bytes 12-15), which ffprobe does not show.
      const rateOf = async (file: string, name: string): Promise<number> => {
        if (codec !== 'opus') return (await probeAudio(file, name)).sampleRate;
        const bytes = await readFile(file);
        return bytes.readUInt32LE(bytes.indexOf('OpusHead') + 12);
      };
      const want = await rateOf(ref, 'ref');
      if (codec === 'opus') expect(want).toBe(24000);
      const r = await runAudioInProcess({ codec }, [src], path.join(dir, `run-${rate}`));
      expect(r.errors).toEqual([]);
      const out = r.outputs.find((o) => o.name.endsWith(`.${ext}`))!;
      expect(await rateOf(out.path, out.name)).toBe(want);
    });
  }
});

// The least of MPEG-4's rates: ffmpeg's AAC encoder writes it, as it is (review K27).
test('a 7350 Hz source to AAC is written at 7350 Hz, as ffmpeg writes it', async () => {
  const src = path.join(dir, 'src.wav');
  await runFfmpeg(['-f', 'lavfi', '-i', 'sine=f=440:r=7350:d=1', '-c:a', 'pcm_s16le', '-y', src]);
  const ref = path.join(dir, 'ref.m4a');
  await runFfmpeg(['-i', src, '-c:a', 'aac', '-y', ref]);
  const want = (await probeAudio(ref, 'ref')).sampleRate;
  expect(want).toBe(7350);
  const r = await runAudioInProcess({ codec: 'aac' }, [src], path.join(dir, 'run'));
  expect(r.errors).toEqual([]);
  const out = r.outputs.find((o) => o.name.endsWith('.m4a'))!;
  expect((await probeAudio(out.path, out.name)).sampleRate).toBe(want);
});

test('sample_rate 7350 is taken for AAC, whose encoder writes it', () => {
  expect(() => validateAudioParams({ codec: 'aac', sample_rate: 7350 })).not.toThrow();
});

// More channels than AAC and FLAC hold: refused when planned, named, not by the encoder after the
// upload and a worker's run ("[aac] Qavg: nan", review AUD5); and unnamed channels past 8, which
// ffmpeg has no layout to mix down from.
test('12 unnamed channels into AAC, FLAC or MP3, and 10 named ones into AAC, are refused with what to do; into WAV they are kept', async () => {
  const tones = (n: number): string => Array.from({ length: n }, (_, i) => `0.1*sin(2*PI*${100 * (i + 1)}*t)`).join('|');
  const unnamed = path.join(dir, 'ch12.wav');
  await runFfmpeg(['-f', 'lavfi', '-i', `aevalsrc=${tones(12)}:s=48000:d=1`, '-y', unnamed]);
  const named = path.join(dir, 'ch10.wav');
  await runFfmpeg(['-f', 'lavfi', '-i', `aevalsrc=${tones(10)}:s=48000:d=1:channel_layout=FL+FR+FC+LFE+BL+BR+FLC+FRC+SL+SR`, '-y', named]);
  const errors = async (codec: string, file: string): Promise<unknown> => (await runAudioInProcess({ codec }, [file], path.join(dir, `run-${codec}-${path.basename(file)}`))).errors;
  expect(await errors('aac', unnamed)).toEqual([{ input: 'ch12.wav', code: 'INVALID_ARGUMENT', message: 'ch12.wav: it has 12 channels, and aac holds at most 8: its channels have no layout to mix down from; --codec opus or wav keeps them all' }]);
  expect(await errors('flac', unnamed)).toEqual([{ input: 'ch12.wav', code: 'INVALID_ARGUMENT', message: 'ch12.wav: it has 12 channels, and flac holds at most 8: its channels have no layout to mix down from; --codec opus or wav keeps them all' }]);
  expect(await errors('mp3', unnamed)).toEqual([{ input: 'ch12.wav', code: 'INVALID_ARGUMENT', message: 'ch12.wav: its 12 channels have no layout to mix down to 2 from (mp3 holds at most 2): --codec opus or wav keeps them all' }]);
  expect(await errors('aac', named)).toEqual([{ input: 'ch10.wav', code: 'INVALID_ARGUMENT', message: 'ch10.wav: it has 10 channels, and aac holds at most 8: --channels 8 (or fewer) mixes it down; --codec opus or wav keeps them all' }]);
  const mixed = await runAudioInProcess({ codec: 'aac', channels: 8 }, [named], path.join(dir, 'run-mixed'));
  expect(mixed.errors).toEqual([]);
  const kept = await runAudioInProcess({ codec: 'wav' }, [unnamed], path.join(dir, 'run-wav'));
  expect(kept.errors).toEqual([]);
  expect((await probeAudio(kept.outputs.find((o) => o.name === 'ch12.wav')!.path, 'ch12.wav')).channels).toBe(12);
});

// A page of an Ogg file that fails its checksum is skipped by ffmpeg's demuxer, its audio with it,
// and the rest decodes without an error: the file came out a second or two short, closed up, and
// the job succeeded (review AUD2). Damaged MP3s and FLACs were already refused.
test('an Opus or Vorbis file with damaged pages is refused as corrupt, whole and segmented; an undamaged one is converted', async () => {
  for (const [codec, ext] of [['libopus', 'opus'], ['libvorbis', 'ogg']] as const) {
    const clean = path.join(dir, `clean.${ext}`);
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'sine=f=440:r=48000:d=8', '-ac', '2', '-c:a', codec, clean]);
    const bytes = await readFile(clean);
    for (let i = 0; i < 2000; i++) bytes[(bytes.length >> 1) + i] = (i * 131 + 7) & 0xff;
    const damaged = path.join(dir, `damaged.${ext}`);
    await writeFile(damaged, bytes);
    for (const segment_seconds of [180, 2]) {
      const r = await runAudioInProcess({ codec: 'flac', segment_seconds }, [damaged, clean], path.join(dir, `${ext}-${segment_seconds}`));
      expect(r.errors, `${ext}, segments of ${segment_seconds} s`).toEqual([
        { input: `damaged.${ext}`, code: 'INVALID_ARGUMENT', message: `damaged.${ext}: corrupt file: pages of its Ogg stream fail their checksum (CRC mismatch), and the audio in them cannot be decoded` },
      ]);
      expect(r.outputs.map((o) => o.name)).toContain('clean.flac');
    }
  }
});
