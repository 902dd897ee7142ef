/**
 * Inputs a video or thumbnails job cannot use are refused at submission (SubmitJob fails with
 * INVALID_ARGUMENT naming the file), not after the job has started: on a real cluster (built dist/).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { LocalCluster } from '../client/local-cluster.js';
import { runFfmpeg } from '../shared/ffmpeg.js';

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
