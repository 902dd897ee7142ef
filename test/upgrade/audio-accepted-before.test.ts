/**
 * Jobs the release before the day's new audio refusals (fadca7e) accepted, met by this version after
 * the README's upgrade. The refusals (MP3 over 320k, loudness over true_peak; an MP3 rate LAME lowers
 * was one too, for a while) are a new submission's only:
 * - a job stored by the older coordinator and resumed by this one was failed at the upgrade with the
 *   refusal (params validated again at resume), its work lost, instead of finishing;
 * - a repeat of its submission (same request_id, as the client library sends when the answer was
 *   lost) went through the refusal before the request_id lookup: INVALID_ARGUMENT, not the job.
 *
 * Run: TESSERA_OLD_CLI=/path/to/fadca7e/dist/client/cli.js npx vitest run --config vitest.upgrade.config.ts test/upgrade/audio-accepted-before.test.ts
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runFfmpeg } from '../../shared/ffmpeg.js';
import { LocalCluster } from '../helpers/cluster.js';
import { buildRelease } from '../helpers/release.js';

const BEFORE = 'fadca7e';

let oldCli: string;
let dir: string;
let cluster: LocalCluster | undefined;

beforeAll(async () => {
  oldCli = process.env['TESSERA_OLD_CLI'] ?? (await buildRelease(BEFORE)).cli;
}, 900_000);

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-upgrade-audio-'));
});

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
  await rm(dir, { recursive: true, force: true });
});

describe('a job the older coordinator accepted, resumed by this version', () => {
  it('an MP3 job at 8 kHz with a bitrate of 96k (LAME writes 64k) finishes after the upgrade', async () => {
    const src = path.join(dir, 'voice.wav');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'sine=f=440:r=8000:d=2', '-c:a', 'pcm_s16le', src]);
    // The old coordinator, no worker yet: the job is accepted and stored.
    cluster = new LocalCluster({ workers: 0, slots: 1, coordinatorCli: oldCli });
    await cluster.start();
    const c = cluster;
    const job = await c.client.submit({ audio: { codec: 'mp3', bitrate: '96k', sample_rate: 8000 } }, [src]);
    await new Promise((r) => setTimeout(r, 1000));
    // Accepted and stored (queued for a worker of its kind).
    expect(['JOB_STATE_QUEUED', 'JOB_STATE_RUNNING']).toContain((await c.client.getJob(job.id)).state);
    c.coordinator!.child.kill('SIGTERM');
    expect(await c.coordinator!.exited).toBe(0);

    // This version on the same data dir; a worker of this version joins.
    await c.startCoordinator();
    c.startWorker('new-1');
    await c.waitForWorkers(1);
    const done = await c.client.wait(job.id);
    // Observed: JOB_STATE_FAILED, "bitrate: 96k is over the 64k MP3 allows at 8000 Hz".
    expect(done.state, `${done.message} ${JSON.stringify(done.errors)}`).toBe('JOB_STATE_SUCCEEDED');
  });
});

async function acceptedByOld(params: Record<string, unknown>, requestId: string): Promise<{ c: LocalCluster; src: string; id: string }> {
  const src = path.join(dir, 'tone.wav');
  await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'sine=f=440:r=44100:d=2', '-c:a', 'pcm_s16le', src]);
  cluster = new LocalCluster({ workers: 0, slots: 1, coordinatorCli: oldCli });
  await cluster.start();
  const c = cluster;
  const job = await c.client.submit({ request_id: requestId, audio: params }, [src]);
  await new Promise((r) => setTimeout(r, 1000));
  expect(['JOB_STATE_QUEUED', 'JOB_STATE_RUNNING']).toContain((await c.client.getJob(job.id)).state);
  c.coordinator!.child.kill('SIGTERM');
  expect(await c.coordinator!.exited).toBe(0);
  await c.startCoordinator();
  return { c, src, id: job.id };
}

describe('audio jobs the older coordinator accepted, after the upgrade', () => {
  it('a repeat of the submission (same request_id) of loudness -6 LUFS under true_peak -7 is answered with its job', async () => {
    const params = { normalize: true, loudness: -6, true_peak: -7 };
    const { c, src, id } = await acceptedByOld(params, 'k4-repeat-loudness');
    // Observed: INVALID_ARGUMENT "loudness/true_peak: a target of -6 LUFS over a ceiling of -7 dBTP cannot be reached".
    const again = await c.client.submit({ request_id: 'k4-repeat-loudness', audio: params }, [src]).catch((e: Error) => e);
    expect(again instanceof Error ? again.message : again.id).toBe(id);
  });

});
