/** Cluster core, end to end: real coordinator + 2 real worker processes, CLI and client library. */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { startCluster, type TestCluster } from './helpers/cluster.js';

let cluster: TestCluster;
let dir: string;
const photos: string[] = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-image-test-'));
  for (let i = 0; i < 6; i++) {
    const file = path.join(dir, `photo-${i}.${i % 2 ? 'png' : 'jpg'}`);
    const img = sharp({ create: { width: 640 + i * 10, height: 480, channels: 3, background: { r: 40 * i, g: 120, b: 200 - 20 * i } } });
    await (i % 2 ? img.png() : img.jpeg()).toFile(file);
    photos.push(file);
  }
  cluster = await startCluster({ workers: 2, slots: 1, workerArgs: ['--label', 'zone=a', '--label', 'disk=ssd'] });
});

afterAll(async () => {
  await cluster?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('image batch through the CLI', () => {
  it('resizes and converts every image, spreads the work over both workers, reports a corrupt file by name', async () => {
    const corrupt = path.join(dir, 'corrupt.jpg');
    await writeFile(corrupt, Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(200, 7)]));
    const out = path.join(dir, 'out-cli');
    const r = await cluster.runCli(['submit', 'image', '--width', '320', '--format', 'webp', '--quality', '70', ...photos, corrupt, '-o', out, '--json']);
    expect(r.code, r.stderr).toBe(3); // partially succeeded
    const job = JSON.parse(r.stdout) as {
      state: string;
      outputs: { name: string; path: string; source: string }[];
      subtasks: { worker: string }[];
      errors: { input: string; code: string; message: string }[];
    };
    expect(job.state).toBe('partially_succeeded');
    expect(job.outputs).toHaveLength(6);
    for (const o of job.outputs) {
      const meta = await sharp(o.path).metadata();
      expect(meta.format).toBe('webp');
      expect(meta.width).toBe(320);
      const sourceWidth = 640 + Number(/photo-(\d)/.exec(o.source)![1]) * 10;
      expect(meta.height).toBe(Math.round((480 * 320) / sourceWidth));
    }
    expect(new Set(job.subtasks.map((s) => s.worker)).size).toBe(2);
    expect(job.errors).toHaveLength(1);
    expect(job.errors[0]).toMatchObject({ input: 'corrupt.jpg', code: 'INVALID_ARGUMENT' });
    expect(job.errors[0]!.message).toMatch(/corrupt\.jpg.*not a decodable image/);
    expect((await readdir(out)).sort()).toEqual(job.outputs.map((o) => o.name).sort());
  });

  it('fails only the photo a crop does not fit, naming it, its size and the crop, once', async () => {
    const small = path.join(dir, 'small.png');
    await sharp({ create: { width: 300, height: 200, channels: 3, background: '#345' } }).png().toFile(small);
    const out = path.join(dir, 'out-crop');
    const r = await cluster.runCli(['submit', 'image', '--crop', '10,20,400,300', photos[0]!, photos[1]!, small, '-o', out, '--json']);
    expect(r.code, r.stderr).toBe(3);
    const job = JSON.parse(r.stdout) as { outputs: { name: string; path: string }[]; errors: { input: string; code: string; message: string }[] };
    expect(job.outputs).toHaveLength(2);
    for (const o of job.outputs) expect(await sharp(o.path).metadata()).toMatchObject({ width: 400, height: 300 });
    expect(job.errors).toEqual([{ input: 'small.png', code: 'INVALID_ARGUMENT', message: 'small.png: the crop (400x300 at 10,20) reaches outside the image, which is 300x200' }]);

    // Alone, the photo is refused at submission (its header says its size): no job, exit 2, the
    // input named once.
    const before = (await cluster.client.listJobs({ limit: Infinity })).length;
    const alone = await cluster.runCli(['submit', 'image', '--crop', '10,20,400,300', small, '-o', path.join(dir, 'out-crop-alone')]);
    expect(alone.code, alone.stderr).toBe(2);
    expect(alone.stderr).toContain('tessera: INVALID_ARGUMENT: small.png: the crop (400x300 at 10,20) reaches outside the image, which is 300x200\n');
    expect(alone.stderr.match(/small\.png: small\.png/)).toBeNull();
    expect((await cluster.client.listJobs({ limit: Infinity })).length).toBe(before);
  });

  it('rejects invalid params at submit with INVALID_ARGUMENT naming the field', async () => {
    const r = await cluster.runCli(['submit', 'image', '--blur', '0.1', photos[0]!, '-o', path.join(dir, 'never')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/INVALID_ARGUMENT: image\.blur: sigma 0\.1 is below the minimum/);
    // With --tile every input is tiled: a rotation tiles cannot do exactly is refused before any upload.
    const tiled = await cluster.runCli(['submit', 'image', '--tile', '256', '--rotate', '45', photos[0]!, '-o', path.join(dir, 'never')]);
    expect(tiled.code).toBe(2);
    expect(tiled.stderr).toMatch(/INVALID_ARGUMENT: image\.rotate: tiled processing supports multiples of 90 degrees only, got 45/);
    // Arguments the command line itself refuses exit 2 too; --help and --version exit 0.
    // Numbers past the protocol's 32-bit fields would wrap (--width 4294967328 became 32).
    const wrapping = [['--width', '4294967328'], ['--width', '-32'], ['--priority', '3000000000'], ['--rotate', '-2147483649']];
    for (const args of [['submit', 'image', '--width', 'abc', photos[0]!], ...wrapping.map((w) => ['submit', 'image', ...w, photos[0]!]), ['submit', 'image', '--no-such-option', photos[0]!], ['submit', 'image'], ['no-such-command']]) {
      const bad = await cluster.runCli(args);
      expect(bad.code, args.join(' ')).toBe(2);
      expect(bad.stderr, args.join(' ')).toMatch(/^error: /m);
    }
    expect((await cluster.runCli(['submit', 'image', '--help'])).code).toBe(0);
    const fit = await cluster.client.submit({ image: { width: 10, fit: 'squash' } }, [photos[0]!]).catch((e: unknown) => e);
    expect(fit).toMatchObject({ code: status.INVALID_ARGUMENT });
    expect((fit as Error).message).toMatch(/image\.fit: "squash" is not one of cover, contain/);
  });

  it('prints only the job id with --no-wait, and watch/job/download/jobs/workers work on it', async () => {
    const r = await cluster.runCli(['submit', 'image', '--grayscale', '--rotate', '90', '--format', 'png', photos[1]!, '--no-wait']);
    expect(r.code, r.stderr).toBe(0);
    const id = r.stdout.trim();
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const watch = await cluster.runCli(['watch', id, '--json']);
    expect(watch.code, watch.stderr).toBe(0);
    const events = watch.stdout.trim().split('\n').map((l) => JSON.parse(l) as { seq: string; final: boolean; type: string });
    expect(events.at(-1)!.final).toBe(true);
    expect(events.map((e) => Number(e.seq))).toEqual([...events.keys()].map((k) => k + 1));
    const out = path.join(dir, 'out-dl');
    const dl = await cluster.runCli(['download', id, '-o', out, '--json']);
    expect(dl.code, dl.stderr).toBe(0);
    const { data, info } = await sharp(path.join(out, 'photo-1.png')).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([480, 650]);
    // Grayscale: every pixel has equal channels.
    for (let i = 0; i < data.length; i += info.channels * 997) expect(new Set([data[i], data[i + 1], data[i + 2]]).size).toBe(1);
    const jobs = JSON.parse((await cluster.runCli(['jobs', '--json'])).stdout) as { id: string }[];
    expect(jobs.map((j) => j.id)).toContain(id);
    const job = JSON.parse((await cluster.runCli(['job', id, '--json'])).stdout) as { state: string };
    expect(job.state).toBe('succeeded');
    const workers = JSON.parse((await cluster.runCli(['workers', '--json'])).stdout) as { name: string; state: string; labels: Record<string, string>; features: string[]; encoders: number; kind_encoders: string[] }[];
    expect(workers.map((w) => [w.name, w.state, w.labels]).sort()).toEqual([
      ['worker-1', 'active', { zone: 'a', disk: 'ssd' }],
      ['worker-2', 'active', { zone: 'a', disk: 'ssd' }],
    ]);
    expect(workers[0]!.features.length).toBeGreaterThan(0);
    // Of its ffmpeg's encoders (a count), those the job kinds use, by name.
    expect(workers[0]!.encoders).toBeGreaterThan(workers[0]!.kind_encoders.length);
    expect(workers[0]!.kind_encoders).toEqual(expect.arrayContaining(['libx264', 'aac', 'mjpeg']));
    // The table shows them too.
    const table = (await cluster.runCli(['workers'])).stdout.split('\n');
    expect(table[0]).toMatch(/KINDS +LABELS$/);
    expect(table.filter((l) => l.startsWith('worker-')).every((l) => l.endsWith('disk=ssd,zone=a'))).toBe(true);
  });
});

describe('image batch through the client library', () => {
  it('streams events while running and downloads verified outputs', async () => {
    const job = await cluster.client.submit({ image: { width: 100, height: 100, fit: 'cover', format: 'jpeg', flop: true } }, photos);
    const types = new Set<string>();
    const done = await cluster.client.wait(job.id, (e) => types.add(e.type));
    expect(done.state).toBe('JOB_STATE_SUCCEEDED');
    expect(types).toContain('subtask_state');
    const out = path.join(dir, 'out-lib');
    const paths = await cluster.client.download(done.id, out);
    expect(paths.size).toBe(photos.length);
    for (const p of paths.values()) {
      const meta = await sharp(p).metadata();
      expect([meta.format, meta.width, meta.height]).toEqual(['jpeg', 100, 100]);
    }
  });

  it('answers NOT_FOUND for an unknown job and FAILED_PRECONDITION when cancelling a finished one', async () => {
    await expect(cluster.client.getJob('no-such-job')).rejects.toMatchObject({ code: status.NOT_FOUND });
    const job = await cluster.client.submit({ image: { width: 50 } }, [photos[0]!]);
    await cluster.client.wait(job.id);
    await expect(cluster.client.cancel(job.id)).rejects.toMatchObject({ code: status.FAILED_PRECONDITION });
  });
});
