/**
 * What the coordinator's log says of inputs that fail: the job's client alone was told, and a
 * "why did my photos fail?" could not be answered from the log, even at debug (review OPS2).
 * - each failed input of a finished job is logged at warn, with the job, the input and why;
 * - a refused submission is logged, with its peer, its code and why (info for the client's fault);
 * - a submission its full job store could not write is told that the job was not accepted (it was
 *   told "nothing was lost, the write is retried", and no job ever appeared; review OPS3).
 * A real coordinator and worker in this process, their log lines read back; the data dir on a
 * small tmpfs of its own (root).
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import sharp from 'sharp';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TesseraClient } from '../../client/client.js';
import { Coordinator } from '../../coordinator/coordinator.js';
import { createLogger } from '../../shared/logger.js';
import { Worker } from '../../worker/worker.js';

interface Line {
  level: number;
  msg: string;
  job?: string;
  input?: string;
  code?: string;
  reason?: string;
  peer?: string;
  state?: string;
}

const lines: Line[] = [];
let dir: string;
let coordinator: Coordinator;
let worker: Worker;
let client: TesseraClient;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-logs-failures-'));
  await mkdir(path.join(dir, 'data'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', path.join(dir, 'data')]);
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Line);
      done();
    },
  });
  coordinator = new Coordinator({ listen: '127.0.0.1:0', dataDir: path.join(dir, 'data'), log: pino({ level: 'info' }, sink), http: '', shutdownGraceMs: 1000 });
  await coordinator.start();
  worker = new Worker({ coordinator: coordinator.address, slots: 1, memoryLimitMb: 0, name: 'w', log: createLogger('test', 'silent', 'json') });
  worker.start();
  client = new TesseraClient({ address: coordinator.address });
});

afterAll(async () => {
  client?.close();
  await worker?.close();
  await coordinator?.close();
  execFileSync('umount', ['-l', path.join(dir, 'data')]);
  await rm(dir, { recursive: true, force: true });
});

it('names each failed input of a finished job at warn, with the job and why', async () => {
  const good = path.join(dir, 'good.jpg');
  await sharp({ create: { width: 64, height: 48, channels: 3, background: '#468' } }).jpeg().toFile(good);
  // Its header reads (it passes the submission's check); its pixels are cut short.
  const cut = path.join(dir, 'cut.jpg');
  const whole = await sharp({ create: { width: 640, height: 480, channels: 3, background: '#888', noise: { type: 'gaussian', mean: 100, sigma: 40 } } }).jpeg().toBuffer();
  await writeFile(cut, whole.subarray(0, 3000));
  const job = await client.submit({ image: { width: 32, format: 'png' } }, [good, cut]);
  const done = await client.wait(job.id);
  expect(done.state).toBe('JOB_STATE_PARTIALLY_SUCCEEDED');
  const failed = lines.filter((l) => l.msg === 'job input failed' && l.job === job.id);
  expect(failed).toEqual([expect.objectContaining({ level: 40, input: 'cut.jpg', code: 'INVALID_ARGUMENT', reason: done.errors[0]!.message })]);
  // In the order things happened: its end after its running, and its failed inputs after its end
  // ("job finished" was logged at once, before the stored "running"; review OPS10).
  const story = lines.filter((l) => l.job === job.id && (l.state === 'running' || l.msg === 'job finished' || l.msg === 'job input failed')).map((l) => l.msg === 'job finished' || l.msg === 'job input failed' ? l.msg : 'running');
  expect(story).toEqual(['running', 'job finished', 'job input failed']);
});

it("logs a quick job's end after its running (a one-subtask job with no work: 'job finished' came before 'running' every time)", async () => {
  for (let i = 0; i < 3; i++) {
    const job = await client.submit({ passthrough: { subtasks: 1 } }, []);
    expect((await client.wait(job.id)).state).toBe('JOB_STATE_SUCCEEDED');
    for (let k = 0; k < 100 && !lines.some((l) => l.job === job.id && l.msg === 'job finished'); k++) await new Promise((r) => setTimeout(r, 20));
    const story = lines.filter((l) => l.job === job.id && (l.state !== undefined || l.msg === 'job finished')).map((l) => (l.msg === 'job finished' ? 'finished' : l.state));
    expect(story.at(-1)).toBe('finished');
    expect(story.indexOf('running')).toBeLessThan(story.indexOf('finished'));
  }
});

it('logs a refused submission with its peer, code and why', async () => {
  const text = path.join(dir, 'notes.jpg');
  await writeFile(text, 'these are not the pixels you are looking for\n');
  const err = await client.submit({ image: { width: 32 } }, [text]).then(() => undefined, (e: unknown) => e as Error);
  expect(err?.message).toContain('notes.jpg');
  const refused = lines.filter((l) => l.msg === 'submission refused');
  expect(refused).toEqual([expect.objectContaining({ level: 30, code: 'INVALID_ARGUMENT', peer: expect.stringMatching(/^127\.0\.0\.1:/) })]);
  expect(refused[0]!.reason).toContain('notes.jpg');
});

it('tells a submission its full job store could not write that the job was not accepted, and logs it at warn', async () => {
  const filler = path.join(dir, 'data', 'filler');
  // The rest of the disk (the write ends where it is full).
  await writeFile(filler, Buffer.alloc(64 << 20)).catch(() => undefined);
  try {
    const err = await client.submit({ passthrough: { subtasks: 1 } }, []).then(() => undefined, (e: unknown) => e as Error & { code?: number });
    expect(err?.message).toMatch(/RESOURCE_EXHAUSTED: the coordinator's job store is full \(.*\): free space in its --data-dir: the job was not accepted; submit it again$/);
    expect(lines.filter((l) => l.msg === 'submission refused' && l.code === 'RESOURCE_EXHAUSTED')).toEqual([expect.objectContaining({ level: 40 })]);
  } finally {
    await rm(filler);
  }
  const job = await client.submit({ passthrough: { subtasks: 1 } }, []);
  expect((await client.wait(job.id)).state).toBe('JOB_STATE_SUCCEEDED');
});
