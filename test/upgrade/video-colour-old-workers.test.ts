/**
 * A coordinator of this version beside workers of fadca7e (the release before `video-colour`): the
 * upgrade order the README gives (coordinator first, then the workers one by one).
 *
 * An H.264 source tagged BT.709 (every phone's and camera's video) carries its colour description in
 * its bitstream: an fadca7e worker's segments come out tagged exactly as a worker of this version's
 * do. Yet every segment of such a source now requires `video-colour`, so the job waits for an
 * upgraded worker ("no connected worker has video-colour") where it ran before the coordinator's
 * upgrade. (The feature is needed only where the NUT chunk loses the description: VP9's primaries
 * and transfer, FFV1, VP8, a full-range lossless output.)
 *
 * Run: npx vitest run --config vitest.upgrade.config.ts test/upgrade/video-colour-old-workers.test.ts
 * (TESSERA_OLD_CLI=/path/to/fadca7e/dist/client/cli.js uses a release built already.)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runFfmpeg, runFfprobe } from '../../shared/ffmpeg.js';
import { LocalCluster } from '../helpers/cluster.js';
import { buildRelease } from '../helpers/release.js';

/** The last release before the `video-colour` feature (0ec794b). */
const BEFORE_COLOUR = 'fadca7e';

let oldCli: string;
let dir: string;
let cluster: LocalCluster | undefined;

beforeAll(async () => {
  oldCli = process.env['TESSERA_OLD_CLI'] ?? (await buildRelease(BEFORE_COLOUR)).cli;
}, 900_000);

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-upgrade-colour-'));
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

type Colour = { color_range?: string; color_space?: string; color_primaries?: string; color_transfer?: string };
async function colourOf(file: string): Promise<Colour> {
  const r = await runFfprobe<{ streams: Colour[] }>(['-select_streams', 'v:0', '-show_entries', 'stream=color_range,color_space,color_primaries,color_transfer', '-i', file]);
  const s = r.streams[0]!;
  return { color_range: s.color_range, color_space: s.color_space, color_primaries: s.color_primaries, color_transfer: s.color_transfer };
}

describe('a coordinator of this version beside workers from before video-colour', () => {
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
