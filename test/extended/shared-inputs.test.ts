/**
 * Inputs by reference (`coordinator --shared-root`, `submit --shared`) on real clusters: files on
 * shared storage are processed in place (nothing uploaded, nothing streamed to a worker that sees
 * them); references the coordinator may not read are refused with the right status, naming the
 * input; a file changed after submission is refused rather than processed; a worker that does not
 * see the shared folder (its own mount namespace) is streamed the bytes instead.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, realpath, rm, symlink, writeFile, appendFile, link } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawSubmit } from '../helpers/raw-grpc.js';
import { errorInput } from '../../shared/errors.js';
import { startCluster, workerWithTmpfsOver, type TestCluster } from '../helpers/cluster.js';

let dir: string;
let shared: string;
let outside: string;
const clusters: TestCluster[] = [];

const sha = async (file: string): Promise<string> => createHash('sha256').update(await readFile(file)).digest('hex');

const served = (cluster: TestCluster): Promise<number> => cluster.metric('tessera_task_input_bytes_served_total');

async function cluster(opts: Parameters<typeof startCluster>[0]): Promise<TestCluster> {
  const c = await startCluster(opts);
  clusters.push(c);
  return c;
}

beforeAll(async () => {
  dir = await realpath(await mkdtemp(path.join(os.tmpdir(), 'tessera-shared-')));
  shared = path.join(dir, 'shared');
  outside = path.join(dir, 'outside');
  await mkdir(path.join(shared, 'photos'), { recursive: true });
  await mkdir(outside);
  for (let i = 0; i < 3; i++) {
    await sharp({ create: { width: 320, height: 240, channels: 3, background: { r: 40 * i, g: 120, b: 200 } } }).jpeg().toFile(path.join(shared, 'photos', `p${i}.jpg`));
  }
  await writeFile(path.join(outside, 'secret.bin'), 'not yours');
  await symlink(path.join(outside, 'secret.bin'), path.join(shared, 'link-out.bin'));
  // A hard link: the same file under a name inside the shared folder, which realpath cannot see through.
  await link(path.join(outside, 'secret.bin'), path.join(shared, 'hard-out.bin'));
});

afterAll(async () => {
  await Promise.all(clusters.map((c) => c.stop()));
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('inputs by reference', () => {
  it('processes shared files in place: nothing uploaded, nothing streamed to the worker, sources untouched', async () => {
    const c = await cluster({ workers: 1, coordinatorArgs: ['--shared-root', shared] });
    const photos = (await readdir(path.join(shared, 'photos'))).sort().map((f) => path.join(shared, 'photos', f));
    const before = await Promise.all(photos.map(sha));
    const servedBefore = await served(c);
    const out = path.join(dir, 'out-cli');
    const r = await c.runCli(['submit', 'image', ...photos, '--shared', '--width', '64', '--format', 'webp', '-o', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const job = JSON.parse(r.stdout) as { id: string; state: string; inputs: { name: string; shared_path: string; sha256: string }[] };
    expect(job.inputs.map((i) => i.shared_path).sort()).toEqual(photos);
    for (const f of await readdir(out)) expect((await sharp(path.join(out, f)).metadata()).width).toBe(64);
    expect((await readdir(out)).sort()).toEqual(['p0.webp', 'p1.webp', 'p2.webp']);
    // The worker read the files where they lie, and the coordinator kept no copy of them.
    expect((await served(c)) - servedBefore).toBe(0);
    // (A finished job's spool input folder is removed; it never held a copy of these.)
    expect(await readdir(path.join(c.dataDir, 'spool', 'jobs', job.id, 'in')).catch(() => [])).toEqual([]);
    expect(job.inputs.every((i) => i.shared_path !== '')).toBe(true);
    expect(await Promise.all(photos.map(sha))).toEqual(before);
  });

  it('refuses what the coordinator may not read, with the status and a message naming the input', async () => {
    const c = await cluster({ workers: 0, coordinatorArgs: ['--shared-root', shared] });
    const spec = { passthrough: {} };
    const cases: [string, string, grpc.status, RegExp][] = [
      ['outside.bin', path.join(outside, 'secret.bin'), grpc.status.PERMISSION_DENIED, /input outside\.bin: .*outside the coordinator's shared folders/],
      ['link.bin', path.join(shared, 'link-out.bin'), grpc.status.PERMISSION_DENIED, /input link\.bin: .*outside the coordinator's shared folders/],
      ['dots.bin', `${shared}/../outside/secret.bin`, grpc.status.PERMISSION_DENIED, /input dots\.bin: .*outside/],
      ['gone.bin', path.join(shared, 'gone.bin'), grpc.status.NOT_FOUND, /input gone\.bin: shared path .* does not exist/],
      ['folder', path.join(shared, 'photos'), grpc.status.INVALID_ARGUMENT, /input folder: .*not a regular file/],
      ['rel.jpg', 'photos/p0.jpg', grpc.status.INVALID_ARGUMENT, /input rel\.jpg: shared path photos\/p0\.jpg is not absolute/],
      ['ctl.jpg', `${shared}/photos/p0.jpg\u0000.txt`, grpc.status.INVALID_ARGUMENT, /input ctl\.jpg: shared path ".*\\u0000\.txt" contains control characters/],
    ];
    for (const [name, p, code, message] of cases) {
      const err = await rawSubmit(c.address, [{ spec }, { input: { name, shared_path: p } }]);
      expect(err?.code, `${name}: ${err?.details}`).toBe(code);
      expect(err?.details).toMatch(message);
    }
    // Bytes after a reference are a malformed request.
    const err = await rawSubmit(c.address, [{ spec }, { input: { name: 'p0.jpg', shared_path: path.join(shared, 'photos', 'p0.jpg') } }, { data: Buffer.from('x') }]);
    expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err?.details).toMatch(/input p0\.jpg is submitted by reference .*no data may follow/);
    // Nothing was accepted, and the coordinator goes on serving.
    expect(await c.client.listJobs()).toEqual([]);

    // A coordinator without --shared-root takes no references at all.
    const closed = await cluster({ workers: 0 });
    const refused = await rawSubmit(closed.address, [{ spec }, { input: { name: 'p0.jpg', shared_path: path.join(shared, 'photos', 'p0.jpg') } }]);
    expect(refused?.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(refused?.details).toMatch(/input p0\.jpg: submitted by reference .* start it with --shared-root/);
  });

  it('refuses a hard link under the shared folder (which may be a file from outside it) unless --shared-root-allow-hardlinks is given', async () => {
    const hard = path.join(shared, 'hard-out.bin');
    const c = await cluster({ workers: 1, coordinatorArgs: ['--shared-root', shared] });
    const err = await rawSubmit(c.address, [{ spec: { passthrough: {} } }, { input: { name: 'hard-out.bin', shared_path: hard } }]);
    expect(err?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(err?.details).toBe(
      `input hard-out.bin: shared path ${hard} is a file with 2 names (hard links), and the coordinator cannot tell whether the others lie outside its shared folders: submit a copy, or start the coordinator with --shared-root-allow-hardlinks where hard links under the shared folders are made on purpose`,
    );
    expect(errorInput(err)).toBe('hard-out.bin');
    // The CLI says the same, and nothing of the file comes out.
    const out = path.join(dir, 'out-hard');
    const cli = await c.runCli(['submit', 'passthrough', '--shared', hard, '-o', out]);
    expect(cli.code, cli.stderr).not.toBe(0);
    expect(cli.stderr).toContain('PERMISSION_DENIED');
    expect(cli.stderr).toContain('--shared-root-allow-hardlinks');
    expect(await c.client.listJobs()).toEqual([]);

    // A site that links on purpose allows it (the flag, its variable or its config key).
    const allowing = await cluster({ workers: 1, coordinatorArgs: ['--shared-root', shared], env: { TESSERA_SHARED_ROOT_ALLOW_HARDLINKS: '1' } });
    const r = await allowing.runCli(['submit', 'passthrough', '--shared', hard, '-o', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(path.join(out, 'hard-out.bin'), 'utf8')).toBe('not yours');
  });

  it('fails a job whose folder a restarted coordinator no longer shares, saying so (not that the file changed)', async () => {
    const file = path.join(shared, 'unshared.bin');
    await writeFile(file, randomBytes(1000));
    const args = ['--shared-root', shared];
    const c = await cluster({ workers: 0, coordinatorArgs: args });
    const job = await c.client.submit({ passthrough: {} }, [file], { shared: true });
    for (const until = Date.now() + 30_000; (await c.client.getJob(job.id)).subtasks.length === 0; ) {
      if (Date.now() > until) throw new Error('the job was not planned within 30 s');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    // Restarted on the same data dir without the --shared-root (the cluster reads its arguments again).
    c.coordinator!.child.kill('SIGTERM');
    await c.coordinator!.exited;
    args.length = 0;
    await c.startCoordinator();
    const done = await c.client.wait(job.id);
    expect(done.state, JSON.stringify(done)).toBe('JOB_STATE_FAILED');
    expect(done.message).toBe(`FAILED_PRECONDITION: input unshared.bin: the shared file ${file} is no longer inside this coordinator's shared folders: it shares no folder now (started without --shared-root); start it with the folder in --shared-root and submit the job again`);
  });

  it('refuses a file changed after submission rather than process it', async () => {
    const file = path.join(shared, 'changing.bin');
    await writeFile(file, randomBytes(100_000));
    const c = await cluster({ workers: 0, coordinatorArgs: ['--shared-root', shared] });
    const job = await c.client.submit({ passthrough: {} }, [file], { shared: true });
    // Changed once the job is planned, so that the worker is the one to find it: the planner checks
    // the file too, and a change it sees fails the job before any subtask exists.
    for (const until = Date.now() + 30_000; (await c.client.getJob(job.id)).subtasks.length === 0; ) {
      if (Date.now() > until) throw new Error('the job was not planned within 30 s');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await appendFile(file, 'more');
    c.startWorker();
    const done = await c.client.wait(job.id);
    expect(done.state).toBe('JOB_STATE_FAILED');
    expect(done.errors[0]).toMatchObject({ input: 'changing.bin', code: 'FAILED_PRECONDITION' });
    expect(done.errors[0]!.message).toMatch(/changing\.bin: the shared file .* changed after the job was submitted/);
    // Refused, not retried: one attempt.
    expect(done.subtasks.map((s) => s.attempt)).toEqual([1]);
  });

  it('streams the bytes to a worker that does not see the shared folder', async () => {
    const file = path.join(shared, 'blob.bin');
    await writeFile(file, randomBytes(3 * 1024 * 1024 + 17));
    const c = await cluster({ workers: 0, coordinatorArgs: ['--shared-root', shared] });
    // A worker in its own mount namespace, with an empty tmpfs over the shared folder.
    const worker = workerWithTmpfsOver(shared, c.address, 'elsewhere');
    try {
      await c.waitForWorkers(1);
      const servedBefore = await served(c);
      const job = await c.client.submit({ passthrough: {} }, [file], { shared: true });
      const done = await c.client.wait(job.id);
      expect(done.state, JSON.stringify(done.errors)).toBe('JOB_STATE_SUCCEEDED');
      expect(done.subtasks[0]!.worker).toBe('elsewhere');
      const written = await c.client.download(job.id, path.join(dir, 'out-stream'));
      expect(await sha(written.get('blob.bin')!)).toBe(await sha(file));
      expect((await served(c)) - servedBefore).toBe(3 * 1024 * 1024 + 17);
    } finally {
      await worker.stop();
    }
  });
});
