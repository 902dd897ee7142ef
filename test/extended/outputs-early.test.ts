/**
 * Outputs published while their job runs. A kind's final outputs (`finalOutputs`: a batch's
 * resized photos, a passthrough copy) are announced by an `output` event the moment their subtask
 * succeeds and can be downloaded at once; `collect`, `tessera submit` and `tessera download` fetch
 * them as they come. An output not published yet is refused with FAILED_PRECONDITION naming it.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobEvent } from '../../client/client.js';
import { loadTesseraProto } from '../../shared/proto.js';
import type { JobServiceClient } from '../../shared/proto/generated/tessera/v1/JobService.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { expectSameBytes, randomFiles } from '../helpers/bytes.js';

// One cluster (2 workers x 1 slot) for every test: each runs its own job.
let cluster: TestCluster;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-early-'));
  cluster = await startCluster({ workers: 2, slots: 1 });
});

afterAll(async () => {
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function blobs(tag: string, n: number, size = 100_000): Promise<string[]> {
  return randomFiles(dir, tag, n, size);
}

/** DownloadOutput through a plain gRPC stub: the status it ends with. */
function rawDownload(address: string, jobId: string, name: string): Promise<grpc.StatusObject> {
  const { proto } = loadTesseraProto();
  const client = new proto.tessera.v1.JobService(address, grpc.credentials.createInsecure()) as unknown as JobServiceClient;
  return new Promise((resolve) => {
    const call = client.DownloadOutput({ job_id: jobId, name, offset: '0' });
    call.on('data', () => undefined);
    call.on('error', () => undefined);
    call.on('status', (st: grpc.StatusObject) => {
      client.close();
      resolve(st);
    });
  });
}

/** The coordinator's DownloadOutput calls and output bytes sent inside events so far (/metrics). */
async function counters(): Promise<{ downloads: number; inEvents: number }> {
  return { downloads: await cluster.metric('tessera_output_downloads_total'), inEvents: await cluster.metric('tessera_output_bytes_in_events_total') };
}

/** Resolves with the first event `match` accepts. */
async function firstEvent(c: TestCluster, jobId: string, match: (e: JobEvent) => boolean): Promise<JobEvent> {
  for await (const e of c.client.watch(jobId)) if (match(e)) return e;
  throw new Error(`job ${jobId} ended without the event`);
}

describe('outputs published while the job runs', () => {
  it('announces each output as its subtask succeeds; it downloads at once, later ones are refused until published', async () => {
    const files = await blobs('a', 10);
    // Five rounds of 2 x 1.2 s (long enough not to be queued ahead on a worker): when the first
    // copies are published, most have not started.
    const job = await cluster.client.submit({ passthrough: { work_ms: 1200 } }, files);
    const first = await firstEvent(cluster, job.id, (e) => e.type === 'output');
    expect(first.job_state).toBe('JOB_STATE_RUNNING');
    const name = first.output!.name;
    expect(first.output!.source).toBe(name);

    // At once: a copy not started yet is at least 1.2 s from being published, and is refused.
    const pending = (await cluster.client.getJob(job.id)).subtasks.find((s) => s.state === 'SUBTASK_STATE_PENDING');
    expect(pending).toBeDefined();
    const last = pending!.label.replace(/^copy /, '');
    const refused = await rawDownload(cluster.address, job.id, last);
    expect(refused.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(refused.details).toContain(last);
    expect(refused.details).toContain('not published yet');

    const early = await cluster.client.download(job.id, path.join(dir, 'early'), { names: [name] });
    expectSameBytes(await readFile(early.get(name)!), await readFile(path.join(dir, name)));
    // Downloaded while the job still runs, with the checksum the event announced.
    expect((await cluster.client.getJob(job.id)).state).toBe('JOB_STATE_RUNNING');

    const done = await cluster.client.wait(job.id);
    expect(done.state).toBe('JOB_STATE_SUCCEEDED');
    expect(done.outputs.map((o) => o.name).sort()).toEqual(files.map((f) => path.basename(f)).sort());
    // Every output was announced once, before the final event, while the job was running.
    const events: JobEvent[] = [];
    for await (const e of cluster.client.watch(job.id)) events.push(e);
    const outputs = events.filter((e) => e.type === 'output');
    expect(outputs.map((e) => e.output!.name).sort()).toEqual(done.outputs.map((o) => o.name).sort());
    expect(outputs.every((e) => e.job_state === 'JOB_STATE_RUNNING')).toBe(true);
    expect(events.findIndex((e) => e.final)).toBeGreaterThan(events.indexOf(outputs.at(-1)!));
    for (const o of outputs) expect(o.output!.sha256).toBe(done.outputs.find((x) => x.name === o.output!.name)!.sha256);
  });

  it('collect downloads each output as it is published and returns them all, verified', async () => {
    const files = await blobs('b', 6);
    const job = await cluster.client.submit({ passthrough: { work_ms: 400 } }, files);
    const out = path.join(dir, 'out');
    const { job: done, paths } = await cluster.client.collect(job.id, out);
    expect(done.state).toBe('JOB_STATE_SUCCEEDED');
    expect(paths.size).toBe(files.length);
    for (const f of files) expectSameBytes(await readFile(paths.get(path.basename(f))!), await readFile(f));
    // Fetching started before the job ended: the first output was written (its file's last
    // modification) before the coordinator marked the job finished. Three rounds of 2 x 0.4 s: the
    // first copies are published at least 0.8 s before the last ones end. Downloads begun only at
    // the end would all be written after finished_at_ms.
    const written = await Promise.all([...paths.values()].map(async (p) => (await stat(p)).mtimeMs));
    expect(Math.min(...written)).toBeLessThan(Number(done.finished_at_ms));
    expect((await readdir(out)).sort()).toEqual(files.map((f) => path.basename(f)).sort());
  });

  it('WatchJob sends outputs up to inline_outputs_up_to inside their events, up to 3 MiB of them a message', async () => {
    // 44 outputs of ~100 KB (4.2 MiB: more than one message's worth) and one of 1.5 MiB.
    const files = [...(await blobs('i', 44)), ...(await blobs('big', 1, 1_500_000))];
    const job = await cluster.client.submit({ passthrough: {} }, files);
    const done = await cluster.client.wait(job.id);
    expect(done.state).toBe('JOB_STATE_SUCCEEDED');
    const { proto } = loadTesseraProto();
    const client = new proto.tessera.v1.JobService(cluster.address, grpc.credentials.createInsecure()) as unknown as JobServiceClient;
    const watch = async (req: { batch: boolean; inline_outputs_up_to: number }): Promise<JobEvent[]> => {
      const messages: JobEvent[] = [];
      for await (const m of client.WatchJob({ job_id: job.id, after_seq: '0', ...req }) as AsyncIterable<JobEvent>) messages.push(m);
      return messages;
    };
    try {
      const messages = await watch({ batch: true, inline_outputs_up_to: 1_000_000 });
      const outputs = messages.flatMap((m) => (m.type === 'batch' ? m.batch : [m])).filter((e) => e.type === 'output');
      expect(outputs).toHaveLength(files.length);
      for (const e of outputs) {
        const bytes = await readFile(path.join(dir, e.output!.name));
        if (bytes.length > 1_000_000) expect(e.output_data).toHaveLength(0);
        else expect(Buffer.compare(e.output_data, bytes), e.output!.name).toBe(0);
        expect(createHash('sha256').update(bytes).digest('hex')).toBe(e.output!.sha256);
      }
      // Split where a message would carry more than 3 MiB of outputs.
      const carried = messages.map((m) => (m.type === 'batch' ? m.batch : [m]).reduce((n, e) => n + e.output_data.length, 0));
      expect(carried.filter((n) => n > 0).length).toBeGreaterThanOrEqual(2);
      expect(Math.max(...carried)).toBeLessThanOrEqual(3 * 1024 * 1024);
      // Not asked for: none.
      const plain = (await watch({ batch: false, inline_outputs_up_to: 0 })).filter((e) => e.type === 'output');
      expect(plain).toHaveLength(files.length);
      expect(plain.every((e) => e.output_data.length === 0)).toBe(true);
    } finally {
      client.close();
    }
    // collect writes the small ones from their events and downloads only the large one.
    const before = await counters();
    const { paths } = await cluster.client.collect(job.id, path.join(dir, 'inline-out'));
    const after = await counters();
    expect(paths.size).toBe(files.length);
    for (const f of files) expect(Buffer.compare(await readFile(paths.get(path.basename(f))!), await readFile(f))).toBe(0);
    expect(after.downloads - before.downloads).toBe(1);
    const small = (await Promise.all(files.slice(0, -1).map((f) => readFile(f)))).reduce((n, b) => n + b.length, 0);
    expect(after.inEvents - before.inEvents).toBe(small);
  });

  it('tessera download on a running job follows it and writes every output', async () => {
    const files = await blobs('c', 4);
    const job = await cluster.client.submit({ passthrough: { work_ms: 500 } }, files);
    const out = path.join(dir, 'cli-out');
    const r = await cluster.runCli(['download', job.id, '-o', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const printed = JSON.parse(r.stdout) as { state: string; outputs: { name: string; path: string }[] };
    expect(printed.state).toBe('succeeded');
    expect(printed.outputs).toHaveLength(files.length);
    for (const f of files) expectSameBytes(await readFile(path.join(out, path.basename(f))), await readFile(f));
  });

  it('an image batch publishes its photos before the job ends, each with its source input', async () => {
    const photos: string[] = [];
    for (let i = 0; i < 8; i++) {
      const f = path.join(dir, `p${i}.jpg`);
      const noise = { type: 'gaussian', mean: 100, sigma: 40 } as const;
      await sharp({ create: { width: 1600, height: 1200, channels: 3, background: { r: 30 * i, g: 90, b: 200 }, noise } }).jpeg().toFile(f);
      photos.push(f);
    }
    const job = await cluster.client.submit({ image: { width: 200, format: 'webp' } }, photos);
    const events: JobEvent[] = [];
    const { job: done, paths } = await cluster.client.collect(job.id, path.join(dir, 'img'), { onEvent: (e) => events.push(e) });
    expect(done.state, JSON.stringify(done.errors)).toBe('JOB_STATE_SUCCEEDED');
    const announced = events.filter((e) => e.type === 'output').map((e) => e.output!);
    expect(announced.map((o) => o.source).sort()).toEqual(photos.map((p) => path.basename(p)).sort());
    expect(announced.every((o) => o.name.endsWith('.webp') && o.content_type === 'image/webp')).toBe(true);
    // At least four batches on two slots (more when the upload paused): the first photos were announced before the last batch finished.
    expect(done.subtasks.length).toBeGreaterThanOrEqual(4);
    const firstOutput = events.findIndex((e) => e.type === 'output');
    const lastDone = events.findLastIndex((e) => e.type === 'subtask_state' && e.subtask?.state === 'SUBTASK_STATE_SUCCEEDED');
    expect(firstOutput).toBeLessThan(lastDone);
    for (const p of paths.values()) expect((await sharp(p).metadata()).width).toBe(200);
  });
});
