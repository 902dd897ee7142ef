/**
 * Tokens on a real cluster: workers join with the worker token, clients act with their own; a
 * client token cannot act as a worker and the reverse; jobs are private to their submitter (admins
 * excepted); failures are logged without the secret; per-client job and stream limits; and failed attempts
 * are rate-limited per peer, valid tokens excepted (last, since it locks failing callers on
 * 127.0.0.1 out for a while).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TesseraClient } from '../../client/client.js';
import { loadTesseraProto } from '../../shared/proto.js';
import type { JobServiceClient } from '../../shared/proto/generated/tessera/v1/JobService.js';
import type { WorkerServiceClient } from '../../shared/proto/generated/tessera/v1/WorkerService.js';
import { runCli, startCluster, type TestCluster } from '../helpers/cluster.js';
import { CLI_PATH } from '../../client/local-cluster.js';
import { rawJobService } from '../helpers/raw-grpc.js';

const WORKER = 'worker-token-0123456789abcdef';
const ALICE = 'alice-token-0123456789abcdef';
const BOB = 'bob-token-0123456789abcdef0';
const ROOT = 'root-token-0123456789abcdef';
const CAROL = 'carol-token-0123456789abcdef';
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

/** FetchTaskInput of a made-up subtask with `token`: how far it gets tells whether the token passed. */
function workerFetch(token?: string): Promise<{ code: number; details: string }> {
  const { proto } = loadTesseraProto();
  const w = new proto.tessera.v1.WorkerService(cluster.address, grpc.credentials.createInsecure()) as WorkerServiceClient;
  return new Promise((resolve) => {
    const md = new grpc.Metadata();
    if (token) md.set('authorization', `Bearer ${token}`);
    const call = w.FetchTaskInput({ subtask_id: 's', attempt: 1, name: 'n', offset: 0 }, md, { deadline: Date.now() + 5000 });
    call.on('data', () => undefined);
    call.on('error', (e: grpc.ServiceError) => {
      w.close();
      resolve({ code: e.code, details: e.details });
    });
  });
}

async function drain(it: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of it) void _;
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-security-'));
  const tokens = path.join(dir, 'clients.txt');
  await writeFile(tokens, `# name:token[:admin]\nalice:${ALICE}\nbob:${BOB}\nroot:${ROOT}:admin\ncarol:${CAROL}\n`);
  await writeFile(path.join(dir, 'worker.token'), `${WORKER}\n`);
  cluster = await startCluster({
    coordinatorArgs: ['--worker-token-file', path.join(dir, 'worker.token'), '--client-tokens-file', tokens, '--max-jobs-per-client', '2', '--max-streams-per-client', '6'],
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
    // A token sent without its "Bearer " is told so, not "missing".
    const raw = rawJobService(cluster.address);
    const md = new grpc.Metadata();
    md.set('authorization', ALICE);
    const unprefixed = await new Promise<grpc.ServiceError | null>((resolve) => raw.ListJobs({}, md, (err) => resolve(err)));
    raw.close();
    expect(unprefixed).toMatchObject({ code: grpc.status.UNAUTHENTICATED, details: 'the authorization metadata is not "Bearer <token>": no client token read from it' });
    expect(await failure(as(WORKER).listJobs())).toMatchObject({ code: grpc.status.PERMISSION_DENIED, details: expect.stringMatching(/worker join token cannot be used by a client/) });
    // The coordinator's log reaches us through its stderr pipe, asynchronously: wait for it.
    const failedLines = (): string[] => logs.filter((l) => l.includes('authentication failed'));
    for (let i = 0; i < 100 && failedLines().length < 3; i++) await new Promise((r) => setTimeout(r, 50));
    expect(failedLines().length).toBeGreaterThanOrEqual(3);
    for (const secret of [WRONG, WORKER, ALICE]) expect(logs.join('\n')).not.toContain(secret);
  });

  it('a client token cannot act as a worker; a missing worker token is UNAUTHENTICATED', async () => {
    expect(await workerFetch(ALICE)).toMatchObject({ code: grpc.status.PERMISSION_DENIED, details: 'a client token cannot be used by a worker' });
    expect(await workerFetch()).toMatchObject({ code: grpc.status.UNAUTHENTICATED });
    // The worker token gets past authentication (and fails on the made-up session).
    expect((await workerFetch(WORKER)).details).toMatch(/unknown or expired worker session/);
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

    // The admin's `tessera jobs` says whose each job is (an OWNER column, `owner` in --json);
    // alice's own list, all hers, has no such column.
    const bobs = await bob.submit({ passthrough: {} }, [file]);
    await bob.wait(bobs.id);
    const table = await cluster.runCli(['jobs', '--token', ROOT]);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/^ID +OWNER +KIND /);
    expect(table.stdout).toMatch(new RegExp(`^${job.id} +alice +passthrough `, 'm'));
    expect(table.stdout).toMatch(new RegExp(`^${bobs.id} +bob +passthrough `, 'm'));
    const json = JSON.parse((await cluster.runCli(['jobs', '--json', '--token', ROOT])).stdout) as { id: string; owner: string }[];
    expect(json.find((j) => j.id === bobs.id)?.owner).toBe('bob');
    const own = await cluster.runCli(['jobs', '--token', ALICE]);
    expect(own.stdout).toMatch(/^ID +KIND /);
  });

  it('Ctrl-C in `tessera submit --token-file` prints commands that work when pasted: they name the token file', async () => {
    const blob = path.join(dir, 'hint.bin');
    await writeFile(blob, 'passthrough bytes '.repeat(100));
    const tokenFile = path.join(dir, 'alice.token');
    await writeFile(tokenFile, `${ALICE}\n`);
    const env = { ...process.env, TESSERA_TOKEN: undefined, TESSERA_TOKEN_FILE: undefined };
    const args = [CLI_PATH, 'submit', 'passthrough', '--work-ms', '3000', blob, '-o', path.join(dir, 'hint-out'), '--coordinator', cluster.address, '--token-file', tokenFile];
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    for (let i = 0; i < 300 && !/job \S+ \(passthrough\)/.test(stderr); i++) await sleep(50);
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    // It named only --coordinator: pasted, the download was UNAUTHENTICATED.
    const pasted = /fetch its outputs with: tessera (download .*?) \(cancel it/.exec(stderr)?.[1];
    expect(pasted, stderr).toContain(`--token-file ${tokenFile}`);
    const r = await runCli(pasted!.split(' '), { env: { TESSERA_TOKEN: '', TESSERA_TOKEN_FILE: '' } });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/UNAUTHENTICATED/);
  });

  it('a client token sees what the workers can run, not their addresses or library versions; an admin sees all', async () => {
    const asAlice = await as(ALICE).listWorkers();
    const asRoot = await as(ROOT).listWorkers();
    expect(asAlice.map((w) => w.name).sort()).toEqual(asRoot.map((w) => w.name).sort());
    expect(asAlice.length).toBeGreaterThan(0);
    for (const w of asRoot) {
      expect(w.address).toContain('127.0.0.1:');
      expect(w.capabilities?.libvips_version).toMatch(/^\d+\.\d+/);
      expect(w.capabilities?.ffmpeg_version).not.toBe('');
    }
    for (const w of asAlice) {
      expect([w.address, w.capabilities?.ffmpeg_version, w.capabilities?.sharp_version, w.capabilities?.libvips_version]).toEqual(['', '', '', '']);
      expect(w.capabilities?.kinds).toEqual(expect.arrayContaining(['image', 'video', 'passthrough']));
      expect(w.capabilities?.encoders).toContain('libx264');
      expect(w.slots).toBe(1);
    }
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

  it('a client may have at most --max-streams-per-client WatchJob and DownloadOutput calls open; others are not affected, and a call that ends frees its place', async () => {
    const job = await as(CAROL).submit({ passthrough: { subtasks: 1, work_ms: 20_000 } }, []);
    const stub = rawJobService(cluster.address);
    const md = (token: string): grpc.Metadata => {
      const m = new grpc.Metadata();
      m.set('authorization', `Bearer ${token}`);
      return m;
    };
    /** A WatchJob of the job: resolves 'open' once the coordinator has taken it, or its error. */
    const watch = (token: string) => {
      const call = stub.WatchJob({ job_id: job.id }, md(token));
      const answer = new Promise<string | grpc.ServiceError>((resolve) => {
        call.on('metadata', () => resolve('open'));
        call.on('error', (e: grpc.ServiceError) => resolve(e));
        call.on('data', () => undefined);
      });
      return { call, answer };
    };
    const held = Array.from({ length: 6 }, () => watch(CAROL));
    expect(await Promise.all(held.map((h) => h.answer))).toEqual(Array(6).fill('open'));
    // Before: no limit, each call held about 18 KiB of the coordinator's memory, without end.
    const over = watch(CAROL);
    expect(await over.answer).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED, details: '6 WatchJob and DownloadOutput calls open from this client: over the limit --max-streams-per-client=6; end some first' });
    const download = await new Promise<grpc.ServiceError | undefined>((resolve) => {
      const call = stub.DownloadOutput({ job_id: job.id, name: 'x' }, md(CAROL));
      call.on('data', () => undefined);
      call.on('error', resolve);
      call.on('end', () => resolve(undefined));
    });
    expect(download).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED });
    // Another client (an admin, who may watch it) is not affected.
    const admin = watch(ROOT);
    expect(await admin.answer).toBe('open');
    admin.call.cancel();
    // One call cancelled: its place is free again.
    held[0]!.call.cancel();
    let again: ReturnType<typeof watch> | undefined;
    await expect
      .poll(async () => {
        again?.call.cancel();
        again = watch(CAROL);
        return again.answer;
      }, { timeout: 5000, interval: 50 })
      .toBe('open');
    for (const h of [...held, again!]) h.call.cancel();
    await as(CAROL).cancel(job.id);
    stub.close();
  });

  it('submissions still uploading count towards --max-jobs-per-client, and stop counting when they end', async () => {
    const { proto } = loadTesseraProto();
    const stub = new proto.tessera.v1.JobService(cluster.address, grpc.credentials.createInsecure()) as unknown as JobServiceClient;
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${BOB}`);
    // Two submissions that send their spec and an input header, then nothing more: still uploading.
    // The coordinator counts each from the moment it takes the call, before it makes the job's spool
    // folder: two new folders say both are counted. (A probing submission could not tell: while
    // under way it would count too, and could take a place before the second upload arrived.)
    const spoolJobs = path.join(cluster.dataDir, 'spool', 'jobs');
    const spoolFolders = (): Promise<string[]> => readdir(spoolJobs).catch(() => []);
    const before = new Set(await spoolFolders());
    const ended: unknown[] = [];
    const open = [0, 1].map(() => {
      const call = stub.SubmitJob(md, (e: unknown) => ended.push(e));
      call.write({ spec: { label: 'uploading', passthrough: {} } });
      call.write({ input: { name: 'slow.bin', size: '1000000' } });
      return call;
    });
    await expect.poll(async () => (await spoolFolders()).filter((d) => !before.has(d)).length, { timeout: 10_000, interval: 20 }).toBeGreaterThanOrEqual(2);
    expect(ended).toEqual([]);
    const bob = as(BOB);
    expect(await failure(bob.submit({ passthrough: {} }, []))).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED, details: expect.stringMatching(/2 unfinished jobs \(submissions still uploading included\).*--max-jobs-per-client=2/) });
    // Cancelled uploads no longer count.
    for (const call of open) call.cancel();
    let job: { id: string } | undefined;
    for (const t0 = Date.now(); !job && Date.now() - t0 < 10_000; ) {
      job = await bob.submit({ passthrough: {} }, []).catch(() => undefined);
      if (!job) await new Promise((r) => setTimeout(r, 50));
    }
    expect(job?.id).toBeTruthy();
    stub.close();
  });

  it('failures from one address are rate-limited (RESOURCE_EXHAUSTED); valid client and worker tokens from it still go through', async () => {
    // One guesser behind a NAT (or Docker's proxy) shares its address with everyone else.
    const guesser = as(WRONG);
    const flood = await Promise.allSettled(Array.from({ length: 30 }, () => guesser.listJobs()));
    const codes = flood.map((r) => (r.status === 'rejected' ? (r.reason as { code: number }).code : 'ok'));
    expect(codes).not.toContain('ok');
    expect(codes).toContain(grpc.status.RESOURCE_EXHAUSTED);
    // A right client token and the worker token from that same address are served...
    const alice = as(ALICE);
    expect(Array.isArray(await alice.listJobs())).toBe(true);
    expect((await workerFetch(WORKER)).details).toMatch(/unknown or expired worker session/);
    // ...while failing calls stay refused. The bucket earns one failure back per second: on a slow
    // machine it may have just done so, so a guess or two may still be judged on its token.
    let limited: { code: number; details: string } | undefined;
    for (let i = 0; i < 5 && limited?.code !== grpc.status.RESOURCE_EXHAUSTED; i++) limited = await failure(guesser.listJobs());
    expect(limited).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED, details: expect.stringMatching(/too many failed authentications from 127\.0\.0\.1: retry in \d+ s/) });
    // The workers still fetch inputs and upload outputs (the WorkerService calls a lockout used to refuse).
    const file = path.join(dir, 'after-flood.bin');
    await writeFile(file, 'still served');
    const job = await alice.submit({ passthrough: {} }, [file]);
    expect((await alice.wait(job.id)).state).toBe('JOB_STATE_SUCCEEDED');
    // Which tokens worked from where is kept for a restart (coordinator/auth.test.ts), as digests.
    const kept = await readFile(path.join(cluster.dataDir, 'auth-known-good.json'), 'utf8');
    expect(Object.keys((JSON.parse(kept) as { hosts: Record<string, string[]> }).hosts)).toContain('127.0.0.1');
    expect(kept).not.toContain(ALICE);
  });
});
