/**
 * Processor isolation with real child processes: a processor that crashes, one that hangs ignoring
 * its signal, and one that balloons in memory are each killed and reported with a clear error,
 * while the parent (the worker) carries on and runs the next subtask.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { status } from '@grpc/grpc-js';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TesseraError } from '../shared/errors.js';
import type { ProcessContext } from '../shared/job-kind.js';
import type { JobSpec__Output } from '../shared/proto/generated/tessera/v1/JobSpec.js';
import { ProcessorIsolation } from '../worker/isolation.js';

// Hostile processors, loaded by the child in place of the real ones.
const PROCESSORS = `
export const processors = new Map([
  ['ok', { name: 'ok', params: () => ({}), process: async (ctx) => { ctx.progress(0.5, 'half'); return { outputs: [], result: { pid: process.pid } }; } }],
  ['crash', { name: 'crash', params: () => ({}), process: async () => { process.kill(process.pid, 'SIGSEGV'); await new Promise(() => {}); } }],
  ['hang', { name: 'hang', params: () => ({}), process: async () => { for (;;) {} } }],
  ['balloon', { name: 'balloon', params: () => ({}), process: async () => { const keep = []; for (;;) { keep.push(Buffer.alloc(32 * 1024 * 1024, 1)); await new Promise((r) => setTimeout(r, 5)); } } }],
  ['bad-input', { name: 'bad-input', params: () => ({}), process: async () => { const e = new Error('x'); throw Object.assign(e, { name: 'Plain' }); } }],
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
    const started = Date.now();
    const timeout = new TesseraError(status.DEADLINE_EXCEEDED, 'subtask timed out after 500 ms');
    setTimeout(() => controller.abort(timeout), 500);
    await expect(isolation.run('hang', ctx(controller.signal))).rejects.toBe(timeout);
    expect(Date.now() - started).toBeLessThan(3000);
    expect((await isolation.run('ok', ctx())).outputs).toEqual([]);
  });

  it('a processor that balloons past the memory ceiling is killed with RESOURCE_EXHAUSTED naming the limit', async () => {
    await expect(isolation.run('balloon', ctx())).rejects.toMatchObject({ code: status.RESOURCE_EXHAUSTED, retryable: false, message: expect.stringMatching(/over the worker's memory ceiling --memory-limit-mb=300: killed/) });
    expect((await isolation.run('ok', ctx())).outputs).toEqual([]);
  });

  it("a processor's own error comes back as an error, and the child is kept", async () => {
    await expect(isolation.run('bad-input', ctx())).rejects.toThrow('x');
  });
});
