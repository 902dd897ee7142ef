/**
 * Upgrades with the real binaries of earlier versions (`npm run test:upgrade`): each release is built
 * from this repository's history (git archive + npm ci, cached in the temp folder), and its
 * coordinator and workers run as the processes a cluster being upgraded runs.
 *
 * - The README's procedure ("Upgrading the coordinator without losing jobs"): a coordinator of the
 *   first day's release (before the schema was versioned and before inputs and outputs moved to their
 *   own table) is stopped with SIGTERM mid-job and this version started on its data dir; the old
 *   workers reconnect by themselves and are then replaced one by one (SIGTERM drains each). The job
 *   finishes with what the old cluster had finished kept, the store is migrated, and the finished
 *   job stays readable, its outputs downloading with the same bytes.
 * - A rolling upgrade of the workers: a worker of the release before the video features of
 *   2026-12-02 beside one of this version. The coordinator cuts Matroska chunks and encodes the audio
 *   as a subtask of its own, both workers encode segments, and the output has every frame and the audio.
 *
 * Kept out of the default suite: the two builds take a few minutes the first time, and need the
 * repository's history and the npm registry.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import sharp from 'sharp';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SCHEMA_VERSION } from '../../coordinator/store.js';
import { runFfmpeg } from '../../shared/ffmpeg.js';
import { decodeCheck, probeMedia, probeVideoIndex } from '../../shared/media/probe.js';
import type { Job__Output as Job } from '../../shared/proto/generated/tessera/v1/Job.js';
import { expectSameBytes, randomFiles } from '../helpers/bytes.js';
import { LocalCluster } from '../helpers/cluster.js';
import { makeVideo } from '../helpers/media.js';
import { buildRelease, type Release } from '../helpers/release.js';

/** The last commit of 2026-11-28, the first day: job records held their files; no schema version. */
const FIRST_DAY = 'e51c00f';
/** The last commit of 2026-12-01: workers without `video-nut-chunks` and `video-audio-beside-segment`. */
const BEFORE_VIDEO_FEATURES = '187ead1';

let dir: string;
let cluster: LocalCluster | undefined;
const releases: Record<string, Release> = {};

beforeAll(async () => {
  // One after the other: two npm ci at once gain nothing on a small machine.
  for (const rev of [FIRST_DAY, BEFORE_VIDEO_FEATURES]) releases[rev] = await buildRelease(rev);
}, 900_000);

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-upgrade-'));
});

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
  await rm(dir, { recursive: true, force: true });
});

async function photos(n: number): Promise<string[]> {
  const files: string[] = [];
  for (let i = 0; i < n; i++) {
    const f = path.join(dir, `photo-${i}.jpg`);
    await sharp({ create: { width: 640, height: 480, channels: 3, background: { r: 40 * i, g: 120, b: 200 - 30 * i } } }).jpeg().toFile(f);
    files.push(f);
  }
  return files;
}

/** The layout of the job store in a data dir (read only; the coordinator may have it open). */
function storeLayout(dataDir: string): { version: number; jobFiles: boolean } {
  const db = new Database(path.join(dataDir, 'tessera.db'), { readonly: true });
  try {
    return {
      version: db.pragma('user_version', { simple: true }) as number,
      jobFiles: db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'job_files'").get() !== undefined,
    };
  } finally {
    db.close();
  }
}

/** The job's outputs downloaded into a folder of their own: name -> bytes. */
async function outputsOf(c: LocalCluster, job: Job, label: string): Promise<Map<string, Buffer>> {
  const paths = await c.client.download(job.id, path.join(dir, `out-${label}`));
  const bytes = new Map<string, Buffer>();
  for (const [name, file] of paths) bytes.set(name, await readFile(file));
  return bytes;
}

describe('upgrading the coordinator from the first release on its data dir', () => {
  it('finishes the job the old coordinator was running and keeps the finished one readable', async () => {
    const old = releases[FIRST_DAY]!;
    cluster = new LocalCluster({ workers: 2, slots: 1, coordinatorCli: old.cli, workerCli: old.cli });
    await cluster.start();
    const c = cluster;

    // A finished job: photos made into WebP by the old cluster.
    const images = await photos(3);
    const finished = await c.client.wait((await c.client.submit({ image: { width: 200, format: 'webp' } }, images)).id);
    expect(finished.state, JSON.stringify(finished.errors)).toBe('JOB_STATE_SUCCEEDED');
    const before = await outputsOf(c, finished, 'before');
    expect([...before.keys()].sort()).toEqual(['photo-0.webp', 'photo-1.webp', 'photo-2.webp']);

    // An unfinished one: the old coordinator is stopped with SIGTERM after two of its six subtasks.
    const files = await randomFiles(dir, 'blob', 6, 200_000);
    const running = await c.client.submit({ passthrough: { work_ms: 1500 } }, files);
    const doneBefore = new Set<string>();
    const watching = new AbortController();
    await new Promise<void>((resolve, reject) => {
      c.client
        .wait(running.id, (e) => {
          if (e.type === 'subtask_state' && e.subtask?.state === 'SUBTASK_STATE_SUCCEEDED') doneBefore.add(e.subtask.id);
          if (doneBefore.size === 2 && !watching.signal.aborted) {
            c.coordinator!.child.kill('SIGTERM');
            watching.abort();
            resolve();
          }
        }, watching.signal)
        .then((j) => reject(new Error(`the job ended (${j.state}) before the old coordinator was stopped`)), () => undefined);
    });
    expect(await c.coordinator!.exited).toBe(0);
    // The store it left is of the first layout: no schema version, files inside the job records.
    expect(storeLayout(c.dataDir)).toEqual({ version: 0, jobFiles: false });

    // This version on the same data dir and address; the old workers reconnect by themselves.
    await c.startCoordinator();
    await c.waitForWorkers(2);
    // Then the workers are upgraded one by one: each drains (SIGTERM) and a new one takes its place.
    for (const [i, w] of c.workers.slice(0, 2).entries()) {
      w.child.kill('SIGTERM');
      expect(await w.exited).toBe(0);
      c.startWorker(`new-${i + 1}`);
      await c.waitForWorkers(2);
    }

    const done = await c.client.wait(running.id);
    expect(done.state, JSON.stringify(done.errors)).toBe('JOB_STATE_SUCCEEDED');
    const out = await outputsOf(c, done, 'resumed');
    expect(out.size).toBe(files.length);
    for (const f of files) expectSameBytes(out.get(path.basename(f))!, await readFile(f), path.basename(f));
    // What the old cluster finished stayed finished: run once, by an old worker.
    const kept = done.subtasks.filter((s) => doneBefore.has(s.id));
    expect(kept).toHaveLength(2);
    for (const s of kept) expect([s.worker, s.attempt]).toEqual([expect.stringMatching(/^worker-\d$/), 1]);

    // The finished job reads as it did, and its outputs download with the same bytes.
    const again = await c.client.getJob(finished.id);
    expect(again.state).toBe('JOB_STATE_SUCCEEDED');
    expect(again.outputs.map((o) => [o.name, o.size, o.sha256]).sort()).toEqual(finished.outputs.map((o) => [o.name, o.size, o.sha256]).sort());
    const after = await outputsOf(c, again, 'after');
    for (const [name, bytes] of before) expectSameBytes(after.get(name)!, bytes, name);

    // Migrated: versioned, with the table of files (a record moves its files there when next written).
    expect(storeLayout(c.dataDir)).toEqual({ version: SCHEMA_VERSION, jobFiles: true });

    // The upgraded data dir opens again: a second start of this version finds both jobs as they were.
    c.coordinator!.child.kill('SIGTERM');
    expect(await c.coordinator!.exited).toBe(0);
    await c.startCoordinator();
    const listed = await c.client.listJobs();
    expect(listed.filter((j) => j.id === finished.id || j.id === running.id).map((j) => j.state)).toEqual(['JOB_STATE_SUCCEEDED', 'JOB_STATE_SUCCEEDED']);
  });
});

describe('a worker of the release before the video features beside one of this version', () => {
  it('encodes a video with audio across both: Matroska chunks, the audio a subtask of its own; alone, a second track too', async () => {
    const old = releases[BEFORE_VIDEO_FEATURES]!;
    cluster = new LocalCluster({ workers: 0, slots: 1 });
    await cluster.start();
    const c = cluster;
    c.startWorker('old-1', [], { cli: old.cli });
    c.startWorker('new-1');
    await c.waitForWorkers(2);

    const src = await makeVideo(dir, 'clip.mp4', { duration: 6, gop: 12, audioChannels: 2 });
    const job = await c.client.submit({ video: { preset: 'ultrafast', segment_seconds: 1, container: 'mp4' } }, [src]);
    const done = await c.client.wait(job.id);
    expect(done.state, JSON.stringify(done.errors)).toBe('JOB_STATE_SUCCEEDED');
    const segments = done.subtasks.filter((s) => s.label.includes('segment'));
    // The audio went as its own subtask, not beside a segment: the old worker could take either.
    expect(done.subtasks.filter((s) => s.label === 'clip.mp4 audio')).toHaveLength(1);
    expect(segments.filter((s) => s.label.endsWith('and audio'))).toEqual([]);
    // Both versions encoded segments.
    expect(new Set(segments.map((s) => s.worker))).toEqual(new Set(['old-1', 'new-1']));
    const out = (await c.client.download(job.id, path.join(dir, 'out'))).get('clip.mp4')!;
    const [srcIndex, decoded, info] = await Promise.all([probeVideoIndex(src), decodeCheck(out), probeMedia(out)]);
    expect(decoded.errors).toEqual([]);
    expect(decoded.frames).toBe(srcIndex.frameTimes.length);
    // Matroska chunks round frame times to 1 ms: the duration within a frame's rounding.
    expect(Math.abs(info.video!.duration - (srcIndex.end - srcIndex.frameTimes[0]!))).toBeLessThan(0.041);
    expect(info.audio).toHaveLength(1);
    expect(Math.abs(info.audio[0]!.duration - info.video!.duration)).toBeLessThan(0.05);

    // Images go to both as well.
    const images = await photos(4);
    const imageJob = await c.client.wait((await c.client.submit({ image: { width: 100, format: 'jpeg' } }, images)).id);
    expect(imageJob.state, JSON.stringify(imageJob.errors)).toBe('JOB_STATE_SUCCEEDED');
    const thumbs = await c.client.download(imageJob.id, path.join(dir, 'images'));
    expect(thumbs.size).toBe(images.length);
    for (const file of thumbs.values()) expect(await sharp(file).metadata()).toMatchObject({ format: 'jpeg', width: 100, height: 75 });

    // The old worker alone encodes a source's second audio track too: a plain audio subtask to it.
    c.workers.find((w) => w.name === 'new-1')!.child.kill('SIGTERM');
    await c.workers.find((w) => w.name === 'new-1')!.exited;
    const dubbed = path.join(dir, 'dubbed.mkv');
    await runFfmpeg(['-y', '-i', src, '-f', 'lavfi', '-i', 'sine=frequency=660:sample_rate=44100:duration=6', '-map', '0', '-map', '1', '-c:v', 'copy', '-c:a:0', 'copy', '-c:a:1', 'aac', dubbed]);
    const two = await c.client.wait((await c.client.submit({ video: { preset: 'ultrafast', segment_seconds: 2, container: 'mkv' } }, [dubbed])).id);
    expect(two.state, JSON.stringify(two.errors)).toBe('JOB_STATE_SUCCEEDED');
    expect(two.subtasks.filter((s) => s.label === 'dubbed.mkv audio track 2').map((s) => s.worker)).toEqual(['old-1']);
    const dubbedOut = (await c.client.download(two.id, path.join(dir, 'dubbed'))).get('dubbed.mkv')!;
    expect((await probeMedia(dubbedOut)).audio.map((a) => a.channels)).toEqual([2, 1]);
  });
});
