/**
 * Worker side of huge-image tiling: run the pipeline on one halo'd tile, then keep only its core.
 *
 * The two steps are two sharp pipelines on purpose: an `extract` chained into the same sharp call
 * would run *before* blur/sharpen (sharp's fixed internal order), and the ops would then see the cut
 * edge instead of the halo.
 */
import path from 'node:path';
import sharp from 'sharp';
import type { LocalFile, ProcessResult } from '../../shared/job-kind.js';
import { failedPrecondition } from '../../shared/errors.js';
import { applyPipeline } from '../../shared/media/image-pipeline.js';
import type { PipelineFn } from '../../shared/media/tile-pipeline.js';
import { mapRect, mapSize } from '../../shared/media/tiling.js';
import type { TilePlan, TileResult } from '../../shared/media/tile-plan.js';

/** What {@link processTile} needs from the worker's ProcessContext. */
export interface TileProcessContext {
  plan: TilePlan;
  inputs: LocalFile[];
  workDir: string;
  signal: AbortSignal;
  progress?: (fraction: number, message?: string) => void;
}

/** Processes one tile; returns `tile-<index>.v` (the output-oriented core) and its size as the result. */
export async function processTile(ctx: TileProcessContext, pipeline: PipelineFn = applyPipeline): Promise<ProcessResult> {
  const plan = ctx.plan;
  const input = ctx.inputs[0];
  if (!input) throw failedPrecondition(`${plan.source}: tile ${plan.index + 1} has no input file`, plan.source);
  ctx.signal.throwIfAborted();

  const expected = mapSize(plan.cut.w, plan.cut.h, plan.orientation);
  // Where the core sits inside the processed (possibly rotated/mirrored) tile.
  const core = mapRect(plan.coreInCut, plan.cut.w, plan.cut.h, plan.orientation);
  const name = `tile-${plan.index}.v`;
  const outPath = path.join(ctx.workDir, name);
  const piped = pipeline(sharp(input.path, { limitInputPixels: plan.limitInputPixels }), plan.params);
  let out: sharp.OutputInfo;
  if (plan.depth === 'uchar') {
    // 8-bit (the usual case): keep the processed tile in memory (a few tens of MB) rather than
    // writing and re-reading it.
    const { data, info } = await piped.raw().toBuffer({ resolveWithObject: true });
    checkSize(plan, info.width, info.height, expected);
    ctx.progress?.(0.7, 'cropping halo');
    ctx.signal.throwIfAborted();
    out = await sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels }, limitInputPixels: plan.limitInputPixels })
      .extract({ left: core.x, top: core.y, width: core.w, height: core.h })
      .toFile(outPath);
  } else {
    // Deeper formats go through a .v file, which keeps the band format and interpretation.
    const processed = path.join(ctx.workDir, `processed-${plan.index}.v`);
    const info = await piped.toFile(processed);
    checkSize(plan, info.width, info.height, expected);
    ctx.progress?.(0.7, 'cropping halo');
    ctx.signal.throwIfAborted();
    out = await sharp(processed, { limitInputPixels: plan.limitInputPixels })
      .extract({ left: core.x, top: core.y, width: core.w, height: core.h })
      .toFile(outPath);
  }
  ctx.progress?.(1);
  const result: TileResult = { index: plan.index, width: out.width, height: out.height, channels: out.channels };
  return { outputs: [{ name, path: outPath, source: plan.source }], result };
}

function checkSize(plan: TilePlan, width: number, height: number, expected: { width: number; height: number }): void {
  if (width !== expected.width || height !== expected.height) {
    // The tile params carry no resize or crop, so a size change means the pipeline did something
    // the planner did not model: fail loudly rather than stitch a wrong image.
    throw failedPrecondition(
      `${plan.source}: tile ${plan.index + 1} processed to ${width}x${height}, expected ${expected.width}x${expected.height}`,
      plan.source,
    );
  }
}
