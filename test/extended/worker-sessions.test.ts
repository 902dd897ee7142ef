/**
 * Worker sessions as the coordinator keeps them.
 *
 * A worker that stops gracefully sends its last results, then a drain, then ends its stream. The
 * coordinator handles each result asynchronously (an inline output is written to the spool first):
 * what came after the results must wait for them, or the finished work is thrown away as "stale"
 * and run again as a failed attempt. Real coordinator and worker objects over real gRPC on loopback.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { TesseraClient } from '../../client/client.js';
import { Coordinator } from '../../coordinator/coordinator.js';
import { createLogger } from '../../shared/logger.js';
import { loadTesseraProto } from '../../shared/proto.js';
import type { CoordinatorMessage__Output } from '../../shared/proto/generated/tessera/v1/CoordinatorMessage.js';
import type { WorkerMessage } from '../../shared/proto/generated/tessera/v1/WorkerMessage.js';
import { Worker } from '../../worker/worker.js';
import { byHandWorker } from '../helpers/raw-grpc.js';

const log = createLogger('test', 'silent', 'json');
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

describe('a worker draining', () => {
  it('has the results it sent before its stream ended counted, not re-run', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-drain-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const coordinator = new Coordinator({ listen: '127.0.0.1:0', dataDir: path.join(dir, 'data'), log, http: '' });
    const address = await coordinator.start();
    cleanups.push(() => coordinator.close());
    const worker = new Worker({ coordinator: address, slots: 1, log, memoryLimitMb: 0, name: 'w1' });
    worker.start();
    await worker.registered;
    const client = new TesseraClient({ address });
    cleanups.push(async () => client.close());
    const files: string[] = [];
    for (const name of ['a.bin', 'b.bin']) {
      files.push(path.join(dir, name));
      await writeFile(files.at(-1)!, Buffer.alloc(1000, name));
    }
    const job = await client.submit({ passthrough: { work_ms: 400 } }, files);
    const events: string[] = [];
    let leasedToW1 = false;
    const watching = client.wait(job.id, (e) => {
      events.push(`${e.type} ${e.message}`);
      if (e.type === 'subtask_state' && e.subtask?.state === 'SUBTASK_STATE_RUNNING' && e.subtask.worker === 'w1') leasedToW1 = true;
    });
    // The first subtask is running on w1 (the second waits in its prefetch queue): drain now. The
    // coordinator's event says it leased it; the worker's own list of what it runs says the
    // assignment has reached it (a drain before that would leave it nothing to finish).
    const runningOnW1 = (worker as unknown as { running: Map<string, unknown> }).running;
    await expect.poll(() => leasedToW1 && runningOnW1.size > 0, { timeout: 30_000, interval: 5 }).toBe(true);
    await worker.drain(10_000);
    // The only worker is gone: what it finished must have counted. Another one runs the rest.
    const second = new Worker({ coordinator: address, slots: 1, log, memoryLimitMb: 0, name: 'w2' });
    second.start();
    cleanups.push(() => second.close());
    const done = await watching;
    expect(done.state, done.message).toBe('JOB_STATE_SUCCEEDED');
    const first = done.subtasks.find((s) => s.worker === 'w1');
    expect(first, events.join('\n')).toBeDefined();
    expect(first!.attempt).toBe(1);
    expect(events.filter((e) => e.includes('lost'))).toEqual([]);
  });
});

/** A worker written by hand on a real Connect stream: `answer` decides what each assignment gets. */
function handWorker(address: string, name: string, kinds: string[], answer: (a: { subtask_id: string; attempt: number }, n: number) => WorkerMessage | undefined) {
  const { proto } = loadTesseraProto();
  const client = new proto.tessera.v1.WorkerService(address, grpc.credentials.createInsecure()) as unknown as grpc.Client & { Connect(md: grpc.Metadata): grpc.ClientDuplexStream<WorkerMessage, CoordinatorMessage__Output> };
  const call = client.Connect(new grpc.Metadata());
  const assignedAt: number[] = [];
  let heartbeat: NodeJS.Timeout | undefined;
  call.on('data', (m: CoordinatorMessage__Output) => {
    if (m.registered) heartbeat = setInterval(() => call.write({ heartbeat: { load: 0 } }), 300);
    for (const a of m.assign ? [m.assign] : (m.assign_batch?.assignments ?? [])) {
      assignedAt.push(Date.now());
      const reply = answer(a, assignedAt.length);
      if (reply) call.write(reply);
    }
  });
  call.on('error', () => undefined);
  call.write({ register: { name, slots: 1, instance_id: name, capabilities: { kinds, encoders: [], cpu_count: 1, labels: {} } } });
  return {
    assignedAt,
    close(): void {
      clearInterval(heartbeat);
      call.cancel();
      client.close();
    },
  };
}

describe('a worker back on a new stream before its old session is found lost', () => {
  it('has its old session released at once (its work given out again) and given nothing more', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-again-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    // A TTL far beyond the test: only the registration can tell that the old session is dead.
    const coordinator = new Coordinator({ listen: '127.0.0.1:0', dataDir: path.join(dir, 'data'), log, http: '', ttlMs: 120_000 });
    const address = await coordinator.start();
    cleanups.push(() => coordinator.close());
    const client = new TesseraClient({ address });
    cleanups.push(async () => client.close());
    const as = { name: 'w', instanceId: 'w-process-1', slots: 2 };
    const before = byHandWorker(address, undefined, as);
    cleanups.push(async () => before.stop());
    await expect.poll(async () => (await client.listWorkers()).length, { timeout: 10_000, interval: 20 }).toBe(1);
    const job = await client.submit({ max_attempts: 3, passthrough: { subtasks: 2, work_ms: 60_000 } }, []);
    await expect.poll(() => before.seen.length, { timeout: 10_000, interval: 20 }).toBe(2);
    // Its stream broke on its side (the coordinator has not noticed): the same process registers again.
    const after = byHandWorker(address, undefined, as);
    cleanups.push(async () => after.stop());
    // Both subtasks go to the new session, as second attempts; the old stream is ended.
    await expect.poll(() => after.seen.map((a) => a.attempt), { timeout: 10_000, interval: 20 }).toEqual([2, 2]);
    await before.ended;
    const workers = await client.listWorkers();
    expect(workers.map((w) => w.state).sort()).toEqual(['active', 'lost']);
    expect(before.seen.map((a) => a.job_id)).toEqual([job.id, job.id]);
  });
});

describe('a quarantined worker', () => {
  const QUARANTINE_MS = 1000;
  it('gets work again as soon as its quarantine is over, with nothing else happening', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-quarantine-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const coordinator = new Coordinator({ listen: '127.0.0.1:0', dataDir: path.join(dir, 'data'), log, http: '', quarantineFailures: 2, quarantineMs: QUARANTINE_MS, retryBaseMs: 10 });
    const address = await coordinator.start();
    cleanups.push(() => coordinator.close());
    // B holds the one subtask it gets and never answers; A fails its first two, then succeeds.
    const b = handWorker(address, 'b', ['passthrough'], () => undefined);
    cleanups.push(async () => b.close());
    const a = handWorker(address, 'a', ['passthrough'], (x, n) =>
      n <= 2
        ? { result: { subtask_id: x.subtask_id, attempt: x.attempt, ok: false, retryable: true, error_code: 'UNAVAILABLE', error_message: 'flaky' } }
        : { result: { subtask_id: x.subtask_id, attempt: x.attempt, ok: true } },
    );
    cleanups.push(async () => a.close());
    const client = new TesseraClient({ address });
    cleanups.push(async () => client.close());
    while ((await client.listWorkers()).length < 2) await sleep(20);
    await client.submit({ max_attempts: 10, passthrough: { subtasks: 3 } }, []);
    await expect.poll(() => a.assignedAt.length, { timeout: 30_000, interval: 10 }).toBeGreaterThanOrEqual(2);
    // Its second failure (answered as soon as it was assigned) quarantined it (B, which can run the
    // kind too, is active): seen as such until its quarantine ends and it gets work again.
    const quarantinedAt = a.assignedAt[1]!;
    let seenQuarantined = false;
    for (const t0 = Date.now(); !seenQuarantined && a.assignedAt.length < 3 && Date.now() - t0 < 30_000; ) {
      seenQuarantined = (await client.listWorkers()).find((w) => w.name === 'a')?.state === 'quarantined';
      if (!seenQuarantined) await sleep(10);
    }
    expect(seenQuarantined).toBe(true);
    // Work is pending and B is busy for good: A's next assignment comes when its quarantine ends
    // (nothing else would ever give it one: the test would time out).
    await expect.poll(() => a.assignedAt.length, { timeout: 30_000, interval: 10 }).toBeGreaterThanOrEqual(3);
    expect(a.assignedAt[2]! - quarantinedAt).toBeGreaterThanOrEqual(QUARANTINE_MS - 100);
    expect(a.assignedAt[2]! - quarantinedAt).toBeLessThan(QUARANTINE_MS + 10_000);
  });

  it('is never the last worker that can run the kind', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-quarantine-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const coordinator = new Coordinator({ listen: '127.0.0.1:0', dataDir: path.join(dir, 'data'), log, http: '', quarantineFailures: 2, retryBaseMs: 10 });
    const address = await coordinator.start();
    cleanups.push(() => coordinator.close());
    // B is active but runs only images; A fails every passthrough subtask it gets.
    const b = handWorker(address, 'b', ['image'], () => undefined);
    cleanups.push(async () => b.close());
    const a = handWorker(address, 'a', ['passthrough'], (x) => ({ result: { subtask_id: x.subtask_id, attempt: x.attempt, ok: false, retryable: true, error_code: 'UNAVAILABLE', error_message: 'flaky' } }));
    cleanups.push(async () => a.close());
    const client = new TesseraClient({ address });
    cleanups.push(async () => client.close());
    while ((await client.listWorkers()).length < 2) await sleep(20);
    const job = await client.submit({ max_attempts: 4, passthrough: { subtasks: 1 } }, []);
    // Every attempt goes to A, which is not taken out: the job ends (failed) instead of waiting forever.
    const done = await client.wait(job.id);
    expect(done.state).toBe('JOB_STATE_FAILED');
    expect(a.assignedAt.length).toBe(4);
    expect((await client.listWorkers()).find((w) => w.name === 'a')?.state).toBe('active');
  });
});

describe('worker names', () => {
  it('two workers connected under one name: the coordinator warns, naming both addresses', async () => {
    const { LocalCluster } = await import('../../client/local-cluster.js');
    const lines: string[] = [];
    const cluster = await new LocalCluster({ workers: 0, logLevel: 'warn', onLog: (who, line) => who === 'coordinator' && lines.push(line) }).start();
    cleanups.push(() => cluster.stop());
    cluster.startWorker('twin');
    cluster.startWorker('twin');
    await cluster.waitForWorkers(2);
    for (let i = 0; i < 100 && !lines.some((l) => l.includes('share this name')); i++) await sleep(50);
    const warning = lines.map((l) => JSON.parse(l) as { msg: string; worker?: string }).find((l) => l.msg.includes('two connected workers share this name'));
    expect(warning).toMatchObject({ worker: 'twin', address: expect.any(String), other: expect.any(String) });
  });

  it('a registration past its bounds (a name of megabytes, a line break in it) is INVALID_ARGUMENT, and ListWorkers keeps answering', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-register-bounds-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const coordinator = new Coordinator({ listen: '127.0.0.1:0', dataDir: path.join(dir, 'data'), log, http: '' });
    const address = await coordinator.start();
    cleanups.push(() => coordinator.close());
    const { proto } = loadTesseraProto();
    const caps = { kinds: ['passthrough'], encoders: [], cpu_count: 1, ffmpeg_version: '', sharp_version: '', libvips_version: '', labels: {}, memory_bytes: '0', features: [] };
    /** What a raw Connect that registers as `name` is answered first: a message, or the stream's error. */
    const registerAs = async (name: string, instanceId: string, labels: Record<string, string> = {}): Promise<{ msg?: string; code?: number; details?: string }> => {
      const stub = new proto.tessera.v1.WorkerService(address, grpc.credentials.createInsecure());
      const call = stub.Connect(new grpc.Metadata());
      const answer = await new Promise<{ msg?: string; code?: number; details?: string }>((resolve) => {
        call.on('data', (m: CoordinatorMessage__Output) => resolve({ msg: m.msg }));
        call.on('error', (e: grpc.ServiceError) => resolve({ code: e.code, details: e.details }));
        call.write({ register: { name, slots: 1, capabilities: { ...caps, labels }, instance_id: instanceId } });
      });
      call.end();
      call.cancel();
      stub.close();
      return answer;
    };
    // Before: two names of 9 MB put ListWorkers' answer past the 16 MiB message limit, for every
    // client, for the 10 minutes lost sessions are listed; a few hundred ran the heap out.
    expect(await registerAs(`huge-a-${'N'.repeat(9_000_000)}`, 'huge-a')).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: 'register: the worker name is longer than 256 bytes' });
    expect(await registerAs(`huge-b-${'N'.repeat(9_000_000)}`, 'huge-b')).toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    expect(await registerAs('line\nbreak', 'nl')).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: 'register: the worker name "line\\nbreak" contains control characters' });
    expect(await registerAs('w', 'lbl', { zone: 'z'.repeat(300) })).toEqual({ code: grpc.status.INVALID_ARGUMENT, details: 'register: label zone is longer than 256 bytes' });
    expect(await registerAs('ordinary-worker', 'ok')).toEqual({ msg: 'registered' });
    const client = new TesseraClient({ address });
    cleanups.push(async () => client.close());
    expect((await client.listWorkers()).map((w) => w.name)).toEqual(['ordinary-worker']);
  });
});
