/**
 * Plan fields added on 2026-12-05 that a worker of an earlier release reads past: a coordinator of
 * this version beside a worker of the release before them (214098f, which already advertises every
 * feature in WORKER_FEATURES, so nothing tells the coordinator that it lacks these).
 *
 * - ThumbnailRangePlan.seekFrom (fc3aa51): an MPEG-TS source's thumbnails decode from the keyframe
 *   before each time. An older worker seeks to the time itself and shows the next keyframe.
 * - FileRender.tags (8691167): the source's tags written into an audio output. An older worker
 *   writes none.
 *
 * Neither was `requires`d nor behind a feature, so the job succeeded with wrong output. Now such
 * subtasks require `thumbnails-seek-from` and `audio-tags`: the older worker is never sent one, the
 * job says it waits for a worker that can run it, and a worker of this version runs it right.
 *
 * Run: npx vitest run --config vitest.upgrade.config.ts test/upgrade/new-plan-fields.test.ts
 * (TESSERA_OLD_CLI=/path/to/an/old/checkout/dist/client/cli.js uses a release built already,
 * instead of building 214098f with buildRelease).
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runFfmpeg, runFfprobe } from '../../shared/ffmpeg.js';
import { LocalCluster } from '../helpers/cluster.js';
import { buildRelease } from '../helpers/release.js';

/** The last commit before the 2026-12-05 plan fields (thumbnails seekFrom, audio tags). */
const BEFORE_NEW_FIELDS = '214098f';

let oldCli: string;
let dir: string;
let cluster: LocalCluster | undefined;

beforeAll(async () => {
  oldCli = process.env['TESSERA_OLD_CLI'] ?? (await buildRelease(BEFORE_NEW_FIELDS)).cli;
}, 900_000);

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-upgrade-fields-'));
  // This version's coordinator; one worker of the release before the fields.
  cluster = new LocalCluster({ workers: 0, slots: 1 });
  await cluster.start();
  cluster.startWorker('old-1', [], { cli: oldCli });
  await cluster.waitForWorkers(1);
});

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
  await rm(dir, { recursive: true, force: true });
});

const tiny = (f: string): Promise<Buffer> => sharp(f).resize(32, 24, { fit: 'fill' }).removeAlpha().raw().toBuffer();

/** Index of the decoded frame of `frames` nearest to the picture `thumb`. */
async function nearestFrame(thumb: string, frames: Buffer[]): Promise<number> {
  const t = await tiny(thumb);
  const d = frames.map((f) => f.reduce((s, v, i) => s + Math.abs(v - t[i]!), 0));
  return d.indexOf(Math.min(...d));
}

/** Waits (a few seconds) until the job says it waits for a worker with `feature`; the older worker took nothing. */
async function waitsForFeature(id: string, feature: string): Promise<void> {
  let message = '';
  for (let i = 0; i < 100 && !message.includes(feature); i++) {
    await new Promise((r) => setTimeout(r, 100));
    message = (await cluster!.client.getJob(id)).message;
  }
  expect(message).toMatch(new RegExp(`waiting for a worker that can run it: .*${feature}`));
}

type Colour = { color_range?: string; color_space?: string; color_primaries?: string; color_transfer?: string };
async function colourOf(file: string): Promise<Colour> {
  const r = await runFfprobe<{ streams: Colour[] }>(['-select_streams', 'v:0', '-show_entries', 'stream=color_range,color_space,color_primaries,color_transfer', '-i', file]);
  const s = r.streams[0]!;
  return { color_range: s.color_range, color_space: s.color_space, color_primaries: s.color_primaries, color_transfer: s.color_transfer };
}

describe('a coordinator of this version beside a worker from before the 2026-12-05 plan fields', () => {
  it('thumbnails of an MPEG-TS wait for a worker that decodes from the keyframe before each time, never the next keyframe', async () => {
    // 7 s at 25 fps, keyframes at 0, 2, 4, 6 s. Every 2.5 s: 0, 2.5, 5 s -> frames 0, 63, 125.
    const src = path.join(dir, 'capture.ts');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=96x64:rate=25:duration=7', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '50', '-f', 'mpegts', src]);
    const fdir = path.join(dir, 'frames');
    await runFfmpeg(['-y', '-v', 'error', '-i', src, '-map', '0:v:0', '-vsync', 'passthrough', path.join(await mkdtemp(fdir), '%05d.png')]);
    const framesDir = (await readdir(dir)).find((d) => d.startsWith('frames'))!;
    const frames = await Promise.all((await readdir(path.join(dir, framesDir))).sort().map((f) => tiny(path.join(dir, framesDir, f))));

    const c = cluster!;
    const job = await c.client.submit({ thumbnails: { every: 2.5, width: 48 } }, [src]);
    await waitsForFeature(job.id, 'thumbnails-seek-from');
    c.startWorker('new-1');
    const done = await c.client.wait(job.id);
    expect(done.state, done.message).toBe('JOB_STATE_SUCCEEDED');
    expect(done.subtasks.every((st) => st.worker === 'new-1')).toBe(true);
    const out = await c.client.download(done.id, path.join(dir, 'out'));
    const thumbs = [...out.entries()].filter(([n]) => n.startsWith('thumb-')).sort(([a], [b]) => a.localeCompare(b));
    // Observed: [0, 100, 150] (the keyframes after 2.5 s and 5 s), and the job SUCCEEDED.
    expect(await Promise.all(thumbs.map(([, f]) => nearestFrame(f, frames)))).toEqual([0, 63, 125]);
  });

  it("audio of a tagged source waits for a worker that writes its tags", async () => {
    const src = path.join(dir, 'song.flac');
    const tags = ['title=My Title', 'artist=Some Artist', 'album=The Album'].flatMap((t) => ['-metadata', t]);
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'anoisesrc=r=44100:d=1.5:c=pink:a=0.2,aformat=channel_layouts=stereo', ...tags, '-c:a', 'flac', src]);

    const c = cluster!;
    const job = await c.client.submit({ audio: { codec: 'mp3' } }, [src]);
    await waitsForFeature(job.id, 'audio-tags');
    c.startWorker('new-1');
    const done = await c.client.wait(job.id);
    expect(done.state, JSON.stringify(done.errors)).toBe('JOB_STATE_SUCCEEDED');
    const out = [...(await c.client.download(done.id, path.join(dir, 'out'))).values()][0]!;
    const p = await runFfprobe<{ format?: { tags?: Record<string, string> } }>(['-show_format', '-i', out]);
    const got = Object.fromEntries(Object.entries(p.format?.tags ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
    // Observed before: {} (only the encoder tag), no warning, and the job SUCCEEDED on the older worker.
    expect(got).toMatchObject({ title: 'My Title', artist: 'Some Artist', album: 'The Album' });
  });

  // video-colour (after 214098f): required only where the codec's bitstream lacks the description.
  it('a BT.709-tagged H.264 video runs on them, tagged as the source (its bitstream carries the tags)', async () => {
    const src = path.join(dir, 'phone.mp4');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=96x64:rate=25:duration=2', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-color_primaries', 'bt709', '-color_trc', 'bt709', '-colorspace', 'bt709', '-color_range', 'tv', src]);
    const c = cluster!;
    const job = await c.client.submit({ video: { preset: 'ultrafast', codec: 'h264' } }, [src]);
    // Observed: the job stays RUNNING with "waiting for a worker that can run it: no connected
    // worker has video-colour (an older Tessera version?)" and the old worker is never given a segment.
    let got = await c.client.getJob(job.id);
    for (let i = 0; i < 150 && !/SUCCEEDED|FAILED|CANCELLED/.test(got.state); i++) {
      await new Promise((r) => setTimeout(r, 100));
      got = await c.client.getJob(job.id);
    }
    expect(got.message).not.toMatch(/video-colour/);
    expect(got.state, got.message).toBe('JOB_STATE_SUCCEEDED');
    const out = [...(await c.client.download(job.id, path.join(dir, 'out'))).values()][0]!;
    expect(await colourOf(out)).toEqual(await colourOf(src));
  });
});
