/**
 * A coordinator shutting down ends every WatchJob stream with UNAVAILABLE, and a watch resumed
 * from its last seq on the restarted coordinator goes on to the final event, none lost or twice.
 * It ended them OK, with no final event: any language's `for event in stub.WatchJob(...)` loop
 * read that as the job's end during every coordinator restart, and the project's own Python
 * example then downloaded the outputs of a job still running (review polyglot).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TesseraClient } from '../../client/index.js';
import type { JobEvent__Output } from '../../shared/proto/generated/tessera/v1/JobEvent.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { rawJobService } from '../helpers/raw-grpc.js';

let dir: string;
let cluster: TestCluster;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-watch-stop-'));
  cluster = await startCluster({ workers: 1, slots: 1 });
});
afterAll(async () => {
  await cluster?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** Reads a raw WatchJob stream to its end: the events and the status it ended with. */
function watch(address: string, jobId: string, afterSeq: number, types: string[] = []): Promise<{ events: JobEvent__Output[]; code: number; details: string }> {
  const client = rawJobService(address);
  return new Promise((resolve) => {
    const events: JobEvent__Output[] = [];
    const call = client.WatchJob({ job_id: jobId, after_seq: String(afterSeq), types });
    call.on('data', (e: JobEvent__Output) => events.push(e));
    call.on('error', () => undefined);
    call.on('status', (s: grpc.StatusObject) => {
      client.close();
      resolve({ events, code: s.code, details: s.details });
    });
  });
}

describe('WatchJob across a coordinator restart', () => {
  it('ends UNAVAILABLE when the coordinator stops, and resumes from after_seq to the final event', async () => {
    const file = path.join(dir, 'in.bin');
    await writeFile(file, Buffer.alloc(1024, 7));
    const client = new TesseraClient({ address: cluster.address });
    let jobId: string;
    try {
      jobId = (await client.submit({ label: 'watched', passthrough: { subtasks: 6, work_ms: 1500 } }, [file])).id;
    } finally {
      client.close();
    }
    const plain = watch(cluster.address, jobId, 0);
    const states = watch(cluster.address, jobId, 0, ['job_state']);
    await new Promise((r) => setTimeout(r, 1500));
    cluster.coordinator!.child.kill('SIGTERM');
    for (const [what, w] of [['plain', await plain], ['job_state only', await states]] as const) {
      expect(w.code, `${what}: ${w.details}`).toBe(grpc.status.UNAVAILABLE);
      expect(w.details, what).toMatch(new RegExp(`^the coordinator is shutting down: watch job ${jobId} again with after_seq \\d+`));
      expect(w.events.some((e) => e.final), what).toBe(false);
    }
    const before = (await plain).events;
    await cluster.startCoordinator();
    const last = Number(before.at(-1)!.seq);
    const rest = await watch(cluster.address, jobId, last);
    expect(rest.code, rest.details).toBe(grpc.status.OK);
    expect(rest.events.at(-1)?.final).toBe(true);
    const seqs = [...before, ...rest.events].map((e) => Number(e.seq));
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
  }, 120_000);
});
