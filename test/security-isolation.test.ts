/**
 * Processor isolation with real child processes: a processor that crashes, one that hangs ignoring
 * its signal, and one that balloons in memory are each killed and reported with a clear error,
 * while the parent (the worker) carries on and runs the next subtask.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { status } from '@grpc/grpc-js';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TesseraError } from '../shared/errors.js';
import type { ProcessContext } from '../shared/job-kind.js';
import type { JobSpec__Output } from '../shared/proto/generated/tessera/v1/JobSpec.js';
import { ProcessorIsolation } from '../worker/isolation.js';

// Hostile processors, loaded by the child in place of the real ones. Those the parent kills write
// their pid to a file first (hang's loop would keep a progress message from ever leaving).
const PROCESSORS = `
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
const pidFile = (ctx, name) => writeFileSync(join(ctx.workDir, name + '.pid'), String(process.pid));
export const processors = new Map([
  ['ok', { name: 'ok', params: () => ({}), process: async (ctx) => { ctx.progress(0.5, 'half'); return { outputs: [], result: { pid: process.pid } }; } }],
  ['crash', { name: 'crash', params: () => ({}), process: async () => { process.kill(process.pid, 'SIGSEGV'); await new Promise(() => {}); } }],
  ['hang', { name: 'hang', params: () => ({}), process: async (ctx) => { pidFile(ctx, 'hang'); for (;;) {} } }],
  ['balloon', { name: 'balloon', params: () => ({}), process: async (ctx) => { pidFile(ctx, 'balloon'); const keep = []; for (;;) { keep.push(Buffer.alloc(32 * 1024 * 1024, 1)); await new Promise((r) => setTimeout(r, 5)); } } }],
  ['bad-input', { name: 'bad-input', params: () => ({}), process: async (ctx) => { ctx.progress(0, 'pid ' + process.pid); const e = new Error('x'); throw Object.assign(e, { name: 'Plain' }); } }],
]);
`;

let dir: string;
let isolation: ProcessorIsolation;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-isolation-'));
  const module = path.join(dir, 'processors.mjs');
  await writeFile(module, PROCESSORS);
  isolation = new ProcessorIsolation({ memoryLimitMb: 300, pollMs: 50, processorsModule: module, log: pino({ level: 'silent' }) });
});

afterAll(async () => {
  isolation?.close();
  await rm(dir, { recursive: true, force: true });
});

function ctx(signal = new AbortController().signal, progress: (f: number, m?: string) => void = () => undefined): ProcessContext<unknown> {
  return { jobId: 'j', subtaskId: 's', attempt: 1, phase: 0, params: {}, spec: {} as JobSpec__Output, plan: null, inputs: [], workDir: dir, signal, progress, threads: 1, log: pino({ level: 'silent' }) };
}

/** The pid a processor wrote to `NAME.pid` (waited for: the child may still be starting). */
async function pidFile(name: string): Promise<number> {
  let pid = 0;
  await expect
    .poll(
      async () => {
        pid = Number(await readFile(path.join(dir, `${name}.pid`), 'utf8').catch(() => ''));
        return pid;
      },
      { timeout: 30_000, interval: 20 },
    )
    .toBeGreaterThan(0);
  return pid;
}

/** Whether process `pid` is gone (ESRCH), polled for up to 10 s (a killed child is reaped by the event loop). */
async function gone(pid: number): Promise<boolean> {
  for (const t0 = Date.now(); Date.now() - t0 < 10_000; await sleep(20)) {
    try {
      process.kill(pid, 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') return true;
      throw err;
    }
  }
  return false;
}

describe('processor isolation', () => {
  it('runs a processor in a reused child and forwards its progress', async () => {
    const seen: number[] = [];
    const a = await isolation.run('ok', ctx(undefined, (f) => seen.push(f)));
    const b = await isolation.run('ok', ctx());
    expect(seen).toEqual([0.5]);
    expect((a.result as { pid: number }).pid).not.toBe(process.pid);
    expect((b.result as { pid: number }).pid).toBe((a.result as { pid: number }).pid);
  });

  it('a crash fails the subtask with a clear error; the next subtask runs', async () => {
    await expect(isolation.run('crash', ctx())).rejects.toMatchObject({ code: status.INTERNAL, message: expect.stringMatching(/processor crashed \(killed by SIGSEGV\)/) });
    expect((await isolation.run('ok', ctx())).outputs).toEqual([]);
  });

  it('a hang that ignores its signal is killed when the subtask times out', async () => {
    const controller = new AbortController();
    const timeout = new TesseraError(status.DEADLINE_EXCEEDED, 'subtask timed out');
    const running = isolation.run('hang', ctx(controller.signal));
    running.catch(() => undefined);
    // Timed out once it hangs (its pid written, its loop entered).
    const pid = await pidFile('hang');
    controller.abort(timeout);
    await expect(running).rejects.toBe(timeout);
    // Not just given up on: the spinning child is dead.
    expect(await gone(pid), `hung child ${pid} still alive`).toBe(true);
    expect((await isolation.run('ok', ctx())).outputs).toEqual([]);
  });

  it('a processor that balloons past the memory ceiling is killed with RESOURCE_EXHAUSTED naming the limit', async () => {
    await expect(isolation.run('balloon', ctx())).rejects.toMatchObject({ code: status.RESOURCE_EXHAUSTED, retryable: false, message: expect.stringMatching(/over the worker's memory ceiling --memory-limit-mb=300: killed/) });
    const pid = await pidFile('balloon');
    expect(await gone(pid), `ballooning child ${pid} still alive`).toBe(true);
    expect((await isolation.run('ok', ctx())).outputs).toEqual([]);
  });

  it("a processor's own error comes back as an error, and the child is kept", async () => {
    const pidOfOk = async (): Promise<number> => ((await isolation.run('ok', ctx())).result as { pid: number }).pid;
    const before = await pidOfOk();
    const reported: string[] = [];
    await expect(isolation.run('bad-input', ctx(undefined, (_f, m) => reported.push(m ?? '')))).rejects.toThrow('x');
    // It ran in the child `ok` had used (the only idle one), and that child serves the next subtask.
    expect(reported).toEqual([`pid ${before}`]);
    expect(await pidOfOk()).toBe(before);
  });
});
