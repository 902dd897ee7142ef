/** Worker side of `image`: runs the pipeline on each image of a batch; a bad image fails only itself. */
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { status } from '../../shared/grpc-status.js';
import { TesseraError, hasLocalTroubleCode, invalidArgument, isAbortError, isLocalTrouble, resourceExhausted } from '../../shared/errors.js';
import type { ItemFailure, ProcessOutput, WorkerProcessor } from '../../shared/job-kind.js';
import { validateImageParams, type ImageParams } from '../../shared/kinds/image-params.js';
import { describeSharpError } from '../../shared/media/image-errors.js';
import { isTilePlan } from '../../shared/media/tile-plan.js';
import { convertedAhead, needsSrgbFromSixteen, writeSrgbCopy } from '../../shared/media/tile-pipeline.js';
import { processTile } from './image-tile.js';
import { vipsSafePath } from '../../shared/media/vips-path.js';
import { FORMAT_EXTENSION, forFormat, animationRefusal, cropProblem, gifTruncation, tiffTruncation, keepsFrames, maxInputPixels, openImage, outputFormat, outputPixels, imagePages, renderImage, isSixteenBitRgbOrGrey, sixteenBitSpace } from '../../shared/media/image-pipeline.js';

interface BatchPlan {
  type: 'batch';
  items: { input: string; output: string }[];
  /** 16-bit results allowed (IMAGE_16BIT_FEATURE); absent in older coordinators' plans. */
  sixteenBit?: boolean;
}

export interface ImageItemResult {
  input: string;
  output: string;
  width: number;
  height: number;
  format: string;
  size: number;
}

export const imageProcessor: WorkerProcessor<ImageParams> = {
  name: 'image',
  params: (spec) => validateImageParams(spec.image),
  async process(ctx) {
    if (isTilePlan(ctx.plan)) return processTile({ ...ctx, plan: ctx.plan });
    const plan = ctx.plan as BatchPlan;
    const outputs: ProcessOutput[] = [];
    const itemErrors: ItemFailure[] = [];
    const items: ImageItemResult[] = [];
    for (const [k, item] of plan.items.entries()) {
      ctx.signal.throwIfAborted();
      const input = ctx.inputs.find((i) => i.name === item.input);
      if (!input) throw new TesseraError(status.INTERNAL, `input ${item.input} missing from the assignment`);
      try {
        const r = await processOne(input.path, item.output, ctx.params, ctx.workDir, ctx.signal, plan.sixteenBit === true);
        outputs.push({ name: r.name, path: r.path, source: item.input });
        items.push({ input: item.input, output: r.name, width: r.width, height: r.height, format: r.format, size: r.size });
      } catch (err) {
        if (isAbortError(err) || ctx.signal.aborted) throw err;
        // This worker's full disk is not the image's fault: the subtask is retried elsewhere.
        // libvips reports the system's error on a line of its own ("system error: No space left
        // on device"); the file names are taken out first, since a file may be named after one.
        const raw = String((err as Error).message ?? err);
        const code = (err as NodeJS.ErrnoException).code;
        if (hasLocalTroubleCode(err) || isLocalTrouble(raw, [input.path, path.join(ctx.workDir, item.output)])) {
          const cause = /system error: ([^\n]+)/.exec(raw)?.[1] ?? code ?? 'no space';
          throw new TesseraError(status.UNAVAILABLE, `${item.input}: this worker could not write the result (${cause}): this worker's trouble, not the image's`, { retryable: true });
        }
        if (err instanceof TesseraError) itemErrors.push({ input: item.input, code: err.codeName, message: `${item.input}: ${err.message}` });
        else itemErrors.push({ input: item.input, code: 'INVALID_ARGUMENT', message: `${item.input}: ${describeSharpError(err, { path: input.path, name: item.input, linksIn: ctx.workDir })}` });
      }
      ctx.progress((k + 1) / plan.items.length, item.input);
    }
    // If every image of the subtask failed, the subtask still succeeded: the failures are the items'.
    return { outputs, itemErrors, result: { items } };
  },
};

async function processOne(given: string, outputName: string, params: ImageParams, workDir: string, signal: AbortSignal, sixteenBitAllowed: boolean) {
  // Under a name libvips opens as that file (an input's own name may end in `[...]`).
  const file = await vipsSafePath(given, workDir);
  // The header only, with no limit: the pixel limit is applied below, and named.
  const meta = await openImage(file, { limitInputPixels: false }).metadata().catch(async (err: unknown) => {
    const cutShort = await tiffTruncation(file).catch(() => undefined);
    throw cutShort ? invalidArgument(cutShort) : err;
  });
  const truncated = meta.format === 'gif' ? await gifTruncation(file) : meta.format === 'tiff' ? await tiffTruncation(file).catch(() => undefined) : undefined;
  if (truncated) throw invalidArgument(truncated);
  const frames = await imagePages(file, meta);
  const format = outputFormat(params, meta.format);
  const p = forFormat(params, format);
  // An animation keeps its frames in a format that holds them (its first frame only in the others).
  const animated = frames > 1 && keepsFrames(meta.format, format);
  // What is decoded: every frame of an animation kept as one, else the first.
  const decoded = (meta.width ?? 0) * (meta.height ?? 0) * (animated ? frames : 1);
  if (decoded > maxInputPixels()) {
    const what = animated ? `${frames} frames of ${meta.width}x${meta.height} = ${decoded} pixels` : `${meta.width}x${meta.height} pixels`;
    throw resourceExhausted(`image of ${what} is over the limit of ${maxInputPixels()} pixels (TESSERA_MAX_INPUT_PIXELS)`);
  }
  const badCrop = cropProblem(p, meta);
  if (badCrop) throw invalidArgument(badCrop);
  if (animated) {
    const refusal = animationRefusal(p, meta.orientation ?? 1);
    if (refusal) throw invalidArgument(refusal);
    // The limit on the source's pixels (all frames) holds for the result's too: a small animation
    // resized up would otherwise make frames times the pixels.
    const made = outputPixels({ width: meta.width ?? 0, height: meta.height ?? 0, orientation: meta.orientation ?? 1 }, p) * frames;
    if (made > maxInputPixels()) throw resourceExhausted(`the result would be ${frames} frames of ${made / frames} pixels = ${made} pixels, over the limit of ${maxInputPixels()} pixels (TESSERA_MAX_INPUT_PIXELS)`);
  }
  const name = outputName.endsWith(`.${FORMAT_EXTENSION[format]}`) ? outputName : `${outputName}.${FORMAT_EXTENSION[format]}`;
  const dest = path.join(workDir, name);
  // A 16-bit source with its own profile: converted to sRGB into a copy first, which is rendered.
  let src = file;
  let samples = meta;
  let profile: string | undefined;
  // libvips keeps pages as one stack of frames alike: of one size, bands and sample format.
  const unlikePages = async (err: unknown): Promise<never> => {
    const differs = animated ? /page (\d+) differs from page (\d+)/.exec(String((err as Error)?.message)) : null;
    if (differs) throw invalidArgument(await pagesUnlike(file, Number(differs[1]), Number(differs[2]), frames));
    throw err;
  };
  try {
    // Inside the try: a copy that cannot be written or read back whole (a truncated source) is removed too.
    // Every page of a multi-page source whose frames are kept (a .v copy keeps the page height).
    if (needsSrgbFromSixteen(meta, p.keepMetadata, format)) {
      src = path.join(workDir, `.srgb-${name}.v`);
      await writeSrgbCopy(file, src, meta, maxInputPixels(), animated).catch(unlikePages);
      samples = await openImage(src, { limitInputPixels: false }).metadata();
    }
    const greyWithProfile = samples.channels !== undefined && samples.channels <= 2 && Boolean(samples.hasProfile);
    // A sharpened TIFF of a grey source whose profile is kept is cast to 8 bits through that profile.
    if (greyWithProfile && p.keepMetadata && p.sharpen && format === 'tiff' && samples.icc) {
      profile = path.join(workDir, `.profile-${name}.icc`);
      await writeFile(profile, samples.icc);
    }
    // 16 bits kept in PNG and TIFF, in the bands the result has at 8: one where a grey source's
    // profile is kept with it (applyEncoding), else RGB.
    const sixteenBit = sixteenBitAllowed ? sixteenBitSpace(samples, p, format, greyWithProfile && p.keepMetadata) : undefined;
    const info = await renderImage(src, p, dest, {
      format,
      animated,
      samples,
      source: {
        density: samples.density,
        // A source that says no loop count (a multi-page TIFF) loops for ever, as one sharp call writes it.
        ...(animated && { loop: meta.loop ?? 0, delay: meta.delay }),
        greyWithProfile,
        sharpenedInFloat: !isSixteenBitRgbOrGrey(samples),
        profile,
        cmykWithProfile: samples.space === 'cmyk' && Boolean(samples.hasProfile),
        sixteenBit,
        convertedAhead: src !== file && p.keepMetadata && convertedAhead(meta, format),
      },
      workDir,
      signal,
    }).catch(unlikePages);
    // An animation's height is one frame's (sharp reports the frames' stack).
    return { name, path: dest, width: info.width, height: info.pageHeight ?? info.height, format: info.format, size: info.size };
  } finally {
    if (src !== file) await rm(src, { force: true });
    if (profile) await rm(profile, { force: true });
  }
}

/**
 * Why the pages of `file` cannot be kept as one animation: how page `page` differs from page `base`
 * (libvips said only that it does; a colour page among grey ones was said to be another size).
 */
async function pagesUnlike(file: string, page: number, base: number, frames: number): Promise<string> {
  const describe = async (k: number): Promise<string | undefined> => {
    const m = await openImage(file, { page: k }).metadata().catch(() => undefined);
    return m ? `${m.width}x${m.height}, ${m.channels} ${m.channels === 1 ? 'band' : 'bands'}, ${m.depth ?? 'unknown'} samples` : undefined;
  };
  const [one, other] = await Promise.all([describe(page), describe(base)]);
  const how = one && other ? `page ${page + 1} is ${one} where page ${base + 1} is ${other}` : `page ${page + 1} is unlike page ${base + 1}`;
  return `its ${frames} pages are not all alike (${how}), and its pages are kept only when they are of one size, bands and sample format; ask for another format (jpeg, png) for its first page`;
}
