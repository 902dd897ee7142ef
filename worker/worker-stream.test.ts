/**
 * The worker's control stream, seen from the coordinator's end: a real Worker in this process
 * against a bare WorkerService on loopback that records what arrives, each Connect stream apart.
 * The processors are the test's own (one quick, two that ignore their abort signal for a while),
 * so that what is checked is the worker's handling of assignments, timeouts, sessions and close().
 */
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { loadTesseraProto } from '../shared/proto.js';
import { createLogger } from '../shared/logger.js';
import type { ProcessContext } from '../shared/job-kind.js';
import type { SubtaskResult__Output } from '../shared/proto/generated/tessera/v1/SubtaskResult.js';
import type { WorkerMessage__Output } from '../shared/proto/generated/tessera/v1/WorkerMessage.js';
import type { CoordinatorMessage } from '../shared/proto/generated/tessera/v1/CoordinatorMessage.js';

vi.mock('./processors/index.js', () => {
  const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  const mk = (name: string, process: (ctx: ProcessContext<unknown>) => Promise<{ outputs: never[] }>) => [name, { name, params: () => ({}), process }] as const;
  return {
    workerProcessors: new Map([
      // Takes 300 ms and honours its signal.
      mk('quick', async (ctx) => {
        await new Promise<void>((resolve, reject) => {
          const t = setTimeout(resolve, 300);
          ctx.signal.addEventListener('abort', () => {
            clearTimeout(t);
            reject(ctx.signal.reason);
          }, { once: true });
        });
        return { outputs: [] };
      }),
      // Ignores its signal for 1.5 s (a native call, an in-process sharp pipeline).
      mk('stubborn', async () => {
        await wait(1500);
        return { outputs: [] };
      }),
      // Writes a scratch file in its work folder, ignores its signal for 800 ms, then reads the file
      // back: what it saw is left on globalThis.lingering.
      mk('lingering', async (ctx) => {
        const { readFile, writeFile } = await import('node:fs/promises');
        const seen: { ended: boolean; error: string } = { ended: false, error: '' };
        (globalThis as { lingering?: typeof seen }).lingering = seen;
        const scratch = `${ctx.workDir}/scratch.bin`;
        await writeFile(scratch, 'x');
        await wait(800);
        await readFile(scratch).catch((err: Error) => (seen.error = err.message));
        seen.ended = true;
        return { outputs: [] };
      }),
    ]),
  };
});

const { Worker } = await import('./worker.js');
const log = createLogger('test', 'silent', 'json');

type Stream = grpc.ServerDuplexStream<WorkerMessage__Output, CoordinatorMessage>;

/** A fake coordinator: records every Connect stream and what arrives on it. */
async function fakeCoordinator(): Promise<{ address: string; sessions: { call: Stream; results: SubtaskResult__Output[] }[]; server: grpc.Server; nextSession: () => Promise<{ call: Stream; results: SubtaskResult__Output[] }> }> {
  const { proto } = loadTesseraProto();
  const server = new grpc.Server();
  const sessions: { call: Stream; results: SubtaskResult__Output[] }[] = [];
  const waiters: ((s: { call: Stream; results: SubtaskResult__Output[] }) => void)[] = [];
  let n = 0;
  server.addService((proto as unknown as { tessera: { v1: { WorkerService: { service: grpc.ServiceDefinition } } } }).tessera.v1.WorkerService.service, {
    Connect: (call: Stream) => {
      const s = { call, results: [] as SubtaskResult__Output[] };
      call.on('data', (m: WorkerMessage__Output) => {
        if (m.register) {
          call.write({ registered: { worker_id: `w${++n}`, heartbeat_ms: 1000, ttl_ms: 5000 } });
          sessions.push(s);
          waiters.shift()?.(s);
        }
        if (m.result) s.results.push(m.result);
        for (const r of m.results?.results ?? []) s.results.push(r);
      });
      call.on('error', () => undefined);
    },
    FetchTaskInput: (call: grpc.ServerWritableStream<unknown, unknown>) => call.emit('error', { code: grpc.status.UNIMPLEMENTED }),
    UploadTaskOutput: (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb({ code: grpc.status.UNIMPLEMENTED }),
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  const nextSession = (): Promise<{ call: Stream; results: SubtaskResult__Output[] }> => new Promise((resolve) => waiters.push(resolve));
  return { address: `127.0.0.1:${port}`, sessions, server, nextSession };
}

const assignment = (id: string, attempt: number, kind: string, timeout_ms = 60_000): CoordinatorMessage => ({
  assign: { subtask_id: id, job_id: 'job-1', attempt, kind, spec: {}, plan_json: '', inputs: [], timeout_ms, phase: 0 },
});

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup() {
  const fake = await fakeCoordinator();
  cleanups.push(() => fake.server.forceShutdown());
  const first = fake.nextSession();
  const worker = new Worker({ coordinator: fake.address, name: 'rev-worker', slots: 1, prefetch: 0, log, memoryLimitMb: 0 });
  worker.start();
  cleanups.push(() => worker.close());
  return { fake, worker, first: await first };
}

describe('the control stream', () => {
  it('keeps a timeout above 2^31 - 1 ms (a uint32 holds it) from firing at once: the subtask runs', async () => {
    const { first } = await setup();
    // ~35 days: fits timeout_ms (uint32), but not setTimeout, which then fires after 1 ms.
    first.call.write(assignment('st-big-timeout', 1, 'quick', 3_000_000_000));
    await vi.waitFor(() => expect(first.results.length).toBe(1), { timeout: 5000 });
    expect(first.results[0]).toMatchObject({ subtask_id: 'st-big-timeout', ok: true, error_code: '' });
  });

  it('sends no result of a subtask of the lost stream on the next one, however late that subtask stops', async () => {
    const { fake, first } = await setup();
    first.call.write(assignment('st-old', 7, 'stubborn'));
    await sleep(200);
    const second = fake.nextSession();
    // The coordinator drops the stream: the worker aborts st-old and reconnects (100-200 ms).
    first.call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'gone' });
    const s2 = await second;
    await sleep(2000);
    // st-old's attempt 7 belonged to the first session.
    expect(s2.results.map((r) => `${r.subtask_id}#${r.attempt} ${r.error_code}`)).toEqual([]);
  });

  it('close() waits for a subtask it aborted that is still in a native call, before it removes the files under it', async () => {
    const { first, worker } = await setup();
    first.call.write(assignment('st-linger', 1, 'lingering'));
    const seen = (): { ended: boolean; error: string } | undefined => (globalThis as { lingering?: { ended: boolean; error: string } }).lingering;
    await vi.waitFor(() => expect(seen()).toBeDefined(), { timeout: 5000 });
    await sleep(100);
    await worker.close();
    // Before, close() removed the temp root at once: the subtask's scratch file vanished under it (ENOENT).
    expect(seen()).toEqual({ ended: true, error: '' });
    expect(existsSync(worker.tempRoot)).toBe(false);
  });
});
