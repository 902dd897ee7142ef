/**
 * Inputs a video or thumbnails job cannot use are refused at submission (SubmitJob fails with
 * INVALID_ARGUMENT naming the file), not after the job has started: on a real cluster (built dist/).
 * And the CLI's `--lossless` reaches the encoders: the stitched file's pictures are the source's.
 * A subtitle track ffmpeg cannot carry over is left out, and the job says so.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { LocalCluster } from '../../client/local-cluster.js';
import { ffmpegBinaries, runFfmpeg, runFfprobe } from '../../shared/ffmpeg.js';
import { decodeCheck } from '../../shared/media/probe.js';
import { promisify } from 'node:util';
import { runCli } from '../helpers/cluster.js';
import { decodedPictureHashes, makeVideo } from '../helpers/media.js';

let dir: string;
let cluster: LocalCluster;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-video-submit-'));
  cluster = await new LocalCluster({ workers: 1, slots: 1 }).start();
});
afterEach(async () => {
  await cluster.stop();
  await rm(dir, { recursive: true, force: true });
});

it('an audio-only file sent to a video or thumbnails job fails SubmitJob with INVALID_ARGUMENT', async () => {
  const tone = path.join(dir, 'audioonly.m4a');
  await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'sine=d=1', '-c:a', 'aac', tone]);
  for (const params of [{ video: { preset: 'ultrafast' } }, { thumbnails: { count: 2, width: 64 } }]) {
    const err = await cluster.client.submit(params, [tone]).then(() => undefined, (e: unknown) => e as { code: number; details: string });
    expect(err).toMatchObject({ code: status.INVALID_ARGUMENT, details: expect.stringContaining('audioonly.m4a: has no video stream') });
  }
});

it('tessera submit video --lossless writes a file whose every decoded picture is the source\'s', async () => {
  const src = await makeVideo(dir, 'clip.mp4', { duration: 2, width: 96, height: 64 });
  const out = path.join(dir, 'out');
  const r = await runCli(['submit', 'video', src, '--lossless', '--preset', 'ultrafast', '--audio-codec', 'none', '--segment-seconds', '1', '-o', out, '--no-progress', '--coordinator', cluster.address]);
  expect(r.code, r.stderr).toBe(0);
  const [a, b] = await Promise.all([decodedPictureHashes(src), decodedPictureHashes(path.join(out, 'clip.mp4'))]);
  expect(a).toHaveLength(50);
  expect(b).toEqual(a);
  // --lossless with a quality setting is refused (INVALID_ARGUMENT: exit 2), naming the setting.
  const both = await runCli(['submit', 'video', src, '--lossless', '--crf', '20', '-o', out, '--coordinator', cluster.address]);
  expect(both.code).toBe(2);
  expect(both.stderr).toContain('lossless: has no crf');
});

it('tessera submit video --passes reaches the workers: one pass makes another file than the default two, and a crf takes none', async () => {
  const src = await makeVideo(dir, 'clip.mp4', { duration: 2, width: 96, height: 64 });
  const made: Buffer[] = [];
  for (const passes of [[], ['--passes', '1']]) {
    const out = path.join(dir, `out${made.length}`);
    const r = await runCli(['submit', 'video', src, '--bitrate', '100k', ...passes, '--preset', 'ultrafast', '--audio-codec', 'none', '--segment-seconds', '1', '-o', out, '--no-progress', '--coordinator', cluster.address]);
    expect(r.code, r.stderr).toBe(0);
    made.push(await readFile(path.join(out, 'clip.mp4')));
  }
  // x264 is deterministic: the same settings make the same bytes.
  expect(made[0]!.equals(made[1]!)).toBe(false);
  const crf = await runCli(['submit', 'video', src, '--crf', '20', '--passes', '2', '-o', path.join(dir, 'crf'), '--coordinator', cluster.address]);
  expect([crf.code, crf.stderr]).toEqual([2, expect.stringContaining('passes: only with bitrate (a crf encode takes one pass)')]);
  const three = await runCli(['submit', 'video', src, '--bitrate', '1M', '--passes', '3', '-o', path.join(dir, 'three'), '--coordinator', cluster.address]);
  expect([three.code, three.stderr]).toEqual([2, expect.stringContaining("argument '3' is invalid. Allowed choices are 1, 2.")]);
});

it('tessera submit thumbnails and video take several videos: each gets its own outputs, a taken name a number', async () => {
  const a = await makeVideo(dir, 'a.mp4', { duration: 2, width: 96, height: 64 });
  const b = await makeVideo(dir, 'a.mkv', { duration: 1, width: 96, height: 64 });
  const thumbs = path.join(dir, 'thumbs');
  const t = await runCli(['submit', 'thumbnails', a, b, '--count', '2', '--width', '48', '-o', thumbs, '--no-progress', '--coordinator', cluster.address]);
  expect(t.code, t.stderr).toBe(0);
  expect((await readdir(thumbs)).sort()).toEqual(['a.mkv-thumb-00001.jpg', 'a.mkv-thumb-00002.jpg', 'a.mp4-thumb-00001.jpg', 'a.mp4-thumb-00002.jpg']);
  const videos = path.join(dir, 'videos');
  const v = await runCli(['submit', 'video', a, b, '--preset', 'ultrafast', '--audio-codec', 'none', '--segment-seconds', '1', '-o', videos, '--no-progress', '--coordinator', cluster.address]);
  expect(v.code, v.stderr).toBe(0);
  expect((await readdir(videos)).sort()).toEqual(['a-2.mp4', 'a.mp4']);
  expect(await decodedPictureHashes(path.join(videos, 'a.mp4'))).toHaveLength(50);
  expect(await decodedPictureHashes(path.join(videos, 'a-2.mp4'))).toHaveLength(25);
});

it('a subtitle track ffmpeg cannot carry into the output is left out: the video succeeds, and the job and `tessera submit` say so', async () => {
  // A cue of 70,000 characters: Matroska holds it, MP4's mov_text cannot (its cues are at most
  // 65,535 bytes, and ffmpeg stops with "Subtitle encoding failed").
  const plain = await makeVideo(dir, 'plain.mkv', { duration: 2, width: 96, height: 64, audioChannels: 2 });
  const srt = path.join(dir, 'long.srt');
  await writeFile(srt, `1\n00:00:00,500 --> 00:00:01,500\n${'a'.repeat(70_000)}\n\n2\n00:00:01,600 --> 00:00:01,900\nshort\n\n`);
  const src = path.join(dir, 'film.mkv');
  // Straight ffmpeg: Tessera's runner allows no SRT input.
  await promisify(execFile)(ffmpegBinaries().ffmpeg, ['-v', 'error', '-y', '-i', plain, '-i', srt, '-map', '0', '-map', '1', '-c', 'copy', src]);
  const out = path.join(dir, 'out');
  const r = await runCli(['submit', 'video', src, '--container', 'mp4', '--preset', 'ultrafast', '--segment-seconds', '1', '-o', out, '--no-progress', '--coordinator', cluster.address]);
  expect(r.code, r.stderr).toBe(0);
  // ffmpeg's reason as it gives it (5.1: "Subtitle encoding failed"; other versions word it otherwise).
  const warning = /^subtitle track\(s\) subrip \(stream 2\) could not be carried over, and the video was stitched without them \(ffmpeg: [^\n]+\)$/;
  expect(r.stdout).toContain('  1 output(s), 1 warning(s)\n');
  expect(r.stdout.split('\n').filter((l) => l.startsWith('  warning: film.mkv: ')).map((l) => l.slice('  warning: film.mkv: '.length))).toEqual([expect.stringMatching(warning)]);
  const job = await cluster.client.getJob((await cluster.client.listJobs({ limit: 1 }))[0]!.id);
  expect(job.state).toBe('JOB_STATE_SUCCEEDED');
  expect(job.warnings).toEqual([{ input: 'film.mkv', message: expect.stringMatching(warning) }]);
  const summary = (await cluster.client.listJobs({ limit: 1 }))[0]!;
  expect([summary.warning_count, summary.warnings]).toEqual([1, []]);
  // The pictures and the sound are all there; the subtitles are not.
  const streams = (await runFfprobe<{ streams: Array<{ codec_type: string }> }>(['-show_entries', 'stream=codec_type', '-i', path.join(out, 'film.mp4')])).streams.map((st) => st.codec_type);
  expect(streams.sort()).toEqual(['audio', 'video']);
  expect((await decodeCheck(path.join(out, 'film.mp4'))).frames).toBe(50);
});
