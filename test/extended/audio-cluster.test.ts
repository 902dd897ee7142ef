/**
 * The audio kind on a real cluster (coordinator + 2 worker processes from dist/, `npm run build` first):
 * a long file's segments run on both workers and the result is bit-identical to one ffmpeg run of the
 * same filters, loudness matches ffmpeg's ebur128; a CLI batch with bad inputs still delivers the rest.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { ffmpegBinaries, ffmpegInfo, runFfmpeg } from '../../shared/ffmpeg.js';
import { validateAudioParams } from '../../shared/kinds/audio-params.js';
import { encoderArgs, stageAChain, stageBChain } from '../../shared/media/audio-filters.js';
import type { FileReport } from '../../shared/media/audio-finish.js';
import { fadeSamples } from '../../shared/media/audio-pieces.js';
import { probeAudio } from '../../shared/media/audio-probe.js';
import { decodedMd5, decodeFloat, ebur128, generateAudio } from '../helpers/audio-media.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

let dir: string;
// One cluster (2 workers x 1 slot) for every test: each submits its own jobs and looks only at
// them, so the three starts each test made of the same cluster were time spent for nothing.
let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startCluster({ workers: 2, slots: 1 });
});
afterAll(async () => {
  await cluster?.stop();
});
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-audio-cluster-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('audio on a cluster of two workers', () => {
  test('a long 5.1 file is segmented over both workers; flac output equals one ffmpeg run; loudness matches ebur128', async () => {
    const src = await generateAudio(path.join(dir, 'lecture.wav'), { source: 'speech', seconds: 16, rate: 44100, layout: '5.1', ext: 'wav', amplitude: 0.08 });
    const raw = { codec: 'flac', channels: 2, fade_in: 1, fade_out: 2, normalize: true, loudness: -18, segment_seconds: 4 };
    const job = await cluster.client.submit({ audio: raw }, [src]);
    const done = await cluster.client.wait(job.id);
    expect(done.errors).toEqual([]);
    expect(done.state).toBe('JOB_STATE_SUCCEEDED');
    const segments = done.subtasks.filter((s) => /segment/.test(s.label));
    expect(segments.length).toBe(4);
    expect(new Set(segments.map((s) => s.worker)).size).toBe(2);
    const files = await cluster.client.download(job.id, path.join(dir, 'out'));
    const rep = (JSON.parse(await readFile(files.get('audio-report.json')!, 'utf8')) as { files: FileReport[] }).files[0]!;
    expect(rep.frames).toBe(16 * 44100);
    expect(rep.pieces).toBe(4);
    // The same filters in one process: stage A over the whole file, then the gain the coordinator chose.
    const params = validateAudioParams(raw);
    const a = stageAChain({ outRate: 44100, outLayout: 'stereo', offset: 0, ...fadeSamples(params, 44100, rep.frames) });
    const b = stageBChain({ gainDb: rep.gainDb, limit: rep.limit, sampleRate: 44100, ffmpegMajor: ffmpegInfo().major });
    const ref = path.join(dir, 'ref.flac');
    await runFfmpeg(['-i', src, '-map', '0:a:0', '-af', b ? `${a},${b}` : a, ...encoderArgs('flac', 0, 16), '-y', ref]);
    const out = files.get('lecture.flac')!;
    expect(await decodedMd5(out)).toBe(await decodedMd5(ref));
    // Loudness gated over all segments' blocks vs ffmpeg's single pass over the same (pre-gain) signal.
    const single = await ebur128(src, a);
    expect(Math.abs(rep.loudness! - single.integrated)).toBeLessThanOrEqual(0.1);
    const after = await ebur128(out);
    expect(Math.abs(after.integrated - -18)).toBeLessThanOrEqual(0.5);
    expect(after.truePeak).toBeLessThanOrEqual(-1.5 + 0.2);
  });

  test('CLI batch: files spread over workers as mp3 with waveforms; a non-media file and a file without audio fail alone', async () => {
    const inputs = [
      await generateAudio(path.join(dir, 'a.flac'), { source: 'speech', seconds: 12, rate: 48000, layout: 'stereo', ext: 'flac' }),
      await generateAudio(path.join(dir, 'b.wav'), { source: 'sine', seconds: 8, rate: 44100, layout: 'mono', ext: 'wav' }),
      await generateAudio(path.join(dir, 'c.m4a'), { source: 'noise', seconds: 10, rate: 44100, layout: 'stereo', ext: 'm4a' }),
    ];
    const video = path.join(dir, 'clip.mkv');
    await runFfmpeg(['-f', 'lavfi', '-i', 'testsrc=d=1:s=64x48:r=5', '-c:v', 'mpeg4', '-y', video]);
    const junk = path.join(dir, 'readme.mp3');
    await writeFile(junk, 'not an mp3 at all\n'.repeat(100));
    const outDir = path.join(dir, 'out');
    const res = await cluster.runCli(['submit', 'audio', '--codec', 'mp3', '--bitrate', '96k', '--normalize', '--waveform', ...inputs, video, junk, '-o', outDir, '--json']);
    const json = JSON.parse(res.stdout) as { state: string; outputs: Array<{ name: string; path: string }>; subtasks: Array<{ worker: string }>; errors: Array<{ input: string; code: string; message: string }> };
    expect(json.errors.map((e) => e.input).sort()).toEqual(['clip.mkv', 'readme.mp3']);
    for (const e of json.errors) {
      expect(e.code).toBe('INVALID_ARGUMENT');
      expect(e.message).toContain(e.input);
    }
    expect(new Set(json.subtasks.map((s) => s.worker)).size).toBe(2);
    const names = json.outputs.map((o) => o.name);
    for (const stem of ['a', 'b', 'c']) expect(names).toEqual(expect.arrayContaining([`${stem}.mp3`, `${stem}.waveform.png`, `${stem}.waveform.json`]));
    const expected: Record<string, number> = { a: 12 * 48000, b: 8 * 44100, c: 10 * 44100 };
    for (const [stem, frames] of Object.entries(expected)) {
      const out = json.outputs.find((o) => o.name === `${stem}.mp3`)!.path;
      const { samples, channels } = await decodeFloat(out, dir);
      // The LAME header lets ffmpeg trim priming and padding: within one 1152-sample frame of the source.
      expect(Math.abs(samples.length / channels - frames)).toBeLessThan(1152);
      const loud = await ebur128(out);
      expect(Math.abs(loud.integrated - -16)).toBeLessThanOrEqual(0.5);
    }
  });

  test('CLI: a WAV written to a pipe is converted in full; a file too short to normalise fails alone, named; bad trim and true-peak settings are refused', async () => {
    // `ffmpeg ... -f wav - > piped.wav`: RIFF and data sizes 0xFFFFFFFF; 3.3 s, not a whole number of demuxer packets.
    const piped = path.join(dir, 'piped.wav');
    const fd = openSync(piped, 'w');
    try {
      const r = spawnSync(ffmpegBinaries().ffmpeg, ['-hide_banner', '-nostdin', '-v', 'error', '-f', 'lavfi', '-i', 'sine=f=440:r=48000:d=3.3', '-c:a', 'pcm_s16le', '-f', 'wav', 'pipe:1'], { stdio: ['ignore', fd, 'pipe'] });
      expect(r.status).toBe(0);
    } finally {
      closeSync(fd);
    }
    expect((await readFile(piped)).readUInt32LE(4)).toBe(0xffffffff);
    const blip = await generateAudio(path.join(dir, 'blip.wav'), { source: 'sine', seconds: 0.25, rate: 48000, layout: 'mono', ext: 'wav' });
    const outDir = path.join(dir, 'out');
    const res = await cluster.runCli(['submit', 'audio', '--codec', 'mp3', '--normalize', piped, blip, '-o', outDir, '--json']);
    expect(res.code).toBe(3);
    const json = JSON.parse(res.stdout) as { state: string; outputs: Array<{ name: string; path: string }>; errors: Array<{ input: string; code: string; message: string }> };
    expect(json.state).toBe('partially_succeeded');
    expect(json.errors).toEqual([{ input: 'blip.wav', code: 'INVALID_ARGUMENT', message: expect.stringMatching(/^blip\.wav: too short to normalise: 0\.250 s of audio, and EBU R128 loudness needs at least 0\.4 s/) }]);
    const out = await probeAudio(json.outputs.find((o) => o.name === 'piped.mp3')!.path, 'piped.mp3');
    expect(Math.abs(out.duration - 3.3)).toBeLessThan(0.06);
    const rep = (JSON.parse(await readFile(json.outputs.find((o) => o.name === 'audio-report.json')!.path, 'utf8')) as { files: FileReport[] }).files;
    expect(rep.map((f) => [f.input, f.frames])).toEqual([['piped.wav', 3.3 * 48000]]);
    // A normalised lossy output's true peak is measured as it is encoded: what the file decodes to.
    expect(rep[0]!.outputTruePeak).toBe((await ebur128(json.outputs.find((o) => o.name === 'piped.mp3')!.path)).truePeak);
    const trim = await cluster.runCli(['submit', 'audio', '--codec', 'mp3', '--trim', '1.99999,2', piped, '-o', path.join(dir, 'trim')]);
    expect(trim.code).toBe(2);
    expect(trim.stderr).toContain('a trim must keep at least 0.01 s');
    const peak = await cluster.runCli(['submit', 'audio', '--true-peak', '-1', piped, '-o', path.join(dir, 'peak')]);
    expect(peak.code).toBe(2);
    expect(peak.stderr).toContain('also set normalize: true (CLI: --normalize)');
  });

  test('CLI: --language and --track choose a film\'s audio track; a pair of them, or a track the file lacks, is refused by name', async () => {
    // Track 1: mono 300 Hz `eng`, flagged default; track 2: stereo 660 Hz `fre`.
    const film = path.join(dir, 'film.mkv');
    await runFfmpeg([
      '-f', 'lavfi', '-i', 'sine=f=300:r=48000:d=1', '-f', 'lavfi', '-i', 'sine=f=660:r=48000:d=1', '-filter_complex', '[1]aformat=channel_layouts=stereo[b]',
      '-map', '0', '-map', '[b]', '-c:a', 'flac', '-metadata:s:a:0', 'language=eng', '-metadata:s:a:1', 'language=fre', '-y', film,
    ]);
    const french = await cluster.runCli(['submit', 'audio', '--codec', 'wav', '--language', 'fra', film, '-o', path.join(dir, 'fra'), '--json']);
    expect(french.code).toBe(0);
    const got = await decodeFloat(path.join(dir, 'fra', 'film.wav'), dir);
    expect(got.channels).toBe(2);
    const third = await cluster.runCli(['submit', 'audio', '--track', '3', film, '-o', path.join(dir, 'third'), '--json']);
    expect(third.code).not.toBe(0);
    expect(JSON.parse(third.stdout).errors).toEqual([{ input: 'film.mkv', code: 'INVALID_ARGUMENT', message: 'film.mkv: audio track 3 asked, but it has 2 audio tracks' }]);
    const both = await cluster.runCli(['submit', 'audio', '--track', '2', '--language', 'fra', film, '-o', path.join(dir, 'both')]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('audio.track/audio.language: give one of track 2 and language "fra", not both');
  });
});
