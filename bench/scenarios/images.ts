/**
 * `npm run bench -- images`: 400 photos (4000 x 3000 JPEG -> 800 px wide WebP) through the `image`
 * kind on a real cluster (coordinator + 2 workers x 1 slot, separate processes; the time runs
 * from submission to the last output written where the client wants it) vs the same sharp pipeline
 * in one process with the same total concurrency (2 images at a time, the same libvips threads per
 * image as a worker gives each slot), reading and writing the same disk. Ratio: cluster throughput
 * / single-process throughput. The machine's speed drifts by 10-20% over minutes, so the headline
 * row runs in two rounds of (baseline, cluster) and takes the lower of the rounds' ratios; the
 * other rows run once, against the shorter baseline. Three rows:
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
import { link, mkdir, mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pLimit from 'p-limit';
import sharp from 'sharp';
import { LocalCluster } from '../../client/local-cluster.js';
import { machineCpu, peakRssMiB, percentile, resetSelfPeakRss, round, selfPeakRssMiB } from '../proc-stats.js';
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
  // Two at a time: libvips encodes a JPEG on one thread, so one photo at a time left a core idle.
  const limit = pLimit(2);
  const make = async (i: number): Promise<void> => {
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
  };
  await Promise.all(Array.from({ length: distinct }, (_, i) => limit(() => make(i))));
  for (let i = distinct; i < count; i++) await link(path.join(tmp, names[i % distinct]!), path.join(tmp, names[i]!));
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
  return names.map((n) => path.join(dir, n));
}

/** The image kind's pipeline over `files` in one fresh Node process, `concurrency` at a time. */
interface SingleRun {
  seconds: number;
  rssMiB: number;
  /** The whole machine's busy CPU time over the run. */
  busyCpuS: number;
}

async function runSingleProcess(files: string[], outDir: string, concurrency: number, threads: number): Promise<SingleRun> {
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
  const cpu0 = await machineCpu();
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { cwd: DIST, stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  const exit = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (exit !== 0) throw new Error(`single-process baseline exited with ${exit}`);
  const busyCpuS = (await machineCpu()).busy - cpu0.busy;
  return { ...(JSON.parse(stdout.trim().split('\n').pop()!) as { seconds: number; rssMiB: number }), busyCpuS };
}

type Mode = 'images' | 'images-download' | 'images-upload';
const MODES: Record<Mode, string> = {
  images: 'inputs and outputs on shared storage',
  'images-download': 'inputs on shared storage, outputs downloaded',
  'images-upload': 'inputs uploaded through the coordinator, outputs downloaded',
};

/** What one cluster run measured. */
interface ClusterRun {
  seconds: number;
  /** The whole machine's CPU over the run (every process): what the cluster spent, and left idle. */
  busyCpuS: number;
  idleCpuS: number;
  rss: Record<string, number>;
  subtasks: number;
  workersUsed: number;
  checks: Record<string, boolean>;
}

/** A cluster for `files` (2 workers x 1 slot); with `sharedOutputRoot`, the photos' folder is its shared root and that folder its shared-output root. */
function startCluster(files: string[], sharedOutputRoot?: string): Promise<LocalCluster> {
  // The photos beyond the distinct ones are hard links to them (see photoCache), made on purpose.
  const roots = sharedOutputRoot ? ['--shared-root', path.dirname(files[0]!), '--shared-root-allow-hardlinks', '--shared-output-root', sharedOutputRoot] : [];
  return new LocalCluster({ workers: WORKERS, slots: SLOTS, coordinatorArgs: roots }).start();
}

/**
 * One cluster run over `files` in `mode`: coordinator and workers started for it, stopped after;
 * or, given `reuse` (the smoke run: three cluster starts were most of its time), on that cluster,
 * started with the shared roots and left running.
 */
async function runCluster(ctx: BenchContext, files: string[], mode: Mode, reuse?: { cluster: LocalCluster; outRoot: string }): Promise<ClusterRun> {
  const count = files.length;
  const shared = mode !== 'images-upload';
  ctx.log(`cluster, ${MODES[mode]}: coordinator + ${WORKERS} workers x ${SLOTS} slot${reuse ? ' (the one cluster of the smoke run)' : ''}`);
  const outDir = await mkdtemp(path.join(reuse?.outRoot ?? ctx.workDir, `cluster-${mode}-`));
  const cluster = reuse?.cluster ?? (await startCluster(files, shared ? outDir : undefined));
  // The client's peak is this run's, not making the photos' (634 MiB) in this process.
  resetSelfPeakRss();
  try {
    const cpu0 = await machineCpu();
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
    const cpu1 = await machineCpu();
    if (done.state !== 'JOB_STATE_SUCCEEDED') throw new Error(`images job ended ${done.state}: ${JSON.stringify(done.errors.slice(0, 3))}`);
    const rss: Record<string, number> = { coordinator: await peakRssMiB(cluster.coordinator?.child.pid), client: selfPeakRssMiB() };
    for (const w of cluster.workers) rss[w.name] = await peakRssMiB(w.child.pid);
    let allWebp800 = written.size === count;
    for (const file of written.values()) {
      const m = await sharp(file).metadata();
      if (m.format !== 'webp' || m.width !== 800) allWebp800 = false;
    }
    const workers = new Set(done.subtasks.map((s) => s.worker));
    const run: ClusterRun = {
      seconds,
      busyCpuS: cpu1.busy - cpu0.busy,
      idleCpuS: cpu1.idle - cpu0.idle,
      rss,
      subtasks: done.subtasks.length,
      workersUsed: workers.size,
      checks: {
        allOutputsWebp800: allWebp800,
        bothWorkersUsed: workers.size === WORKERS,
        ...(shared ? { byReference: done.inputs.length === count && done.inputs.every((i) => i.shared_path !== '') } : {}),
        ...(mode === 'images' ? { outputsInSharedFolder: done.outputs.every((o) => path.dirname(o.shared_path) === outDir) } : {}),
      },
    };
    ctx.log(`cluster (${MODES[mode]}) ${seconds.toFixed(2)} s; the machine busy ${run.busyCpuS.toFixed(1)} CPU-s, idle ${run.idleCpuS.toFixed(1)} CPU-s`);
    return run;
  } finally {
    if (!reuse) await cluster.stop();
  }
}

const median = (values: readonly number[]): number => percentile(values, 50);

/**
 * A row from paired runs: round i ran the baseline, then the cluster. The ratio is the median of
 * the rounds' own ratios (each pair close in time, so drift in the machine's speed cancels; of two,
 * the lower), and the times and CPU shown are that round's, so that the row's columns give its
 * ratio. Rows measured once (not paired) are against the shortest of the baseline runs before them.
 */
function row(mode: Mode, inputs: string, count: number, bases: SingleRun[], runs: ClusterRun[]): BenchResult {
  const paired = runs.length === bases.length;
  const ratios = paired ? runs.map((r, i) => bases[i]!.seconds / r.seconds) : [];
  const counted = paired ? ratios.indexOf(median(ratios)) : -1;
  const base = paired ? bases[counted]! : bases.reduce((a, b) => (b.seconds < a.seconds ? b : a));
  const baseSeconds = base.seconds;
  const last = runs[runs.length - 1]!;
  const run = paired ? runs[counted]! : last;
  const seconds = run.seconds;
  const allChecks: Record<string, boolean> = {};
  for (const r of runs) for (const [k, v] of Object.entries(r.checks)) allChecks[k] = (allChecks[k] ?? true) && v;
  return {
    scenario: mode,
    inputs: `${inputs}; ${MODES[mode]}; cluster time includes ${mode === 'images-upload' ? 'upload' : 'submission'}${mode === 'images' ? '' : ' and download'}`,
    baseline: {
      label: `one process, ${WORKERS * SLOTS} images at a time (sharp, same pipeline); ${paired ? `the round counted of ${bases.length}` : `the shortest of the ${bases.length} runs before (not paired)`}`,
      seconds: baseSeconds,
      peakRssMiB: { single: Math.max(...bases.map((b) => b.rssMiB)) },
      figures: {
        photosPerS: round(count / baseSeconds, 1),
        ...Object.fromEntries(bases.map((b, i) => [`run${i + 1}S`, round(b.seconds, 2)])),
        machineBusyCpuS: round(base.busyCpuS, 1),
      },
    },
    tessera: {
      label: `cluster (coordinator + ${WORKERS} workers x ${SLOTS} slot), ${MODES[mode]}${paired ? `; ${runs.length} runs, each right after a baseline run` : ''}`,
      seconds,
      peakRssMiB: last.rss,
      figures: {
        photosPerS: round(count / seconds, 1),
        ...(paired && runs.length > 1 ? Object.fromEntries(runs.map((r, i) => [`run${i + 1}S`, round(r.seconds, 2)])) : {}),
        ...(paired && runs.length > 1 ? Object.fromEntries(ratios.map((q, i) => [`ratioRun${i + 1}`, round(q, 3)])) : {}),
        subtasks: last.subtasks,
        workersUsed: last.workersUsed,
        machineBusyCpuS: round(run.busyCpuS, 1),
        machineIdleCpuS: round(run.idleCpuS, 1),
      },
    },
    ratio: baseSeconds / seconds,
    ratioMeaning: `cluster photos/s / one-process photos/s (higher is better)${paired && runs.length > 1 ? "; the paired rounds' median ratio (of two, the lower), the columns that round's" : ''}`,
    target: { value: 0.9, better: 'higher' },
    checks: allChecks,
  };
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
    const inputs = `${count} JPEG photos ${width}x${height} q90 (${round(inputBytes / 1024 ** 2, 0)} MiB), resize to 800 px wide, WebP`;
    // The headline row in rounds of (baseline, cluster): on a shared machine the speed drifts
    // by 10-20% over minutes, and a pair close in time sees the same machine.
    // Two rounds: a third added 66 s to a bench that must finish within 15 minutes on a slow host.
    const rounds = ctx.smoke ? 1 : 2;
    // The smoke run measures nothing: its three modes share one cluster (each its own job and
    // output folder, under the one shared-output root). The bench starts a fresh one per run.
    const outRoot = ctx.smoke ? await mkdtemp(path.join(ctx.workDir, 'cluster-outputs-')) : undefined;
    const reuse = outRoot ? { cluster: await startCluster(files, outRoot), outRoot } : undefined;
    try {
      const bases: SingleRun[] = [];
      const headline: ClusterRun[] = [];
      for (let i = 0; i < rounds; i++) {
        bases.push(await runSingleProcess(files, path.join(ctx.workDir, `single-${i + 1}`), WORKERS * SLOTS, threads));
        ctx.log(`one process ${bases[i]!.seconds.toFixed(2)} s; the machine busy ${bases[i]!.busyCpuS.toFixed(1)} CPU-s`);
        headline.push(await runCluster(ctx, files, 'images', reuse));
      }
      const download = await runCluster(ctx, files, 'images-download', reuse);
      const upload = await runCluster(ctx, files, 'images-upload', reuse);
      return [row('images', inputs, count, bases, headline), row('images-download', inputs, count, bases, [download]), row('images-upload', inputs, count, bases, [upload])];
    } finally {
      await reuse?.cluster.stop();
    }
  },
};
