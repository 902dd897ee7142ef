/**
 * The coordinator's disk fills while it merges. README ("Fault tolerance", the corrupted bytes /
 * full disk row): "a merge stopped by the coordinator's full disk (or quota, or lack of file
 * descriptors) runs again 2 s later, then ever later (up to 1 min apart), with no limit, until there
 * is room (the job's message says `merging phase N waits for the coordinator`)". The job manager does
 * so for an error that carries a local-trouble errno (isCoordinatorTrouble -> hasLocalTroubleCode),
 * and the video stitch passed such errors on; the audio join and the tiled-image stitch did not, so
 * a full disk during their merge failed the job for good (UNAVAILABLE / INTERNAL / DATA_LOSS).
 */
import { execFileSync } from 'node:child_process';
import { statfsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalCluster } from '../../client/local-cluster.js';
import { hasLocalTroubleCode } from '../../shared/errors.js';
import { ffmpegBinaries } from '../../shared/ffmpeg.js';
import { generateAudio } from '../helpers/audio-media.js';
import { imageParams, makeSource, runTiledInProcess } from '../tiles-helpers.js';

let cluster: LocalCluster | undefined;
let dir = '';
let mounted: string[] = [];

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
  for (const m of mounted.reverse()) execFileSync('umount', ['-l', m]);
  mounted = [];
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function tmpfs(at: string, size: string): Promise<string> {
  await mkdir(at, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', at]);
  mounted.push(at);
  return at;
}

/** A process (by PID) that is a child of `parent` and stopped (state T), if any. */
async function stoppedChildOf(parent: number): Promise<number | undefined> {
  for (const pid of await readdir('/proc')) {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    if (/^\d+ \(.*\) T (\d+) /.exec(stat)?.[1] === String(parent)) return Number(pid);
  }
  return undefined;
}

/**
 * A cluster of two workers on `data` whose ffmpeg stops itself as the coordinator's audio merge
 * starts (its output lies in the job's work/merge-N-* folder), a 20 s audio job of two segments on
 * it, and that stopped merge's PID: the disk is spoilt at that moment, then the merge let go.
 */
async function audioMergePaused(data: string): Promise<{ c: LocalCluster; job: { id: string }; merger: number }> {
  const freeze = path.join(dir, 'freeze');
  const wrapper = path.join(dir, 'ffmpeg');
  await writeFile(freeze, '');
  await writeFile(wrapper, `#!/bin/sh\ncase "$*" in *"/work/merge-"*) [ -e '${freeze}' ] && rm -f '${freeze}' && kill -STOP $$ ;; esac\nexec '${ffmpegBinaries().ffmpeg}' "$@"\n`, { mode: 0o755 });
  cluster = await new LocalCluster({ workers: 2, slots: 1, dataDir: data, env: { FFMPEG_PATH: wrapper, TESSERA_FULL_DISK_RETRY_MS: '200' } }).start();
  const c = cluster;
  const src = await generateAudio(path.join(dir, 'talk.wav'), { source: 'speech', seconds: 20, rate: 48000, layout: 'stereo', ext: 'wav' });
  const job = await c.client.submit({ audio: { codec: 'wav', segment_seconds: 10 } }, [src]);
  let merger: number | undefined;
  for (const until = Date.now() + 60_000; merger === undefined && Date.now() < until; ) {
    merger = await stoppedChildOf(c.coordinator!.child.pid!);
    if (merger === undefined) await sleep(50);
  }
  expect(merger, 'the coordinator never ran its merge').toBeDefined();
  return { c, job, merger: merger! };
}

/** Until the job says its merge waits for the coordinator (that message) or ends (its state and errors), 20 s at most. */
async function waitingOrEnded(c: LocalCluster, jobId: string): Promise<{ waiting: string; ended: string }> {
  let waiting = '';
  let ended = '';
  for (const until = Date.now() + 20_000; !waiting && !ended && Date.now() < until; ) {
    const j = await c.client.getJob(jobId);
    if (/waits for the coordinator/.test(j.message)) waiting = j.message;
    else if (j.state !== 'JOB_STATE_RUNNING') ended = `${j.state}: ${j.errors.map((e) => `${e.code}: ${e.message}`).join('; ')}`;
    await sleep(100);
  }
  return { waiting, ended };
}

describe("a merge stopped by the coordinator's full disk", () => {
  it('an audio file joined on a full disk waits for room and is published, not failed as UNAVAILABLE "its disk is full"', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-merge-full-'));
    const data = await tmpfs(path.join(dir, 'data'), '32m');
    const { c, job, merger } = await audioMergePaused(data);
    const filler = path.join(data, 'filler');
    const fs = statfsSync(data);
    execFileSync('fallocate', ['-l', String(fs.bavail * fs.bsize - 64 * 1024), filler]);
    process.kill(merger, 'SIGCONT');
    // The merge fails for want of room: the job must wait for it (and say so), not end.
    const { waiting, ended } = await waitingOrEnded(c, job.id);
    await rm(filler);
    const done = await c.client.wait(job.id);
    expect(ended).toBe('');
    expect(waiting).toMatch(/merging phase 0 waits for the coordinator/);
    expect(done.state, JSON.stringify(done.errors)).toBe('JOB_STATE_SUCCEEDED');
    expect(done.outputs.map((o) => o.name).sort()).toEqual(['audio-report.json', 'talk.wav']);
  }, 120_000);

  it('an audio file joined while the job\'s folder is read-only (remounted so after an I/O error) waits for it to be writable again, not failed', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-merge-ro-'));
    const data = path.join(dir, 'data');
    const { c, job, merger } = await audioMergePaused(data);
    // The job's folder (its merge's work and its outputs) turns read-only under the coordinator.
    const folder = path.join(data, 'spool', 'jobs', job.id);
    execFileSync('mount', ['--bind', folder, folder]);
    mounted.push(folder);
    execFileSync('mount', ['-o', 'remount,bind,ro', folder]);
    process.kill(merger, 'SIGCONT');
    const { waiting, ended } = await waitingOrEnded(c, job.id);
    execFileSync('umount', ['-l', mounted.pop()!]);
    const done = await c.client.wait(job.id);
    // Observed before: FAILED, INVALID_ARGUMENT "ffmpeg failed: ... Read-only file system" (the input blamed).
    expect(ended).toBe('');
    expect(waiting).toMatch(/merging phase 0 waits for the coordinator: .*read-only/);
    expect(done.state, JSON.stringify(done.errors)).toBe('JOB_STATE_SUCCEEDED');
    expect(done.outputs.map((o) => o.name).sort()).toEqual(['audio-report.json', 'talk.wav']);
  }, 120_000);

  // The tiled-image stitch runs in the coordinator's process (sharp / the JPEG splicer): its merge is
  // run here as the coordinator runs it, into an output folder on a 64 KiB tmpfs. The job manager
  // merges again later only when the error carries the disk's errno (hasLocalTroubleCode).
  it("tiles stitched into a PNG on a full disk: the merge's error is the disk's (merged again later), not an INTERNAL \"merge failed\"", async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-merge-full-'));
    const src = await makeSource(path.join(dir, 'wide.png'), 600, 400);
    await tmpfs(path.join(dir, 'run', 'out'), '64k');
    const err = await runTiledInProcess(src, imageParams({ tile_size: 256, blur: 1, format: 'png' }), path.join(dir, 'run')).then(() => undefined, (e: unknown) => e);
    expect(String(err)).toMatch(/No space left on device|ENOSPC/);
    expect(hasLocalTroubleCode(err), String(err)).toBe(true);
  }, 30_000);

  it("JPEG strips spliced on a full disk: the merge's error is the disk's (merged again later), not the input's DATA_LOSS \"strips cannot be joined\"", async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-merge-full-'));
    const src = await makeSource(path.join(dir, 'big.jpg'), 1600, 1200, 'jpeg');
    await tmpfs(path.join(dir, 'run', 'out'), '64k');
    const err = await runTiledInProcess(src, imageParams({ blur: 1, format: 'jpeg' }), path.join(dir, 'run'), { config: { thresholdPixels: 500_000 } }).then(() => undefined, (e: unknown) => e);
    expect(String(err)).toMatch(/ENOSPC/);
    expect(String(err)).not.toMatch(/cannot be joined/);
    expect(hasLocalTroubleCode(err), String(err)).toBe(true);
  }, 30_000);
});
