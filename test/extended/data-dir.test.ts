/**
 * The coordinator's data dir: one coordinator at a time (two would both resume and run the same
 * jobs), a lock that dies with its process, and no spool folders left for ever by submissions a
 * crash cut short. Real coordinators (from the sources), real SQLite files, real processes.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TesseraClient } from '../../client/client.js';
import { CLI_PATH } from '../../client/local-cluster.js';
import { Coordinator } from '../../coordinator/coordinator.js';
import { createLogger } from '../../shared/logger.js';
import { Worker } from '../../worker/worker.js';

const log = createLogger('test', 'silent', 'json');
const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => undefined);
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-data-dir-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function coordinator(dataDir: string): Coordinator {
  const c = new Coordinator({ listen: '127.0.0.1:0', dataDir, log, http: '', shutdownGraceMs: 1000 });
  cleanups.push(() => c.close());
  return c;
}

const startError = (c: Coordinator): Promise<Error | undefined> => c.start().then(() => undefined, (e: unknown) => e as Error);

describe('the data dir lock', () => {
  it('refuses a second coordinator on the same data dir while the first runs, and takes it once the first has closed', async () => {
    const dataDir = path.join(await tempDir(), 'data');
    const first = coordinator(dataDir);
    await first.start();
    const err = await startError(coordinator(dataDir));
    expect(err, 'a second coordinator started on the same data dir').toBeInstanceOf(Error);
    expect(err?.message).toContain('in use by another coordinator');
    expect(err?.message).toContain(dataDir);
    // The refused one changed nothing: the first still serves.
    const client = new TesseraClient({ address: first.address });
    cleanups.push(() => client.close());
    expect(await client.listJobs()).toEqual([]);
    await first.close();
    const third = coordinator(dataDir);
    await expect(third.start()).resolves.toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it('is held by another process until it dies, and a SIGKILL leaves nothing to clean up', async () => {
    const dir = await tempDir();
    const dataDir = path.join(dir, 'data');
    await mkdir(dataDir);
    // Another process takes the data dir's lock as a coordinator does, and is killed holding it.
    const sqlite = createRequire(import.meta.url).resolve('better-sqlite3');
    const script = path.join(dir, 'holder.cjs');
    await writeFile(
      script,
      `const Database = require(${JSON.stringify(sqlite)});
const db = new Database(${JSON.stringify(path.join(dataDir, 'coordinator.lock'))}, { timeout: 0 });
db.exec('BEGIN EXCLUSIVE');
process.stdout.write('locked\\n');
setInterval(() => undefined, 1000);
`,
    );
    const holder = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise((resolve) => holder.once('exit', resolve));
    cleanups.push(() => {
      holder.kill('SIGKILL');
      return exited;
    });
    await new Promise<void>((resolve, reject) => {
      holder.stdout.on('data', (d: Buffer) => d.toString().includes('locked') && resolve());
      holder.once('exit', (code) => reject(new Error(`the lock holder exited (${code})`)));
    });
    const err = await startError(coordinator(dataDir));
    expect(err, 'a second coordinator started on the same data dir').toBeInstanceOf(Error);
    expect(err?.message).toContain('in use by another coordinator');
    // The refused coordinator did not touch the job store.
    expect(existsSync(path.join(dataDir, 'tessera.db'))).toBe(false);
    holder.kill('SIGKILL');
    await exited;
    const after = coordinator(dataDir);
    await expect(after.start()).resolves.toMatch(/^127\.0\.0\.1:\d+$/);
  });
});

describe('the spool at start-up', () => {
  it('loses the folders of submissions that never became jobs and keeps those of jobs', async () => {
    const dir = await tempDir();
    const dataDir = path.join(dir, 'data');
    const input = path.join(dir, 'in.bin');
    await writeFile(input, Buffer.alloc(4096, 7));
    const first = coordinator(dataDir);
    const client = new TesseraClient({ address: await first.start() });
    cleanups.push(() => client.close());
    // No worker: the job stays queued, its input in the spool.
    const job = await client.submit({ passthrough: {} }, [input]);
    await first.close();
    const jobs = path.join(dataDir, 'spool', 'jobs');
    const kept = await readdir(path.join(jobs, job.id), { recursive: true });
    expect(kept.length).toBeGreaterThan(0);
    // What a SubmitJob cut short by a crash leaves: a job folder holding a part of an input, and no record.
    const orphan = path.join(jobs, '3f0c9a52-5d1e-4c51-9a3e-0c1b1d2e3f40');
    await mkdir(path.join(orphan, 'in'), { recursive: true });
    await mkdir(path.join(orphan, 'st'));
    await writeFile(path.join(orphan, 'in', 'big.bin.1a2b3c4d.tmp'), Buffer.alloc(1 << 20, 1));

    const second = coordinator(dataDir);
    const client2 = new TesseraClient({ address: await second.start() });
    cleanups.push(() => client2.close());
    expect(existsSync(orphan)).toBe(false);
    expect(await readdir(jobs)).toEqual([job.id]);
    expect(await readdir(path.join(jobs, job.id), { recursive: true })).toEqual(kept);
    expect((await client2.getJob(job.id)).state).toBe('JOB_STATE_QUEUED');
  });
});

describe('a data dir moved elsewhere', () => {
  it.each([
    ['', false],
    [', written before the store recorded where it was', true],
  ])('resumes its queued jobs and serves its finished outputs from the new place, also given a relative path%s', async (_what, older) => {
    const root = await tempDir();
    const before = path.join(root, 'before');
    const done = Buffer.from('finished before the move');
    const queued = Buffer.from('queued before the move');
    await writeFile(path.join(root, 'done.bin'), done);
    await writeFile(path.join(root, 'queued.bin'), queued);

    // A job that finishes, then one that waits (no worker), on the data dir at its first place.
    const first = coordinator(before);
    const address = await first.start();
    const client = new TesseraClient({ address });
    cleanups.push(() => client.close());
    const worker = new Worker({ coordinator: address, slots: 1, log, memoryLimitMb: 0, name: 'w1' });
    worker.start();
    const finished = await client.wait((await client.submit({ passthrough: {} }, [path.join(root, 'done.bin')])).id);
    expect(finished.state).toBe('JOB_STATE_SUCCEEDED');
    await worker.close();
    const waiting = await client.submit({ passthrough: {} }, [path.join(root, 'queued.bin')]);
    client.close();
    await first.close();
    if (older) {
      // As a coordinator before schema 2 left it: no record of the spool's place.
      const db = new (createRequire(import.meta.url)('better-sqlite3'))(path.join(before, 'tessera.db'));
      db.exec('DELETE FROM meta');
      db.close();
    }

    // Moved (a new mount point, a restore), and named relative to the working folder.
    const after = path.join(root, 'after');
    await rename(before, after);
    const cwd = process.cwd();
    process.chdir(root);
    let second: Coordinator;
    try {
      second = coordinator('after');
    } finally {
      process.chdir(cwd);
    }
    const address2 = await second.start();
    const client2 = new TesseraClient({ address: address2 });
    cleanups.push(() => client2.close());
    const out = path.join(root, 'out');
    const got = await client2.download(finished.id, out);
    expect(await readFile(got.get('done.bin')!)).toEqual(done);
    const worker2 = new Worker({ coordinator: address2, slots: 1, log, memoryLimitMb: 0, name: 'w2' });
    worker2.start();
    cleanups.push(() => worker2.close());
    const resumed = await client2.wait(waiting.id);
    expect(resumed.state, JSON.stringify(resumed.errors)).toBe('JOB_STATE_SUCCEEDED');
    const got2 = await client2.download(waiting.id, out);
    expect(await readFile(got2.get('queued.bin')!)).toEqual(queued);
  });
});

describe('a data dir moved with a video job planned on it', () => {
  const ffmpeg = (args: string[]): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const ff = spawn('ffmpeg', ['-y', '-v', 'error', ...args], { stdio: 'ignore' });
      ff.on('error', reject);
      ff.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`ffmpeg exited ${code}`))));
    });
  const probe = (file: string): Promise<string> =>
    new Promise<string>((resolve, reject) => {
      const p = spawn('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_type:stream_tags=language', '-of', 'csv=p=0', file], { stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      p.stdout.on('data', (d: Buffer) => (out += d));
      p.on('error', reject);
      p.on('exit', () => resolve(out.trim()));
    });

  it.each([
    // The spooled input itself, its audio track copied into the work folder.
    ['an MP4 whose audio is copied', 'clip.mp4', 'mkv', async (file: string) => {
      await ffmpeg(['-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=25:duration=4', '-f', 'lavfi', '-i', 'sine=f=440:r=48000:duration=4', '-metadata:s:a:0', 'language=fra',
        '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '25', '-c:a', 'aac', '-shortest', file]);
    }],
    // Two captures joined (its clock jumps), a silent track first: the plan is made from a copy in
    // the work folder whose streams are numbered apart from the source's (review s57: read from the
    // source instead, its audio copy failed and its language went to the wrong track).
    ['a joined MPEG-TS, a silent track before the sound', 'joined.ts', 'mp4', async (file: string) => {
      const part = `${file}.part.ts`;
      await ffmpeg(['-f', 'lavfi', '-i', 'testsrc2=s=96x64:r=25:d=2', '-f', 'lavfi', '-i', 'sine=d=2', '-f', 'lavfi', '-i', 'anullsrc,atrim=end_sample=0',
        '-map', '0:v', '-map', '2:a', '-map', '1:a', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '25', '-c:a', 'aac', '-metadata:s:a:0', 'language=deu', '-metadata:s:a:1', 'language=fra', '-f', 'mpegts', part]);
      const bytes = await readFile(part);
      await writeFile(file, Buffer.concat([bytes, bytes]));
    }],
  ] as const)('stitches %s where the data dir is now: the plan kept beside its scratch files follows the move', async (_what, name, container, make) => {
    // The video kind keeps plan-time facts (the source planned from, the copied audio track) in a
    // file of the job's work folder, which the store's rewrite of paths did not reach: the merge
    // looked for the old paths and failed the job as INVALID_ARGUMENT naming the client's file.
    const root = await tempDir();
    const clip = path.join(root, name);
    await make(clip);
    const before = path.join(root, 'before');
    const first = coordinator(before);
    const client = new TesseraClient({ address: await first.start() });
    cleanups.push(() => client.close());
    // Planned (its audio copied out, its segments made, the plan kept) with no worker to run them yet.
    const job = await client.submit({ video: { codec: 'h264', preset: 'ultrafast', audio_codec: 'copy', segment_seconds: 1, container } }, [clip]);
    const plan = path.join(before, 'spool', 'jobs', job.id, 'work', 'video-plan.json');
    for (let i = 0; !existsSync(plan); i++) {
      expect(i, `job ${job.id} was never planned: ${(await client.getJob(job.id)).message}`).toBeLessThan(300);
      await new Promise((r) => setTimeout(r, 100));
    }
    client.close();
    await first.close();

    const after = path.join(root, 'after');
    await rename(before, after);
    const second = coordinator(after);
    const client2 = new TesseraClient({ address: await second.start() });
    cleanups.push(() => client2.close());
    const worker = new Worker({ coordinator: second.address, slots: 2, log, memoryLimitMb: 0, name: 'w-video' });
    worker.start();
    cleanups.push(() => worker.close());
    const done = await client2.wait(job.id);
    expect(done.state, JSON.stringify(done.errors)).toBe('JOB_STATE_SUCCEEDED');
    const got = await client2.download(job.id, path.join(root, 'out'));
    // The picture and the sound, with its language (MP4 writes "und" for a picture without one).
    expect((await probe(got.values().next().value!)).split('\n').map((l) => l.replace(/^video.*/, 'video')).sort()).toEqual(['audio,fra', 'video']);
  });
});

describe('a data dir this process cannot write', () => {
  it('is refused at start with a message naming it and the user', async () => {
    const parent = await tempDir();
    const dataDir = path.join(parent, 'not-mine');
    await mkdir(dataDir);
    // Its parent may be entered by anyone; the dir itself stays root's (0755).
    const { chmod } = await import('node:fs/promises');
    await chmod(parent, 0o755);
    // A coordinator running as another user than the data dir's owner (as a non-root container
    // meets a volume written by a root image).
    const child = spawn(process.execPath, [CLI_PATH, 'coordinator', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--http', 'off'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      uid: 65534,
      gid: 65534,
      env: { ...process.env, TESSERA_LOG_LEVEL: 'error' },
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    expect(code).not.toBe(0);
    expect(stderr).toContain(`data dir ${dataDir} is not writable by this process (uid 65534)`);
  });
});

describe('a damaged job store', () => {
  it.each([
    ['not a database at all', 'file is not a database'],
    ['a real store with pages overwritten', 'database disk image is malformed'],
  ])('%s is refused at start naming the file and what to do, not in SQLite\'s words alone', async (what, sqlite) => {
    const dataDir = path.join(await tempDir(), 'data');
    const file = path.join(dataDir, 'tessera.db');
    if (sqlite === 'file is not a database') {
      await mkdir(dataDir, { recursive: true });
      await writeFile(file, Buffer.alloc(8192, 0x5a));
    } else {
      // A store with jobs on record, then part of it overwritten while the coordinator is stopped.
      const first = coordinator(dataDir);
      await first.start();
      const client = new TesseraClient({ address: first.address });
      for (let i = 0; i < 20; i++) await client.submit({ label: `job ${i} ${'x'.repeat(200)}`, passthrough: { subtasks: 1 } }, []);
      client.close();
      await first.close();
      const bytes = await readFile(file);
      bytes.fill(0x5a, 4096, bytes.length - 4096);
      await writeFile(file, bytes);
      await rm(`${file}-wal`, { force: true });
    }
    const err = await startError(coordinator(dataDir));
    expect(err?.message).toBe(`the job store ${file} is damaged (SQLite: ${sqlite}): restore it, with its -wal file, from a backup taken while the coordinator was stopped, or move the data dir aside to start with no jobs (the jobs on record and their spooled files are then not resumed)`);
  });
});
