/** `tessera demo` / `npm start`: a whole cluster on loopback processing generated sample images. */
import { lstat, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import sharp from 'sharp';
import { TesseraError } from '../../shared/errors.js';
import { sha256File } from '../../shared/streams.js';
import type { JobEvent__Output } from '../../shared/proto/generated/tessera/v1/JobEvent.js';
import { LocalCluster, removeStaleDirs } from '../local-cluster.js';

const DEMO_DIR_PREFIX = 'tessera-demo-';
import { fmtBytes, prepareOutputDir, shortState } from './output.js';

/** The name of the `i`th sample image (from 0), without its extension. */
const sampleStem = (i: number): string => `sample-${String(i + 1).padStart(2, '0')}`;

/**
 * Generates `n` varied sample photos-to-be (gradients, shapes and noise) as JPEGs. `signal`: stop
 * before the next image (and never make `dir` again once it is aborted: the demo removes it then).
 */
export async function generateSampleImages(dir: string, n: number, signal?: AbortSignal): Promise<string[]> {
  signal?.throwIfAborted();
  await mkdir(dir, { recursive: true });
  const files: string[] = [];
  for (let i = 0; i < n; i++) {
    signal?.throwIfAborted();
    const width = 1600 + (i % 3) * 320;
    const height = 1200 - (i % 2) * 200;
    const hue = (i * 47) % 360;
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
      <defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1">
        <stop offset="0" stop-color="hsl(${hue},70%,55%)"/><stop offset="1" stop-color="hsl(${(hue + 140) % 360},70%,35%)"/>
      </linearGradient></defs>
      <rect width="100%" height="100%" fill="url(#g)"/>
      <circle cx="${width * 0.3}" cy="${height * 0.4}" r="${height * 0.25}" fill="hsl(${(hue + 60) % 360},80%,70%)" opacity="0.8"/>
      <rect x="${width * 0.55}" y="${height * 0.2}" width="${width * 0.3}" height="${height * 0.5}" fill="hsl(${(hue + 200) % 360},60%,50%)" opacity="0.7"/>
    </svg>`;
    const file = path.join(dir, `${sampleStem(i)}.jpg`);
    await sharp(Buffer.from(svg)).jpeg({ quality: 90 }).toFile(file);
    files.push(file);
  }
  return files;
}

export async function runDemo(o: { output: string; images: number }): Promise<number> {
  const started = Date.now();
  const out = process.stdout;
  // Before anything starts: a file, or a link to nothing, where the folder goes.
  const outDir = await prepareOutputDir(o.output);
  // An earlier demo's outputs are replaced (all of them: one with more images made more), nothing
  // else in the folder is touched: a file of the user's under an output's name stops the demo
  // before it changes or starts anything.
  const earlier = await earlierDemoOutputs(outDir);
  for (let i = 0; i < o.images; i++) {
    const name = `${sampleStem(i)}.webp`;
    const file = path.join(outDir, name);
    // lstat: a link left at the name (even a dangling one) is something there too.
    if (!earlier.has(name) && (await lstat(file).then(() => true, () => false))) {
      throw new TesseraError(grpc.status.ALREADY_EXISTS, `${file} already exists and is not an earlier demo's output: kept (run the demo with -o another folder)`, { retryable: false });
    }
  }
  await Promise.all([...earlier.values()].map((file) => rm(file, { force: true })));
  out.write('Tessera demo: starting a coordinator and two workers on 127.0.0.1...\n');
  // Its own settings: a shell set up for a real cluster (TLS, tokens, a config file) would
  // otherwise reach this one's processes, which run open on loopback.
  const cluster = new LocalCluster({ workers: 2, slots: 1, ownSettings: true });
  // The sample images of a demo killed before it could remove them go when the next one starts.
  await removeStaleDirs(DEMO_DIR_PREFIX);
  const samples = await mkdtemp(path.join(os.tmpdir(), `${DEMO_DIR_PREFIX}${process.pid}-`));
  // What this run leaves: its cluster stopped, its samples gone, and the outputs it downloaded
  // listed as a demo's (a run cut short too, so that the next one replaces them).
  const published = new Map<string, string>();
  let cleaned: Promise<void> | undefined;
  // The samples being written when the demo is stopped: it waits for them before removing their
  // folder (an image written into it during the removal failed that with ENOTEMPTY, the folder left).
  const stopping = new AbortController();
  let generating: Promise<unknown> | undefined;
  const cleanUp = (): Promise<void> =>
    (cleaned ??= (async () => {
      stopping.abort();
      await cluster.stop();
      await generating?.catch(() => undefined);
      await rm(samples, { recursive: true, force: true });
      await writeDemoManifest(outDir, published);
    })());
  // Ctrl-C (or a kill) would end the process before the `finally` below.
  const onSignal = (signal: NodeJS.Signals): void => {
    void cleanUp().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await cluster.start();
    out.write(`  coordinator at ${cluster.address}, workers: ${cluster.workers.map((w) => w.name).join(', ')}\n`);
    const generation = generateSampleImages(samples, o.images, stopping.signal);
    generating = generation;
    const files = await generation;
    out.write(`  generated ${files.length} sample images (1600-2240 px JPEG)\n`);
    const t0 = Date.now();
    const submitted = await cluster.client.submit({ label: 'demo', image: { width: 800, format: 'webp', quality: 80, sharpen: true } }, files);
    out.write(`  submitted job ${submitted.id}: resize to 800 px wide, sharpen, WebP q80\n`);
    // Each output is downloaded as soon as it is published, while the others are still processed.
    // Each output's checksum as announced: what the manifest may list as this demo's.
    const onEvent = (e: JobEvent__Output): void => {
      if (e.output?.name) published.set(e.output.name, e.output.sha256);
    };
    const { job, paths } = await cluster.client.collect(submitted.id, outDir, { onEvent }).catch((err: unknown) => {
      const e = err as TesseraError;
      if (e?.code !== grpc.status.ALREADY_EXISTS) throw err;
      throw new TesseraError(grpc.status.ALREADY_EXISTS, `${e.message.replace(/: kept .*$/, '')}: kept, it is not an earlier demo's output (run the demo with -o another folder)`, { retryable: false });
    });
    const secs = (Date.now() - t0) / 1000;
    const perWorker = new Map<string, number>();
    for (const s of job.subtasks) perWorker.set(s.worker, (perWorker.get(s.worker) ?? 0) + 1);
    const bytes = job.outputs.reduce((n, x) => n + Number(x.size), 0);
    out.write(`\nJob ${job.id} ${shortState(job.state)} in ${secs.toFixed(2)} s\n`);
    out.write(`  images: ${job.inputs.length} in, ${job.outputs.length} out (${fmtBytes(bytes)}), ${job.errors.length} error(s)\n`);
    for (const [w, n] of perWorker) out.write(`  ${w}: ${n} subtask(s)\n`);
    out.write(`  outputs written to ${outDir} (${paths.size} files)\n`);
    out.write(`Total demo time ${((Date.now() - started) / 1000).toFixed(1)} s.\n`);
    return shortState(job.state) === 'succeeded' ? 0 : 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await cleanUp();
  }
}

/** What the demo wrote into an output folder (name -> SHA-256): a later run replaces those files, and only while unchanged. */
const MANIFEST = '.tessera-demo.json';

async function readDemoManifest(dir: string): Promise<Map<string, string>> {
  const manifest = await readFile(path.join(dir, MANIFEST), 'utf8').then((t) => JSON.parse(t) as { outputs?: Record<string, unknown> }, () => undefined);
  const entries = new Map<string, string>();
  for (const [name, sha256] of Object.entries(manifest?.outputs ?? {})) {
    // Only plain names in this folder: the manifest is a file anyone could have edited.
    if (typeof sha256 === 'string' && name === path.basename(name) && !name.startsWith('.')) entries.set(name, sha256);
  }
  return entries;
}

/**
 * The files an earlier demo wrote into `dir` that still hold its bytes (name -> path): this run
 * replaces them all, so the folder holds its outputs only (an earlier run with more images made
 * more). A file of the user's, or an output the user changed since, is not among them.
 */
async function earlierDemoOutputs(dir: string): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for (const [name, sha256] of await readDemoManifest(dir)) {
    const file = path.join(dir, name);
    if ((await sha256File(file).catch(() => undefined)) === sha256) found.set(name, file);
  }
  return found;
}

/**
 * The manifest after a run, finished or cut short: the outputs (name -> SHA-256 as announced) that
 * are in `dir` with those bytes, i.e. that it downloaded. A folder it never made is left unmade.
 */
async function writeDemoManifest(dir: string, published: ReadonlyMap<string, string>): Promise<void> {
  const entries: Record<string, string> = {};
  for (const [name, sha256] of published) {
    if ((await sha256File(path.join(dir, name)).catch(() => undefined)) === sha256) entries[name] = sha256;
  }
  if (Object.keys(entries).length === 0 && !(await lstat(path.join(dir, MANIFEST)).then(() => true, () => false))) return;
  await writeFile(path.join(dir, MANIFEST), `${JSON.stringify({ outputs: entries }, null, 2)}\n`).catch(() => undefined);
}
