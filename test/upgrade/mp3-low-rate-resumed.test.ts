/**
 * A job accepted by the release before 5478880 (fadca7e) and resumed by this version after the
 * README's upgrade (coordinator stopped with SIGTERM, this version started on its data dir).
 *
 * 5478880 refuses MP3 over 64k under 16 kHz at submission (`bitrate: 96k is over the 64k MP3 allows
 * at 8000 Hz`). The params are validated again when a stored job is resumed, so a job the older
 * coordinator accepted, planned and was running (LAME writes its 64k, as it always did) is FAILED
 * at the upgrade with that refusal, its work lost, instead of finishing as it would have.
 *
 * Run: npx vitest run --config vitest.upgrade.config.ts test/upgrade/mp3-low-rate-resumed.test.ts
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
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-upgrade-mp3-'));
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
