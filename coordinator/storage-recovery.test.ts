/**
 * The coordinator's storage across a crash and in shared folders, in-process as
 * coordinator/job-manager.test.ts drives it (the real store, spool, scheduler and registry; the
 * worker is a session whose control stream records what it is sent):
 * - an output moved into its shared folder just before a crash is listed after the restart only if
 *   the file at its name is still the one the job made;
 * - temporary files a worker cut off from its job wrote into the shared folder after the job ended
 *   go at the next start, or when the job goes at the end of its retention;
 * - on a case-insensitive share an output never replaces an input whose name differs only in case;
 * - a job is listed, and a repeat of its submission answered, only once it is on disk;
 * - a cancel is answered only once it is on disk.
 * Two things are wrapped: the move of an output into a shared folder (so that a test can "crash"
 * right after it), and the few file calls publishing makes, so that one folder behaves as a
 * case-insensitive one does (macOS, Windows/SMB shares; this kernel mounts none).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { CoordinatorKind, SpoolFile, SubtaskPlan } from '../shared/job-kind.js';
import { foldedName } from '../shared/names.js';
import type { JobSpec__Output } from '../shared/proto/generated/tessera/v1/JobSpec.js';
import { sharedOutputTemp } from '../shared/shared-output.js';
import { listPage } from './job-list.js';
import { coordinatorKinds } from './kinds/index.js';
import { TERMINAL_JOB_STATES, type SubtaskRecord } from './model.js';
import { SharedRoots } from './shared-inputs.js';
import { inProcessManager } from '../test/helpers/job-manager.js';

/** Called right after each real move of an output into place (publishing). */
const afterMove = vi.hoisted(() => ({ hook: undefined as undefined | ((dest: string) => void) }));
/**
 * The path `p` names: a shared folder is written through its descriptor, as
 * /proc/self/fd/N/NAME, which the mocks below see as the folder's own path.
 */
const named = vi.hoisted(() => ({
  path: (p: string): string => {
    const m = /^\/proc\/self\/fd\/(\d+)\/([^/]+)$/.exec(p);
    return m ? `${readlinkSync(`/proc/self/fd/${m[1]}`)}/${m[2]}` : p;
  },
}));
vi.mock('../shared/shared-output.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../shared/shared-output.js')>();
  return {
    ...real,
    moveInto: async (src: string, dest: string, jobId: string) => {
      await real.moveInto(src, dest, jobId);
      afterMove.hook?.(named.path(dest));
    },
  };
});

/**
 * A folder (`ci.dir`) that behaves as a case-insensitive file system does: a name that differs
 * only in case (or Unicode form) from an entry there is that entry. Only the calls publishing makes
 * (rename, lstat, stat) are mapped; everything else sees the real, case-sensitive folder.
 */
const ci = vi.hoisted(() => ({ dir: undefined as string | undefined, fold: undefined as undefined | ((p: string) => string) }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const f = (p: unknown): string => (typeof p === 'string' && ci.fold ? ci.fold(named.path(p)) : (p as string));
  return {
    ...real,
    rename: (src: string, dest: string) => real.rename(f(src), f(dest)),
    lstat: ((p: string, o?: unknown) => real.lstat(f(p), o as never)) as typeof real.lstat,
    stat: ((p: string, o?: unknown) => real.stat(f(p), o as never)) as typeof real.stat,
  };
});
ci.fold = (p: string): string => {
  if (!ci.dir || path.dirname(p) !== ci.dir || existsSync(p)) return p;
  const want = foldedName(path.basename(p));
  const hit = readdirSync(ci.dir).find((n) => foldedName(n) === want);
  return hit ? path.join(ci.dir, hit) : p;
};

const kinds = coordinatorKinds as Map<string, CoordinatorKind>;
const original = kinds.get('passthrough')!;
const dirs: string[] = [];
afterEach(() => {
  kinds.set('passthrough', original);
  afterMove.hook = undefined;
  ci.dir = undefined;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const spec = { label: 'storage', priority: 0, max_attempts: 0, params: 'passthrough', passthrough: { subtasks: 0, work_ms: 0, fail_first_attempts: 0 } } as unknown as JobSpec__Output;
const plan = (label: string, items: string[] = [], inputs: SpoolFile[] = []): SubtaskPlan => ({ label, inputs, plan: { label }, weight: 1, items });
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

function tempDir(prefix: string): string {
  const dir = realpathSync(mkdtempSync(path.join(os.tmpdir(), prefix)));
  dirs.push(dir);
  return dir;
}

/** A coordinator's job manager on `dataDir` (a restart: the same dir again), with one worker of 8 slots. */
function setup(dataDir: string, sharedRoots?: SharedRoots) {
  const { store, registry, manager, worker, assigned } = inProcessManager({ dataDir, ...(sharedRoots && { sharedRoots }) });
  const subtask = (id: string) => (manager as unknown as { subtasks: Map<string, SubtaskRecord> }).subtasks.get(id)!;
  /** The worker's result for an attempt, with `bytes` uploaded as output `name` (spooled where an upload goes). */
  const uploaded = (subtaskId: string, attempt: number, name: string, bytes: Buffer): SpoolFile => {
    const file = manager.subtaskOutputPath(subtask(subtaskId), attempt, name);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, bytes);
    return { name, path: file, size: bytes.length, sha256: sha256(bytes) };
  };
  const succeed = (subtaskId: string, attempt: number, outputs: SpoolFile[]) =>
    manager.onResult(worker, { subtaskId, attempt, ok: true, outputs, itemErrors: [], retryable: false, result: undefined });
  return { store, registry, manager, worker, assigned, uploaded, succeed };
}

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  for (let i = 0; i < ms / 10 && !cond(); i++) await sleep(10);
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}

/** A job of one subtask (output out.bin) writing to a shared folder, on a first run of the coordinator, its subtask assigned. */
async function sharedFolderJob() {
  const dir = tempDir('tessera-storage-');
  const data = path.join(dir, 'data');
  const out = path.join(dir, 'shared', 'out');
  mkdirSync(out, { recursive: true });
  mkdirSync(data, { recursive: true });
  kinds.set('passthrough', { ...original, plan: async () => ({ subtasks: [plan('one', ['out.bin'])] }), merge: async () => ({ outputs: [] }) });
  const sharedRoots = await SharedRoots.create([], data, [path.join(dir, 'shared')]);
  const first = setup(data, sharedRoots);
  const job = first.manager.newJob({ ...spec, shared_output_dir: out } as JobSpec__Output, 'anonymous');
  await first.manager.accept(job);
  await until(() => first.assigned().length === 1, 'the subtask');
  return { data, out, sharedRoots, first, job, a: first.assigned()[0]! };
}

describe('an output moved into its shared folder just before a crash', () => {
  it('is listed after the restart only if it is still the file the job made, not another of the same size put there since', async () => {
    const { data, out, sharedRoots, first, job, a } = await sharedFolderJob();
    // The output is uploaded (a worker without the share), then moved into the folder, and the
    // coordinator "crashes" right after that move: nothing it does afterwards reaches the store.
    const ours = Buffer.from('the output this job made: AAAAAAAAAAAAAAAA');
    afterMove.hook = (dest) => {
      if (dest === path.join(out, 'out.bin')) first.store.close();
    };
    first.succeed(a.subtask_id!, a.attempt!, [first.uploaded(a.subtask_id!, a.attempt!, 'out.bin', ours)]);
    await until(() => existsSync(path.join(out, 'out.bin')), 'the move into the shared folder');
    await sleep(50);
    first.manager.close();
    afterMove.hook = undefined;
    // What the restart finds: the subtask succeeded, the output moved, but not on record.
    const db = new Database(path.join(data, 'jobs.db'), { readonly: true });
    expect(db.prepare("SELECT count(*) AS n FROM job_files WHERE kind = 'output'").get()).toEqual({ n: 0 });
    db.close();

    // While the coordinator is down, another file of the same size takes the name (another job
    // writing the same folder, a user's copy, an older render of the same size).
    const other = Buffer.from('somebody else wrote this: BBBBBBBBBBBBBBBB');
    expect(other.length).toBe(ours.length);
    writeFileSync(path.join(out, 'out.bin'), other);

    // Restart on the same data dir.
    const second = setup(data, sharedRoots);
    expect(second.manager.resume()).toBe(1);
    const resumed = second.manager.get(job.id);
    await until(() => TERMINAL_JOB_STATES.has(resumed.state), 'the resumed job to end');
    const listed = resumed.outputs.find((o) => o.name === 'out.bin');
    // Before, the other file was listed with the checksum of the one this job made, and downloads
    // served its bytes. It is left as it is.
    expect(listed).toBeUndefined();
    expect(JSON.stringify(resumed.errors)).toMatch(/is not the file this job made/);
    expect(readFileSync(path.join(out, 'out.bin'))).toEqual(other);
    second.manager.close();
    second.store.close();
  });
});

describe('temporary files in a shared output folder', () => {
  it("are swept also when an attempt wrote them after its job ended and its result never came (a worker cut off): by a restart, or the job's removal at the end of its retention", async () => {
    const { data, out, sharedRoots, first, job, a } = await sharedFolderJob();
    expect(a.shared_output_dir).toBe(out);

    // The job is cancelled; its sweep of the folder runs (and finds nothing yet).
    first.manager.cancel(job.id);
    await sleep(100);
    // The worker, cut off (its cancel never reached it), ends its attempt afterwards and writes its
    // output under its lease's temporary name; its result never reaches the coordinator.
    const temp = sharedOutputTemp(out, a.job_id!, a.subtask_id!, a.shared_output_token!, 'out.bin');
    writeFileSync(temp, 'a late attempt');
    first.manager.onWorkerLost(first.worker, 'cut off');
    first.manager.close();
    first.store.close();

    // The coordinator restarts, and later the job goes at the end of its retention.
    const second = setup(data, sharedRoots);
    second.manager.resume();
    await sleep(100);
    expect(await second.manager.removeExpired(0, Date.now() + 1000)).toBe(1);
    await sleep(100);
    // The job is gone, and nothing of it may stay in the user's folder.
    expect(readdirSync(out)).toEqual([]);
    second.manager.close();
    second.store.close();
  });
});

describe('an output and an input of the same job in a case-insensitive shared folder', () => {
  it("never replaces the input whose name differs from the output's only in case (IMG_0001.JPG -> IMG_0001.jpg)", async () => {
    const dir = tempDir('tessera-storage-case-');
    const data = path.join(dir, 'data');
    const media = path.join(dir, 'shared', 'shoot');
    mkdirSync(media, { recursive: true });
    mkdirSync(data, { recursive: true });
    // The shoot's folder is both where the inputs are read and where the outputs go, as the README
    // allows ("never one of the job's own inputs"); it lies on a case-insensitive share.
    ci.dir = media;
    const original_ = Buffer.from('the original photo, irreplaceable');
    const inputPath = path.join(media, 'IMG_0001.JPG');
    writeFileSync(inputPath, original_);
    const sharedRoots = await SharedRoots.create([path.join(dir, 'shared')], data, [path.join(dir, 'shared')]);
    const input = await sharedRoots.resolve('IMG_0001.JPG', inputPath);
    // As the image kind names it (OutputNamer: the input's name with the format's extension).
    kinds.set('passthrough', { ...original, plan: async (ctx) => ({ subtasks: [plan('one', ['IMG_0001.jpg'], ctx.inputs)] }), merge: async () => ({ outputs: [] }) });
    const { manager, store, assigned, uploaded, succeed } = setup(data, sharedRoots);
    const job = manager.newJob({ ...spec, shared_output_dir: media } as JobSpec__Output, 'anonymous');
    job.inputs = [input];
    await manager.accept(job);
    await until(() => assigned().length === 1, 'the subtask');
    const a = assigned()[0]!;
    succeed(a.subtask_id!, a.attempt!, [uploaded(a.subtask_id!, a.attempt!, 'IMG_0001.jpg', Buffer.from('the resized copy'))]);
    await until(() => TERMINAL_JOB_STATES.has(job.state), 'the end of the job');
    // On a case-insensitive folder IMG_0001.jpg IS IMG_0001.JPG: the input must be intact, and the
    // job refused the output as the README promises for an output over one of its own inputs.
    expect(readFileSync(inputPath)).toEqual(original_);
    expect(job.state).toBe('failed');
    expect(job.message).toMatch(/would replace the job's own input/);
    manager.close();
    store.close();
  });
});

describe('a job not yet on disk', () => {
  it('is not listed (ListJobs) before its first commit: a crash then would lose a job a client saw', async () => {
    const dir = tempDir('tessera-storage-list-');
    kinds.set('passthrough', { ...original, plan: async () => ({ subtasks: [plan('one')] }), merge: async () => ({ outputs: [] }) });
    const { manager, store } = setup(dir);
    // The commit takes a moment (a busy writer thread, a slow fsync): emulated by a delay before it.
    const commit = store.committed.bind(store);
    store.committed = async () => {
      await sleep(200);
      return commit();
    };
    const job = manager.newJob(spec, 'alice');
    const accepted = manager.accept(job);
    // In the same turn (the writer thread has not committed yet): what ListJobs answers, and what
    // is on disk, i.e. what a coordinator killed right now would find when it restarts.
    const listed = (): string[] => listPage((before) => manager.newestFirst(before), () => true, { limit: 0, state: '', pageToken: '' }, undefined).jobs.map((j) => j.id!);
    const db = new Database(path.join(dir, 'jobs.db'), { readonly: true });
    const onDisk = (db.prepare('SELECT id FROM jobs').all() as { id: string }[]).map((r) => r.id);
    db.close();
    // Before, ListJobs showed it while a coordinator killed now would not know it.
    expect(onDisk).not.toContain(job.id);
    expect(listed()).not.toContain(job.id);
    await accepted;
    expect(listed()).toContain(job.id);
    manager.close();
    store.close();
  });

  it('answers a repeated submission (same request_id) only once it is committed: when that commit fails, the repeat fails too', async () => {
    const dir = tempDir('tessera-storage-retry-');
    kinds.set('passthrough', { ...original, plan: async () => ({ subtasks: [plan('one')] }), merge: async () => ({ outputs: [] }) });
    const { manager, store } = setup(dir);
    // The store's commit fails (a full disk), a moment after it was asked for.
    let fail: (err: Error) => void = () => undefined;
    store.committed = () => new Promise<void>((_, reject) => (fail = reject));
    const job = manager.newJob({ ...spec, request_id: 'r-1' } as JobSpec__Output, 'alice');
    const accepted = manager.accept(job).catch((err: unknown) => err);
    await sleep(5);
    // The client's retry (its first answer lost, or slow) arrives now: job-service's submit answers
    // with `findByRequest`'s job, reading no input again.
    const repeat = manager.findByRequest('alice', 'r-1');
    expect(repeat).toBe(job);
    // job-service answers the repeat once whenCommitted resolves: before, at once.
    const answered = manager.whenCommitted(repeat!).then(() => 'answered with the job', (err: Error) => err.message);
    fail(Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' }));
    expect(await accepted).toBeInstanceOf(Error);
    // The first attempt's client was told the submission failed; the job is gone, and so is the repeat's answer.
    expect(() => manager.get(job.id)).toThrow(/not found/);
    expect(await answered).toBe('database or disk is full');
    manager.close();
    store.close();
  });
});

describe('a cancel', () => {
  /** The job's state as the store holds it on disk: what a coordinator killed now would find. */
  const stateOnDisk = (dir: string, id: string): string => {
    const db = new Database(path.join(dir, 'jobs.db'), { readonly: true });
    const row = db.prepare('SELECT state FROM jobs WHERE id = ?').get(id) as { state: string };
    db.close();
    return row.state;
  };

  it('is answered only once it is on disk: a coordinator killed right after the answer finds the job cancelled, not running', async () => {
    const dir = tempDir('tessera-storage-cancel-');
    kinds.set('passthrough', { ...original, plan: async () => ({ subtasks: [plan('one')] }), merge: async () => ({ outputs: [] }) });
    const { manager, store, assigned } = setup(dir);
    const job = manager.newJob(spec, 'alice');
    await manager.accept(job);
    await until(() => assigned().length === 1, 'the subtask');
    await store.committed();
    expect(stateOnDisk(dir, job.id)).toBe('running');
    // Answered at once before: a coordinator SIGKILLed then ran the job again after its restart
    // (into its shared output folder too), its client told it was cancelled.
    const answer = await manager.cancel(job.id);
    expect(answer.state).toBe('cancelled');
    expect(stateOnDisk(dir, job.id)).toBe('cancelled');
    manager.close();
    store.close();
  });

  it("that the store cannot write (a full disk) is an error to its client, the job cancelled all the same; asked again, answered once it is written", async () => {
    const dir = tempDir('tessera-storage-cancel-full-');
    kinds.set('passthrough', { ...original, plan: async () => ({ subtasks: [plan('one')] }), merge: async () => ({ outputs: [] }) });
    const { manager, store } = setup(dir);
    const job = manager.newJob(spec, 'alice');
    await manager.accept(job);
    const commit = store.committed.bind(store);
    store.committed = () => Promise.reject(Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' }));
    await expect(manager.cancel(job.id)).rejects.toThrow('database or disk is full');
    expect(job.state).toBe('cancelled');
    store.committed = commit;
    expect((await manager.cancel(job.id)).state).toBe('cancelled');
    expect(stateOnDisk(dir, job.id)).toBe('cancelled');
    manager.close();
    store.close();
  });
});
