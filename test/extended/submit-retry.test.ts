/**
 * SubmitJob is safe to retry: a submission carries a request_id, a repeat of an accepted one is
 * answered with the job it made (its inputs unread), a repeat of one still uploading takes its
 * place, and the client library sends a submission again when its connection drops mid-upload.
 */
import { randomBytes } from 'node:crypto';
import { appendFile, mkdir, readdir, mkdtemp, rm, truncate, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TesseraClient } from '../../client/client.js';
import { Coordinator } from '../../coordinator/coordinator.js';
import { TesseraError } from '../../shared/errors.js';
import { createLogger } from '../../shared/logger.js';
import { loadTesseraProto } from '../../shared/proto.js';
import type { JobServiceClient } from '../../shared/proto/generated/tessera/v1/JobService.js';
import { sha256 } from '../../shared/streams.js';
import { runCli } from '../helpers/cluster.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

const log = createLogger('test', 'silent', 'json');
let dir: string;
let coordinator: Coordinator;
let address: string;
let client: TesseraClient;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-submit-retry-'));
  coordinator = new Coordinator({ listen: '127.0.0.1:0', dataDir: path.join(dir, 'data'), log, http: '' });
  address = await coordinator.start();
  client = new TesseraClient({ address });
});

afterAll(async () => {
  client?.close();
  await coordinator?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function file(name: string, bytes: Buffer): Promise<string> {
  const f = path.join(dir, name);
  await writeFile(f, bytes);
  return f;
}

const jobsWith = async (requestId: string): Promise<string[]> => (await client.listJobs({ limit: 1000 })).filter((j) => j.spec?.request_id === requestId).map((j) => j.id);

describe('SubmitJob request_id', () => {
  it('answers a repeat of an accepted submission with the job it made, reading none of its inputs', async () => {
    const a = await file('a.bin', Buffer.from('first'));
    // The same name, size and modification time as `a` (what the client's inputs_digest covers),
    // other bytes: answered with the job of `a`, its bytes never read.
    await mkdir(path.join(dir, 'later'), { recursive: true });
    const b = path.join(dir, 'later', 'a.bin');
    await writeFile(b, 'FIRST');
    for (const f of [a, b]) await utimes(f, 1_700_000_000, 1_700_000_000);
    // No worker: the job stays queued.
    const first = await client.submit({ label: 'once', request_id: 'req-repeat-1', passthrough: {} }, [a]);
    const again = await client.submit({ label: 'once', request_id: 'req-repeat-1', passthrough: {} }, [b]);
    expect(again.id).toBe(first.id);
    expect(again.inputs.map((i) => [i.name, Number(i.size), i.sha256])).toEqual([['a.bin', 5, sha256(Buffer.from('first'))]]);
    expect(await jobsWith('req-repeat-1')).toEqual([first.id]);
    // The CLI takes the id too: running the same command again makes no second job.
    const args = ['submit', 'passthrough', a, '--request-id', 'req-cli-1', '--no-wait', '--coordinator', address];
    const one = await runCli(args);
    const two = await runCli(args);
    expect(one.code, one.stderr).toBe(0);
    expect(two.code, two.stderr).toBe(0);
    expect(two.stdout.trim()).toBe(one.stdout.trim());
    expect(await jobsWith('req-cli-1')).toEqual([one.stdout.trim()]);
  });

  it('refuses an id reused with a different spec, and ids that are too long or not printable', async () => {
    const a = await file('c.bin', Buffer.from('c'));
    const first = await client.submit({ label: 'one', request_id: 'req-differs', passthrough: {} }, [a]);
    const differs = (await client.submit({ label: 'another', request_id: 'req-differs', passthrough: {} }, [a]).catch((e: unknown) => e)) as grpc.ServiceError;
    expect(differs.code).toBe(grpc.status.ALREADY_EXISTS);
    expect(differs.details).toContain('req-differs');
    expect(differs.details).toContain(first.id);
    for (const bad of ['x'.repeat(129), 'has space', 'tab\there']) {
      const err = (await client.submit({ request_id: bad, passthrough: {} }, [a]).catch((e: unknown) => e)) as grpc.ServiceError;
      expect(err.code, bad).toBe(grpc.status.INVALID_ARGUMENT);
      expect(err.details).toContain('spec.request_id');
    }
    expect(await jobsWith('req-differs')).toEqual([first.id]);
  });

  it('refuses an id reused with other files (a spec read back from GetJob carries its request_id), and answers one read back with the same files', async () => {
    const a = await file('e.bin', Buffer.from('e'));
    const other = await file('f.bin', Buffer.from('another file'));
    await utimes(a, 1_700_000_000, 1_700_000_000);
    const first = await client.submit({ passthrough: {} }, [a]);
    const readBack = (await client.getJob(first.id)).spec!;
    expect(readBack.request_id).toBe(first.spec?.request_id);
    // Before: answered with the job of e.bin, f.bin never sent.
    const reused = (await client.submit(readBack, [other]).catch((e: unknown) => e)) as grpc.ServiceError;
    expect(reused.code).toBe(grpc.status.ALREADY_EXISTS);
    expect(reused.details).toContain(`already used for job ${first.id}, made of other inputs`);
    // The same file changed since (same name and size, later modification time): other inputs too.
    await writeFile(a, 'E');
    const changed = (await client.submit(readBack, [a]).catch((e: unknown) => e)) as grpc.ServiceError;
    expect(changed.code).toBe(grpc.status.ALREADY_EXISTS);
    await writeFile(other, 'e');
    await utimes(other, 1_700_000_000, 1_700_000_000);
    // The same inputs (as the digest sees them): a repeat, answered with the job.
    expect((await client.submit(readBack, [other], { names: ['e.bin'] })).id).toBe(first.id);
    expect(await jobsWith(first.spec!.request_id!)).toEqual([first.id]);
  });

  it('ListJobs with a request_id gives the job that submission made, waiting for one still being received', async () => {
    const { proto } = loadTesseraProto();
    const raw = new proto.tessera.v1.JobService(address, grpc.credentials.createInsecure()) as unknown as JobServiceClient;
    const lookup = (requestId: string): Promise<{ jobs: { id: string; spec?: { request_id?: string } }[] }> =>
      new Promise((resolve, reject) => raw.ListJobs({ request_id: requestId } as never, (err, res) => (err ? reject(err) : resolve(res as never))));
    try {
      const first = await client.submit({ request_id: 'look-me-up', passthrough: {} }, [await file('g.bin', Buffer.from('g'))]);
      expect((await lookup('look-me-up')).jobs.map((j) => j.id)).toEqual([first.id]);
      expect((await lookup('no-such-submission')).jobs).toEqual([]);
      // One no submission may use is the caller's mistake, said as SubmitJob says it (it was answered with no job).
      await expect(lookup('has space')).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: 'request_id: only printable ASCII characters, no spaces' });
      await expect(lookup('x'.repeat(129))).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: 'request_id: longer than 128 bytes' });
      // A submission still being received: the look-up answers once it has ended, with its job.
      let answered = false;
      let finish!: () => void;
      const made = new Promise<string>((resolve, reject) => {
        const call = raw.SubmitJob((err, job) => (err ? reject(err) : resolve(job!.id)));
        call.write({ spec: { request_id: 'still-coming', input_count: 1, passthrough: {} } });
        call.write({ input: { name: 'h.bin', size: '3' } });
        call.write({ data: Buffer.from('hh') });
        finish = () => {
          call.write({ data: Buffer.from('h') });
          call.write({ input_end: { sha256: '' } });
          call.end();
        };
      });
      await sleep(100);
      const found = lookup('still-coming').then((r) => ((answered = true), r));
      await sleep(200);
      expect(answered).toBe(false);
      // The rest of the submission is sent only now (was: on a 500 ms timer set before the sleeps,
      // which a stall of the test's event loop could let go first).
      finish();
      expect((await found).jobs.map((j) => j.id)).toEqual([await made]);
    } finally {
      raw.close();
    }
  });

  it('gives each submission without an id its own job, and new ids to the client library\'s calls', async () => {
    const a = await file('d.bin', Buffer.from('d'));
    const one = await client.submit({ label: 'no id', passthrough: {} }, [a]);
    const two = await client.submit({ label: 'no id', passthrough: {} }, [a]);
    expect(two.id).not.toBe(one.id);
    expect(one.spec?.request_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(two.spec?.request_id).not.toBe(one.spec?.request_id);
  });

  it('lets a repeat of a submission still uploading take its place: one job, the earlier attempt ABORTED', async () => {
    const { proto } = loadTesseraProto();
    const raw = new proto.tessera.v1.JobService(address, grpc.credentials.createInsecure()) as unknown as JobServiceClient;
    const spool = path.join(dir, 'data', 'spool', 'jobs');
    const before = new Set(await readdir(spool).catch(() => [] as string[]));
    const earlier = new Promise<grpc.ServiceError | null>((resolve) => {
      const call = raw.SubmitJob((err) => resolve(err));
      call.write({ spec: { label: 'slow', request_id: 'req-superseded', passthrough: {} } });
      call.write({ input: { name: 'slow.bin', size: String(1 << 20) } });
      call.write({ data: Buffer.alloc(64 * 1024) });
      // ... and nothing more: a client whose link went quiet.
    });
    // The earlier attempt is being received once its spool folder exists.
    for (let i = 0; i < 200; i++) {
      if ((await readdir(spool).catch(() => [] as string[])).some((d) => !before.has(d))) break;
      await sleep(25);
    }
    const data = randomBytes(300_000);
    const retry = await client.submit({ label: 'slow', request_id: 'req-superseded', passthrough: {} }, [await file('slow.bin', data)]);
    const err = await earlier;
    raw.close();
    expect(err?.code).toBe(grpc.status.ABORTED);
    expect(err?.details).toContain('req-superseded');
    expect(await jobsWith('req-superseded')).toEqual([retry.id]);
    expect(retry.inputs.map((i) => [i.name, Number(i.size), i.sha256])).toEqual([['slow.bin', data.length, sha256(data)]]);
    // The earlier attempt's spool folder is gone with it.
    expect((await readdir(spool)).filter((d) => !before.has(d))).toEqual([retry.id]);
  });

  it('refuses a submission reusing the id of one still uploading with a different spec; that one goes on', async () => {
    const { proto } = loadTesseraProto();
    const raw = new proto.tessera.v1.JobService(address, grpc.credentials.createInsecure()) as unknown as JobServiceClient;
    const data = randomBytes(200_000);
    let call!: grpc.ClientWritableStream<object>;
    const first = new Promise<{ err: grpc.ServiceError | null; job?: { id: string } }>((resolve) => {
      call = raw.SubmitJob((err, job) => resolve({ err, job })) as unknown as grpc.ClientWritableStream<object>;
    });
    call.write({ spec: { label: 'first', request_id: 'req-uploading', passthrough: {} } });
    call.write({ input: { name: 'first.bin', size: String(data.length) } });
    call.write({ data: data.subarray(0, 100_000) });
    const spool = path.join(dir, 'data', 'spool', 'jobs');
    // Being received: the coordinator has the first bytes (its spool holds a folder with a partial file).
    for (let i = 0; i < 200 && !(await readdir(spool, { recursive: true }).catch(() => [] as string[])).some((f) => String(f).includes('first.bin')); i++) await sleep(25);
    const other = (await client.submit({ label: 'second', request_id: 'req-uploading', passthrough: {} }, [await file('second.bin', Buffer.from('2'))]).catch((e: unknown) => e)) as grpc.ServiceError;
    expect(other.code).toBe(grpc.status.ALREADY_EXISTS);
    expect(other.details).toContain('spec.request_id req-uploading: already used by a submission still uploading');
    call.write({ data: data.subarray(100_000) });
    call.write({ input_end: { sha256: sha256(data) } });
    call.end();
    const { err, job } = await first;
    raw.close();
    expect(err).toBeNull();
    expect(await jobsWith('req-uploading')).toEqual([job!.id]);
  });

  it('sends a submission again when its connection drops mid-upload, making one job', async () => {
    const [host, port] = address.split(':') as [string, string];
    const proxy = new TcpProxy({ host, port: Number(port) });
    const via = new TesseraClient({ address: await proxy.start() });
    try {
      const data = randomBytes(48 * 1024 * 1024);
      const f = await file('big.bin', data);
      let cuts = 0;
      const retries: Array<[number, number]> = [];
      const job = await via.submit({ label: 'dropped', request_id: 'req-dropped', passthrough: {} }, [f], {
        onRetry: (err, attempt) => retries.push([err.code, attempt]),
        onUpload: (p) => {
          // Half-way through the first attempt, the link goes down.
          if (cuts === 0 && p.sentBytes >= 24 * 1024 * 1024) {
            cuts++;
            proxy.cut();
          }
        },
      });
      expect(cuts).toBe(1);
      expect(retries).toEqual([[grpc.status.UNAVAILABLE, 2]]);
      expect(job.inputs.map((i) => [Number(i.size), i.sha256])).toEqual([[data.length, sha256(data)]]);
      expect(await jobsWith('req-dropped')).toEqual([job.id]);
    } finally {
      via.close();
      await proxy.stop();
    }
  });

  it('gives up once its upload has been cut five times after sending data (each try starts from its first byte)', async () => {
    const [host, port] = address.split(':') as [string, string];
    const proxy = new TcpProxy({ host, port: Number(port) });
    const via = new TesseraClient({ address: await proxy.start() });
    try {
      const f = await file('cut-each-time.bin', randomBytes(8 * 1024 * 1024));
      const retries: number[] = [];
      // Every try is cut half-way (a link too slow for its keepalive does that): before, the tries
      // went on for ever, each one opening a new --reconnect-for window. The window is wide: each
      // cut opens a new one, so only the count of cuts ends the tries (before, a test timeout). A
      // window of 1000 ms (the 1 s pause between tries, and nothing more) gave up whenever the
      // clock's millisecond turned between the two readings of the check, a few µs apart.
      const err = (await via
        .submit({ label: 'cut each time', request_id: 'req-cut-each-time', passthrough: {} }, [f], {
          retryForMs: 20_000,
          onRetry: (_e, attempt) => retries.push(attempt),
          onUpload: (p) => {
            if (p.sentBytes >= 4 * 1024 * 1024) proxy.cut();
          },
        })
        .catch((e: unknown) => e)) as grpc.ServiceError;
      expect(retries).toEqual([2, 3, 4, 5]);
      expect(err.code).toBe(grpc.status.UNAVAILABLE);
      expect(err.message).toMatch(/: the submission was cut 5 times after sending data, and each try starts from the first byte; given up \(on a slow or lossy link, raise the keepalive timeout: --keepalive-timeout-ms/);
      expect(await jobsWith('req-cut-each-time')).toEqual([]);
    } finally {
      via.close();
      await proxy.stop();
    }
  }, 30_000);

  it('still fails at once when the coordinator was never reached', async () => {
    const nowhere = new TesseraClient({ address: '127.0.0.1:1' });
    try {
      const err = (await nowhere.submit({ passthrough: {} }, [await file('e.bin', Buffer.from('e'))]).catch((e: unknown) => e)) as grpc.ServiceError;
      expect(err.code).toBe(grpc.status.UNAVAILABLE);
    } finally {
      nowhere.close();
    }
  }, 20_000);
});

describe('a coordinator restarted during an upload', () => {
  it('ends the upload with UNAVAILABLE at once, and the client sends it again to the next run: one job', async () => {
    const dataDir = path.join(dir, 'restart-data');
    const first = new Coordinator({ listen: '127.0.0.1:0', dataDir, log, http: '', shutdownGraceMs: 60_000 });
    const at = await first.start();
    let second: Coordinator | undefined;
    const via = new TesseraClient({ address: at });
    try {
      const data = randomBytes(48 * 1024 * 1024);
      const f = await file('restart.bin', data);
      let stopped: Promise<void> | undefined;
      const retries: string[] = [];
      const job = await via.submit({ label: 'restart', request_id: 'req-restart', passthrough: {} }, [f], {
        onUpload: (p) => {
          // SIGTERM half-way: the coordinator stops, and its next run starts on the same dir and port.
          if (!stopped && p.sentBytes >= 16 * 1024 * 1024) {
            stopped = first.close().then(async () => {
              second = new Coordinator({ listen: at, dataDir, log, http: '' });
              await second.start();
            });
          }
        },
        onRetry: (err) => retries.push(err.details),
      });
      await stopped;
      // Not cut off when the (long) grace period ran out: told at once, and sent again.
      expect(retries[0]).toMatch(/shutting down/);
      expect(job.inputs.map((i) => [Number(i.size), i.sha256])).toEqual([[data.length, sha256(data)]]);
      expect((await via.listJobs()).filter((j) => j.spec?.request_id === 'req-restart').map((j) => j.id)).toEqual([job.id]);
    } finally {
      via.close();
      await first.close();
      await second?.close();
    }
  }, 60_000);
});

describe('request_id against the job limit and decoder defaults', () => {
  it('answers a repeat of an accepted submission even when that job fills the client\'s job limit', async () => {
    const limited = new Coordinator({ listen: '127.0.0.1:0', dataDir: path.join(dir, 'limited-data'), log, http: '', limits: { maxJobsPerClient: 1 } });
    const c = new TesseraClient({ address: await limited.start() });
    try {
      const f = await file('limited.bin', Buffer.from('x'));
      // No worker: the job stays unfinished, and fills the limit of 1.
      const job = await c.submit({ request_id: 'req-limited', passthrough: {} }, [f]);
      expect((await c.submit({ request_id: 'req-limited', passthrough: {} }, [f])).id).toBe(job.id);
      // A new job is still refused.
      const err = (await c.submit({ request_id: 'req-limited-2', passthrough: {} }, [f]).catch((e: unknown) => e)) as grpc.ServiceError;
      expect(err.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    } finally {
      c.close();
      await limited.close();
    }
  });

  it('compares specs without the fields left at their defaults (a stored spec lacks those a newer version adds)', async () => {
    const f = await file('defaults.bin', Buffer.from('d'));
    const job = await client.submit({ label: 'defaults', request_id: 'req-defaults', passthrough: { subtasks: 0 } }, [f]);
    // The stored spec as an older version would have written it: without the empty members.
    const stored = coordinator.manager.get(job.id).spec as unknown as Record<string, unknown>;
    delete stored['priority'];
    delete stored['max_attempts'];
    expect((await client.submit({ label: 'defaults', request_id: 'req-defaults', priority: 0, passthrough: {} }, [f])).id).toBe(job.id);
  });
});

/**
 * A coordinator on a data dir of its own that stops and starts again on the same address (a
 * restart), a client of it, and a worker started when asked; `close()` stops them all.
 */
async function restartable(name: string) {
  const dataDir = path.join(dir, `${name}-data`);
  let coordinator = new Coordinator({ listen: '127.0.0.1:0', dataDir, log, http: '' });
  const at = await coordinator.start();
  const c = new TesseraClient({ address: at });
  const { Worker } = await import('../../worker/worker.js');
  let worker: InstanceType<typeof Worker> | undefined;
  return {
    c,
    stop: () => coordinator.close(),
    async start(): Promise<void> {
      coordinator = new Coordinator({ listen: at, dataDir, log, http: '' });
      await coordinator.start();
    },
    startWorker(workerName: string): void {
      worker = new Worker({ coordinator: at, slots: 1, log, memoryLimitMb: 0, name: workerName });
      worker.start();
    },
    async close(): Promise<void> {
      await worker?.close();
      c.close();
      await coordinator.close();
    },
  };
}

describe('watching through a coordinator restart', () => {
  it('says once that the stream was lost and once that it is back (before any new event), and sees the job to its end', async () => {
    const r = await restartable('watch-restart');
    try {
      const job = await r.c.submit({ passthrough: {} }, [await file('watched.bin', Buffer.from('watched'))]);
      const lost: string[] = [];
      // No worker yet: the job waits while its coordinator restarts under the watcher.
      const back: number[] = [];
      let reattached!: () => void;
      const reattaching = new Promise<void>((resolve) => (reattached = resolve));
      const done = r.c.wait(job.id, undefined, undefined, {
        onReconnect: (why) => lost.push(why),
        onReattach: (ms) => {
          back.push(ms);
          reattached();
        },
      });
      await r.stop();
      await r.start();
      // Told while the job still waits for a worker: the watch's headers come before any event.
      await reattaching;
      expect(back).toHaveLength(1);
      expect(back[0]).toBeGreaterThan(0);
      r.startWorker('w');
      expect((await done).state).toBe('JOB_STATE_SUCCEEDED');
      expect(lost).toHaveLength(1);
      expect(back).toHaveLength(1);
    } finally {
      await r.close();
    }
  }, 60_000);
});

describe('planning just after a restart', () => {
  it('waits for the first worker of the kind to come back (up to 10 s), where a fresh coordinator plans at once', async () => {
    const r = await restartable('replan');
    try {
      // Fresh: no worker yet, and the job is planned all the same (its subtask waits for one).
      const fresh = await r.c.submit({ passthrough: {} }, [await file('fresh.bin', Buffer.from('fresh'))]);
      for (let i = 0; i < 500 && (await r.c.getJob(fresh.id)).subtasks.length === 0; i++) await sleep(20);
      expect((await r.c.getJob(fresh.id)).subtasks).toHaveLength(1);
      await r.stop();
      await r.start();
      // Restarted: a job submitted before any worker is back is not planned for a cluster of none.
      const job = await r.c.submit({ passthrough: {} }, [await file('early.bin', Buffer.from('early'))]);
      await sleep(1500);
      expect((await r.c.getJob(job.id)).subtasks).toEqual([]);
      r.startWorker('back');
      expect((await r.c.wait(job.id)).state).toBe('JOB_STATE_SUCCEEDED');
      expect((await r.c.wait(fresh.id)).state).toBe('JOB_STATE_SUCCEEDED');
    } finally {
      await r.close();
    }
  }, 60_000);
});

describe('new calls while the coordinator restarts', () => {
  it('a client that has reached the coordinator waits for it: submit, getJob and listJobs made in the gap succeed', async () => {
    const r = await restartable('gap');
    try {
      const before = await r.c.submit({ label: 'before the gap', passthrough: {} }, [await file('gap-1.bin', Buffer.from('one'))]);
      await r.stop();
      const retries: number[] = [];
      // Made while nothing listens: each waits for the coordinator's next run.
      const calls = Promise.all([
        r.c.submit({ label: 'in the gap', passthrough: {} }, [await file('gap-2.bin', Buffer.from('two'))], { onRetry: (_err, attempt) => retries.push(attempt) }),
        r.c.getJob(before.id),
        r.c.listJobs({ limit: 10 }),
      ]);
      await sleep(1500);
      await r.start();
      const [made, got, listed] = await calls;
      expect(got.id).toBe(before.id);
      expect(listed.map((j) => j.id)).toContain(before.id);
      expect(made.spec?.label).toBe('in the gap');
      expect(retries.length).toBeGreaterThan(0);
      // A client that never reached one still fails at once.
      const never = new TesseraClient({ address: '127.0.0.1:1' });
      const t0 = Date.now();
      await expect(never.getJob(before.id)).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
      expect(Date.now() - t0).toBeLessThan(5000);
      never.close();
    } finally {
      await r.close();
    }
  }, 60_000);

  it('a coordinator gone for good: a call waits out its deadline and rejects UNAVAILABLE, saying so', async () => {
    const gone = new Coordinator({ listen: '127.0.0.1:0', dataDir: path.join(dir, 'gone-data'), log, http: '' });
    const at = await gone.start();
    const c = new TesseraClient({ address: at, deadlineMs: 2000 });
    try {
      await c.listJobs({ limit: 1 });
      await gone.close();
      await expect(c.listJobs({ limit: 1 })).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE, message: expect.stringContaining('the coordinator could not be reached for 2 s (it was before: down, or restarting?)') });
    } finally {
      c.close();
      await gone.close();
    }
  });
});

describe('watching through a dropped link', () => {
  it('says that it is back as soon as it is, while the job makes no event', async () => {
    const [host, port] = address.split(':') as [string, string];
    const proxy = new TcpProxy({ host, port: Number(port) });
    const via = new TesseraClient({ address: await proxy.start() });
    // A job no worker takes (none is connected to this coordinator): it stays queued, making no event.
    const job = await via.submit({ label: 'quiet', passthrough: {} }, [await file('quiet.bin', Buffer.from('quiet'))]);
    const ac = new AbortController();
    const notes: string[] = [];
    let reattached!: () => void;
    const back = new Promise<void>((resolve) => (reattached = resolve));
    const seen: number[] = [];
    const watching = (async () => {
      for await (const e of via.watch(job.id, { signal: ac.signal, onReconnect: (why) => void notes.push(`lost: ${why}`), onReattach: () => (notes.push('back'), reattached()) })) seen.push(Number(e.seq));
    })().catch((err: unknown) => err);
    try {
      while (seen.length === 0) await sleep(20);
      proxy.cut();
      await back;
      expect(notes).toHaveLength(2);
      expect(notes[0]).toMatch(/^lost: /);
      expect(notes[1]).toBe('back');
      // Nothing new was told: the job made no event meanwhile.
      expect(new Set(seen).size).toBe(seen.length);
      expect((await via.getJob(job.id)).state).toBe('JOB_STATE_QUEUED');
    } finally {
      ac.abort();
      await watching;
      await via.cancel(job.id).catch(() => undefined);
      via.close();
      await proxy.stop();
    }
  });
});

describe('an input file that changes while it is uploaded', () => {
  it('is refused by the client, naming the file and both sizes, and no job is made; the next submission goes through', async () => {
    const size = 3 * 1024 * 1024;
    for (const [what, change, now] of [
      ['grown', (f: string) => appendFile(f, 'more'), size + 4],
      ['shrunk', (f: string) => truncate(f, 1000), 1000],
    ] as const) {
      const f = await file(`${what}.bin`, randomBytes(size));
      let changed: Promise<void> | undefined;
      // Changed once its first chunk is sent: the size checked before the upload no longer holds.
      const err = await client
        .submit({ label: `changed-${what}`, passthrough: {} }, [f], { onUpload: () => void (changed ??= change(f)) })
        .then(() => undefined, (e: TesseraError) => e);
      expect(err?.code, what).toBe(grpc.status.FAILED_PRECONDITION);
      expect(err?.message).toBe(`${f} changed while it was being submitted (${size} -> ${now} bytes): submit it anew`);
      expect((await client.listJobs({ limit: 1000 })).filter((j) => j.spec?.label === `changed-${what}`)).toEqual([]);
    }
    const fine = await client.submit({ label: 'unchanged', passthrough: {} }, [await file('unchanged.bin', Buffer.from('same'))]);
    expect(fine.inputs.map((i) => [i.name, i.sha256])).toEqual([['unchanged.bin', sha256(Buffer.from('same'))]]);
  });
});
