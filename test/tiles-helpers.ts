/**
 * Helpers of the tiled-image tests: generated sources, an in-process run of plan -> process -> merge,
 * and pixel comparison.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import type { SpoolFile, SubtaskOutcome, SubtaskPlan } from '../shared/job-kind.js';
import { mergeTiles, planTiles } from '../coordinator/kinds/image-tiles.js';
import { processTile } from '../worker/processors/image-tile.js';
import type { PipelineFn, TileImageParams } from '../shared/media/tile-pipeline.js';
import { applyPipeline, sixteenBitSpace } from '../shared/media/image-pipeline.js';
import { validateImageParams } from '../shared/kinds/image-params.js';
import type { ImageParams__Output } from '../shared/proto/generated/tessera/v1/ImageParams.js';
import type { TilePlan } from '../shared/media/tile-plan.js';
import { tileConfig, type TileConfig } from '../shared/media/tile-config.js';

/**
 * Writes a width x height RGB PNG with detail at every scale (noise on top of gradients and hard
 * edges), so that any halo or placement error changes pixels.
 */
export async function makeSource(file: string, width: number, height: number, format: 'png' | 'jpeg' = 'png'): Promise<string> {
  const noise = await sharp({ create: { width, height, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 60 } } })
    .raw()
    .toBuffer();
  // Overlay a gradient and a grid of hard edges so the content is not isotropic.
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      const edge = (Math.floor(x / 37) + Math.floor(y / 23)) % 2 === 0 ? 40 : -40;
      noise[i] = clamp(noise[i]! * 0.5 + (x * 255) / width * 0.5 + edge);
      noise[i + 1] = clamp(noise[i + 1]! * 0.5 + (y * 255) / height * 0.5);
      noise[i + 2] = clamp(noise[i + 2]! * 0.7 + edge);
    }
  }
  const img = sharp(noise, { raw: { width, height, channels: 3 } });
  await (format === 'png' ? img.png({ compressionLevel: 1 }) : img.jpeg({ quality: 92 })).toFile(file);
  return file;
}

function clamp(v: number): number {
  return Math.max(0, Math.min(255, Math.round(v)));
}

/** Runs the tiled path in-process: plan, every tile through the worker's processor (in the order the planner hands them out), merge. */
export async function runTiledInProcess(
  src: string,
  params: TileImageParams,
  dir: string,
  opts: { slots?: number; pipeline?: PipelineFn; config?: Partial<TileConfig>; sixteenBit?: boolean } = {},
): Promise<{ output: string; plans: TilePlan[] }> {
  const signal = new AbortController().signal;
  const input: SpoolFile = { name: path.basename(src), path: src, size: 0, sha256: '' };
  const config = { ...tileConfig({}), ...opts.config };
  const jobDir = path.join(dir, 'job');
  // As a cluster of this version plans (every worker writes 16-bit tiles) unless told otherwise.
  const planning = await planTiles({ input, params, workDir: jobDir, slots: opts.slots ?? 2, signal, pipeline: opts.pipeline, config, sixteenBit: opts.sixteenBit ?? true });
  const plans: SubtaskPlan[] = [];
  const outcomes: SubtaskOutcome[] = [];
  // As the job manager does: the first strips are processed while the later ones are still being cut.
  const runOne = async (sub: SubtaskPlan): Promise<void> => {
    const index = plans.length;
    plans.push(sub);
    const workDir = path.join(dir, `sub-${index}`);
    await mkdir(workDir, { recursive: true });
    const inputs = sub.inputs.map((f) => ({ name: f.name, path: f.path, size: f.size }));
    const r = await processTile({ plan: sub.plan as TilePlan, inputs, workDir, signal }, opts.pipeline);
    outcomes.push({
      index,
      phase: 0,
      label: sub.label,
      plan: sub.plan,
      items: sub.items,
      ok: true,
      outputs: r.outputs.map((o) => ({ name: o.name, path: o.path, size: 0, sha256: '' })),
      itemErrors: [],
      result: r.result,
      worker: 'in-process',
    });
  };
  for (const sub of planning.subtasks) await runOne(sub);
  if (planning.later) for await (const sub of planning.later) await runOne(sub);
  const outDir = path.join(dir, 'out');
  await mkdir(outDir, { recursive: true });
  const merged = await mergeTiles(outcomes, outDir, signal, jobDir);
  if (merged.errors.length > 0) throw new Error(merged.errors.map((e) => e.message).join('; '));
  // Outcomes reach the merge in arrival order (an upside-down image's strips are cut bottom of the
  // output first); the plans are returned in tile order for the assertions.
  return { output: merged.outputs[0]!.path, plans: plans.map((p) => p.plan as TilePlan).sort((a, b) => a.index - b.index) };
}

/**
 * The same pipeline on the whole image in one sharp call, written as PNG (lossless) at the depth
 * the batch path writes a PNG in: 16 bits for a 16-bit RGB or grey source not made grey.
 */
export async function runWhole(src: string, params: TileImageParams, out: string, pipeline: PipelineFn = applyPipeline): Promise<string> {
  const sixteenBit = sixteenBitSpace(await sharp(src, { limitInputPixels: 1e9 }).metadata(), params, 'png');
  const img = pipeline(sharp(src, { limitInputPixels: 1e9 }), params);
  await (sixteenBit ? img.toColourspace(sixteenBit) : img).png({ compressionLevel: 1 }).toFile(out);
  return out;
}

/** Decoded samples of an image: at 16 bits where it has them (RGB, or grey where one band), else 8-bit sRGB. */
async function samplesOf(file: string, sixteen: boolean): Promise<{ data: Uint8Array | Uint16Array; info: sharp.OutputInfo }> {
  const img = sharp(file, { limitInputPixels: 1e9 });
  if (!sixteen) return img.raw().toBuffer({ resolveWithObject: true });
  const m = await img.metadata();
  const r = await img.toColourspace((m.channels ?? 3) <= 2 ? 'grey16' : 'rgb16').raw({ depth: 'ushort' }).toBuffer({ resolveWithObject: true });
  return { data: new Uint16Array(r.data.buffer, r.data.byteOffset, r.data.length / 2), info: r.info };
}

/**
 * Decoded pixels of two images: dimensions, channels, max absolute difference and PSNR (dB), at 16
 * bits a sample where both are 16-bit (`depth`), else at 8.
 */
export async function comparePixels(a: string, b: string): Promise<{ width: number; height: number; channels: number; maxDiff: number; psnr: number; depth: 8 | 16 }> {
  const [ma, mb] = await Promise.all([sharp(a, { limitInputPixels: 1e9 }).metadata(), sharp(b, { limitInputPixels: 1e9 }).metadata()]);
  const sixteen = ma.depth === 'ushort' && mb.depth === 'ushort';
  const [ra, rb] = await Promise.all([samplesOf(a, sixteen), samplesOf(b, sixteen)]);
  if (ra.info.width !== rb.info.width || ra.info.height !== rb.info.height || ra.info.channels !== rb.info.channels) {
    throw new Error(`size mismatch: ${ra.info.width}x${ra.info.height}x${ra.info.channels} vs ${rb.info.width}x${rb.info.height}x${rb.info.channels}`);
  }
  let maxDiff = 0;
  let se = 0;
  for (let i = 0; i < ra.data.length; i++) {
    const d = Math.abs(ra.data[i]! - rb.data[i]!);
    if (d > maxDiff) maxDiff = d;
    se += d * d;
  }
  const mse = se / ra.data.length;
  const peak = sixteen ? 65535 : 255;
  return {
    width: ra.info.width,
    height: ra.info.height,
    channels: ra.info.channels,
    maxDiff,
    psnr: mse === 0 ? Infinity : 10 * Math.log10((peak * peak) / mse),
    depth: sixteen ? 16 : 8,
  };
}

/** Image params as a client would send them (proto field names), through the kind's own validation. */
export function imageParams(p: Partial<ImageParams__Output>): TileImageParams {
  return validateImageParams(p);
}
