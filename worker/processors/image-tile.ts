/**
 * Worker side of huge-image tiling: run the pipeline on one halo'd tile, then keep only its core.
 *
 * The two steps cannot be one sharp pipeline: an `extract` chained into the same sharp call would
 * run *before* blur/sharpen (sharp's fixed internal order), and the ops would then see the cut edge
 * instead of the halo. For 8-bit tiles the core is written straight from the processed buffer
 * (tile-vips-file.ts), so the crop costs one write, not a second pipeline over every pixel.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import type { LocalFile, ProcessResult } from '../../shared/job-kind.js';
import { TesseraError, failedPrecondition, hasLocalTroubleCode, invalidArgument, isAbortError, isLocalTrouble } from '../../shared/errors.js';
import { describeSharpError } from '../../shared/media/image-errors.js';
import { applyPipeline, holdsSixteenBits } from '../../shared/media/image-pipeline.js';
import { vipsSafePath } from '../../shared/media/vips-path.js';
import { keepsOwnSpace, type PipelineFn } from '../../shared/media/tile-pipeline.js';
import { encodeTiled } from '../../shared/media/tile-stitch.js';
import { readVipsResolution, writeVipsRect, type Resolution } from '../../shared/media/tile-vips-file.js';
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

/**
 * Processes one tile; returns `tile-<index>.v` (the output-oriented core) and its size as the result.
 * A strip read from the job's source that libvips cannot decode (a truncated or corrupt file) is the
 * input's fault: INVALID_ARGUMENT naming it, not retried, as the coordinator's decode reports it.
 */
export async function processTile(ctx: TileProcessContext, pipeline: PipelineFn = applyPipeline): Promise<ProcessResult> {
  const plan = ctx.plan;
  const input = ctx.inputs[0];
  if (!input) throw failedPrecondition(`${plan.source}: tile ${plan.index + 1} has no input file`, plan.source);
  ctx.signal.throwIfAborted();
  try {
    return await processInput(ctx, input, pipeline);
  } catch (err) {
    if (plan.read !== 'source' || err instanceof TesseraError || isAbortError(err) || ctx.signal.aborted) throw err;
    const raw = String((err as Error)?.message ?? err);
    // This worker's full disk is not the image's fault: left to the retry.
    if (hasLocalTroubleCode(err) || isLocalTrouble(raw, [input.path, ctx.workDir])) throw err;
    throw invalidArgument(`${plan.source}: cannot decode image for tiling: ${describeSharpError(err, { path: input.path, name: plan.source, linksIn: ctx.workDir })}`, plan.source);
  }
}

async function processInput(ctx: TileProcessContext, input: LocalFile, pipeline: PipelineFn): Promise<ProcessResult> {
  const plan = ctx.plan;
  const expected = mapSize(plan.cut.w, plan.cut.h, plan.orientation);
  // Where the core sits inside the processed (possibly rotated/mirrored) tile.
  const core = mapRect(plan.coreInCut, plan.cut.w, plan.cut.h, plan.orientation);
  // File names are made of it: a coordinator's plan with a path in it must not lead outside the work folder.
  if (!Number.isSafeInteger(plan.index) || plan.index < 0) throw invalidArgument(`tile plan: index ${JSON.stringify(plan.index)} is not a whole number`);
  const name = `tile-${plan.index}.v`;
  const outPath = path.join(ctx.workDir, name);
  const jpegName = `tile-${plan.index}.jpg`;
  const jpegPath = path.join(ctx.workDir, jpegName);
  // Reading the original source, sequential access lets libvips decode down to the cut's last row
  // and drop the rows above it as it goes, instead of decoding the whole image up front. With
  // keep_metadata the source's pixels stay in its colour space (the stitch attaches its profile).
  // The source itself (an intermediate has no profile): a CMYK one's converted through its own profile.
  // Under a name libvips opens as that file (an input's own name may end in `[...]`).
  const source = await vipsSafePath(input.path, ctx.workDir);
  const m = plan.read === 'source' ? await sharp(source, { limitInputPixels: plan.limitInputPixels }).metadata() : undefined;
  const src = sharp(source, { limitInputPixels: plan.limitInputPixels, sequentialRead: plan.read === 'source', ignoreIcc: m ? keepsOwnSpace(m, plan.params.keepMetadata, plan.format) : plan.params.keepMetadata });
  const piped = pipeline(src, plan.params);
  let result: TileResult;
  // A 16-bit source's image in PNG or TIFF is written at 16 bits where the plan says so, as on the
  // batch path (sixteenBitSpace; a tiled result has RGB bands): its tiles stay 16-bit to the stitch.
  const sixteenBit = plan.sixteenBit === true && plan.output === 'image' && plan.depth === 'ushort' && !plan.params.grayscale && holdsSixteenBits(plan.format) ? 'rgb16' : undefined;
  if ((plan.depth === 'uchar' || plan.depth === 'ushort') && !sixteenBit) {
    // 8-bit output (the usual case): keep the processed tile in memory (at most one strip) rather
    // than writing and re-reading it. A 16-bit tile is processed at 16 bits and comes out of the
    // pipeline as 8-bit sRGB or grey, converted once at the end exactly as the whole-image pipeline does.
    const processed = await piped.raw().toBuffer({ resolveWithObject: true });
    checkSize(plan, processed.info.width, processed.info.height, expected);
    ctx.progress?.(0.8, 'writing core');
    ctx.signal.throwIfAborted();
    if (plan.deliver === 'jpeg') {
      // A whole-width strip of a JPEG output: encode its rows here, with the stitch's own encoder
      // settings; the coordinator joins the strips' entropy-coded data (tile-jpeg-splice.ts).
      const { width, channels } = processed.info;
      if (core.x !== 0 || core.w !== width) throw failedPrecondition(`${plan.source}: tile ${plan.index + 1} is not a whole-width strip`, plan.source);
      const rows = processed.data.subarray(core.y * width * channels, (core.y + core.h) * width * channels);
      // One band (greyscale: sharp's raw output keeps one band of it) is written as three-band sRGB,
      // as the whole-image pipeline writes it: the same libvips conversion, so the same bytes.
      const img = sharp(rows, { raw: { width, height: core.h, channels }, limitInputPixels: plan.limitInputPixels });
      await encodeTiled(img, 'jpeg', 'image', plan.quality, width, core.h, channels).toFile(jpegPath);
      result = { index: plan.index, width: core.w, height: core.h, channels };
      ctx.progress?.(1);
      return { outputs: [{ name: jpegName, path: jpegPath, source: plan.source }], result };
    }
    // libvips' arrayjoin (the stitch) takes one or four bands, not grey + alpha.
    const { data, info } = processed.info.channels === 2 ? greyAlphaToRgba(processed.data, processed.info) : processed;
    // The raw buffer lost the source's resolution: the stitch takes it from these tiles.
    await writeVipsRect(outPath, data, info, core, await inputResolution(plan, input, ctx.workDir));
    result = { index: plan.index, width: core.w, height: core.h, channels: info.channels };
  } else {
    // 16-bit results and deeper formats go through a .v file, which keeps the band format and
    // interpretation (told the 16-bit space, else sharp writes 8-bit sRGB).
    const processed = path.join(ctx.workDir, `processed-${plan.index}.v`);
    const info = await (sixteenBit ? piped.toColourspace(sixteenBit) : piped).toFile(processed);
    checkSize(plan, info.width, info.height, expected);
    ctx.progress?.(0.7, 'cropping halo');
    ctx.signal.throwIfAborted();
    const cropped = sharp(processed, { limitInputPixels: plan.limitInputPixels }).extract({ left: core.x, top: core.y, width: core.w, height: core.h });
    const out = await (sixteenBit ? cropped.toColourspace(sixteenBit) : cropped).toFile(outPath);
    result = { index: plan.index, width: out.width, height: out.height, channels: out.channels };
  }
  ctx.progress?.(1);
  return { outputs: [{ name, path: outPath, source: plan.source }], result };
}

/**
 * The resolution of the tile's pixels, as libvips has it: from the header of an intermediate's
 * `.v` cut, else from the source, by a 1 x 1 `.v` of its first pixel (the source read takes
 * sequential, non-progressive sources only, so this decodes its first rows, not the image).
 */
async function inputResolution(plan: TilePlan, input: LocalFile, workDir: string): Promise<Resolution> {
  if (plan.read === 'intermediate') return readVipsResolution(input.path);
  const probe = path.join(workDir, `resolution-${plan.index}.v`);
  try {
    await sharp(await vipsSafePath(input.path, workDir), { limitInputPixels: plan.limitInputPixels, sequentialRead: true }).extract({ left: 0, top: 0, width: 1, height: 1 }).toFile(probe);
    return await readVipsResolution(probe);
  } finally {
    await rm(probe, { force: true });
  }
}

function checkSize(plan: TilePlan, width: number, height: number, expected: { width: number; height: number }): void {
  if (width !== expected.width || height !== expected.height) {
    // The tile params carry no resize, and a crop only as the cut itself, so a size change means
    // the pipeline did something the planner did not model: fail loudly rather than stitch a wrong image.
    throw failedPrecondition(
      `${plan.source}: tile ${plan.index + 1} processed to ${width}x${height}, expected ${expected.width}x${expected.height}`,
      plan.source,
    );
  }
}

/** Grey + alpha pixels as RGBA (the grey repeated), which is what sharp's own raw-to-`.v` conversion makes of them. */
function greyAlphaToRgba(data: Buffer, info: { width: number; height: number }): { data: Buffer; info: { width: number; height: number; channels: number } } {
  const out = Buffer.allocUnsafe(info.width * info.height * 4);
  for (let i = 0, o = 0; i < data.length; i += 2, o += 4) {
    out[o] = out[o + 1] = out[o + 2] = data[i]!;
    out[o + 3] = data[i + 1]!;
  }
  return { data: out, info: { width: info.width, height: info.height, channels: 4 } };
}
