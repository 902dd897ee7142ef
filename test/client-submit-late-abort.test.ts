/**
 * `submit` once its upload is sent, while the coordinator has not answered yet (it is still
 * storing the last input, checking shared files, on a slow link): the README says aborting the
 * signal rejects with `signal.reason` and `close()` ends every call still running with CANCELLED.
 * A JobService of the test's own reads the whole submission and holds its answer, so that the
 * window is there every time.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TesseraClient } from '../client/index.js';
import { loadTesseraProto } from '../shared/proto.js';

/** How long the coordinator of the test holds its answer once the upload is in. */
const HOLD_MS = 3000;
let holdMs = HOLD_MS;
/** The jobs CancelJob was called for. */
const cancelled: string[] = [];

let server: grpc.Server;
let address = '';
let dir = '';
/** Called when a submission's last message is in (the client has sent everything). */
let uploaded: () => void = () => undefined;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-late-abort-'));
  const { proto } = loadTesseraProto();
  server = new grpc.Server();
  server.addService(proto.tessera.v1.JobService.service, {
    SubmitJob: (call: grpc.ServerReadableStream<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      call.on('data', () => undefined);
      call.on('end', () => {
        uploaded();
        const timer = setTimeout(() => cb(null, { id: 'job-1', state: 'JOB_STATE_RUNNING' }), holdMs);
        call.on('cancelled', () => clearTimeout(timer));
      });
    },
    CancelJob: (call: grpc.ServerUnaryCall<{ job_id: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      cancelled.push(call.request.job_id);
      cb(null, { id: call.request.job_id, state: 'JOB_STATE_CANCELLED' });
    },
  } as never);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  address = `127.0.0.1:${port}`;
});

afterAll(async () => {
  server?.forceShutdown();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const settle = (p: Promise<unknown>): Promise<{ job?: unknown; err?: unknown; ms: number }> => {
  const started = Date.now();
  return p.then((job) => ({ job, ms: Date.now() - started }), (err: unknown) => ({ err, ms: Date.now() - started }));
};

describe('submit, between the end of its upload and the answer', () => {
  it('an aborted signal rejects at once with its reason (not the job the coordinator answers later)', async () => {
    const client = new TesseraClient({ address });
    try {
      const file = path.join(dir, 'a.bin');
      await writeFile(file, 'hello');
      const ac = new AbortController();
      const reason = new Error('stop waiting for the answer');
      uploaded = () => setTimeout(() => ac.abort(reason), 100);
      const r = await settle(client.submit({ passthrough: {} }, [file], { signal: ac.signal }));
      // Before: resolved with the job 3 s later, the signal long aborted.
      expect(r.job).toBeUndefined();
      expect(r.err).toBe(reason);
      expect(r.ms).toBeLessThan(HOLD_MS);
    } finally {
      client.close();
    }
  });

  it('a job the coordinator made meanwhile is cancelled once its answer comes, not left running unseen', async () => {
    const client = new TesseraClient({ address });
    try {
      holdMs = 500;
      const file = path.join(dir, 'c.bin');
      await writeFile(file, 'hello');
      const ac = new AbortController();
      uploaded = () => setTimeout(() => ac.abort(), 100);
      const r = await settle(client.submit({ passthrough: {} }, [file], { signal: ac.signal }));
      expect((r.err as Error).name).toBe('AbortError');
      expect(r.ms).toBeLessThan(500);
      // Before: the call was cut at the abort; a job the coordinator had made by then ran on, and
      // the caller, given a bare AbortError, could not know of it (review L).
      await expect.poll(() => cancelled, { timeout: 5000 }).toEqual(['job-1']);
    } finally {
      holdMs = HOLD_MS;
      client.close();
    }
  });

  it('close() ends it at once with CANCELLED ("the client was closed")', async () => {
    const client = new TesseraClient({ address });
    const file = path.join(dir, 'b.bin');
    await writeFile(file, 'hello');
    uploaded = () => setTimeout(() => client.close(), 100);
    const r = await settle(client.submit({ passthrough: {} }, [file]));
    // Before: resolved with the job 3 s later, after close().
    expect(r.job).toBeUndefined();
    expect((r.err as grpc.ServiceError).code).toBe(grpc.status.CANCELLED);
    expect((r.err as Error).message).toContain('the client was closed');
    expect(r.ms).toBeLessThan(HOLD_MS);
  });
});
