/**
 * A client that waits on many jobs (a pipeline of small jobs, several in flight) must not lose its
 * connection. `watch` cancels its WatchJob call once it has read the final event, before the
 * stream's own end: each wait sends the coordinator an RST_STREAM. Past about 1,000 of them plus
 * 33 a second, the coordinator's HTTP/2 layer (nghttp2's rapid-reset guard, CVE-2023-44487) closes
 * the whole connection with INTERNAL_ERROR, and every call in flight on it fails as INTERNAL
 * ("Received RST_STREAM with code 2 triggered by internal client error: Session closed with error
 * code 2") — submissions too, which the client does not retry.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTesseraProto } from '../../shared/proto.js';
import type { JobEvent__Output } from '../../shared/proto/generated/tessera/v1/JobEvent.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

let cluster: TestCluster;

beforeAll(async () => {
  cluster = await startCluster({ workers: 1, slots: 1 });
});

afterAll(async () => {
  await cluster?.stop();
});

/** Runs `n` calls of `fn`, `width` at a time; returns the errors (by message, with their count). */
async function many(n: number, width: number, fn: () => Promise<unknown>): Promise<Map<string, number>> {
  const errors = new Map<string, number>();
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) {
        next++;
        await fn().catch((err: Error) => errors.set(err.message, (errors.get(err.message) ?? 0) + 1));
      }
    }),
  );
  return errors;
}

describe('many waits on one client', () => {
  it('2,000 waits on finished jobs, 16 at a time, all succeed and the connection stays up', async () => {
    const job = await cluster.client.submit({ label: 'w', passthrough: { subtasks: 1 } }, []);
    expect((await cluster.client.wait(job.id)).state).toBe('JOB_STATE_SUCCEEDED');
    const started = Date.now();
    const errors = await many(2_000, 16, () => cluster.client.wait(job.id));
    expect([...errors], `after ${Date.now() - started} ms`).toEqual([]);
  });

  it('the same WatchJob calls read to their end (as the coordinator ends them) keep the connection up: it is the cancel after the final event', async () => {
    const job = await cluster.client.submit({ label: 'w2', passthrough: { subtasks: 1 } }, []);
    await cluster.client.wait(job.id);
    const { proto } = loadTesseraProto();
    const stub = new proto.tessera.v1.JobService(cluster.address, grpc.credentials.createInsecure());
    try {
      const toEnd = async (): Promise<void> => {
        for await (const m of stub.WatchJob({ job_id: job.id, after_seq: '0', batch: true, types: ['job_state'] }) as AsyncIterable<JobEvent__Output>) void m;
      };
      expect([...(await many(2_000, 16, toEnd))]).toEqual([]);
    } finally {
      stub.close();
    }
  });
});
