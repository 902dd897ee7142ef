/**
 * `npm run bench -- images`: 400 photos (4000 x 3000 JPEG -> 800 px wide WebP) through the `image`
 * kind on a real cluster (coordinator + 2 workers x 1 slot, separate processes; the time runs
 * from submission to the last output downloaded) vs the same sharp pipeline in one process with
 * the same total concurrency (2 images at a time, the same libvips threads per image as a worker
 * gives each slot). Ratio: cluster throughput / single-process throughput. Two rows, one baseline:
 *
 * - `images`: the photos are on storage the coordinator shares with the workers (here the same
 *   disk; in a deployment a network share mounted at the same path), submitted by reference
 *   (`--shared-root`, `submit --shared`), as render farms and media pipelines run.
 * - `images-upload`: every photo's bytes are uploaded through the coordinator and streamed on to
 *   a worker (1.4 GiB twice over gRPC), for clients that cannot share storage with the cluster.
 *
 * Photos are generated once into a cache under os.tmpdir() (generation is slow) and reused:
 * 40 distinct images, hard-linked to 400 names (each is decoded and encoded in full every time).
 */
import { spawn } from 'node:child_process';
import { link, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { LocalCluster } from '../../client/local-cluster.js';
import { peakRssMiB, round, selfPeakRssMiB } from '../proc-stats.js';
import type { MultiBenchScenario } from '../harness.js';
import type { BenchContext, BenchResult } from '../types.js';

/** Compiled modules (the baseline child runs plain Node, also when this file runs from source). */
const DIST = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? '../../dist/' : '../../', import.meta.url));
const PARAMS = { width: 800, format: 'webp' } as const;
const SLOTS = 1;
const WORKERS = 2;

/** `count` photos of width x height in a cache folder (built once, atomically). */
async function photoCache(count: number, width: number, height: number, log: (m: string) => void): Promise<string[]> {
  const dir = path.join(os.tmpdir(), `tessera-bench-photos-v1-${count}-${width}x${height}`);
  const names = Array.from({ length: count }, (_, i) => `photo-${String(i).padStart(4, '0')}.jpg`);
  const have = await readdir(dir).catch(() => [] as string[]);
  if (names.every((n) => have.includes(n))) return names.map((n) => path.join(dir, n));
  const tmp = `${dir}.${process.pid}.tmp`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  const distinct = Math.min(count, 40);
  log(`generating ${distinct} distinct ${width}x${height} photos (cached in ${dir})`);
  for (let i = 0; i < distinct; i++) {
    // Smooth shapes from upscaled blurred noise, plus fine grain: JPEG sizes like real photos.
    const small = await sharp({ create: { width: Math.ceil(width / 16), height: Math.ceil(height / 16), channels: 3, background: { r: (i * 53) % 255, g: (i * 97) % 255, b: (i * 29) % 255 }, noise: { type: 'gaussian', mean: 120, sigma: 60 } } })
      .blur(1.5)
      .png()
      .toBuffer();
    const grain = await sharp({ create: { width: 256, height: 256, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 12 } } }).png().toBuffer();
    await sharp(small)
      .resize(width, height, { kernel: 'cubic' })
      .composite([{ input: grain, tile: true, blend: 'overlay' }])
      .jpeg({ quality: 90 })
      .toFile(path.join(tmp, names[i]!));
  }
  for (let i = distinct; i < count; i++) await link(path.join(tmp, names[i % distinct]!), path.join(tmp, names[i]!));
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
  return names.map((n) => path.join(dir, n));
}

/** The image kind's pipeline over `files` in one fresh Node process, `concurrency` at a time. */
async function runSingleProcess(files: string[], outDir: string, concurrency: number, threads: number): Promise<{ seconds: number; rssMiB: number }> {
  const code = `
    import sharp from 'sharp';
    import pLimit from 'p-limit';
    import { readFileSync } from 'node:fs';
    import { applyEncoding, applyPipeline, openImage } from ${JSON.stringify(path.join(DIST, 'shared/media/image-pipeline.js'))};
    import { validateImageParams } from ${JSON.stringify(path.join(DIST, 'shared/kinds/image-params.js'))};
    sharp.concurrency(${threads});
    const files = ${JSON.stringify(files)};
    const p = validateImageParams(${JSON.stringify(PARAMS)});
    const limit = pLimit(${concurrency});
    const t0 = performance.now();
    await Promise.all(files.map((f, i) => limit(() => applyEncoding(applyPipeline(openImage(f), p), p, 'webp').toFile(${JSON.stringify(outDir)} + '/' + i + '.webp'))));
    const seconds = (performance.now() - t0) / 1000;
    const hwm = /VmHWM:\\s+(\\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))[1];
    console.log(JSON.stringify({ seconds, rssMiB: Math.round(Number(hwm) / 1024) }));
  `;
  await mkdir(outDir, { recursive: true });
  // cwd inside the package so 'sharp' and 'p-limit' resolve from its node_modules.
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { cwd: DIST, stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  const exit = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (exit !== 0) throw new Error(`single-process baseline exited with ${exit}`);
  return JSON.parse(stdout.trim().split('\n').pop()!) as { seconds: number; rssMiB: number };
}

/** One cluster run over `files`, by reference (`shared`) or uploaded, against the baseline's time. */
async function runCluster(ctx: BenchContext, files: string[], shared: boolean, base: { seconds: number; rssMiB: number }, inputs: string): Promise<BenchResult> {
  const count = files.length;
  const mode = shared ? 'inputs on shared storage, by reference' : 'inputs uploaded through the coordinator';
  ctx.log(`cluster, ${mode}: coordinator + ${WORKERS} workers x ${SLOTS} slot`);
  const cluster = await new LocalCluster({ workers: WORKERS, slots: SLOTS, ...(shared ? { coordinatorArgs: ['--shared-root', path.dirname(files[0]!)] } : {}) }).start();
  try {
    const t0 = performance.now();
    const job = await cluster.client.submit({ label: 'bench images', image: PARAMS }, files, { shared });
    // Outputs are downloaded as they are published, as `tessera submit` does.
    const outDir = path.join(ctx.workDir, shared ? 'cluster-shared' : 'cluster-upload');
    const { job: done, paths: written } = await cluster.client.collect(job.id, outDir);
    const seconds = (performance.now() - t0) / 1000;
    if (done.state !== 'JOB_STATE_SUCCEEDED') throw new Error(`images job ended ${done.state}: ${JSON.stringify(done.errors.slice(0, 3))}`);
    const rss: Record<string, number> = { coordinator: await peakRssMiB(cluster.coordinator?.child.pid), client: selfPeakRssMiB() };
    for (const w of cluster.workers) rss[w.name] = await peakRssMiB(w.child.pid);
    let allWebp800 = written.size === count;
    for (const file of written.values()) {
      const m = await sharp(file).metadata();
      if (m.format !== 'webp' || m.width !== 800) allWebp800 = false;
    }
    const workers = new Set(done.subtasks.map((s) => s.worker));
    const ratio = base.seconds / seconds;
    ctx.log(`one process ${base.seconds.toFixed(2)} s, cluster (${mode}) ${seconds.toFixed(2)} s: throughput ratio ${ratio.toFixed(3)}`);
    return {
      scenario: shared ? 'images' : 'images-upload',
      inputs: `${inputs}; ${mode}; cluster time includes ${shared ? 'submission' : 'upload'} and download`,
      baseline: { label: `one process, ${WORKERS * SLOTS} images at a time (sharp, same pipeline)`, seconds: base.seconds, peakRssMiB: { single: base.rssMiB }, figures: { photosPerS: round(count / base.seconds, 1) } },
      tessera: {
        label: `cluster (coordinator + ${WORKERS} workers x ${SLOTS} slot), ${mode}`,
        seconds,
        peakRssMiB: rss,
        figures: { photosPerS: round(count / seconds, 1), subtasks: done.subtasks.length, workersUsed: workers.size },
      },
      ratio,
      ratioMeaning: 'cluster photos/s / one-process photos/s (higher is better)',
      target: { value: 0.9, better: 'higher' },
      checks: { allOutputsWebp800: allWebp800, bothWorkersUsed: workers.size === WORKERS, ...(shared ? { byReference: done.inputs.length === count && done.inputs.every((i) => i.shared_path !== '') } : {}) },
    };
  } finally {
    await cluster.stop();
  }
}

export const imagesScenario: MultiBenchScenario = {
  name: 'images',
  description: '400 photos 4000x3000 JPEG -> 800 px WebP: coordinator + 2 workers x 1 slot (inputs shared, then uploaded) vs one sharp process, concurrency 2',
  command: 'npm run bench -- images',
  async run(ctx: BenchContext): Promise<BenchResult[]> {
    const [count, width, height] = ctx.smoke ? [6, 1200, 900] : [400, 4000, 3000];
    const files = await photoCache(count, width, height, ctx.log);
    let inputBytes = 0;
    for (const f of files) inputBytes += (await stat(f)).size;
    // A worker with 1 slot gives libvips all the cores (worker.ts): the baseline does the same per image.
    const threads = Math.max(1, Math.floor(os.availableParallelism() / SLOTS));

    ctx.log(`one process: ${count} photos, ${WORKERS * SLOTS} at a time, ${threads} libvips threads each`);
    const base = await runSingleProcess(files, path.join(ctx.workDir, 'single'), WORKERS * SLOTS, threads);

    const inputs = `${count} JPEG photos ${width}x${height} q90 (${round(inputBytes / 1024 ** 2, 0)} MiB), resize to 800 px wide, WebP`;
    return [await runCluster(ctx, files, true, base, inputs), await runCluster(ctx, files, false, base, inputs)];
  },
};
