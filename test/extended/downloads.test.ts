/**
 * Where downloads write. An output never replaces a file that is already in the folder unless the
 * caller asks for it (`overwrite`, `--overwrite`), never the job's own inputs, and never writes
 * through a link (symbolic or hard) left at its part file (`.NAME.tessera-part`); a file that already holds the output's bytes counts as
 * downloaded, so running a download again finishes what an earlier one started.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { link, lstat, mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_PATH, runCli, startCluster, type TestCluster } from '../helpers/cluster.js';
import { partName } from '../../client/client.js';
import { settledCalls } from '../helpers/calls.js';
import { rawDownload, rawJobService } from '../helpers/raw-grpc.js';

let cluster: TestCluster;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-downloads-'));
  cluster = await startCluster({ workers: 1, slots: 2 });
});

afterAll(async () => {
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A finished passthrough job over files of these sizes (named `NAME.bin`); returns its id and the bytes. */
async function passthrough(tag: string, sizes: Record<string, number>): Promise<{ id: string; bytes: Map<string, Buffer> }> {
  const src = await mkdtemp(path.join(dir, `${tag}-src-`));
  const bytes = new Map<string, Buffer>();
  const files: string[] = [];
  for (const [name, size] of Object.entries(sizes)) {
    const b = randomBytes(size);
    bytes.set(name, b);
    files.push(path.join(src, name));
    await writeFile(files.at(-1)!, b);
  }
  const job = await cluster.client.submit({ passthrough: {} }, files);
  const done = await cluster.client.wait(job.id);
  expect(done.state).toBe('JOB_STATE_SUCCEEDED');
  return { id: job.id, bytes };
}

describe('downloads', () => {
  it('keep a different file under an output name unless asked to replace it', async () => {
    // One output comes inside its event (small), the other is streamed (over 1 MiB).
    const { id, bytes } = await passthrough('keep', { 'small.bin': 10_000, 'large.bin': 3 * 2 ** 20 });
    for (const name of ['small.bin', 'large.bin']) {
      const out = await mkdtemp(path.join(dir, 'keep-out-'));
      const mine = path.join(out, name);
      await writeFile(mine, 'my own notes');
      const err = (await cluster.client.collect(id, out).then(() => undefined, (e: unknown) => e)) as grpc.ServiceError;
      expect(err.code).toBe(grpc.status.ALREADY_EXISTS);
      expect(err.message).toContain(mine);
      expect(err.message).toContain('--overwrite');
      expect(await readFile(mine, 'utf8')).toBe('my own notes');
      // No part file is left behind.
      expect((await readdir(out)).filter((f) => f.endsWith('.tessera-part'))).toEqual([]);

      const { paths } = await cluster.client.collect(id, out, { overwrite: true });
      expect(sha(await readFile(paths.get(name)!))).toBe(sha(bytes.get(name)!));
    }
  });

  it('count a file that already holds the output as downloaded: a second run finishes the first', async () => {
    const { id, bytes } = await passthrough('again', { 'a.bin': 5_000, 'b.bin': 2 * 2 ** 20 });
    const out = path.join(dir, 'again-out');
    await mkdir(out);
    // An earlier run wrote one of them.
    await writeFile(path.join(out, 'a.bin'), bytes.get('a.bin')!);
    const first = await cluster.client.download(id, out);
    const second = await cluster.client.download(id, out);
    for (const paths of [first, second]) {
      expect([...paths.keys()].sort()).toEqual(['a.bin', 'b.bin']);
      for (const [name, p] of paths) expect(sha(await readFile(p))).toBe(sha(bytes.get(name)!));
    }
  });

  it('never write through a link left at the part name: the link goes, the download goes on', async () => {
    const { id, bytes } = await passthrough('link', { 'small.bin': 10_000, 'large.bin': 3 * 2 ** 20 });
    for (const name of ['small.bin', 'large.bin']) {
      for (const kind of ['symbolic', 'hard'] as const) {
        const out = await mkdtemp(path.join(dir, 'link-out-'));
        const victim = path.join(dir, `victim-${kind}-${name}.txt`);
        await writeFile(victim, 'precious');
        const part = partName(path.join(out, name));
        await (kind === 'symbolic' ? symlink(victim, part) : link(victim, part));
        const { paths } = await cluster.client.collect(id, out);
        expect(await readFile(victim, 'utf8'), `${kind} link at ${part}`).toBe('precious');
        const st = await lstat(paths.get(name)!);
        expect(st.isFile() && st.nlink === 1).toBe(true);
        expect(sha(await readFile(paths.get(name)!))).toBe(sha(bytes.get(name)!));
      }
    }
  });

  it('leave a file of the user\'s named NAME.part alone: only Tessera\'s own .NAME.tessera-part is a download\'s', async () => {
    const { id, bytes } = await passthrough('userpart', { x: 3000, 'small.bin': 10 });
    const out = await mkdtemp(path.join(dir, 'userpart-out-'));
    await writeFile(path.join(out, 'x.part'), 'my own file');
    await writeFile(path.join(out, 'small.bin.part'), 'another of mine');
    const paths = await cluster.client.download(id, out);
    expect(sha(await readFile(paths.get('x')!))).toBe(sha(bytes.get('x')!));
    expect(await readFile(path.join(out, 'x.part'), 'utf8')).toBe('my own file');
    expect(await readFile(path.join(out, 'small.bin.part'), 'utf8')).toBe('another of mine');
    // A folder under an output's name is said to be one, also with overwrite.
    const withFolder = await mkdtemp(path.join(dir, 'folder-out-'));
    await mkdir(path.join(withFolder, 'x'));
    const err = (await cluster.client.download(id, withFolder, { overwrite: true }).then(() => undefined, (e: unknown) => e)) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(err.message).toContain(`${path.join(withFolder, 'x')} is a folder`);
  });

  it('never have an output named like another one\'s part file: such a name is refused at submission', async () => {
    // A download writes output "a" through ".a.tessera-part": an input of that name would mix their bytes.
    const src = await mkdtemp(path.join(dir, 'part-src-'));
    for (const name of ['a', '.a.tessera-part']) await writeFile(path.join(src, name), randomBytes(10));
    const err = (await cluster.client.submit({ passthrough: {} }, [path.join(src, 'a'), path.join(src, '.a.tessera-part')]).then(() => undefined, (e: unknown) => e)) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.message).toMatch(/"\.a\.tessera-part" is reserved: names starting with \.tessera- or ending with \.tessera-part are Tessera's temporary files/);
  });

  it('refuse a name the job has no output of with NOT_FOUND, naming it and some of the outputs, before writing anything', async () => {
    const sizes = Object.fromEntries(['a', 'b', 'c', 'd', 'e', 'f', 'g'].map((n) => [`${n}.bin`, 100]));
    const { id } = await passthrough('names', sizes);
    const out = path.join(dir, 'names-out');
    const err = (await cluster.client.download(id, out, { names: ['nope.webp'] }).then(() => undefined, (e: unknown) => e)) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.NOT_FOUND);
    expect(err.message).toBe(`job ${id} (succeeded) has no output named "nope.webp"; its outputs: "a.bin", "b.bin", "c.bin", "d.bin", "e.bin" and 2 more`);
    // One unknown name among known ones: nothing is downloaded, the folder is not made.
    const mixed = (await cluster.client.download(id, out, { names: ['a.bin', 'x', 'y'] }).then(() => undefined, (e: unknown) => e)) as grpc.ServiceError;
    expect(mixed.code).toBe(grpc.status.NOT_FOUND);
    expect(mixed.message).toContain('has no outputs named "x", "y";');
    await expect(lstat(out)).rejects.toMatchObject({ code: 'ENOENT' });

    // The CLI: the same message, and exit 2 as for a job id the coordinator does not know.
    const cli = await cluster.runCli(['download', id, '-o', out, '--name', 'nope.webp', '--json']);
    expect(cli.code, cli.stderr).toBe(2);
    expect(cli.stderr).toContain(`tessera: NOT_FOUND: job ${id} (succeeded) has no output named "nope.webp"; its outputs: "a.bin"`);
    // With --json, the same error on stdout as one object.
    expect(JSON.parse(cli.stdout)).toEqual({ error: { code: 'NOT_FOUND', message: expect.stringMatching(new RegExp(`^job ${id} \\(succeeded\\) has no output named "nope\\.webp"; its outputs: "a\\.bin"`)) } });
    await expect(lstat(out)).rejects.toMatchObject({ code: 'ENOENT' });
    const unknownJob = await cluster.runCli(['download', 'no-such-job', '-o', out]);
    expect(unknownJob.code, unknownJob.stderr).toBe(2);
    expect(unknownJob.stderr).toContain('NOT_FOUND');
  });

  it('readOutput streams an output whole or from an offset, checked, and refuses a name or offset the job has not', async () => {
    const { id, bytes } = await passthrough('stream', { 'streamed.bin': 5 * 2 ** 20 + 123 });
    const want = bytes.get('streamed.bin')!;
    const read = async (opts: { offset?: number } = {}): Promise<Buffer> => {
      const parts: Buffer[] = [];
      for await (const chunk of cluster.client.readOutput(id, 'streamed.bin', opts)) parts.push(chunk);
      return Buffer.concat(parts);
    };
    expect(sha(await read())).toBe(sha(want));
    expect(sha(await read({ offset: 3_000_001 }))).toBe(sha(want.subarray(3_000_001)));
    expect((await read({ offset: want.length })).length).toBe(0);
    // A loop left early ends its call: the next read is served as usual.
    for await (const chunk of cluster.client.readOutput(id, 'streamed.bin')) {
      expect(chunk.length).toBeGreaterThan(0);
      break;
    }
    expect(sha(await read())).toBe(sha(want));
    // Past the end is OUT_OF_RANGE, as the server says it (the library said INVALID_ARGUMENT).
    await expect(read({ offset: want.length + 1 })).rejects.toMatchObject({ code: grpc.status.OUT_OF_RANGE, message: expect.stringContaining(`offset ${want.length + 1} is past the end of streamed.bin (${want.length} bytes)`) });
    await expect(read({ offset: -1 })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, message: expect.stringContaining('offset: -1 is not a whole number of bytes, 0 or more') });
    await expect((async () => {
      for await (const _ of cluster.client.readOutput(id, 'nothing.bin')) void _;
    })()).rejects.toMatchObject({ code: grpc.status.NOT_FOUND, message: expect.stringContaining('no output named "nothing.bin"') });
    // No name at all is a malformed request, as an empty job id is.
    expect((await rawDownload(cluster.address, id, '')).err).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(/^name is empty: name the output/) });
  });

  it('report each streamed output\'s bytes as they come (onProgress), up to its size', async () => {
    const { id } = await passthrough('progress', { 'big.bin': 4 * 2 ** 20 + 5, 'tiny.bin': 100 });
    const seen: Array<{ name: string; bytes: number; size: number }> = [];
    const out = await mkdtemp(path.join(dir, 'progress-out-'));
    await cluster.client.download(id, out, { onProgress: (p) => seen.push(p) });
    const big = seen.filter((p) => p.name === 'big.bin');
    expect(big.length).toBeGreaterThan(1);
    expect(big.map((p) => p.bytes)).toEqual([...big.map((p) => p.bytes)].sort((a, b) => a - b));
    expect(big.at(-1)).toEqual({ name: 'big.bin', bytes: 4 * 2 ** 20 + 5, size: 4 * 2 ** 20 + 5 });
  });

  it('answer an offset at the end with the digest alone, and one past it with OUT_OF_RANGE naming both sizes', async () => {
    const { id, bytes } = await passthrough('offsets', { 'o.bin': 5000 });
    const stub = rawJobService(cluster.address);
    try {
      const chunks = (offset: number): Promise<{ chunks: { data: Buffer; offset: string; sha256: string }[]; err?: grpc.ServiceError }> =>
        new Promise((resolve) => {
          const got: { data: Buffer; offset: string; sha256: string }[] = [];
          const call = stub.DownloadOutput({ job_id: id, name: 'o.bin', offset: String(offset) });
          call.on('data', (c: { data: Buffer; offset: string; sha256: string }) => got.push(c));
          call.on('error', (err: grpc.ServiceError) => resolve({ chunks: got, err }));
          call.on('end', () => resolve({ chunks: got }));
        });
      const atEnd = await chunks(5000);
      expect(atEnd.err).toBeUndefined();
      expect(atEnd.chunks).toMatchObject([{ offset: '5000', sha256: sha(bytes.get('o.bin')!) }]);
      expect(atEnd.chunks[0]!.data.length).toBe(0);
      const past = await chunks(5001);
      expect(past.err?.code).toBe(grpc.status.OUT_OF_RANGE);
      expect(past.err?.details).toBe('offset 5001 is past the end of o.bin (5000 bytes)');
    } finally {
      stub.close();
    }
  });

  it('look for named outputs of a running job once it has ended: published ones are downloaded, the others are NOT_FOUND then (FAILED_PRECONDITION while it runs)', async () => {
    const src = await mkdtemp(path.join(dir, 'running-src-'));
    const file = path.join(src, 'real.bin');
    const bytes = randomBytes(2000);
    await writeFile(file, bytes);
    // Long enough that both looks below come while it runs, on a busy machine too.
    const job = await cluster.client.submit({ passthrough: { work_ms: 4000 } }, [file]);
    // The library's download and readOutput look at the outputs published so far, and say so, with
    // the coordinator's own code for a name not published yet: it may still come.
    const early = (await cluster.client.download(job.id, path.join(dir, 'running-early'), { names: ['later.bin'] }).then(() => undefined, (e: unknown) => e)) as grpc.ServiceError;
    expect(early.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(early.message).toMatch(/has no output named "later\.bin" yet; (it has none yet|its outputs so far: )/);
    const read = (await (async () => {
      for await (const _ of cluster.client.readOutput(job.id, 'later.bin')) void _;
    })().then(() => undefined, (e: unknown) => e)) as grpc.ServiceError;
    expect(read.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(read.message).toMatch(/has no output named "later\.bin" yet/);
    // The CLI waits for the end before it looks.
    const good = path.join(dir, 'running-good');
    const bad = path.join(dir, 'running-bad');
    const [found, missing] = await Promise.all([
      cluster.runCli(['download', job.id, '-o', good, '--name', 'real.bin', '--json']),
      cluster.runCli(['download', job.id, '-o', bad, '--name', 'real.bin', '--name', 'later.bin', '--json']),
    ]);
    expect(found.code, found.stderr).toBe(0);
    expect(sha(await readFile(path.join(good, 'real.bin')))).toBe(sha(bytes));
    expect(missing.code, missing.stderr).toBe(2);
    expect(missing.stderr).toContain(`NOT_FOUND: job ${job.id} (succeeded) has no output named "later.bin"; its outputs: "real.bin"`);
    await expect(lstat(bad)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('tessera submit never replaces its own input, even with --overwrite, and says how to fetch the outputs', async () => {
    const folder = await mkdtemp(path.join(dir, 'cli-'));
    const photo = path.join(folder, 'a.jpg');
    await sharp({ create: { width: 64, height: 48, channels: 3, background: '#369' } }).jpeg().toFile(photo);
    const original = sha(await readFile(photo));
    const kept = await cluster.runCli(['submit', 'image', '--width', '32', photo, '-o', folder, '--no-progress']);
    expect(kept.code).toBe(1);
    expect(kept.stderr).toContain("is one of the job's inputs");
    expect(kept.stderr).toMatch(/tessera download [0-9a-f-]+ --coordinator \S+ -o DIR/);
    const forced = await cluster.runCli(['submit', 'image', '--width', '32', photo, '-o', folder, '--overwrite', '--no-progress']);
    expect(forced.code).toBe(1);
    expect(forced.stderr).toContain("is one of the job's inputs");
    expect(sha(await readFile(photo))).toBe(original);
    // Into another folder, or that one after the input moved away, it goes through.
    const elsewhere = await cluster.runCli(['submit', 'image', '--width', '32', photo, '-o', path.join(folder, 'small'), '--no-progress']);
    expect(elsewhere.code).toBe(0);
    expect((await sharp(path.join(folder, 'small', 'a.jpg')).metadata()).width).toBe(32);
  });

  it('into a folder that fills up: RESOURCE_EXHAUSTED naming the file, what came kept as the part file, and the next download there finishes', async () => {
    // Larger than the stream's flow-control window and the writes in flight: the coordinator is still
    // sending when the disk fills.
    const { id, bytes } = await passthrough('full', { 'big.bin': 40 * 2 ** 20 });
    // A 2 MiB tmpfs (the tests run as root, as CI does): the output's writes fail part-way.
    const out = path.join(dir, 'full-out');
    await mkdir(out);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', out]);
    try {
      const err = (await cluster.client.download(id, out).then(() => undefined, (e: unknown) => e)) as grpc.ServiceError;
      expect(err.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(err.message).toContain(path.join(out, 'big.bin'));
      expect(err.message).toMatch(/ENOSPC/);
      // The download's call ended with it (it stayed open, the coordinator sending, until its deadline).
      expect(await settledCalls(cluster.client)).toBe(0);
      expect(await readdir(out)).toEqual([partName('big.bin')]);
      const kept = (await lstat(path.join(out, partName('big.bin')))).size;
      expect(kept).toBeGreaterThan(0);
      expect(kept).toBeLessThanOrEqual(2 * 2 ** 20);
      // Room again: the next download resumes from the part file.
      execFileSync('mount', ['-o', 'remount,size=48m', out]);
      const paths = await cluster.client.download(id, out);
      expect(sha(await readFile(paths.get('big.bin')!))).toBe(sha(bytes.get('big.bin')!));
      expect(await readdir(out)).toEqual(['big.bin']);
    } finally {
      execFileSync('umount', [out]);
    }
  });

  it('tessera submit and download refuse an -o that cannot be a folder at once, and give absolute paths', async () => {
    const { id } = await passthrough('paths', { 'p.bin': 1000 });
    const src = await mkdtemp(path.join(dir, 'paths-in-'));
    const input = path.join(src, 'in.bin');
    await writeFile(input, randomBytes(3 * 2 ** 20));
    const before = (await cluster.client.listJobs({ limit: 1000 })).length;
    // A file where the folder should be: a usage error before the upload (it came after the whole job).
    for (const o of [input, path.join(input, 'below')]) {
      const r = await cluster.runCli(['submit', 'passthrough', input, '-o', o, '--no-progress']);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(`tessera: -o ${o}: cannot write the outputs there (`);
      expect(r.stderr).toContain('is a file, not a folder)');
      const d = await cluster.runCli(['download', id, '-o', o]);
      expect(d.code, d.stderr).toBe(2);
    }
    expect((await cluster.client.listJobs({ limit: 1000 })).length).toBe(before);
    // A folder that is not there yet is fine, and not made by a command that fails first.
    expect((await cluster.runCli(['download', 'no-such-job', '-o', path.join(src, 'never')])).code).toBe(2);
    expect(await readdir(src)).toEqual(['in.bin']);
    // Paths printed and in --json are absolute, given a relative -o, in download as in submit.
    const d = await runCli(['download', id, '-o', 'rel-out', '--json', '--coordinator', cluster.address], { cwd: src });
    expect(d.code, d.stderr).toBe(0);
    expect((JSON.parse(d.stdout) as { outputs: { path: string }[] }).outputs.map((o) => o.path)).toEqual([path.join(src, 'rel-out', 'p.bin')]);
  });

  it("tessera download and watch show a job's progress from when they started, not its replayed past", async () => {
    // A finished job: its events are all past; what it was is the summary.
    const { id } = await passthrough('past', { 'a.bin': 1000, 'b.bin': 1000 });
    for (const args of [['download', id, '-o', path.join(dir, 'past-out')], ['watch', id]]) {
      const r = await cluster.runCli(args);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr.split('\n').filter((l) => l.startsWith('progress')), args[0]).toEqual([]);
      expect(r.stdout, args[0]).toContain('succeeded');
    }
    // A running job: what happens while the download runs is shown (10 s of subtasks on 2 slots,
    // so that a slow host's CLI still starts while it runs).
    const src = path.join(dir, 'running.bin');
    await writeFile(src, randomBytes(1000));
    const job = await cluster.client.submit({ passthrough: { subtasks: 20, work_ms: 1000 } }, [src]);
    const r = await cluster.runCli(['download', job.id, '-o', path.join(dir, 'running-out')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr.split('\n').filter((l) => l.startsWith('progress')).at(-1)).toMatch(/^progress 100% /);
  });

  it('tessera demo -o replaces only its own earlier outputs, and leaves what else is in the folder alone', async () => {
    const out = await mkdtemp(path.join(dir, 'demo-'));
    await writeFile(path.join(out, 'notes.txt'), 'mine');
    await mkdir(path.join(out, 'keep'));
    // Three images, then one: the folder holds the last run's outputs, not the first run's too.
    // The second run in a shell set up for a real cluster: a worker's config file, TLS and a token.
    // Its private cluster took them (the coordinator refused the file's keys, the workers dialled
    // with TLS) and the demo failed ("exited with 2", nothing more).
    const config = path.join(dir, 'worker.yaml');
    await writeFile(config, 'slots: 4\nlabel: [zone=a]\n');
    const shell = { TESSERA_CONFIG: config, TESSERA_TLS: '1', TESSERA_TOKEN: 'a-token-of-a-real-cluster-0123456789' };
    for (const images of ['3', '1']) {
      const r = await runCli(['demo', '-o', out, '--images', images], { timeoutMs: 120_000, ...(images === '1' && { env: shell }) });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`outputs written to ${out} (${images} files)`);
    }
    // What it wrote is listed beside it, for the next run to know its own.
    expect((await readdir(out)).sort()).toEqual(['.tessera-demo.json', 'keep', 'notes.txt', 'sample-01.webp']);
    expect(Object.keys((JSON.parse(await readFile(path.join(out, '.tessera-demo.json'), 'utf8')) as { outputs: object }).outputs)).toEqual(['sample-01.webp']);
    expect(await readFile(path.join(out, 'notes.txt'), 'utf8')).toBe('mine');
    // A file of the user's under a demo output's name is not replaced (it was, silently).
    const theirs = await mkdtemp(path.join(dir, 'demo-theirs-'));
    await writeFile(path.join(theirs, 'sample-01.webp'), 'my own picture');
    const r = await runCli(['demo', '-o', theirs, '--images', '1'], { timeoutMs: 120_000 });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`${path.join(theirs, 'sample-01.webp')} already exists and is not an earlier demo's output: kept (run the demo with -o another folder)`);
    // Said before starting anything.
    expect(r.stdout).not.toContain('starting a coordinator');
    expect(await readFile(path.join(theirs, 'sample-01.webp'), 'utf8')).toBe('my own picture');
    // Nor is a demo output the user changed since.
    await writeFile(path.join(out, 'sample-01.webp'), 'edited');
    expect((await runCli(['demo', '-o', out, '--images', '1'], { timeoutMs: 120_000 })).code).not.toBe(0);
    expect(await readFile(path.join(out, 'sample-01.webp'), 'utf8')).toBe('edited');
  }, 240_000);

  it('tessera demo that it then refuses (a file of the user\'s under an output name) deletes nothing, an earlier demo\'s outputs included', async () => {
    const out = await mkdtemp(path.join(dir, 'demo-refused-'));
    // An earlier `--images 1` run's output and its manifest, then a picture of the user's under the name a 2-image run writes.
    const earlier = Buffer.from('an earlier demo output');
    await writeFile(path.join(out, 'sample-01.webp'), earlier);
    await writeFile(path.join(out, '.tessera-demo.json'), `${JSON.stringify({ outputs: { 'sample-01.webp': createHash('sha256').update(earlier).digest('hex') } })}\n`);
    await writeFile(path.join(out, 'sample-02.webp'), 'my own picture');
    const r = await runCli(['demo', '-o', out, '--images', '2'], { timeoutMs: 60_000 });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`${path.join(out, 'sample-02.webp')} already exists and is not an earlier demo's output`);
    // Before, the earlier output was deleted first, then the run refused.
    expect((await readdir(out)).sort()).toEqual(['.tessera-demo.json', 'sample-01.webp', 'sample-02.webp']);
    expect(await readFile(path.join(out, 'sample-01.webp'))).toEqual(earlier);
  });

  it('tessera demo stopped by Ctrl-C leaves nothing in the temp folder, and the next run replaces what it downloaded', async () => {
    const tmp = await mkdtemp(path.join(dir, 'demo-sigint-'));
    const out = path.join(tmp, 'out');
    const env = { ...process.env, TMPDIR: tmp, TESSERA_LOG_LEVEL: 'warn' };
    const demo = spawn(process.execPath, [CLI_PATH, 'demo', '-o', out, '--images', '12'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    demo.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const exited = new Promise<number | null>((resolve) => demo.once('exit', (code) => resolve(code)));
    // Ctrl-C once the first output is in the folder.
    const until = Date.now() + 90_000;
    while (Date.now() < until && demo.exitCode === null && !(await readdir(out).catch(() => [] as string[])).some((f) => /^sample-\d+\.webp$/.test(f))) await sleep(20);
    demo.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(stdout).not.toContain('Total demo time');
    // Before, its sample images and its cluster's data dir stayed (the process died of the signal).
    expect((await readdir(tmp)).filter((e) => /^tessera-(demo|cluster)-\d+-/.test(e))).toEqual([]);
    // And what it downloaded was no demo's output for the next run ("already exists and is not an earlier demo's output").
    const next = await runCli(['demo', '-o', out, '--images', '2'], { env: { TMPDIR: tmp }, timeoutMs: 120_000 });
    expect(next.code, next.stderr).toBe(0);
    expect((await readdir(out)).sort()).toEqual(['.tessera-demo.json', 'sample-01.webp', 'sample-02.webp']);
  }, 240_000);
});

describe('tessera download: how its arguments are read (review CUX)', () => {
  it('--name before the job id takes one name; -o "" (an unset variable) is refused, not the current folder', async () => {
    const input = path.join(dir, 'cux.bin');
    await writeFile(input, 'passthrough bytes\n');
    const job = await cluster.client.wait((await cluster.client.submit({ passthrough: {} }, [input])).id);
    expect(job.state).toBe('JOB_STATE_SUCCEEDED');
    // `--name <name...>` took the job id for a second name: exit 2, "error: missing required argument 'id'".
    const named = path.join(dir, 'cux-named');
    const r = await cluster.runCli(['download', '--name', 'cux.bin', job.id, '-o', named], { timeoutMs: 30_000 });
    expect({ code: r.code, files: await readdir(named).catch(() => []) }, r.stderr).toEqual({ code: 0, files: ['cux.bin'] });
    // It was: exit 0, cux.bin written into the current folder.
    const cwd = path.join(dir, 'cux-cwd');
    await mkdir(cwd);
    const empty = await runCli(['download', job.id, '-o', '', '--coordinator', cluster.address], { cwd, timeoutMs: 30_000 });
    expect({ code: empty.code, cwd: await readdir(cwd) }, empty.stderr).toEqual({ code: 2, cwd: [] });
    expect(empty.stderr).toContain('-o "": an empty folder name (an unset variable?)');
  });
});
