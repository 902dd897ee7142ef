/**
 * `npm run bench -- images`: 400 photos (4000 x 3000 JPEG -> 800 px wide WebP) through the `image`
 * kind on a real cluster (coordinator + 2 workers x 1 slot, separate processes; the time runs
 * from submission to the last output written where the client wants it) vs the same sharp pipeline
 * in one process with the same total concurrency (2 images at a time, the same libvips threads per
 * image as a worker gives each slot), reading and writing the same disk. Ratio: cluster throughput
 * / single-process throughput. The baseline runs before and after the cluster rows (the machine's
 * speed drifts) and the ratios use the mean of the two. Three rows:
 *
 * - `images`: the photos are on storage the coordinator shares with the workers (here the same
 *   disk; in a deployment a network share mounted at the same path), submitted by reference
 *   (`--shared-root`, `submit --shared`), and the outputs are written back to a folder there
 *   (`submit --shared-output`), as render farms and media pipelines run.
 * - `images-download`: inputs by reference, outputs downloaded by the client as they are made.
 * - `images-upload`: every photo's bytes are uploaded through the coordinator and streamed on to
 *   a worker (1.4 GiB twice over gRPC), and the outputs downloaded, for clients that cannot share
 *   storage with the cluster.
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

type Mode = 'images' | 'images-download' | 'images-upload';
const MODES: Record<Mode, string> = {
  images: 'inputs and outputs on shared storage',
  'images-download': 'inputs on shared storage, outputs downloaded',
  'images-upload': 'inputs uploaded through the coordinator, outputs downloaded',
};

interface Baseline {
  /** Mean of the runs before and after the cluster rows. */
  seconds: number;
  runs: number[];
  rssMiB: number;
}

/** One cluster run over `files` in `mode`; the row, once the baseline is known. */
async function runCluster(ctx: BenchContext, files: string[], mode: Mode, inputs: string): Promise<(base: Baseline) => BenchResult> {
  const count = files.length;
  const shared = mode !== 'images-upload';
  ctx.log(`cluster, ${MODES[mode]}: coordinator + ${WORKERS} workers x ${SLOTS} slot`);
  const outDir = path.join(ctx.workDir, `cluster-${mode}`);
  await mkdir(outDir, { recursive: true });
  const roots = shared ? ['--shared-root', path.dirname(files[0]!), '--shared-root', outDir] : [];
  const cluster = await new LocalCluster({ workers: WORKERS, slots: SLOTS, coordinatorArgs: roots }).start();
  try {
    const t0 = performance.now();
    const spec = { label: 'bench images', image: PARAMS, ...(mode === 'images' ? { shared_output_dir: outDir } : {}) };
    const job = await cluster.client.submit(spec, files, { shared });
    let done: Awaited<ReturnType<typeof cluster.client.wait>>;
    let written: Map<string, string>;
    if (mode === 'images') {
      // The cluster writes the outputs into the shared folder, as `submit --shared-output` has it.
      done = await cluster.client.wait(job.id);
      written = new Map(done.outputs.map((o) => [o.name, o.shared_path]));
    } else {
      // Outputs are downloaded as they are published, as `tessera submit -o` does.
      ({ job: done, paths: written } = await cluster.client.collect(job.id, outDir));
    }
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
    ctx.log(`cluster (${MODES[mode]}) ${seconds.toFixed(2)} s`);
    return (base) => ({
      scenario: mode,
      inputs: `${inputs}; ${MODES[mode]}; cluster time includes ${shared ? 'submission' : 'upload'}${mode === 'images' ? '' : ' and download'}`,
      baseline: {
        label: `one process, ${WORKERS * SLOTS} images at a time (sharp, same pipeline), mean of a run before and one after the cluster rows`,
        seconds: base.seconds,
        peakRssMiB: { single: base.rssMiB },
        figures: { photosPerS: round(count / base.seconds, 1), runBeforeS: round(base.runs[0]!, 2), runAfterS: round(base.runs[1]!, 2) },
      },
      tessera: {
        label: `cluster (coordinator + ${WORKERS} workers x ${SLOTS} slot), ${MODES[mode]}`,
        seconds,
        peakRssMiB: rss,
        figures: { photosPerS: round(count / seconds, 1), subtasks: done.subtasks.length, workersUsed: workers.size },
      },
      ratio: base.seconds / seconds,
      ratioMeaning: 'cluster photos/s / one-process photos/s (higher is better)',
      target: { value: 0.9, better: 'higher' },
      checks: {
        allOutputsWebp800: allWebp800,
        bothWorkersUsed: workers.size === WORKERS,
        ...(shared ? { byReference: done.inputs.length === count && done.inputs.every((i) => i.shared_path !== '') } : {}),
        ...(mode === 'images' ? { outputsInSharedFolder: done.outputs.every((o) => path.dirname(o.shared_path) === outDir) } : {}),
      },
    });
  } finally {
    await cluster.stop();
  }
}

export const imagesScenario: MultiBenchScenario = {
  name: 'images',
  description: '400 photos 4000x3000 JPEG -> 800 px WebP: coordinator + 2 workers x 1 slot (inputs and outputs shared; inputs shared, outputs downloaded; all uploaded and downloaded) vs one sharp process, concurrency 2',
  command: 'npm run bench -- images',
  async run(ctx: BenchContext): Promise<BenchResult[]> {
    const [count, width, height] = ctx.smoke ? [6, 1200, 900] : [400, 4000, 3000];
    const files = await photoCache(count, width, height, ctx.log);
    let inputBytes = 0;
    for (const f of files) inputBytes += (await stat(f)).size;
    // A worker with 1 slot gives libvips all the cores (worker.ts): the baseline does the same per image.
    const threads = Math.max(1, Math.floor(os.availableParallelism() / SLOTS));

    ctx.log(`one process: ${count} photos, ${WORKERS * SLOTS} at a time, ${threads} libvips threads each`);
    const before = await runSingleProcess(files, path.join(ctx.workDir, 'single-1'), WORKERS * SLOTS, threads);
    const inputs = `${count} JPEG photos ${width}x${height} q90 (${round(inputBytes / 1024 ** 2, 0)} MiB), resize to 800 px wide, WebP`;
    const rows: ((base: Baseline) => BenchResult)[] = [];
    for (const mode of Object.keys(MODES) as Mode[]) rows.push(await runCluster(ctx, files, mode, inputs));
    ctx.log('one process again');
    const after = await runSingleProcess(files, path.join(ctx.workDir, 'single-2'), WORKERS * SLOTS, threads);
    // Every row is compared with the mean of both runs: the machine's speed drifts over the rows.
    const base: Baseline = { seconds: (before.seconds + after.seconds) / 2, runs: [before.seconds, after.seconds], rssMiB: Math.max(before.rssMiB, after.rssMiB) };
    ctx.log(`one process ${before.seconds.toFixed(2)} s before, ${after.seconds.toFixed(2)} s after the cluster rows`);
    return rows.map((row) => row(base));
  },
};
