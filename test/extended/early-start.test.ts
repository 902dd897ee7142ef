/**
 * An image batch that is uploaded starts on its first photos while the rest are still coming: a
 * real coordinator and worker processes, and a raw gRPC stub as the client, so that the test holds
 * the upload open. A submission that fails half-way leaves nothing behind.
 */
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Job__Output } from '../../shared/proto/generated/tessera/v1/Job.js';
import type { JobServiceClient } from '../../shared/proto/generated/tessera/v1/JobService.js';
import { sha256 } from '../../shared/streams.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { delta, get, scrape } from '../helpers/metrics.js';
import { holdSubmission, rawJobService, sendInput, until, type HeldSubmission } from '../helpers/raw-grpc.js';

let cluster: TestCluster;
let dir: string;
let raw: JobServiceClient;
const photos: { name: string; data: Buffer }[] = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-early-'));
  cluster = await startCluster({ workers: 2, slots: 1, coordinatorArgs: ['--shared-output-root', dir] });
  raw = rawJobService(cluster.address);
  for (let i = 0; i < 12; i++) {
    const data = await sharp({ create: { width: 320, height: 240, channels: 3, background: { r: 20 * i, g: 100, b: 200 - 10 * i } } }).jpeg().toBuffer();
    photos.push({ name: `p${String(i).padStart(2, '0')}.jpg`, data });
  }
}, 60_000);

afterAll(async () => {
  raw?.close();
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Opens a SubmitJob call; the answer comes when the upload ends. */
const openSubmission = (label: string, sharedOutputDir = '', requestId = '', inputCount = 0): HeldSubmission =>
  holdSubmission(raw, { label, image: { width: 64, format: 'webp' }, shared_output_dir: sharedOutputDir, request_id: requestId, input_count: inputCount });

const upload = sendInput;

const listed = (label: string): Promise<Job__Output> =>
  until(`job ${label} to be listed`, async () => (await cluster.client.listJobs({ limit: 100 })).find((j) => j.spec?.label === label));

const withOutputs = (id: string): Promise<Job__Output> =>
  until(`job ${id} to publish an output`, async () => {
    const job = await cluster.client.getJob(id);
    return job.outputs.length > 0 ? job : undefined;
  });

const gone = (id: string): Promise<true> =>
  until(`job ${id} to be gone`, async () => ((await cluster.client.getJob(id).catch((e: grpc.ServiceError) => e)) as grpc.ServiceError).code === grpc.status.NOT_FOUND || undefined);

describe('an image batch that is uploaded', () => {
  it('publishes the first photos while the upload is still open, and ends as one job with every photo', async () => {
    const { call, answer } = openSubmission('early-whole', '', '', photos.length);
    for (const p of photos.slice(0, 5)) upload(call, p);
    // The upload stays open: the job is there, running, and has made outputs already.
    const early = await withOutputs((await listed('early-whole')).id);
    expect(early.state).toBe('JOB_STATE_RUNNING');
    for (const p of photos.slice(5)) upload(call, p);
    call.end();
    const { err, job } = await answer;
    expect(err).toBeNull();
    expect(job!.id).toBe(early.id);
    expect(job!.inputs.map((i) => [i.name, i.sha256])).toEqual(photos.map((p) => [p.name, sha256(p.data)]));
    const events: string[] = [];
    const done = await cluster.client.wait(job!.id, (e) => events.push(`${e.type}:${e.message}`));
    expect(done.state).toBe('JOB_STATE_SUCCEEDED');
    expect(done.errors).toEqual([]);
    expect(done.outputs.map((o) => [o.name, o.source]).sort()).toEqual(photos.map((p) => [p.name.replace('.jpg', '.webp'), p.name]));
    const out = path.join(dir, 'whole');
    const files = await cluster.client.download(job!.id, out);
    for (const f of files.values()) expect(await sharp(f).metadata()).toMatchObject({ format: 'webp', width: 64 });
    // Accepted with its first photo; an output published before the upload's end.
    const accepted = events.findIndex((e) => e.endsWith(`accepted 1 of ${photos.length} input(s), more arriving`));
    const complete = events.findIndex((e) => e.endsWith('upload complete: 12 input(s)'));
    expect(accepted).toBeGreaterThanOrEqual(0);
    expect(complete).toBeGreaterThan(accepted);
    expect(events.slice(accepted, complete).some((e) => e.startsWith('output:'))).toBe(true);
  });

  it('keeps a photo refused mid-upload as that photo\'s error; the others succeed', async () => {
    const { call, answer } = openSubmission('early-refused');
    upload(call, photos[0]!);
    await withOutputs((await listed('early-refused')).id);
    upload(call, { name: 'not-a-photo.jpg', data: Buffer.from('plain text, not a JPEG') });
    upload(call, photos[1]!);
    call.end();
    const { err, job } = await answer;
    expect(err).toBeNull();
    const done = await cluster.client.wait(job!.id);
    expect(done.state).toBe('JOB_STATE_PARTIALLY_SUCCEEDED');
    expect(done.errors.map((e) => [e.input, e.code])).toEqual([['not-a-photo.jpg', 'INVALID_ARGUMENT']]);
    expect(done.outputs.map((o) => o.name).sort()).toEqual(['p00.webp', 'p01.webp']);
  });

  it('is refused as a whole when it fails half-way (a photo that arrived damaged): the job it started is gone with its files, and the workers go on', async () => {
    const before = await scrape(cluster);
    const { call, answer } = openSubmission('early-damaged');
    for (const p of photos.slice(0, 3)) upload(call, p);
    const started = await withOutputs((await listed('early-damaged')).id);
    upload(call, photos[3]!, sha256(Buffer.from('something else')));
    call.end();
    const { err } = await answer;
    expect(err?.code).toBe(grpc.status.DATA_LOSS);
    expect(err?.details).toContain(`input ${photos[3]!.name}: checksum mismatch`);
    await gone(started.id);
    // Counted as a dropped job, not as one submitted and failed: its client was told it was refused.
    const after = await scrape(cluster);
    expect(delta(before, after, 'tessera_jobs_dropped_total{kind="image"}')).toBe(1);
    expect(delta(before, after, 'tessera_jobs_submitted_total{kind="image"}')).toBe(0);
    expect(delta(before, after, 'tessera_jobs_finished_total{kind="image",state="failed"}')).toBe(0);
    // Nor do the bytes it brought count as accepted input.
    expect(delta(before, after, 'tessera_input_bytes_total{kind="image"}')).toBe(0);
    await until('its spool folder to go', async () => (!(await readdir(path.join(cluster.dataDir, 'spool', 'jobs')).catch(() => [] as string[])).includes(started.id) || undefined));
    // The cluster goes on: the next job runs on both workers as before.
    const files = await Promise.all(photos.slice(0, 4).map(async (p) => {
      const f = path.join(dir, p.name);
      await writeFile(f, p.data);
      return f;
    }));
    const next = await cluster.client.submit({ label: 'after', image: { width: 32, format: 'webp' } }, files);
    const done = await cluster.client.wait(next.id);
    expect(done.state).toBe('JOB_STATE_SUCCEEDED');
    expect(done.outputs).toHaveLength(4);
    const last = await scrape(cluster);
    expect(delta(after, last, 'tessera_jobs_submitted_total{kind="image"}')).toBe(1);
    expect(delta(after, last, 'tessera_jobs_finished_total{kind="image",state="succeeded"}')).toBe(1);
    expect(delta(after, last, 'tessera_input_bytes_total{kind="image"}')).toBe(photos.slice(0, 4).reduce((n, p) => n + p.data.length, 0));
  });

  it('writing into a shared folder, removes the outputs it had written there when it fails half-way, and nothing else', async () => {
    const folder = path.join(dir, 'shared-out');
    await mkdir(folder, { recursive: true });
    await writeFile(path.join(folder, 'keep.txt'), 'not the job\'s');
    const { call, answer } = openSubmission('early-shared', folder);
    for (const p of photos.slice(0, 3)) upload(call, p);
    const started = await withOutputs((await listed('early-shared')).id);
    expect(started.outputs[0]!.shared_path.startsWith(folder)).toBe(true);
    expect((await readdir(folder)).filter((f) => f.endsWith('.webp')).length).toBeGreaterThan(0);
    upload(call, photos[3]!, sha256(Buffer.from('something else')));
    call.end();
    expect((await answer).err?.code).toBe(grpc.status.DATA_LOSS);
    await gone(started.id);
    await until('the shared folder to hold only what was there before', async () => ((await readdir(folder)).join() === 'keep.txt' || undefined));
  });

  it('gives way to a retry with its request_id: the retry makes the one job, the job the first attempt started is dropped', async () => {
    const first = openSubmission('early-retry', '', 'req-early-retry');
    for (const p of photos.slice(0, 3)) upload(first.call, p);
    const started = await withOutputs((await listed('early-retry')).id);
    // The first attempt's link goes quiet; its client sends the submission again.
    const retry = openSubmission('early-retry', '', 'req-early-retry');
    for (const p of photos.slice(0, 4)) upload(retry.call, p);
    retry.call.end();
    const earlier = await first.answer;
    expect(earlier.err?.code).toBe(grpc.status.ABORTED);
    expect(earlier.err?.details).toContain('req-early-retry');
    const { err, job } = await retry.answer;
    expect(err).toBeNull();
    expect(job!.id).not.toBe(started.id);
    await gone(started.id);
    const done = await cluster.client.wait(job!.id);
    expect(done.state).toBe('JOB_STATE_SUCCEEDED');
    expect(done.outputs).toHaveLength(4);
    expect((await cluster.client.listJobs({ limit: 100 })).filter((j) => j.spec?.request_id === 'req-early-retry').map((j) => j.id)).toEqual([job!.id]);
    // A repeat now finds the job the retry made.
    const again = openSubmission('early-retry', '', 'req-early-retry');
    again.call.end();
    expect((await again.answer).job?.id).toBe(job!.id);
  });

  it('is dropped too when its client goes away in the middle of a photo', async () => {
    const { call, answer } = openSubmission('early-gone');
    for (const p of photos.slice(0, 3)) upload(call, p);
    const started = await withOutputs((await listed('early-gone')).id);
    const next = photos[3]!;
    call.write({ input: { name: next.name, size: String(next.data.length) } });
    call.write({ data: next.data.subarray(0, 100) });
    await until('the partial photo to reach the spool', async () => ((await readdir(path.join(cluster.dataDir, 'spool', 'jobs', started.id, 'in')).catch(() => [] as string[])).length > 3 ? true : undefined));
    call.cancel();
    expect((await answer).err?.code).toBe(grpc.status.CANCELLED);
    await gone(started.id);
    expect((await cluster.client.listJobs({ limit: 100 })).map((j) => j.id)).not.toContain(started.id);
    await until('its spool folder to go', async () => (!(await readdir(path.join(cluster.dataDir, 'spool', 'jobs')).catch(() => [] as string[])).includes(started.id) || undefined));
  });

  it('announcing its count (spec.input_count), is dropped when its client cancels between two photos, however late the reset comes', async () => {
    // A grpc-js client that cancels ends its side of the stream before it resets it: without a
    // count, a reset that came late would leave the photos sent so far as a smaller job.
    const { call, answer } = openSubmission('early-cancelled', '', '', 5);
    for (const p of photos.slice(0, 3)) upload(call, p);
    const started = await withOutputs((await listed('early-cancelled')).id);
    call.cancel();
    expect((await answer).err?.code).toBe(grpc.status.CANCELLED);
    await gone(started.id);
    await until('its spool folder to go', async () => (!(await readdir(path.join(cluster.dataDir, 'spool', 'jobs')).catch(() => [] as string[])).includes(started.id) || undefined));
  });

  it('announcing its count, is refused when it ends short of it (INVALID_ARGUMENT with both numbers), and dropped', async () => {
    const { call, answer } = openSubmission('early-short', '', '', 5);
    for (const p of photos.slice(0, 3)) upload(call, p);
    const started = await withOutputs((await listed('early-short')).id);
    call.end();
    const { err } = await answer;
    expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err?.details).toBe('the submission ended after 3 of the 5 inputs its spec announced (spec.input_count); nothing of it was kept');
    await gone(started.id);
  });

  it('announcing its count, is refused at the first input past it, named', async () => {
    const { call, answer } = openSubmission('early-long', '', '', 2);
    for (const p of photos.slice(0, 3)) upload(call, p);
    call.end();
    const { err } = await answer;
    expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err?.details).toBe(`input ${photos[2]!.name}: the spec announced 2 input(s) (spec.input_count) and this is one more`);
    expect((await cluster.client.listJobs({ limit: 100 })).map((j) => j.spec?.label)).not.toContain('early-long');
  });
});

describe('a passthrough job that is uploaded', () => {
  it('hands back its first file while the upload is open, then the others, then its no-op subtasks at once', async () => {
    const files = [0, 1, 2].map((i) => ({ name: `blob-${i}.bin`, data: Buffer.alloc(100_000 + i, i + 1) }));
    const { call, answer } = holdSubmission(raw, { label: 'early-passthrough', passthrough: { subtasks: 200 }, input_count: files.length });
    upload(call, files[0]!);
    const early = await withOutputs((await listed('early-passthrough')).id);
    expect(early.state).toBe('JOB_STATE_RUNNING');
    expect(early.outputs.map((o) => o.name)).toEqual(['blob-0.bin']);
    for (const f of files.slice(1)) upload(call, f);
    call.end();
    const { err, job } = await answer;
    expect(err).toBeNull();
    expect(job!.id).toBe(early.id);
    const messages: string[] = [];
    const done = await cluster.client.getJob((await cluster.client.wait(job!.id, (e) => messages.push(e.message))).id);
    expect(done.state).toBe('JOB_STATE_SUCCEEDED');
    // The copies in submission order, then the no-op subtasks up to the 200 asked for, added as one.
    expect(done.subtasks.map((s) => s.label)).toEqual([...files.map((f) => `copy ${f.name}`), ...Array.from({ length: 197 }, (_, k) => `no-op ${k + 3}`)]);
    const added = messages.filter((m) => m.endsWith(' subtask(s) so far'));
    expect(added.at(-1)).toBe('phase 0: 200 subtask(s) so far');
    expect(added.at(-2)).toBe('phase 0: 3 subtask(s) so far');
    const out = await cluster.client.download(job!.id, path.join(dir, 'passthrough'));
    expect([...out.keys()].sort()).toEqual(files.map((f) => f.name));
    for (const f of files) expect(sha256(await readFile(out.get(f.name)!))).toBe(sha256(f.data));
  });

  it('cancelled while its upload runs: the upload stops, the client gets the cancelled job, nothing sent after stays, and a restart and a retry keep it so', async () => {
    // A cluster of its own: the coordinator is restarted.
    const own = await startCluster({ workers: 1, slots: 1 });
    const ownRaw = rawJobService(own.address);
    try {
      const files = Array.from({ length: 6 }, (_, i) => ({ name: `c-${i}.bin`, data: Buffer.alloc(200_000 + i, i + 7) }));
      const spec = { label: 'cancel-uploading', passthrough: { work_ms: 20_000 }, request_id: 'req-cancel-uploading', input_count: files.length };
      const { call, answer } = holdSubmission(ownRaw, spec);
      call.on('error', () => undefined);
      for (const f of files.slice(0, 2)) upload(call, f);
      const id = (await until('the job to be listed', async () => (await own.client.listJobs({ limit: 10 })).find((j) => j.spec?.label === 'cancel-uploading'))).id;
      await until('both files to be in', async () => ((await own.client.getJob(id)).inputs.length === 2 ? true : undefined));
      expect((await own.client.cancel(id)).state).toBe('JOB_STATE_CANCELLED');
      // The client goes on sending; the coordinator answers instead of reading it all (it kept
      // every file that came after the cancel in the job's spool folder).
      for (const f of files.slice(2)) upload(call, f);
      const { err, job } = await answer;
      call.end();
      expect(err).toBeNull();
      expect(job).toMatchObject({ id, state: 'JOB_STATE_CANCELLED' });
      expect(job!.inputs.map((i) => i.name)).toEqual(['c-0.bin', 'c-1.bin']);
      // Kept, so counted: submitted, and finished cancelled.
      const counted = await scrape(own);
      expect(get(counted, 'tessera_jobs_submitted_total{kind="passthrough"}')).toBe(1);
      expect(get(counted, 'tessera_jobs_finished_total{kind="passthrough",state="cancelled"}')).toBe(1);
      expect(get(counted, 'tessera_jobs_dropped_total{kind="passthrough"}')).toBe(0);
      const inputs = path.join(own.dataDir, 'spool', 'jobs', id, 'in');
      await until('the inputs to be removed', async () => ((await readdir(inputs).catch(() => [])).length === 0 ? true : undefined));
      // A restart kept it (it dropped it as an upload cut short, and a retry then ran it anew).
      own.coordinator!.child.kill('SIGKILL');
      await own.coordinator!.exited;
      await own.startCoordinator();
      expect((await own.client.getJob(id)).state).toBe('JOB_STATE_CANCELLED');
      const retry = holdSubmission(ownRaw, spec);
      retry.call.end();
      expect((await retry.answer).job).toMatchObject({ id, state: 'JOB_STATE_CANCELLED' });
      expect((await own.client.listJobs({ limit: 10 })).map((j) => j.id)).toEqual([id]);
      expect(await readdir(inputs).catch(() => [])).toEqual([]);
    } finally {
      ownRaw.close();
      await own.stop();
    }
  }, 120_000);
});
