/**
 * The ffmpeg and ffprobe that `npm install` brings (@ffmpeg-installer: a static build of 2018;
 * @ffprobe-installer: one of 2023), which every process takes where no other is found (README,
 * "Quick start"): a cluster whose workers and coordinator run them does common video, audio and
 * thumbnail jobs right. The media are made, and the results read, by this machine's ffmpeg.
 *
 * Each case failed before the fixes that came with it:
 * - the 2018 build calls itself "N-47683-...", which was taken for a newest development build: its
 *   video segments got `-fps_mode`, which it does not know, and every one failed;
 * - the 2023 ffprobe crashed (SIGSEGV) on every MPEG-TS file, loading this machine's iconv modules;
 * - a turned phone video kept its `rotate` tag in the stitched file: a player turned it twice;
 * - the limiter's 5 ms lookahead was not taken back (every sample late, the last 5 ms lost), and
 *   the AAC encoder's priming was left in the file (1024 samples more, every one late).
 */
import { createRequire } from 'node:module';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCluster } from '../../client/local-cluster.js';
import { runFfmpeg } from '../../shared/ffmpeg.js';
import { probeMedia } from '../../shared/media/probe.js';
import { decodeFloat } from '../helpers/audio-media.js';
import { makeVideo } from '../helpers/media.js';

const require = createRequire(import.meta.url);
const bundled = {
  FFMPEG_PATH: (require('@ffmpeg-installer/ffmpeg') as { path: string }).path,
  FFPROBE_PATH: (require('@ffprobe-installer/ffprobe') as { path: string }).path,
};

let dir: string;
let cluster: LocalCluster;
const logs: string[] = [];
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-bundled-ffmpeg-'));
  cluster = await new LocalCluster({ workers: 2, slots: 1, env: { ...process.env, ...bundled }, onLog: (_who, line) => logs.push(line) }).start();
});
afterAll(async () => {
  await cluster?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** The lag (in samples) of `out` against `src` (channel 0 of interleaved stereo) around `at`, within +-`span`. */
function lagOf(out: Float32Array, src: Float32Array, at: number, span: number): number {
  const n = 9600;
  let best = { lag: 0, dot: -Infinity };
  for (let lag = -span; lag <= span; lag++) {
    let dot = 0;
    for (let i = 0; i < n; i++) dot += out[(at + i + lag) * 2]! * src[(at + i) * 2]!;
    if (dot > best.dot) best = { lag, dot };
  }
  return best.lag;
}

describe('the npm packages ffmpeg and ffprobe', () => {
  it('the workers run them and say they are older than the tested release', async () => {
    const workers = await cluster.client.listWorkers();
    expect(workers.length).toBe(2);
    for (const w of workers) expect(w.capabilities?.ffmpeg_version).toMatch(/^N-47683-/);
    expect(logs.some((l) => l.includes('ffmpeg is older than 5.1'))).toBe(true);
  });

  it('video: an MPEG-TS file and a turned phone clip, every frame kept, turned once', async () => {
    const ts = await makeVideo(dir, 'broadcast.ts', { duration: 4, width: 160, height: 90, audioChannels: 2, gop: 25 });
    const turned = await makeVideo(dir, 'phone.mp4', { duration: 3, width: 160, height: 90, rotate: 90, audioChannels: 1, gop: 25 });
    const job = await cluster.client.submit({ video: { preset: 'ultrafast', segment_seconds: 1, container: 'mp4' } }, [ts, turned]);
    const done = await cluster.client.wait(job.id);
    expect(done.errors).toEqual([]);
    expect(done.state).toBe('JOB_STATE_SUCCEEDED');
    const files = await cluster.client.download(job.id, path.join(dir, 'video-out'));
    const fromTs = await probeMedia(files.get('broadcast.mp4')!, { countPackets: true });
    expect(fromTs.video?.packets).toBe(100);
    expect(fromTs.audio.length).toBe(1);
    const fromPhone = await probeMedia(files.get('phone.mp4')!, { countPackets: true });
    expect(fromPhone.video?.packets).toBe(75);
    // Turned in its pictures, and not tagged to be turned again.
    expect([fromPhone.video?.width, fromPhone.video?.height, fromPhone.video?.rotation]).toEqual([90, 160, 0]);
  });

  it('thumbnails of an MPEG-TS file', async () => {
    const ts = await makeVideo(dir, 'thumbs.ts', { duration: 3, width: 160, height: 90, gop: 25 });
    const job = await cluster.client.submit({ thumbnails: { every: 1, width: 64 } }, [ts]);
    const done = await cluster.client.wait(job.id);
    expect(done.errors).toEqual([]);
    expect(done.outputs.filter((o) => o.name.startsWith('thumb-')).length).toBe(3);
  });

  it('audio: limited and normalised AAC, segmented, every sample in its place and no more than one frame of padding', async () => {
    const src = path.join(dir, 'spiky.wav');
    // Quiet noise (-36 dBFS) and a loud burst every 5 s: the gain to -14 LUFS needs the limiter.
    const spikes = 'if(lt(mod(t,5),0.01),0.95*sin(2*PI*3000*t),0)';
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', `aevalsrc='0.03*(2*random(0)-1)+${spikes}|0.03*(2*random(1)-1)+${spikes}':s=48000:d=16`, '-c:a', 'pcm_s16le', src]);
    const job = await cluster.client.submit({ audio: { codec: 'aac', normalize: true, loudness: -14, segment_seconds: 4 } }, [src]);
    const done = await cluster.client.wait(job.id);
    expect(done.errors).toEqual([]);
    const files = await cluster.client.download(job.id, path.join(dir, 'audio-out'));
    const report = JSON.parse(await readFile(files.get('audio-report.json')!, 'utf8')) as { files: Array<{ limited: boolean; pieces: number }> };
    expect(report.files[0]).toMatchObject({ limited: true, pieces: 4 });
    const out = await decodeFloat(files.get('spiky.m4a')!, dir);
    const ref = await decodeFloat(src, dir);
    const extra = out.samples.length / 2 - 16 * 48000;
    expect(extra).toBeGreaterThanOrEqual(0);
    expect(extra).toBeLessThan(1024);
    // Far from the bursts (the limiter idle), the output is the source with gain, in the same place.
    for (const at of [2.5, 7.5, 12.5]) expect(lagOf(out.samples, ref.samples, at * 48000, 1200), `at ${at} s`).toBe(0);
  });
});
