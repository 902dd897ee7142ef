/**
 * `tessera submit` exit status (README, "CLI"): 0 succeeded, 3 partially succeeded (some inputs
 * failed, see `errors`), 1 failed or cancelled, 2 invalid arguments, 4 the coordinator could not be
 * reached or was lost (every command); and TESSERA_COORDINATOR is the address when --coordinator is
 * not given (the flag wins over it).
 *
 * A real cluster (coordinator and two worker processes from dist/) and the real CLI; the media are
 * made with sharp.
 */
import { mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { CLI_PATH } from '../../client/local-cluster.js';
import { runCli, startCluster, type CliResult, type TestCluster } from '../helpers/cluster.js';
import { deadAddress } from '../helpers/addresses.js';
import { makeVideo } from '../helpers/media.js';

let cluster: TestCluster;
let dir: string;
let good1: string;
let good2: string;
let notAnImage: string;
let truncated: string;
let blob: string;
let outSeq = 0;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-cli-exit-'));
  good1 = path.join(dir, 'red.png');
  good2 = path.join(dir, 'blue.png');
  await sharp({ create: { width: 120, height: 80, channels: 3, background: '#c02020' } }).png().toFile(good1);
  await sharp({ create: { width: 90, height: 60, channels: 3, background: '#2020c0' } }).png().toFile(good2);
  // Text under an image's name: refused by content at submission, as its own item.
  notAnImage = path.join(dir, 'notes.jpg');
  await writeFile(notAnImage, 'these are notes, not a photo\n'.repeat(20));
  // A PNG whose header is whole (it passes the checks) but whose pixel data is cut short: it fails when decoded.
  truncated = path.join(dir, 'cut.png');
  const noisy = await sharp({ create: { width: 400, height: 300, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 60 } } }).png().toBuffer();
  await writeFile(truncated, noisy.subarray(0, Math.floor(noisy.length / 3)));
  blob = path.join(dir, 'blob.bin');
  await writeFile(blob, Buffer.from('passthrough bytes '.repeat(1000)));
  cluster = await startCluster({ workers: 2, slots: 1 });
});

afterAll(async () => {
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const outDir = (): string => path.join(dir, `out-${++outSeq}`);

interface JobJson {
  id: string;
  state: string;
  outputs: { name: string; path: string | null }[];
  subtasks: { state: string; attempt: number; error: string }[];
  errors: { input: string; code: string; message: string }[];
}

/** The `--json` line the CLI printed (the finished job). */
function jobJson(r: CliResult): JobJson {
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(line) as JobJson;
  } catch {
    throw new Error(`no JSON job on stdout (exit ${r.code}); stdout: ${r.stdout}; stderr: ${r.stderr}`);
  }
}

describe('tessera submit: exit status', () => {
  it('0 when the job succeeded', async () => {
    const out = outDir();
    const r = await cluster.runCli(['submit', 'image', '--width', '30', '--format', 'png', good1, good2, '-o', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const job = jobJson(r);
    expect(job.state).toBe('succeeded');
    expect(job.errors).toEqual([]);
    expect((await readdir(out)).sort()).toEqual(['blue.png', 'red.png']);
    expect((await sharp(path.join(out, 'red.png')).metadata()).width).toBe(30);
  });

  it('3 when the job partially succeeded: a non-image among images fails as its own item, the others are made', async () => {
    const out = outDir();
    const r = await cluster.runCli(['submit', 'image', '--width', '30', '--format', 'png', good1, notAnImage, good2, '-o', out, '--json']);
    expect(r.code, r.stderr).toBe(3);
    const job = jobJson(r);
    expect(job.state).toBe('partially_succeeded');
    expect(job.errors).toEqual([expect.objectContaining({ input: 'notes.jpg', code: 'INVALID_ARGUMENT' })]);
    expect(job.errors[0]!.message).toContain('notes.jpg');
    expect((await readdir(out)).sort()).toEqual(['blue.png', 'red.png']);
  });

  it('1 when the job failed: a subtask failing on its only attempt (--max-attempts 1)', async () => {
    const out = outDir();
    const r = await cluster.runCli(['submit', 'passthrough', '--fail-first-attempts', '5', '--max-attempts', '1', blob, '-o', out, '--json']);
    expect(r.code, r.stderr).toBe(1);
    const job = jobJson(r);
    expect(job.state).toBe('failed');
    expect(job.subtasks).toEqual([expect.objectContaining({ state: 'failed', attempt: 1 })]);
    expect(JSON.stringify(job.errors) + job.subtasks[0]!.error).toContain('diagnostic failure of attempt 1');
    expect(job.outputs).toEqual([]);
  });

  it('2 when the job failed for its input alone: its only input fails while being processed (a PNG cut short), INVALID_ARGUMENT', async () => {
    const out = outDir();
    const r = await cluster.runCli(['submit', 'image', '--width', '30', '--format', 'png', truncated, '-o', out, '--json']);
    expect(r.code, r.stderr).toBe(2);
    const job = jobJson(r);
    expect(job.state).toBe('failed');
    expect(job.errors).toEqual([expect.objectContaining({ input: 'cut.png', code: 'INVALID_ARGUMENT' })]);
    expect(job.outputs).toEqual([]);
  });

  it('2 when what the job asks its input cannot give, found once it is planned (a sprite sheet too tall for the video\'s shape), as found at submission', async () => {
    const video = await makeVideo(dir, 'four-three.mp4', { duration: 2 });
    // 4096 x 3072 thumbnails, six rows of them: 18,432 px tall.
    const r = await cluster.runCli(['submit', 'thumbnails', '--count', '6', '--width', '4096', '--sprite', '1x6', video, '-o', outDir(), '--json']);
    // Was 1, "the job failed", where a request refused before planning (--count 20000) is 2.
    expect(r.code, r.stderr).toBe(2);
    const job = jobJson(r);
    expect(job.state).toBe('failed');
    expect(job.errors).toEqual([expect.objectContaining({ input: 'four-three.mp4', code: 'INVALID_ARGUMENT', message: expect.stringMatching(/over the 16383-pixel limit/) })]);
    const early = await cluster.runCli(['submit', 'thumbnails', '--count', '20000', video, '-o', outDir()]);
    expect(early.code, early.stderr).toBe(2);
  });

  it('130 on Ctrl-C once the job is accepted, naming the whole job id and how to fetch its outputs; the job goes on', async () => {
    const out = outDir();
    const before = new Set((await cluster.client.listJobs()).map((j) => j.id));
    const child = spawn(process.execPath, [CLI_PATH, 'submit', 'passthrough', '--work-ms', '5000', blob, '-o', out, '--coordinator', cluster.address], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    let id = '';
    for (let i = 0; i < 300 && !id; i++) {
      id = (await cluster.client.listJobs()).find((j) => !before.has(j.id))?.id ?? '';
      if (!id) await sleep(100);
    }
    expect(id, 'the job was accepted').not.toBe('');
    // Once the CLI itself knows (it shows the job's whole id), Ctrl-C.
    for (let i = 0; i < 300 && !stderr.includes(`job ${id} (`); i++) await sleep(100);
    expect(stderr).toContain(`job ${id} (passthrough)`);
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    // To paste as it is: the coordinator and the folder given here.
    expect(stderr).toContain(`tessera download ${id} --coordinator ${cluster.address} -o ${out}`);
    expect(stderr).toContain(`tessera cancel ${id} --coordinator ${cluster.address}`);
    // The job carries on without it.
    expect((await cluster.client.wait(id)).state).toBe('JOB_STATE_SUCCEEDED');
  });

  it('1 when the job is cancelled while it runs (by `tessera cancel` from another process)', async () => {
    const out = outDir();
    const before = new Set((await cluster.client.listJobs()).map((j) => j.id));
    const submitting = cluster.runCli(['submit', 'passthrough', '--work-ms', '60000', blob, '-o', out, '--json'], { timeoutMs: 60_000 });
    // The job, once its subtask runs on a worker.
    let id = '';
    for (let i = 0; i < 300 && !id; i++) {
      for (const j of await cluster.client.listJobs()) {
        if (before.has(j.id)) continue;
        const full = await cluster.client.getJob(j.id);
        if (full.subtasks.some((s) => s.state === 'SUBTASK_STATE_RUNNING')) id = j.id;
      }
      if (!id) await sleep(100);
    }
    expect(id, 'the job started running').not.toBe('');
    const cancel = await cluster.runCli(['cancel', id, '--json']);
    expect(cancel.code, cancel.stderr).toBe(0);
    const r = await submitting;
    expect(r.code, r.stderr).toBe(1);
    const job = jobJson(r);
    expect(job.id).toBe(id);
    expect(job.state).toBe('cancelled');
  });

  it('2 for invalid arguments, and no job is made', async () => {
    const jobsBefore = (await cluster.client.listJobs()).length;
    const sameNameDir = await mkdtemp(path.join(dir, 'same-name-'));
    await writeFile(path.join(sameNameDir, 'blob.bin'), 'another blob');
    await writeFile(path.join(sameNameDir, 'Blob.BIN'), 'yet another blob');
    // Files a Linux or macOS client has, under names a client on Windows could not download: refused before any byte is sent.
    await writeFile(path.join(sameNameDir, 'nul.txt'), 'a device on Windows');
    await writeFile(path.join(sameNameDir, 'a:b.png'), 'a colon');
    await writeFile(path.join(sameNameDir, 'trailing.'), 'a trailing dot');
    const cases: [string, string[], RegExp][] = [
      ['no output folder', ['submit', 'image', '--width', '30', good1], /-o, --output DIR or --shared-output DIR is required/],
      ['a width that is not a number', ['submit', 'image', '--width', 'wide', good1, '-o', outDir()], /--width/],
      ['a file that does not exist', ['submit', 'image', '--width', '30', path.join(dir, 'missing.png'), '-o', outDir()], /missing\.png: no such file/],
      ['an unknown option', ['submit', 'image', '--no-such-flag', good1, '-o', outDir()], /unknown option '--no-such-flag'/],
      ['a folder among the files', ['submit', 'image', '--width', '30', dir, '-o', outDir()], /is a folder/],
      ['two files with one name', ['submit', 'passthrough', blob, path.join(sameNameDir, 'blob.bin'), '-o', outDir()], /would both be input "blob\.bin"/],
      ['two names one file on macOS', ['submit', 'passthrough', blob, path.join(sameNameDir, 'Blob.BIN'), '-o', outDir()], /would be inputs "blob\.bin" and "Blob\.BIN", one file on macOS and Windows/],
      ['an unknown kind', ['submit', 'hologram', good1, '-o', outDir()], /hologram/],
      ['a Windows device name', ['submit', 'passthrough', blob, path.join(sameNameDir, 'nul.txt'), '-o', outDir()], /input name of \S+nul\.txt "nul\.txt" is the device NUL on Windows/],
      ['a colon', ['submit', 'passthrough', path.join(sameNameDir, 'a:b.png'), '-o', outDir()], /"a:b\.png" contains ":", which Windows does not allow in file names/],
      ['a trailing dot', ['submit', 'passthrough', path.join(sameNameDir, 'trailing.'), '-o', outDir()], /"trailing\." ends with a dot, which Windows drops from file names/],
    ];
    for (const [what, args, message] of cases) {
      const r = await cluster.runCli(args);
      expect(r.code, `${what}: ${r.stderr}`).toBe(2);
      expect(r.stderr, what).toMatch(message);
    }
    // -o at a symbolic link to nothing: refused at once, not after the upload and the job (exit 1,
    // ENOENT from mkdir); `download` the same; and `demo -o FILE` before it starts a cluster.
    const dangling = path.join(dir, 'dangling');
    await symlink(path.join(dir, 'no-such-target'), dangling);
    for (const args of [['submit', 'image', '--width', '30', good1, '-o', dangling], ['download', '00000000-0000-4000-8000-000000000000', '-o', dangling]]) {
      const r = await cluster.runCli(args);
      expect([r.code, r.stderr], args[0]).toEqual([2, `tessera: -o ${dangling}: cannot write the outputs there (${dangling} is a symbolic link to ${path.join(dir, 'no-such-target')}, which does not exist)\n`]);
    }
    const demo = await runCli(['demo', '-o', good1, '--images', '1']);
    expect([demo.code, demo.stdout, demo.stderr]).toEqual([2, '', `tessera: -o ${good1}: cannot write the outputs there (is a file, not a folder)\n`]);
    expect((await cluster.client.listJobs()).length, 'no job was submitted').toBe(jobsBefore);
  });

  it('with --json, the error is on stdout too, as one object: a refusal by the client and one by the coordinator', async () => {
    const missing = path.join(dir, 'missing.png');
    const local = await cluster.runCli(['submit', 'image', '--width', '30', missing, '-o', outDir(), '--json']);
    expect(local.code).toBe(2);
    expect(JSON.parse(local.stdout)).toEqual({ error: { code: 'INVALID_ARGUMENT', message: `${missing}: no such file`, input: missing } });
    expect(local.stderr).toContain(`${missing}: no such file`);
    // Its only input is text under an image's name: the coordinator refuses the job.
    const refused = await cluster.runCli(['submit', 'image', '--width', '30', notAnImage, '-o', outDir(), '--json']);
    expect(refused.code).toBe(2);
    const { error } = JSON.parse(refused.stdout) as { error: { code: string; message: string; input: string } };
    expect(error.code).toBe('INVALID_ARGUMENT');
    expect(error.input, 'the input the coordinator named, from the trailing metadata').toBe('notes.jpg');
    expect(error.message).toMatch(/^notes\.jpg: /);
    expect(refused.stderr).toContain(error.message);
    const unknown = await cluster.runCli(['job', 'no-such-job', '--json']);
    expect(unknown.code).toBe(2);
    expect(JSON.parse(unknown.stdout)).toMatchObject({ error: { code: 'NOT_FOUND', message: expect.stringContaining('no-such-job') } });
  });
});

describe('TESSERA_COORDINATOR', () => {
  it('is the address when --coordinator is not given', async () => {
    const out = outDir();
    const before = new Set((await cluster.client.listJobs()).map((j) => j.id));
    // runCli (not cluster.runCli): no --coordinator flag is added.
    const r = await runCli(['submit', 'passthrough', blob, '-o', out, '--json'], { env: { TESSERA_COORDINATOR: cluster.address } });
    expect(r.code, r.stderr).toBe(0);
    const job = jobJson(r);
    expect(job.state).toBe('succeeded');
    expect(before.has(job.id)).toBe(false);
    expect((await cluster.client.listJobs()).map((j) => j.id), 'the job was made on the cluster TESSERA_COORDINATOR names').toContain(job.id);
    expect((await readFile(path.join(out, 'blob.bin'))).equals(await readFile(blob))).toBe(true);
    // Other commands too.
    const jobs = await runCli(['jobs', '--json'], { env: { TESSERA_COORDINATOR: cluster.address } });
    expect(jobs.code, jobs.stderr).toBe(0);
    expect((JSON.parse(jobs.stdout) as { id: string }[]).map((j) => j.id)).toContain(job.id);
  });

  it('is used (and named) when it points where no coordinator runs; --coordinator wins over it', async () => {
    const dead = await deadAddress();
    const down = await runCli(['jobs', '--json'], { env: { TESSERA_COORDINATOR: dead }, timeoutMs: 30_000 });
    expect(down.code, down.stderr).toBe(4);
    expect(down.stderr).toContain(`is a coordinator running at ${dead}?`);
    const out = outDir();
    const r = await runCli(['submit', 'passthrough', blob, '-o', out, '--json', '--coordinator', cluster.address], { env: { TESSERA_COORDINATOR: dead } });
    expect(r.code, r.stderr).toBe(0);
    expect(jobJson(r).state).toBe('succeeded');
  });

  it('where no coordinator runs, submit ends with the error: no empty "Resolution note:", no progress after it', async () => {
    const dead = await deadAddress();
    const out = outDir();
    const r = await runCli(['submit', 'image', '--width', '30', good1, '-o', out], { env: { TESSERA_COORDINATOR: dead }, timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(4);
    const lines = r.stderr.trimEnd().split('\n');
    const error = lines.findIndex((l) => l.startsWith('tessera: UNAVAILABLE: '));
    expect(error, r.stderr).toBeGreaterThanOrEqual(0);
    expect(lines[error]).toMatch(/ECONNREFUSED \S+$/);
    expect(r.stderr).not.toContain('Resolution note:');
    // The error and the hint that follows it are the last lines.
    expect(lines.slice(error + 1)).toEqual([`tessera: is a coordinator running at ${dead}?`]);
    await expect(readdir(out)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('exit status 4: the coordinator could not be reached, or was lost', () => {
  it('is in the table of exit statuses after `tessera --help`', async () => {
    const r = await runCli(['--help']);
    expect(r.code).toBe(0);
    const table = r.stdout.slice(r.stdout.indexOf('Exit status:'));
    for (const code of ['0', '1', '2', '3', '4', '130']) expect(table).toMatch(new RegExp(`^  ${code} +\\S`, 'm'));
    expect(table).toMatch(/^ {2}4 +the coordinator could not be reached, or was lost/m);
  });

  it('every client command where nothing listens, with the error as JSON too', async () => {
    const dead = await deadAddress();
    const commands = [['jobs'], ['job', 'some-job'], ['watch', 'some-job'], ['cancel', 'some-job'], ['workers'], ['download', 'some-job', '-o', outDir()], ['submit', 'passthrough', blob, '-o', outDir()]];
    for (const args of commands) {
      const r = await runCli([...args, '--coordinator', dead, '--json'], { timeoutMs: 30_000 });
      expect(r.code, `${args[0]}: ${r.stderr}`).toBe(4);
      expect(JSON.parse(r.stdout.trim().split('\n').at(-1)!), args[0]).toMatchObject({ error: { code: 'UNAVAILABLE' } });
      expect(r.stderr, args[0]).toContain(`is a coordinator running at ${dead}?`);
    }
  }, 120_000);

  it('where something takes the connection and never answers: a deadline that passes while still connecting is 4 too', async () => {
    // A TCP server that accepts and never speaks HTTP/2: grpc-js keeps connecting (for 20 s).
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => void sockets.push(s.on('error', () => undefined)));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const address = `127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
    try {
      // grpc-js's own DEADLINE_EXCEEDED ("..., Waiting for LB pick"), which no coordinator gave.
      const health = await runCli(['health', '--timeout-ms', '1000', '--coordinator', address], { timeoutMs: 30_000 });
      expect(health.code, health.stderr).toBe(4);
      expect(health.stderr).toMatch(/^tessera: DEADLINE_EXCEEDED: /);
      expect(health.stderr).toContain(`is a coordinator running at ${address}?`);
      // The client library's unary calls say it in words, as UNAVAILABLE, at their deadline: 15 s by
      // default, 3 s here through the test knob TESSERA_TEST_UNARY_DEADLINE_MS (client.ts), so that
      // the test does not wait 15 s for the same message (grpc-js gives up connecting only after 20 s).
      const jobs = await runCli(['jobs', '--coordinator', address], { timeoutMs: 60_000, env: { TESSERA_TEST_UNARY_DEADLINE_MS: '3000' } });
      expect(jobs.code, jobs.stderr).toBe(4);
      expect(jobs.stderr).toContain(`tessera: UNAVAILABLE: the coordinator could not be reached for 3 s (nothing answered at ${address})`);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  }, 90_000);

  it('`tessera watch` whose coordinator is killed and does not come back within --reconnect-for: 4 (a job that failed is 1, above)', async () => {
    const own = await startCluster({ workers: 0 });
    try {
      // No workers: the job stays queued, and the watch waits on it.
      const job = await own.client.submit({ passthrough: {} }, [blob]);
      const child = spawn(process.execPath, [CLI_PATH, 'watch', job.id, '--json', '--reconnect-for', '3', '--coordinator', own.address], { env: { ...process.env, TESSERA_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
      // Attached once it has printed the job's first event.
      for (let i = 0; i < 300 && !stdout.includes('"job_state"'); i++) await sleep(100);
      expect(stdout, stderr).toContain('"job_state"');
      own.coordinator!.child.kill('SIGKILL');
      const killedAt = Date.now();
      const code = await exited;
      expect(code, stderr).toBe(4);
      // It tried for the 3 s it was given (the default is 2 minutes), and said so.
      expect(Date.now() - killedAt).toBeGreaterThanOrEqual(3000);
      expect(stderr).toContain('reconnecting for up to 3 s');
      // And how to get back to the job, which its coordinator may well run again.
      expect(stderr).toContain(`If job ${job.id} runs there, it goes on without this client: run tessera watch ${job.id} --coordinator ${own.address} again once the coordinator is back`);
      expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).toMatchObject({ error: { code: 'UNAVAILABLE' } });
    } finally {
      await own.stop();
    }
  }, 60_000);
});
