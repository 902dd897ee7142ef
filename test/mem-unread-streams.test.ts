/**
 * A client that opens DownloadOutput or WatchJob calls and does not read them (a paused pipe, a
 * slow reader, a hostile one) costs the coordinator a few MiB each: grpc-js takes 16 messages on a
 * stream before it says "wait", and each stream held 15-35 MiB (1 MiB download chunks, 3 MiB runs
 * of inline outputs): 40 paused downloads took a coordinator to 874 MiB (review MEM). Real
 * coordinator and worker processes; the coordinator's resident memory read from /proc/PID/status.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from './helpers/cluster.js';
import { loadTesseraProto } from '../shared/proto.js';
import type { JobServiceClient } from '../shared/proto/generated/tessera/v1/JobService.js';

const MiB = 1024 * 1024;
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/** Resident memory of a process in MiB. */
const rssMiB = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

/** The highest RSS seen over `ms`, sampled every 100 ms. */
async function peakOver(pid: number, ms: number): Promise<number> {
  let peak = rssMiB(pid);
  for (let t = 0; t < ms; t += 100) {
    await sleep(100);
    peak = Math.max(peak, rssMiB(pid));
  }
  return peak;
}

async function setup(): Promise<{ cluster: TestCluster; dir: string; stub: JobServiceClient }> {
  const cluster = await startCluster({ workers: 1 });
  cleanups.push(() => cluster.stop());
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-mem-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const { proto } = loadTesseraProto();
  const stub = new proto.tessera.v1.JobService(cluster.address, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 16 * MiB }) as unknown as JobServiceClient;
  cleanups.push(async () => stub.close());
  return { cluster, dir, stub };
}

describe('streams a client does not read hold little coordinator memory', () => {
  it('8 paused DownloadOutput calls of a 64 MiB output: the coordinator grows by well under 64 MiB', async () => {
    const { cluster, dir, stub } = await setup();
    const input = path.join(dir, 'big.bin');
    await writeFile(input, randomBytes(64 * MiB));
    const job = await cluster.client.submit({ passthrough: {} }, [input]);
    await cluster.client.wait(job.id);
    const pid = cluster.coordinator!.child.pid!;
    await sleep(1000);
    const before = rssMiB(pid);

    const calls = Array.from({ length: 8 }, () => {
      const call = stub.DownloadOutput({ job_id: job.id, name: 'big.bin', offset: 0 });
      call.on('error', () => undefined);
      call.pause(); // a reader that never reads (or reads at 1 MB/s: the same at any moment)
      return call;
    });
    cleanups.push(async () => calls.forEach((c) => c.cancel()));
    const peak = await peakOver(pid, 3000);
    const grown = peak - before;
    // At most two 1 MiB chunks on their way per stream: 8 MiB each is generous (it was about 27).
    expect(grown, `coordinator RSS ${before.toFixed(0)} -> ${peak.toFixed(0)} MiB with 8 unread downloads`).toBeLessThan(64);
  });

  it('8 paused WatchJob calls with inline outputs (64 outputs of 512 KiB): the coordinator grows by well under the 256 MiB they would send', async () => {
    const { cluster, dir, stub } = await setup();
    const files: string[] = [];
    for (let i = 0; i < 64; i++) {
      const f = path.join(dir, `f${i}.bin`);
      await writeFile(f, randomBytes(512 * 1024));
      files.push(f);
    }
    const job = await cluster.client.submit({ passthrough: {} }, files);
    await cluster.client.wait(job.id);
    const pid = cluster.coordinator!.child.pid!;
    await sleep(1000);
    const before = rssMiB(pid);

    const calls = Array.from({ length: 8 }, () => {
      const call = stub.WatchJob({ job_id: job.id, after_seq: 0, batch: true, inline_outputs_up_to: MiB });
      call.on('error', () => undefined);
      call.pause(); // a watcher that never reads its stream
      return call;
    });
    cleanups.push(async () => calls.forEach((c) => c.cancel()));
    const peak = await peakOver(pid, 3000);
    const grown = peak - before;
    // Two messages of at most 1 MiB of outputs on their way, and what is read for the next: about
    // 9 MiB each measured (35 before: 16 messages of 3 MiB queued in grpc-js).
    expect(grown, `coordinator RSS ${before.toFixed(0)} -> ${peak.toFixed(0)} MiB with 8 unread watchers`).toBeLessThan(96);
  });
});
