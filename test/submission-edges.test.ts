/**
 * Submissions at their edges, against a real coordinator in this process (gRPC on loopback, no
 * workers) that allows one unfinished job per client: a repeat of a submission whose job already
 * started while its upload ran, an input that sends more than its header declared, a submission
 * aborted before its call starts, and an input gone before its turn to upload.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TesseraClient } from '../client/client.js';
import { Coordinator } from '../coordinator/coordinator.js';
import { createLogger } from '../shared/logger.js';
import type { JobServiceClient } from '../shared/proto/generated/tessera/v1/JobService.js';
import { sha256 } from '../shared/streams.js';
import { holdSubmission, rawJobService, rawSubmit, sendInput, until } from './helpers/raw-grpc.js';

const log = createLogger('test', 'silent', 'json');
let dir: string;
let coordinator: Coordinator;
let address: string;
let client: TesseraClient;
let raw: JobServiceClient;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-rev-h-'));
  coordinator = new Coordinator({ listen: '127.0.0.1:0', dataDir: path.join(dir, 'data'), log, http: '', limits: { maxJobsPerClient: 1 } });
  address = await coordinator.start();
  client = new TesseraClient({ address });
  raw = rawJobService(address);
});

afterAll(async () => {
  raw?.close();
  client?.close();
  await coordinator?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('submissions at their edges', () => {
  it('a repeat of a submission still uploading replaces it, also when its job already started and fills --max-jobs-per-client=1', async () => {
    const a = { name: 'a.bin', data: Buffer.from('first input') };
    const held = holdSubmission(raw, { label: 'retry-early', request_id: 'req-early-1', passthrough: {}, input_count: 2 });
    sendInput(held.call, a);
    // The job is accepted early (passthrough plans while receiving) and the upload stays open.
    await until('early job', async () => (await client.listJobs({ limit: 100 })).find((j) => j.spec?.request_id === 'req-early-1'));
    // The client retries (its link went quiet): README says the repeat replaces it.
    const b = { name: 'b.bin', data: Buffer.from('second input') };
    const retryErr = await rawSubmit(address, [
      { spec: { label: 'retry-early', request_id: 'req-early-1', passthrough: {}, input_count: 2 } },
      { input: { name: a.name, size: String(a.data.length) } }, { data: a.data }, { input_end: { sha256: sha256(a.data) } },
      { input: { name: b.name, size: String(b.data.length) } }, { data: b.data }, { input_end: { sha256: sha256(b.data) } },
    ]);
    const first = await held.answer;
    expect(first.err?.code).toBe(grpc.status.ABORTED);
    expect(retryErr?.details ?? null).toBeNull();
    const jobs = (await client.listJobs({ limit: 100 })).filter((j) => j.spec?.request_id === 'req-early-1');
    expect(jobs.length).toBe(1);
  });

  it('refuses an input as soon as more bytes arrive than its header declared (not after writing them all)', async () => {
    const held = holdSubmission(raw, { label: 'over-declared', passthrough: {} });
    held.call.write({ input: { name: 'small.bin', size: '5' } });
    for (let i = 0; i < 8; i++) held.call.write({ data: Buffer.alloc(256 * 1024) });
    // No input_end yet: 2 MiB past a 5-byte header are being written to the spool.
    const early = await Promise.race([held.answer, sleep(1500).then(() => 'still receiving' as const)]);
    held.call.end();
    await held.answer;
    expect(early).not.toBe('still receiving');
  });
});

describe('the client library', () => {
  // A coordinator of its own: the one above takes one unfinished job per client, and has one.
  let own: Coordinator;
  let lib: TesseraClient;
  beforeAll(async () => {
    own = new Coordinator({ listen: '127.0.0.1:0', dataDir: path.join(dir, 'data-lib'), log, http: '' });
    lib = new TesseraClient({ address: await own.start() });
  });
  afterAll(async () => {
    lib?.close();
    await own?.close();
  });
  const labelled = async (label: string): Promise<string[]> => (await lib.listJobs({ limit: 1000 })).filter((j) => j.spec?.label === label).map((j) => j.id);

  it('aborted while it checks the files, before its call starts, rejects at once with the reason and makes no job', async () => {
    const f = path.join(dir, 'abort-me.bin');
    await writeFile(f, Buffer.alloc(1000, 1));
    for (const [label, files] of [['aborted-nofiles', []], ['aborted-file', [f]]] as const) {
      const ac = new AbortController();
      const submitting = lib.submit({ label, passthrough: {} }, [...files], { signal: ac.signal });
      ac.abort();
      // Before: with no files the job was made and submit resolved; with one, it hung until the transfer deadline (60 s).
      const outcome = await Promise.race([submitting.then(() => 'resolved', (e: Error) => e.name), sleep(5000).then(() => 'still pending after 5 s')]);
      expect(outcome, label).toBe('AbortError');
      await sleep(200);
      expect(await labelled(label), label).toEqual([]);
    }
  });

  it('rejects an input gone before its turn to upload with a gRPC code naming it, not the raw file-system error', async () => {
    const first = path.join(dir, 'first.bin');
    const second = path.join(dir, 'second.bin');
    await writeFile(first, Buffer.alloc(2_000_000, 1));
    await writeFile(second, Buffer.alloc(10, 2));
    // The second goes once the first is on its way (for a user who is not root, a file made mode 000 does the same).
    let removed: Promise<void> | undefined;
    const err = (await lib.submit({ label: 'vanished', passthrough: {} }, [first, second], { onUpload: () => void (removed ??= rm(second)) }).then(
      () => undefined,
      (e: unknown) => e,
    )) as { code?: unknown; message?: string; input?: unknown };
    // Before: Node's error, code "ENOENT" (the CLI then exited 1, --json said UNKNOWN).
    expect(err).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, input: second, message: `${second}: no such file any more: it changed while it was submitted` });
    await sleep(200);
    expect(await labelled('vanished')).toEqual([]);
  });
});
