/**
 * A client that opens DownloadOutput or WatchJob calls and does not read them (a paused pipe, a
 * slow reader, a hostile one) costs the coordinator a few MiB each: grpc-js takes 16 messages on a
 * stream before it says "wait", and each stream held 15-35 MiB (1 MiB download chunks, 3 MiB runs
 * of inline outputs): 40 paused downloads took a coordinator to 874 MiB (review MEM). Two messages
 * on their way per stream still made 2 MiB each, 2 GiB for the 1000 calls one client may open: all
 * streams together now hold at most --stream-buffer-bytes, and past it send small messages. Real
 * coordinator and worker processes; the coordinator's resident memory read from /proc/PID/status,
 * and what it read from its files from /proc/PID/io.
 *
 * The reader that never reads is a plain HTTP/2 client that sends its request and then reads
 * nothing, so that its flow-control window is never opened again. A grpc-js call never read from
 * is not one: grpc-js stops taking messages off the connection only after the first it hands on,
 * so it keeps the whole answer in the client's memory (this test with such calls had all 512 MiB
 * sent, and measured nothing of the coordinator). A grpc-js call read slowly holds 16 messages.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { loadTesseraProto } from '../../shared/proto.js';

const MiB = 1024 * 1024;
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/** Resident memory of a process in MiB. */
const rssMiB = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

/** What a process has read with read(2) and the like, its files among it, in MiB (/proc/PID/io). */
const readMiB = (pid: number): number => Number(/rchar:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))![1]) / MiB;

/**
 * Calls JobService `method` with `request` over a connection of its own and never reads the
 * answer: the HTTP/2 stream is paused at once, and its 64 KiB window (the connection's the same)
 * is never opened again. Returns a function that ends the connection.
 */
function unreadCall(address: string, method: 'DownloadOutput' | 'WatchJob', request: object): () => void {
  const { packageDefinition } = loadTesseraProto();
  const def = packageDefinition['tessera.v1.JobService'] as unknown as Record<string, { path: string; requestSerialize: (r: object) => Buffer }>;
  const m = def[method]!;
  const session = http2.connect(`http://${address}`, { settings: { initialWindowSize: 65_535 } });
  session.on('error', () => undefined);
  const stream = session.request({ ':method': 'POST', ':path': m.path, 'content-type': 'application/grpc', te: 'trailers' });
  stream.on('error', () => undefined);
  stream.pause();
  const message = m.requestSerialize(request);
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  stream.end(frame);
  return () => session.destroy();
}

/** The highest RSS seen over `ms`, sampled every 100 ms. */
async function peakOver(pid: number, ms: number): Promise<number> {
  let peak = rssMiB(pid);
  for (let t = 0; t < ms; t += 100) {
    await sleep(100);
    peak = Math.max(peak, rssMiB(pid));
  }
  return peak;
}

async function setup(coordinatorArgs: string[] = []): Promise<{ cluster: TestCluster; dir: string }> {
  const cluster = await startCluster({ workers: 1, coordinatorArgs });
  cleanups.push(() => cluster.stop());
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-mem-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return { cluster, dir };
}

/** A passthrough job of one random file of `mib` MiB, `big.bin`, done. */
async function bigJob(cluster: TestCluster, dir: string, mib: number): Promise<{ job: { id: string }; bytes: Buffer }> {
  const input = path.join(dir, 'big.bin');
  const bytes = randomBytes(mib * MiB);
  await writeFile(input, bytes);
  const job = await cluster.client.submit({ passthrough: {} }, [input]);
  await cluster.client.wait(job.id);
  return { job, bytes };
}

/**
 * `streams` calls of `method` with `request` that are never read (opened `apartMs` apart), then
 * `ms` more: how much the
 * coordinator's RSS grew at its peak, and what it read meanwhile, in MiB.
 */
async function heldByUnread(cluster: TestCluster, method: 'DownloadOutput' | 'WatchJob', request: object, streams: number, ms: number, apartMs = 0): Promise<{ grown: number; read: number; said: string }> {
  const pid = cluster.coordinator!.child.pid!;
  await sleep(1000);
  const before = rssMiB(pid);
  const readBefore = readMiB(pid);
  const ends: (() => void)[] = [];
  cleanups.push(async () => ends.forEach((end) => end()));
  for (let i = 0; i < streams; i++) {
    ends.push(unreadCall(cluster.address, method, request));
    if (apartMs > 0) await sleep(apartMs);
  }
  const peak = await peakOver(pid, ms);
  const read = readMiB(pid) - readBefore;
  return { grown: peak - before, read, said: `coordinator RSS ${before.toFixed(0)} -> ${peak.toFixed(0)} MiB, ${read.toFixed(0)} MiB read, with ${streams} unread ${method} calls` };
}

describe('streams a client does not read hold little coordinator memory', () => {
  it('8 paused DownloadOutput calls of a 64 MiB output: the coordinator grows by well under 64 MiB', async () => {
    const { cluster, dir } = await setup();
    const { job } = await bigJob(cluster, dir, 64);
    // Readers that never read (or read at 1 MB/s: the same at any moment).
    const { grown, read, said } = await heldByUnread(cluster, 'DownloadOutput', { job_id: job.id, name: 'big.bin', offset: 0 }, 8, 3000);
    // At most two 1 MiB chunks on their way per stream, and one being read: 32 MiB read in all is
    // generous (all of it would be 512).
    expect(read, said).toBeLessThan(32);
    // What was read, and garbage not yet collected: it was about 27 MiB.
    expect(grown, said).toBeLessThan(64);
  });

  it('8 paused WatchJob calls with inline outputs (64 outputs of 512 KiB): the coordinator grows by well under the 256 MiB they would send', async () => {
    const { cluster, dir } = await setup();
    const files: string[] = [];
    for (let i = 0; i < 64; i++) {
      const f = path.join(dir, `f${i}.bin`);
      await writeFile(f, randomBytes(512 * 1024));
      files.push(f);
    }
    const job = await cluster.client.submit({ passthrough: {} }, files);
    await cluster.client.wait(job.id);
    // Watchers that never read their streams.
    const { grown, read, said } = await heldByUnread(cluster, 'WatchJob', { job_id: job.id, after_seq: 0, batch: true, inline_outputs_up_to: MiB }, 8, 3000);
    // Two messages of at most 1 MiB of outputs on their way, and what is read for the next: 4 MiB
    // each is generous (all of them would be 256 MiB).
    expect(read, said).toBeLessThan(32);
    expect(grown, said).toBeLessThan(96);
  });

  it('200 paused DownloadOutput calls from one client: the coordinator holds about --stream-buffer-bytes for them in all, and a download beside them completes whole', async () => {
    // Two messages of 1 MiB each per stream were 400 MiB; with the budget, streams past it send
    // 64 KiB messages: 16 MiB plus 200 x 128 KiB.
    const { cluster, dir } = await setup(['--stream-buffer-bytes', String(16 * MiB)]);
    const { job, bytes } = await bigJob(cluster, dir, 24);
    const { grown, read, said } = await heldByUnread(cluster, 'DownloadOutput', { job_id: job.id, name: 'big.bin', offset: 0 }, 200, 4000);
    // 16 MiB + 200 x 128 KiB = 41 MiB read at most (400 MiB without the budget).
    expect(read, said).toBeLessThan(48);
    expect(grown, said).toBeLessThan(96);

    // A reader beside them still gets the whole output, in small messages.
    const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
    const got = await cluster.client.download(job.id, path.join(dir, 'out'), { names: ['big.bin'] });
    expect(sha(await readFile(got.get('big.bin')!))).toBe(sha(bytes));

    // A watcher asking for small outputs inside their events gets the events without the bytes
    // (the budget is held by the unread streams), and downloads them whole.
    const small = await Promise.all([1, 2, 3].map(async (i) => {
      const f = path.join(dir, `small${i}.bin`);
      await writeFile(f, randomBytes(100_000));
      return f;
    }));
    const job2 = await cluster.client.submit({ passthrough: {} }, small);
    const outputs: { name: string; inline: number }[] = [];
    for await (const e of cluster.client.watch(job2.id, { inlineOutputsUpTo: MiB })) {
      for (const ev of e.type === 'batch' ? e.batch : [e]) if (ev.type === 'output') outputs.push({ name: ev.output!.name, inline: ev.output_data?.length ?? 0 });
      if (e.final) break;
    }
    expect(outputs.map((o) => o.name).sort()).toEqual(['small1.bin', 'small2.bin', 'small3.bin']);
    expect(outputs.every((o) => o.inline === 0), JSON.stringify(outputs)).toBe(true);
    const got2 = await cluster.client.download(job2.id, path.join(dir, 'out2'));
    for (const f of small) expect(sha(await readFile(got2.get(path.basename(f))!))).toBe(sha(await readFile(f)));
  });

  it('200 paused calls of an output of one message (1 MB), opened apart: each keeps its share of --stream-buffer-bytes until that message is written out', async () => {
    // The stream's source ends as it is asked for a second message, with the first still on its
    // way: given back then, every call after the first 16 took 1 MB the budget did not count
    // (191 MiB read; watchers with the output inside their events the same).
    const { cluster, dir } = await setup(['--stream-buffer-bytes', String(16 * MiB)]);
    const input = path.join(dir, 'one.bin');
    await writeFile(input, randomBytes(1_000_000));
    const job = await cluster.client.submit({ passthrough: {} }, [input]);
    await cluster.client.wait(job.id);
    const downloads = await heldByUnread(cluster, 'DownloadOutput', { job_id: job.id, name: 'one.bin', offset: 0 }, 200, 1000, 10);
    expect(downloads.read, downloads.said).toBeLessThan(48);
    const watchers = await heldByUnread(cluster, 'WatchJob', { job_id: job.id, after_seq: 0, batch: true, inline_outputs_up_to: MiB }, 200, 1000, 10);
    // The budget is held by the downloads: no watcher reads the output for its events.
    expect(watchers.read, watchers.said).toBeLessThan(8);
  });
});
