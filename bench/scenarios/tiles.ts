/**
 * `npm run bench -- tiles`: one huge image through blur(8) + sharpen, tiled on a real cluster
 * (coordinator + 2 workers x 1 slot, separate processes) vs the same pipeline in one sharp process
 * (a child process, so its peak RSS is its own). Prints the wall-time ratio and each process's
 * VmHWM and CPU seconds, and checks that both outputs decode to the same pixels.
 * `TESSERA_TILE_STRIP_READ=intermediate npm run bench -- tiles` measures strips cut from the source decoded once
 * (each handed to a worker as soon as it is cut).
 */
import { spawn } from 'node:child_process';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { cachedInput } from '../input-cache.js';
import type { BenchContext, BenchResult, BenchScenario } from '../types.js';
import { LocalCluster } from '../../client/local-cluster.js';

// The baseline's child imports compiled modules: dist/, also when this file runs from source (the smoke test).
const COMPILED = import.meta.url.endsWith('.ts') ? '../../dist/' : '../../';
const PIPELINE_MODULE = fileURLToPath(new URL(`${COMPILED}shared/media/image-pipeline.js`, import.meta.url));
const PARAMS_MODULE = fileURLToPath(new URL(`${COMPILED}shared/kinds/image-params.js`, import.meta.url));
const LIMIT = 2_000_000_000;

/** Peak resident set (VmHWM) of a live process, in MiB. */
async function peakRssMiB(pid: number | undefined): Promise<number> {
  if (!pid) return NaN;
  const m = /VmHWM:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}

/**
 * Peak resident set of the processes below `pid` (a worker's processor children, which run the
 * sharp pipelines when isolation is on), in MiB; 0 when there are none.
 */
async function descendantsPeakRssMiB(pid: number | undefined): Promise<number> {
  if (!pid) return 0;
  let peak = 0;
  const children = async (p: number): Promise<number[]> => {
    const out: number[] = [];
    for (const task of await readdir(`/proc/${p}/task`).catch(() => [] as string[])) {
      const list = await readFile(`/proc/${p}/task/${task}/children`, 'utf8').catch(() => '');
      out.push(...list.split(/\s+/).filter(Boolean).map(Number));
    }
    return out;
  };
  const queue = await children(pid);
  while (queue.length > 0) {
    const c = queue.pop()!;
    peak = Math.max(peak, (await peakRssMiB(c).catch(() => 0)) || 0);
    queue.push(...(await children(c)));
  }
  return peak;
}

/** CPU seconds (user + system) of a live process, its reaped children and its live descendants. */
async function treeCpuSeconds(pid: number | undefined): Promise<number> {
  if (!pid) return NaN;
  const own = async (p: number): Promise<number> => {
    const stat = await readFile(`/proc/${p}/stat`, 'utf8').catch(() => '');
    if (!stat) return 0;
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime, stime, cutime, cstime (clock ticks of 1/100 s).
    return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100;
  };
  let total = 0;
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.pop()!;
    total += await own(p);
    for (const task of await readdir(`/proc/${p}/task`).catch(() => [] as string[])) {
      const list = await readFile(`/proc/${p}/task/${task}/children`, 'utf8').catch(() => '');
      queue.push(...list.split(/\s+/).filter(Boolean).map(Number));
    }
  }
  return Math.round(total * 100) / 100;
}

/**
 * A size x size JPEG with detail everywhere, generated fast: a 1000 px noise block repeated by
 * arrayjoin (libvips' Gaussian noise generator needs a minute for 256 Mpx on this machine).
 */
async function makeSource(file: string, size: number): Promise<void> {
  const block = 1000;
  const noise = await sharp({ create: { width: block, height: block, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 50 } } })
    .blur(1.2)
    .png({ compressionLevel: 0 })
    .toBuffer();
  const n = Math.ceil(size / block);
  await sharp(Array.from({ length: n * n }, () => noise), { join: { across: n }, limitInputPixels: LIMIT })
    .extract({ left: 0, top: 0, width: size, height: size })
    .jpeg({ quality: 90 })
    .toFile(file);
}

/** Runs the image kind's pipeline on the whole image in a fresh Node process; returns its wall time and VmHWM. */
async function runSingleProcess(src: string, out: string, params: Record<string, unknown>): Promise<{ seconds: number; cpuSeconds: number; rssMiB: number }> {
  const code = `
    import sharp from 'sharp';
    import { readFileSync } from 'node:fs';
    import { applyPipeline, applyEncoding } from ${JSON.stringify(PIPELINE_MODULE)};
    import { validateImageParams } from ${JSON.stringify(PARAMS_MODULE)};
    const p = validateImageParams(${JSON.stringify(params)});
    const t0 = performance.now();
    await applyEncoding(applyPipeline(sharp(${JSON.stringify(src)}, { limitInputPixels: ${LIMIT} }), p), p, 'jpeg').toFile(${JSON.stringify(out)});
    const seconds = (performance.now() - t0) / 1000;
    const u = process.cpuUsage();
    const cpuSeconds = (u.user + u.system) / 1e6;
    const hwm = /VmHWM:\\s+(\\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))[1];
    console.log(JSON.stringify({ seconds, cpuSeconds, rssMiB: Math.round(Number(hwm) / 1024) }));
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { cwd: path.dirname(PIPELINE_MODULE), stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  const exit = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (exit !== 0) throw new Error(`single-process baseline exited with ${exit}`);
  return JSON.parse(stdout.trim().split('\n').pop()!) as { seconds: number; cpuSeconds: number; rssMiB: number };
}

/**
 * Max absolute difference of two images' decoded pixels. Each is decoded once, as a stream of raw
 * pixels (libvips reads the JPEG top to bottom, so memory stays bounded), and the streams are compared
 * piece by piece: a memcmp where they agree, a byte loop only where they do not. Decoding each band
 * by itself instead took 19 s for two 16,000 px images here (every band decoded the rows above it).
 */
export async function maxPixelDiff(a: string, b: string): Promise<number> {
  const [ma, mb] = await Promise.all([sharp(a, { limitInputPixels: LIMIT }).metadata(), sharp(b, { limitInputPixels: LIMIT }).metadata()]);
  if (ma.width !== mb.width || ma.height !== mb.height || ma.channels !== mb.channels) return Infinity;
  const pixels = (file: string): AsyncIterator<Buffer> => sharp(file, { limitInputPixels: LIMIT, sequentialRead: true }).raw()[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const [ia, ib] = [pixels(a), pixels(b)];
  const next = async (it: AsyncIterator<Buffer>): Promise<Buffer | undefined> => {
    const r = await it.next();
    return r.done ? undefined : r.value;
  };
  let ra: Buffer = Buffer.alloc(0);
  let rb: Buffer = Buffer.alloc(0);
  let max = 0;
  for (;;) {
    if (ra.length === 0) ra = (await next(ia)) ?? ra;
    if (rb.length === 0) rb = (await next(ib)) ?? rb;
    if (ra.length === 0 || rb.length === 0) return ra.length === rb.length ? max : Infinity;
    const n = Math.min(ra.length, rb.length);
    const x = ra.subarray(0, n);
    const y = rb.subarray(0, n);
    if (!x.equals(y)) for (let i = 0; i < n; i++) max = Math.max(max, Math.abs(x[i]! - y[i]!));
    ra = ra.subarray(n);
    rb = rb.subarray(n);
  }
}

export const tilesScenario: BenchScenario = {
  name: 'tiles',
  description: 'huge image, blur(8) + sharpen: tiled on coordinator + 2 workers vs one sharp process',
  command: 'npm run bench -- tiles',
  async run(ctx: BenchContext): Promise<BenchResult> {
    const size = ctx.smoke ? 2000 : 16_000;
    const src = await cachedInput(ctx, `huge-${size}.jpg`, `${size}x${size} JPEG`, (file) => makeSource(file, size));
    // The smoke image is under the automatic threshold: force tiles so the same path runs.
    const params = { blur: 8, sharpen: true, format: 'jpeg', ...(ctx.smoke ? { tile_size: 512 } : {}) };

    ctx.log('single sharp process');
    const baseOut = path.join(ctx.workDir, 'single.jpg');
    const base = await runSingleProcess(src, baseOut, params);

    ctx.log('cluster: coordinator + 2 workers x 1 slot');
    const cluster = await new LocalCluster({ workers: 2, slots: 1 }).start();
    try {
      const t0 = performance.now();
      const job = await cluster.client.submit({ label: 'bench tiles', image: params }, [src]);
      const done = await cluster.client.wait(job.id);
      const files = await cluster.client.download(job.id, path.join(ctx.workDir, 'cluster'));
      const seconds = (performance.now() - t0) / 1000;
      const out = [...files.values()][0];
      if (done.state !== 'JOB_STATE_SUCCEEDED' || !out) throw new Error(`cluster job ended ${done.state}: ${JSON.stringify(done.errors)}`);
      const workers = new Set(done.subtasks.map((s) => s.worker));
      const rss: Record<string, number> = { coordinator: await peakRssMiB(cluster.coordinator?.child.pid) };
      const cpu: Record<string, number> = { coordinator: await treeCpuSeconds(cluster.coordinator?.child.pid) };
      for (const w of cluster.workers) {
        cpu[w.name] = await treeCpuSeconds(w.child.pid);
        rss[w.name] = await peakRssMiB(w.child.pid);
        // The worker's own VmHWM leaves out the processor child that held the pixels.
        const child = await descendantsPeakRssMiB(w.child.pid);
        if (child > 0) rss[`${w.name} processor`] = child;
      }
      const diff = await maxPixelDiff(out, baseOut);
      const ratio = seconds / base.seconds;
      const clusterCpu = Object.values(cpu).reduce((a, b) => a + b, 0);
      ctx.log(
        `single ${base.seconds.toFixed(2)} s, ${base.cpuSeconds.toFixed(1)} CPU-s (${base.rssMiB} MiB), cluster ${seconds.toFixed(2)} s, ${clusterCpu.toFixed(1)} CPU-s ${JSON.stringify(cpu)} (${JSON.stringify(rss)}), ratio ${ratio.toFixed(2)}, max pixel diff ${diff}`,
      );
      const maxRss = Math.max(...Object.values(rss));
      return {
        scenario: 'tiles',
        inputs: `${size}x${size} JPEG q90, blur(8) + sharpen, JPEG out; cluster time includes upload and download`,
        baseline: { label: 'one sharp process (image kind pipeline)', seconds: base.seconds, peakRssMiB: { single: base.rssMiB } },
        tessera: {
          label: 'cluster (coordinator + 2 workers x 1 slot), tiled',
          seconds,
          peakRssMiB: rss,
          figures: {
            tiles: done.subtasks.length,
            workersUsed: workers.size,
            outputBytes: (await stat(out)).size,
            maxPixelDiff: diff,
            cpuSeconds: Math.round(clusterCpu * 100) / 100,
            singleCpuSeconds: Math.round(base.cpuSeconds * 100) / 100,
            ...Object.fromEntries(Object.entries(cpu).map(([k, v]) => [`cpuSeconds ${k}`, v])),
            stripRead: process.env['TESSERA_TILE_STRIP_READ'] || 'source (default)',
            subtasks: done.subtasks.map((s) => s.label).join('; '),
          },
        },
        ratio,
        ratioMeaning: 'cluster seconds / single-process seconds (lower is better)',
        target: { value: 1.1, better: 'lower' },
        checks: {
          pixelIdentical: diff === 0,
          tilesOnBothWorkers: workers.size === 2,
          ...(ctx.smoke ? {} : { rssBelowSingleProcess: maxRss < base.rssMiB }),
        },
      };
    } finally {
      await cluster.stop();
    }
  },
};

export default tilesScenario;
