/**
 * ListJobs returns summaries: fifty jobs of 10,000 inputs each would not fit in one gRPC message,
 * and one job's size must never break everyone's listing. GetJob has the whole job.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TesseraClient } from '../../client/client.js';
import { Coordinator } from '../../coordinator/coordinator.js';
import { createLogger } from '../../shared/logger.js';
import { loadTesseraProto } from '../../shared/proto.js';
import type { Job__Output } from '../../shared/proto/generated/tessera/v1/Job.js';
import type { JobServiceClient } from '../../shared/proto/generated/tessera/v1/JobService.js';
import { runCli } from '../helpers/cluster.js';

const log = createLogger('test', 'silent', 'json');
let dir: string;
let coordinator: Coordinator;
let client: TesseraClient;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-listing-'));
  coordinator = new Coordinator({ listen: '127.0.0.1:0', dataDir: path.join(dir, 'data'), log, http: '' });
  client = new TesseraClient({ address: await coordinator.start() });
});

afterAll(async () => {
  client?.close();
  await coordinator?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('ListJobs', () => {
  it('lists summaries with counts; GetJob has the lists', async () => {
    const files: string[] = [];
    for (let i = 0; i < 300; i++) {
      files.push(path.join(dir, `${'n'.repeat(150)}-${i}.bin`));
      await writeFile(files.at(-1)!, Buffer.alloc(10, i));
    }
    // No worker: the job stays queued with its 300 inputs.
    const job = await client.submit({ label: 'many', passthrough: {} }, files);
    const [listed] = await client.listJobs();
    expect(listed).toMatchObject({ id: job.id, input_count: 300, output_count: 0, error_count: 0, inputs: [], outputs: [], errors: [], subtasks: [] });
    expect(listed!.spec?.label).toBe('many');
    expect((await client.getJob(job.id)).inputs).toHaveLength(300);
    const cli = await runCli(['jobs', '--json', '--coordinator', client.address]);
    expect(cli.code, cli.stderr).toBe(0);
    expect(JSON.parse(cli.stdout)[0]).toMatchObject({ id: job.id, label: 'many', input_count: 300, inputs: [] });
  });

  it('GetJob sends the subtasks only when asked (include_subtasks), and refuses an empty job_id', async () => {
    const file = path.join(dir, 'sub.bin');
    await writeFile(file, 's');
    const job = await client.submit({ passthrough: { subtasks: 3 } }, [file]);
    const { proto } = loadTesseraProto();
    const stub = new proto.tessera.v1.JobService(client.address, grpc.credentials.createInsecure()) as unknown as JobServiceClient;
    try {
      const get = (req: { job_id: string; include_subtasks?: boolean }): Promise<{ err: grpc.ServiceError | null; job?: Job__Output }> =>
        new Promise((resolve) => stub.GetJob(req, (err, res) => resolve({ err, job: res })));
      const bare = await get({ job_id: job.id });
      expect(bare.err).toBeNull();
      expect(bare.job!.subtasks).toEqual([]);
      expect(bare.job!.inputs.map((i) => i.name)).toEqual(['sub.bin']);
      expect((await get({ job_id: job.id, include_subtasks: true })).job!.subtasks).toHaveLength(3);
      const empty = await get({ job_id: '' });
      expect(empty.err?.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(empty.err?.details).toMatch(/^job_id is empty/);
    } finally {
      stub.close();
    }
    // The client library asks for them.
    expect((await client.getJob(job.id)).subtasks).toHaveLength(3);
  });

  it("GetJob gives a big job's subtasks a page at a time, queued or ended (from the store); the client reads them all", async () => {
    // No worker: 25,000 pending subtasks in memory; cancelled, read back from the store.
    const job = await client.submit({ label: 'pages', passthrough: { subtasks: 25_000 } }, []);
    const { proto } = loadTesseraProto();
    const stub = new proto.tessera.v1.JobService(client.address, grpc.credentials.createInsecure()) as unknown as JobServiceClient;
    const get = (req: { job_id: string; include_subtasks: boolean; subtask_limit?: number; subtask_page_token?: string }): Promise<Job__Output> =>
      new Promise((resolve, reject) => stub.GetJob(req, (err, res) => (err ? reject(err) : resolve(res!))));
    const readAll = async (limit?: number): Promise<{ pages: number[]; keys: string[] }> => {
      const pages: number[] = [];
      const keys: string[] = [];
      let token = '';
      do {
        const page = await get({ job_id: job.id, include_subtasks: true, ...(limit !== undefined && { subtask_limit: limit }), subtask_page_token: token });
        pages.push(page.subtasks.length);
        for (const s of page.subtasks) keys.push(`${s.phase}/${s.index}`);
        token = page.next_subtask_page_token;
      } while (token);
      return { pages, keys };
    };
    const inOrder = Array.from({ length: 25_000 }, (_, i) => `0/${i}`);
    // Planned (all at once; the job's message may already say it waits for a worker).
    await expect.poll(async () => (await client.getJob(job.id)).subtasks.length, { timeout: 20_000 }).toBe(25_000);
    try {
      for (const read of [() => readAll(7_000), () => readAll(50_000)]) {
        const { pages, keys } = await read();
        expect(keys).toEqual(inOrder);
        expect(pages.length).toBeGreaterThan(1);
        expect(Math.max(...pages)).toBeLessThanOrEqual(10_000);
      }
      // No limit (a client from before pages): all of them in one answer, as it always got.
      expect((await readAll()).pages).toEqual([25_000]);
      expect((await readAll(7_000)).pages).toEqual([7_000, 7_000, 7_000, 4_000]);
      expect((await client.getJob(job.id)).subtasks.map((s) => `${s.phase}/${s.index}`)).toEqual(inOrder);
      // Ended: its subtasks come from the store, in the same pages.
      await client.cancel(job.id);
      expect((await readAll(7_000)).pages).toEqual([7_000, 7_000, 7_000, 4_000]);
      const ended = await client.getJob(job.id);
      expect(ended.subtasks.map((s) => `${s.phase}/${s.index}`)).toEqual(inOrder);
      expect(new Set(ended.subtasks.map((s) => s.state))).toEqual(new Set(['SUBTASK_STATE_CANCELLED']));
      expect(ended.next_subtask_page_token).toBe('');
      // A token is for its own job; a damaged one is refused.
      const other = await client.submit({ passthrough: { subtasks: 1 } }, []);
      const token = (await get({ job_id: job.id, include_subtasks: true, subtask_limit: 10 })).next_subtask_page_token;
      await expect(get({ job_id: other.id, include_subtasks: true, subtask_page_token: token })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: `subtask_page_token: made for job ${job.id}, asked with job ${other.id}` });
      await expect(get({ job_id: job.id, include_subtasks: true, subtask_page_token: 'x!' })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(/^subtask_page_token: not a next_subtask_page_token/) });
      // Without include_subtasks it was answered with none and no next token: the end of the list, as it read (review py).
      await expect(get({ job_id: job.id, include_subtasks: false, subtask_limit: 10, subtask_page_token: token })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: 'subtask_page_token: given without include_subtasks; set include_subtasks to read the next page' });
      await client.cancel(other.id);
    } finally {
      stub.close();
    }
  });

  it('pages through every job over gRPC: the client follows the tokens, the CLI lists them all with --all', async () => {
    // No inputs and no worker: each job would stay queued, and a client may keep only 100 such.
    const made: string[] = [];
    for (let i = 0; i < 130; i++) {
      made.push((await client.submit({ label: `page ${i}`, passthrough: { subtasks: 1 } }, [])).id);
      await client.cancel(made.at(-1)!);
    }
    const everyJob = (await client.listJobs({ limit: Infinity })).map((j) => j.id);
    // Newest first: the ones just made lead, in reverse order.
    expect(everyJob.slice(0, 130)).toEqual([...made].reverse());
    expect(new Set(everyJob).size).toBe(everyJob.length);

    const first = await client.listJobsPage({ limit: 60 });
    expect(first.jobs).toHaveLength(60);
    const second = await client.listJobsPage({ limit: 60, pageToken: first.nextPageToken });
    expect([...first.jobs, ...second.jobs].map((j) => j.id)).toEqual(everyJob.slice(0, 120));
    // Asked again with another filter: refused, naming both.
    const wrongFilter = await client.listJobsPage({ limit: 60, pageToken: first.nextPageToken, state: 'queued' }).then(() => undefined, (e: unknown) => e as grpc.ServiceError);
    expect(wrongFilter?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(wrongFilter?.details).toMatch(/^page_token: made for state "", asked with state "queued"/);
    expect((await client.listJobs({ limit: 75 })).map((j) => j.id)).toEqual(everyJob.slice(0, 75));

    const all = await runCli(['jobs', '--all', '--json', '--coordinator', client.address]);
    expect(all.code, all.stderr).toBe(0);
    expect((JSON.parse(all.stdout) as { id: string }[]).map((j) => j.id)).toEqual(everyJob);
    const some = await runCli(['jobs', '--limit', '3', '--json', '--coordinator', client.address]);
    expect((JSON.parse(some.stdout) as { id: string }[]).map((j) => j.id)).toEqual(everyJob.slice(0, 3));
  });

  it('close() ends the calls in flight and refuses later ones with CANCELLED; the jobs go on', async () => {
    const other = new TesseraClient({ address: client.address });
    // No worker: the job never ends, so the wait would run until its watch is cut.
    const job = await other.submit({ passthrough: { subtasks: 1 } }, []);
    const waiting = other.wait(job.id, () => undefined).then(() => undefined, (e: unknown) => e as grpc.ServiceError);
    const watching = (async () => {
      for await (const e of other.watch(job.id)) void e;
    })().then(() => undefined, (e: unknown) => e as grpc.ServiceError);
    // Both attached: the first event of each has come.
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    other.close();
    for (const err of [await waiting, await watching]) {
      expect(err?.code).toBe(grpc.status.CANCELLED);
      expect(err?.message).toMatch(/client was closed/);
    }
    expect(Date.now() - t0).toBeLessThan(10_000);
    for (const call of [other.getJob(job.id), other.listJobs(), other.submit({ passthrough: {} }, [])]) {
      await expect(call).rejects.toMatchObject({ code: grpc.status.CANCELLED, message: expect.stringMatching(/client was closed/) });
    }
    expect((await client.getJob(job.id)).state).toBe('JOB_STATE_QUEUED');
    // Cancelling is safe to repeat: the second answers with the cancelled job.
    expect((await client.cancel(job.id)).state).toBe('JOB_STATE_CANCELLED');
    expect((await client.cancel(job.id)).state).toBe('JOB_STATE_CANCELLED');
  });

  it('refuses a label over 1 KiB, which every listing would carry', async () => {
    const file = path.join(dir, 'one.bin');
    await writeFile(file, 'x');
    const err = (await client.submit({ label: 'x'.repeat(1025), passthrough: {} }, [file]).then(() => undefined, (e: unknown) => e)) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toContain('spec.label');
  });
});

describe('WatchJob', () => {
  it('a job of one file, accepted at its first input, says no more are coming', async () => {
    const file = path.join(dir, 'only.jpg');
    await sharp({ create: { width: 64, height: 48, channels: 3, background: '#808080' } }).jpeg().toFile(file);
    const job = await client.submit({ image: { width: 32 } }, [file]);
    const first = await (async () => {
      for await (const e of client.watch(job.id)) return e;
      return undefined;
    })();
    expect(first?.message).toBe('accepted 1 input(s)');
    // Not finished: how far, and for how long so far (no worker here, so it waits).
    const shown = await runCli(['job', job.id, '--coordinator', client.address]);
    expect(shown.stdout.split('\n')[0]).toMatch(new RegExp(`^job ${job.id}  image  (queued|running)  \\(0%, \\d+ s so far\\)$`));
    await client.cancel(job.id);
  });

  it('after the final event of a finished job ends at once, without events or an error', async () => {
    const file = path.join(dir, 'w.bin');
    await writeFile(file, 'w');
    const job = await client.submit({ passthrough: {} }, [file]);
    await client.cancel(job.id);
    const done = await client.getJob(job.id);
    expect(done.state).toBe('JOB_STATE_CANCELLED');
    const t0 = Date.now();
    const seen: unknown[] = [];
    // A watch that did not see the job is over would re-attach every 500 ms for the whole
    // reconnect window and then fail: the window is long, so ending well within it is telling.
    for await (const e of client.watch(job.id, { afterSeq: Number(done.last_event_seq), reconnectForMs: 60_000 })) seen.push(e);
    expect(seen).toEqual([]);
    expect(Date.now() - t0).toBeLessThan(20_000);
  });
});
