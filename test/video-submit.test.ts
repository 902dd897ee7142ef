/**
 * Inputs a video or thumbnails job cannot use are refused at submission (SubmitJob fails with
 * INVALID_ARGUMENT naming the file), not after the job has started: on a real cluster (built dist/).
 * And the CLI's `--lossless` reaches the encoders: the stitched file's pictures are the source's.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { LocalCluster } from '../client/local-cluster.js';
import { runFfmpeg } from '../shared/ffmpeg.js';
import { runCli } from './helpers/cluster.js';
import { decodedPictureHashes, makeVideo } from './helpers/media.js';

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
