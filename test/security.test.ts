/**
 * Tokens on a real cluster: workers join with the worker token, clients act with their own; a
 * client token cannot act as a worker and the reverse; jobs are private to their submitter (admins
 * excepted); failures are logged without the secret; per-client job limits; and failed attempts
 * are rate-limited per peer (last, since it locks out 127.0.0.1 for a while).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TesseraClient } from '../client/client.js';
import { loadTesseraProto } from '../shared/proto.js';
import type { JobServiceClient } from '../shared/proto/generated/tessera/v1/JobService.js';
import type { WorkerServiceClient } from '../shared/proto/generated/tessera/v1/WorkerService.js';
import { startCluster, type TestCluster } from './helpers/cluster.js';

const WORKER = 'worker-token-0123456789abcdef';
const ALICE = 'alice-token-0123456789abcdef';
const BOB = 'bob-token-0123456789abcdef0';
const ROOT = 'root-token-0123456789abcdef';
const WRONG = 'wrong-token-guess-0123456789';

let cluster: TestCluster;
let dir: string;
const logs: string[] = [];
const clients: TesseraClient[] = [];

const as = (token?: string): TesseraClient => {
  const c = new TesseraClient({ address: cluster.address, ...(token ? { token } : {}), deadlineMs: 5000 });
  clients.push(c);
  return c;
};

async function failure(p: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await p;
  } catch (err) {
    return err as { code: number; details: string };
  }
  throw new Error('the call succeeded');
}

async function drain(it: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of it) void _;
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-security-'));
  const tokens = path.join(dir, 'clients.txt');
  await writeFile(tokens, `# name:token[:admin]\nalice:${ALICE}\nbob:${BOB}\nroot:${ROOT}:admin\n`);
  await writeFile(path.join(dir, 'worker.token'), `${WORKER}\n`);
  cluster = await startCluster({
    coordinatorArgs: ['--worker-token-file', path.join(dir, 'worker.token'), '--client-tokens-file', tokens, '--max-jobs-per-client', '2'],
    workerArgs: ['--worker-token', WORKER],
    clientOptions: { token: ROOT },
    onLog: (who, line) => {
      if (who === 'coordinator') logs.push(line);
    },
  });
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await cluster?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('tokens', () => {
  it('missing or unknown client tokens are UNAUTHENTICATED, the worker token is PERMISSION_DENIED; nothing secret is logged', async () => {
    expect(await failure(as().listJobs())).toMatchObject({ code: grpc.status.UNAUTHENTICATED, details: expect.stringMatching(/missing client token/) });
    expect(await failure(as(WRONG).listJobs())).toMatchObject({ code: grpc.status.UNAUTHENTICATED, details: 'unknown client token' });
    expect(await failure(as(WORKER).listJobs())).toMatchObject({ code: grpc.status.PERMISSION_DENIED, details: expect.stringMatching(/worker join token cannot be used by a client/) });
    // The coordinator's log reaches us through its stderr pipe, asynchronously: wait for it.
    const failedLines = (): string[] => logs.filter((l) => l.includes('authentication failed'));
    for (let i = 0; i < 100 && failedLines().length < 3; i++) await new Promise((r) => setTimeout(r, 50));
    expect(failedLines().length).toBeGreaterThanOrEqual(3);
    for (const secret of [WRONG, WORKER, ALICE]) expect(logs.join('\n')).not.toContain(secret);
  });

  it('a client token cannot act as a worker; a missing worker token is UNAUTHENTICATED', async () => {
    const { proto } = loadTesseraProto();
    const w = new proto.tessera.v1.WorkerService(cluster.address, grpc.credentials.createInsecure()) as WorkerServiceClient;
    const fetch = (token?: string): Promise<{ code: number; details: string }> =>
      new Promise((resolve) => {
        const md = new grpc.Metadata();
        if (token) md.set('authorization', `Bearer ${token}`);
        const call = w.FetchTaskInput({ subtask_id: 's', attempt: 1, name: 'n', offset: 0 }, md, { deadline: Date.now() + 5000 });
        call.on('data', () => undefined);
        call.on('error', (e: grpc.ServiceError) => resolve({ code: e.code, details: e.details }));
      });
    expect(await fetch(ALICE)).toMatchObject({ code: grpc.status.PERMISSION_DENIED, details: 'a client token cannot be used by a worker' });
    expect(await fetch()).toMatchObject({ code: grpc.status.UNAUTHENTICATED });
    // The worker token gets past authentication (and fails on the made-up session).
    expect((await fetch(WORKER)).details).toMatch(/unknown or expired worker session/);
    w.close();
  });

  it('jobs are private to the token that submitted them; an admin sees all; the CLI takes --token and --token-file', async () => {
    const alice = as(ALICE);
    const bob = as(BOB);
    const file = path.join(dir, 'a.bin');
    await writeFile(file, 'alice data');
    const job = await alice.submit({ passthrough: {} }, [file]);
    expect((await alice.wait(job.id)).state).toBe('JOB_STATE_SUCCEEDED');
    for (const call of [bob.getJob(job.id), bob.cancel(job.id), drain(bob.watch(job.id)), bob.download(job.id, path.join(dir, 'bob'))]) {
      expect(await failure(call)).toMatchObject({ code: grpc.status.PERMISSION_DENIED, details: `job ${job.id} belongs to another client` });
    }
    expect((await bob.listJobs()).map((j) => j.id)).not.toContain(job.id);
    expect((await alice.listJobs()).map((j) => j.id)).toContain(job.id);
    expect((await as(ROOT).getJob(job.id)).id).toBe(job.id);
    const viaFlag = await cluster.runCli(['job', job.id, '--json', '--token', ALICE]);
    expect(viaFlag.code, viaFlag.stderr).toBe(0);
    await writeFile(path.join(dir, 'bob.token'), BOB);
    const viaFile = await cluster.runCli(['job', job.id, '--token-file', path.join(dir, 'bob.token')]);
    expect(viaFile.code).not.toBe(0);
    expect(viaFile.stderr).toMatch(/PERMISSION_DENIED: job .* belongs to another client/);
  });

  it('a client may have at most --max-jobs-per-client unfinished jobs (RESOURCE_EXHAUSTED naming the limit)', async () => {
    const bob = as(BOB);
    const slow = await Promise.all([0, 1].map(() => bob.submit({ passthrough: { subtasks: 1, work_ms: 20_000 } }, [])));
    expect(await failure(bob.submit({ passthrough: {} }, []))).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED, details: expect.stringMatching(/--max-jobs-per-client=2/) });
    // Another client is not affected.
    const other = await as(ALICE).submit({ passthrough: {} }, []);
    expect(other.id).toBeTruthy();
    for (const j of slow) await bob.cancel(j.id);
  });

  it('submissions still uploading count towards --max-jobs-per-client, and stop counting when they end', async () => {
    const { proto } = loadTesseraProto();
    const stub = new proto.tessera.v1.JobService(cluster.address, grpc.credentials.createInsecure()) as unknown as JobServiceClient;
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${BOB}`);
    // Two submissions that send their spec and an input header, then nothing more: still uploading.
    const ended: unknown[] = [];
    const open = [0, 1].map(() => {
      const call = stub.SubmitJob(md, (e: unknown) => ended.push(e));
      call.write({ spec: { label: 'uploading', passthrough: {} } });
      call.write({ input: { name: 'slow.bin', size: '1000000' } });
      return call;
    });
    await new Promise((r) => setTimeout(r, 500));
    expect(ended).toEqual([]);
    const bob = as(BOB);
    expect(await failure(bob.submit({ passthrough: {} }, []))).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED, details: expect.stringMatching(/2 unfinished jobs \(submissions still uploading included\).*--max-jobs-per-client=2/) });
    // Cancelled uploads no longer count.
    for (const call of open) call.cancel();
    let job: { id: string } | undefined;
    for (let i = 0; i < 50 && !job; i++) {
      job = await bob.submit({ passthrough: {} }, []).catch(() => undefined);
      if (!job) await new Promise((r) => setTimeout(r, 50));
    }
    expect(job?.id).toBeTruthy();
    stub.close();
  });

  it('repeated failures from one address are rate-limited (RESOURCE_EXHAUSTED), even for a right token', async () => {
    const guesser = as(WRONG);
    const alice = as(ALICE);
    const codes: number[] = [];
    const guessUntilLimited = async (): Promise<void> => {
      for (let i = 0; i < 30 && codes.at(-1) !== grpc.status.RESOURCE_EXHAUSTED; i++) codes.push((await failure(guesser.listJobs())).code);
    };
    await guessUntilLimited();
    // A burst of 10 failures is allowed (earlier tests used a few), then the address is limited.
    expect(codes.slice(0, 5).every((c) => c === grpc.status.UNAUTHENTICATED)).toBe(true);
    expect(codes.at(-1)).toBe(grpc.status.RESOURCE_EXHAUSTED);
    // While it is limited, a right token from that address is refused too. The bucket earns one
    // failure back per second: on a slow machine it may have just done so, so look again.
    let refused: { code: number; details: string } | undefined;
    for (let round = 0; round < 5 && !refused; round++) {
      const r = await alice.listJobs().then(
        () => undefined,
        (err: { code: number; details: string }) => err,
      );
      if (r) refused = r;
      else {
        codes.length = 0;
        await guessUntilLimited();
      }
    }
    expect(refused).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED, details: expect.stringMatching(/too many failed authentications from 127\.0\.0\.1: retry in \d+ s/) });
  });
});
