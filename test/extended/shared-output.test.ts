/**
 * Outputs written to shared storage (`spec.shared_output_dir`, `submit --shared-output`) on real
 * clusters: a batch's workers write their outputs into the folder themselves and the coordinator
 * renames them into place (nothing left behind, nothing kept in its spool, still downloadable);
 * merged outputs are moved there by the coordinator, across file systems too; folders the
 * coordinator may not write to are refused, naming them; a worker whose mount of the folder is
 * another file system has its outputs go through the coordinator instead.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, realpath, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobEvent } from '../../client/client.js';
import { sharedOutputTemp } from '../../shared/shared-output.js';
import { generateAudio } from '../helpers/audio-media.js';
import { byHandWorker, rawDownload, rawSubmit } from '../helpers/raw-grpc.js';
import { startCluster, workerWithTmpfsOver, type TestCluster } from '../helpers/cluster.js';
import { expectSameBytes } from '../helpers/bytes.js';

let dir: string;
let shared: string;
/** A second shared root on another file system (a tmpfs mounted for the test), for moves that must copy. */
let shm: string;
let outside: string;
let photos: string[];
let c: TestCluster;
const extra: TestCluster[] = [];

const run = promisify(execFile);

/** Bytes of subtask outputs the coordinator received from workers, from its /metrics. */
const received = (cluster: TestCluster): Promise<number> => cluster.metric('tessera_task_output_bytes_received_total');
const sha = async (file: string): Promise<string> => createHash('sha256').update(await readFile(file)).digest('hex');

beforeAll(async () => {
  dir = await realpath(await mkdtemp(path.join(os.tmpdir(), 'tessera-shared-out-')));
  shared = path.join(dir, 'shared');
  shm = path.join(dir, 'tmpfs');
  await mkdir(shm);
  await run('mount', ['-t', 'tmpfs', '-o', 'size=64m', 'tmpfs', shm]);
  outside = path.join(dir, 'outside');
  await mkdir(path.join(shared, 'photos'), { recursive: true });
  await mkdir(outside);
  photos = [];
  for (let i = 0; i < 3; i++) {
    const p = path.join(shared, 'photos', `p${i}.jpg`);
    await sharp({ create: { width: 320, height: 240, channels: 3, background: { r: 40 * i, g: 120, b: 200 } } }).jpeg().toFile(p);
    photos.push(p);
  }
  // The photos' folder is readable; the whole of `shared` and the tmpfs may be written to.
  c = await startCluster({ workers: 2, slots: 1, coordinatorArgs: ['--shared-root', path.join(shared, 'photos'), '--shared-output-root', shared, '--shared-output-root', shm] });
}, 60_000);

afterAll(async () => {
  await Promise.all([c, ...extra].map((x) => x?.stop()));
  if (shm) await run('umount', [shm]).catch(() => undefined);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('outputs on shared storage', () => {
  it("writes a batch's outputs into the folder under their names, replacing old ones; nothing left behind or spooled", async () => {
    const out = path.join(shared, 'out');
    await mkdir(out);
    await writeFile(path.join(out, 'p1.webp'), 'an older p1');
    const receivedBefore = await received(c);
    const r = await c.runCli(['submit', 'image', ...photos, '--shared', '--width', '64', '--format', 'webp', '--shared-output', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const job = JSON.parse(r.stdout) as { id: string; state: string; outputs: { name: string; sha256: string; path: string }[] };
    expect(job.state).toBe('succeeded');
    // Exactly the outputs: no temporary file of any attempt, the old p1 replaced.
    expect((await readdir(out)).sort()).toEqual(['p0.webp', 'p1.webp', 'p2.webp']);
    expect(job.outputs.map((o) => o.path).sort()).toEqual(['p0.webp', 'p1.webp', 'p2.webp'].map((n) => path.join(out, n)));
    for (const o of job.outputs) {
      expect((await sharp(o.path).metadata()).width).toBe(64);
      expect(await sha(o.path)).toBe(o.sha256);
    }
    // The workers wrote them there: no output byte reached the coordinator, its spool holds no copy.
    expect((await received(c)) - receivedBefore).toBe(0);
    expect(await readdir(path.join(c.dataDir, 'spool', 'jobs', job.id, 'out')).catch(() => [])).toEqual([]);
    const info = await c.client.getJob(job.id);
    expect(info.outputs.map((o) => o.shared_path).sort()).toEqual(job.outputs.map((o) => o.path).sort());
    // Still downloadable by clients that do not see the share.
    const got = await c.client.download(job.id, path.join(dir, 'downloaded'));
    for (const o of job.outputs) expect(await sha(got.get(o.name)!)).toBe(o.sha256);
    // The folder is writable by others: a published output swapped for a symlink is not followed.
    await writeFile(path.join(outside, 'private.txt'), 'coordinator-readable only');
    await rm(path.join(out, 'p0.webp'));
    await symlink(path.join(outside, 'private.txt'), path.join(out, 'p0.webp'));
    const swapped = await rawDownload(c.address, job.id, 'p0.webp');
    expect(swapped.data).toBeUndefined();
    expect(swapped.err?.code).toBe(grpc.status.DATA_LOSS);
    expect(swapped.err?.details).toMatch(/output p0\.webp: .*p0\.webp in the shared folder was replaced or changed since it was published/);
    // Nor are outputs in a shared folder ever sent inside their events (they would be read by path).
    const announced: JobEvent[] = [];
    for await (const e of c.client.watch(job.id, { inlineOutputsUpTo: 1024 * 1024 })) if (e.type === 'output') announced.push(e);
    expect(announced).toHaveLength(3);
    expect(announced.every((e) => e.output_data.length === 0)).toBe(true);
    await rm(path.join(outside, 'private.txt'));
    // Rewritten in place, even at the same size: not the output any more.
    const p2 = path.join(out, 'p2.webp');
    await writeFile(p2, Buffer.alloc((await stat(p2)).size, 1));
    expect((await rawDownload(c.address, job.id, 'p2.webp')).err?.code).toBe(grpc.status.DATA_LOSS);
    await rm(p2);
    const removed = await rawDownload(c.address, job.id, 'p2.webp');
    expect(removed.err?.code).toBe(grpc.status.NOT_FOUND);
    expect(removed.err?.details).toMatch(/output p2\.webp: .* was removed from the shared folder since it was published/);
  });

  it('moves merged outputs (audio segments joined by the coordinator) into a folder on another file system', async () => {
    const src = await generateAudio(path.join(dir, 'talk.wav'), { source: 'sine', seconds: 8, rate: 44100, layout: 'stereo', ext: 'wav', amplitude: 0.2 });
    const out = path.join(shm, 'audio');
    await mkdir(out);
    // Uploaded input, shared output: the two are independent.
    const job = await c.client.submit({ audio: { codec: 'flac', segment_seconds: 4 }, shared_output_dir: out }, [src]);
    const done = await c.client.wait(job.id);
    expect(done.errors).toEqual([]);
    expect(done.state).toBe('JOB_STATE_SUCCEEDED');
    expect(done.subtasks.filter((s) => /segment/.test(s.label)).length).toBe(2);
    expect((await readdir(out)).sort()).toEqual(done.outputs.map((o) => o.name).sort());
    for (const o of done.outputs) {
      expect(o.shared_path).toBe(path.join(out, o.name));
      expect((await stat(o.shared_path)).size).toBe(Number(o.size));
      expect(await sha(o.shared_path)).toBe(o.sha256);
    }
    expect(done.outputs.map((o) => o.name)).toContain('talk.flac');
  });

  it('refuses a folder the outputs cannot go to, with the status and a message naming it', async () => {
    await writeFile(path.join(shared, 'a-file'), 'x');
    await symlink(outside, path.join(shared, 'link-out'));
    const cases: [string, grpc.status, RegExp][] = [
      [outside, grpc.status.PERMISSION_DENIED, /spec\.shared_output_dir .*outside: outside the coordinator's shared output folders/],
      [path.join(shared, 'link-out'), grpc.status.PERMISSION_DENIED, /link-out: outside the coordinator's shared output folders/],
      [`${shared}/../outside`, grpc.status.PERMISSION_DENIED, /outside the coordinator's shared output folders/],
      [path.join(shared, 'link-out', 'below'), grpc.status.PERMISSION_DENIED, /below: outside the coordinator's shared output folders/],
      [path.join(shared, 'a-file', 'below'), grpc.status.INVALID_ARGUMENT, /below: cannot create it: ENOTDIR/],
      [path.join(shared, 'a-file'), grpc.status.INVALID_ARGUMENT, /a-file: not a folder/],
      ['out', grpc.status.INVALID_ARGUMENT, /spec\.shared_output_dir out: not an absolute path/],
    ];
    const before = (await c.client.listJobs()).length;
    const outsideBefore = await readdir(outside);
    for (const [folder, code, message] of cases) {
      const err = await rawSubmit(c.address, [{ spec: { passthrough: {}, shared_output_dir: folder } }, { input: { name: 'p0.jpg', shared_path: photos[0] } }]);
      expect(err?.code, `${folder}: ${err?.details}`).toBe(code);
      expect(err?.details).toMatch(message);
    }
    expect((await c.client.listJobs()).length).toBe(before);
    expect(await readdir(outside)).toEqual(outsideBefore);

    // A missing folder is made, with its parents, as `-o DIR` would be.
    const fresh = path.join(shared, 'new', 'deeper');
    const job = await c.client.submit({ passthrough: {}, shared_output_dir: fresh }, [photos[2]!], { shared: true });
    expect((await c.client.wait(job.id)).state).toBe('JOB_STATE_SUCCEEDED');
    expect(await readdir(fresh)).toEqual(['p2.jpg']);

    // The folder a job reads from may be where it writes, but never over one of its own inputs.
    const before1 = await sha(photos[1]!);
    const own = await c.client.submit({ passthrough: {}, shared_output_dir: path.join(shared, 'photos') }, [photos[1]!], { shared: true });
    const ownDone = await c.client.wait(own.id);
    expect(ownDone.state).toBe('JOB_STATE_FAILED');
    expect(ownDone.errors[0]).toMatchObject({ code: 'INVALID_ARGUMENT', input: 'p1.jpg' });
    expect(ownDone.errors[0]!.message).toMatch(/output p1\.jpg would replace the job's own input .*p1\.jpg/);
    expect(await sha(photos[1]!)).toBe(before1);
    await expect.poll(async () => (await readdir(path.join(shared, 'photos'))).sort(), { timeout: 15_000 }).toEqual(['p0.jpg', 'p1.jpg', 'p2.jpg']);

    // A coordinator that shares nothing cannot write anywhere but its spool.
    const closed = await startCluster({ workers: 0 });
    extra.push(closed);
    const err = await rawSubmit(closed.address, [{ spec: { passthrough: {}, shared_output_dir: shared } }]);
    expect(err?.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(err?.details).toMatch(/spec\.shared_output_dir .*: this coordinator writes outputs to no shared folder/);
    // Nor does one that only lets clients read from a folder: writing there is a grant of its own.
    const readOnly = await startCluster({ workers: 0, coordinatorArgs: ['--shared-root', shared] });
    extra.push(readOnly);
    const denied = await rawSubmit(readOnly.address, [{ spec: { passthrough: {}, shared_output_dir: path.join(shared, 'photos') } }]);
    expect(denied?.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(denied?.details).toMatch(/start it with --shared-output-root/);
  });

  it('the coordinator SIGKILLed mid-job and restarted publishes what finished before, reruns the rest, and leaves only the outputs', async () => {
    const out = path.join(shared, 'after-crash');
    const cluster = await startCluster({ workers: 2, slots: 1, coordinatorArgs: ['--shared-output-root', shared] });
    extra.push(cluster);
    // Over 64 KiB each: the workers stream them into the folder.
    const files: string[] = [];
    for (let i = 0; i < 8; i++) {
      files.push(path.join(dir, `blob-${i}.bin`));
      await writeFile(files[i]!, randomBytes(150_000 + i));
    }
    const job = await cluster.client.submit({ passthrough: { work_ms: 500 }, shared_output_dir: out }, files);
    let succeeded = 0;
    const done = await cluster.client.wait(job.id, (e) => {
      if (e.type === 'subtask_state' && e.subtask?.state === 'SUBTASK_STATE_SUCCEEDED' && ++succeeded === 3) {
        cluster.coordinator!.child.kill('SIGKILL');
        void cluster.coordinator!.exited.then(() => cluster.startCoordinator());
      }
    });
    expect(done.state, JSON.stringify(done.errors)).toBe('JOB_STATE_SUCCEEDED');
    expect(done.subtasks.filter((s) => s.attempt === 1).length).toBeGreaterThanOrEqual(3);
    for (const f of files) {
      const o = done.outputs.find((x) => x.name === path.basename(f))!;
      expect(o.shared_path).toBe(path.join(out, o.name));
      expect(await sha(o.shared_path)).toBe(await sha(f));
    }
    // Whatever the attempts cut off by the crash left in the folder is gone once the job ends.
    await expect.poll(async () => (await readdir(out)).sort(), { timeout: 15_000 }).toEqual(files.map((f) => path.basename(f)).sort());
  });

  it("takes from a worker only a regular file of the reported size at its own lease's temporary name, and removes nothing else", async () => {
    const out = path.join(shared, 'hand-written');
    await mkdir(out);
    const victim = path.join(outside, 'victim-2.txt');
    const bystander = path.join(out, 'someone-elses.bin');
    await writeFile(victim, 'unchanged');
    await writeFile(bystander, 'also unchanged');
    const input = path.join(dir, 'x.bin');
    const bytes = randomBytes(5000);
    await writeFile(input, bytes);
    const cluster = await startCluster({ workers: 0, coordinatorArgs: ['--shared-output-root', shared] });
    extra.push(cluster);
    // A worker written by hand on the generated stub, answering each attempt differently.
    const worker = byHandWorker(cluster.address, async (a) => {
      const base = { subtask_id: a.subtask_id, attempt: a.attempt, ok: true, item_errors: [], result_json: '', duration_ms: '1' };
      const ref = { name: 'x.bin', size: String(bytes.length), sha256: createHash('sha256').update(bytes).digest('hex'), source: 'x.bin' };
      if (a.attempt === 1) {
        // Its own temporary name, but a symlink to a file elsewhere.
        const temp = sharedOutputTemp(a.shared_output_dir, a.job_id, a.subtask_id, a.shared_output_token, 'x.bin');
        await symlink(victim, temp);
        return { ...base, outputs: [{ ...ref, size: '9', shared_path: temp }] };
      }
      if (a.attempt === 2) {
        // Someone else's file in the folder, of the right size.
        await writeFile(bystander, bytes);
        return { ...base, outputs: [{ ...ref, shared_path: bystander }] };
      }
      return { ...base, outputs: [{ ...ref, inline: true, inline_data: bytes }] };
    });
    try {
      await cluster.waitForWorkers(1);
      const job = await cluster.client.submit({ passthrough: {}, shared_output_dir: out }, [input]);
      const seenEvents: string[] = [];
      const done = await cluster.client.wait(job.id, (e) => seenEvents.push(JSON.stringify(e)));
      expect(done.state, JSON.stringify(done.errors)).toBe('JOB_STATE_SUCCEEDED');
      // Attempt 1 was told to write to the folder; after its file was refused, the others were not.
      expect(worker.seen.map((a) => ({ attempt: a.attempt, dir: a.shared_output_dir }))).toEqual([{ attempt: 1, dir: out }, { attempt: 2, dir: '' }, { attempt: 3, dir: '' }]);
      expect(seenEvents.some((e) => e.includes('the coordinator finds'))).toBe(true);
      expect(seenEvents.some((e) => e.includes('where this attempt may not write'))).toBe(true);
      // The refused symlink (its own name) is gone, what it pointed at and the bystander's file are not.
      expect(await readFile(victim, 'utf8')).toBe('unchanged');
      expectSameBytes(await readFile(bystander), bytes);
      expect((await readdir(out)).sort()).toEqual(['someone-elses.bin', 'x.bin']);
      expectSameBytes(await readFile(path.join(out, 'x.bin')), bytes);
    } finally {
      worker.stop();
    }
  });

  it("takes the outputs of a worker whose mount of the folder is another file system through the coordinator", async () => {
    const out = path.join(shared, 'from-elsewhere');
    await mkdir(out);
    const cluster = await startCluster({ workers: 0, coordinatorArgs: ['--shared-root', shared, '--shared-output-root', shared] });
    extra.push(cluster);
    // A worker in its own mount namespace, with an empty tmpfs over the output folder: it believes it can write there.
    const worker = workerWithTmpfsOver(out, cluster.address, 'elsewhere');
    try {
      await cluster.waitForWorkers(1);
      const receivedBefore = await received(cluster);
      const job = await cluster.client.submit({ passthrough: {}, shared_output_dir: out }, [photos[0]!, photos[1]!]);
      const done = await cluster.client.wait(job.id);
      expect(done.state, JSON.stringify(done.errors)).toBe('JOB_STATE_SUCCEEDED');
      expect((await readdir(out)).sort()).toEqual(['p0.jpg', 'p1.jpg']);
      for (const name of ['p0.jpg', 'p1.jpg']) expect(await sha(path.join(out, name))).toBe(await sha(path.join(shared, 'photos', name)));
      // Both outputs went through the coordinator.
      expect((await received(cluster)) - receivedBefore).toBe(done.outputs.reduce((n, o) => n + Number(o.size), 0));
      // The first file written never reached the coordinator: that subtask was retried once, through
      // the coordinator, and so were all the outputs after it. One slot and no lease-ahead (a
      // passthrough copy has no run estimate): the other subtask is assigned only once the first
      // result has been refused, and so goes through the coordinator at its first attempt.
      const attempts = done.subtasks.map((s) => s.attempt).sort((a, b) => a - b);
      expect(attempts).toEqual([1, 2]);
    } finally {
      await worker.stop();
    }
  });
});
