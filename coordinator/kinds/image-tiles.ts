/**
 * Coordinator side of huge-image tiling, called by the `image` kind: decide whether an input is
 * tiled, decode it once into a random-access intermediate, cut halo'd tiles as subtasks, and stitch
 * the processed tiles back.
 *
 * Why a `.v` intermediate: JPEG and PNG decode sequentially, so cutting tile N straight from the
 * source would re-decode every row above it. libvips' native `.v` is raw pixels with a header, read
 * through mmap windows: extracting any rectangle costs only its own bytes.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import type { FinalOutput, ItemFailure, SpoolFile, SubtaskOutcome, SubtaskPlan } from '../../shared/job-kind.js';
import { invalidArgument, TesseraError } from '../../shared/errors.js';
import { tileConfig, type TileConfig } from '../../shared/media/tile-config.js';
import { splitForTiles, type PipelineFn, type TileImageParams } from '../../shared/media/tile-pipeline.js';
import { checkFormatFits, stitchTiles, tiledExtension, type PlacedTile, type TiledFormat } from '../../shared/media/tile-stitch.js';
import { applyPipeline, outputFormat } from '../../shared/media/image-pipeline.js';
import { withExtension } from '../../shared/names.js';
import { isTilePlan, type TilePlan, type TileResult } from '../../shared/media/tile-plan.js';
import { chooseTileSize, grow, mapSize, tileGrid, unmapRect } from '../../shared/media/tiling.js';

export { isTilePlan, type TilePlan, type TileResult };

/**
 * Whether `input` goes down the tiled path: `tile_size` set, or more pixels than the threshold
 * (read from the header only, cheap). Unreadable inputs return false and fail in the batch path with
 * its own message.
 */
export async function needsTiling(input: SpoolFile, params: TileImageParams, config: TileConfig = tileConfig()): Promise<boolean> {
  if (params.tileSize > 0) return true;
  try {
    const m = await sharp(input.path, { limitInputPixels: false }).metadata();
    return (m.width ?? 0) * (m.height ?? 0) > config.thresholdPixels;
  } catch {
    return false;
  }
}

/** Options of {@link planTiles}. */
export interface PlanTilesOptions {
  input: SpoolFile;
  params: TileImageParams;
  /** Private scratch folder (the job's workDir). */
  workDir: string;
  /** Worker slots, to size tiles when `tile_size` is 0. */
  slots: number;
  signal: AbortSignal;
  /** Output file name the image kind chose for this input (its extension is replaced to match the format). */
  outputName?: string;
  /** The image kind's pipeline; tests may pass another. */
  pipeline?: PipelineFn;
  config?: TileConfig;
}

/** Decodes `input` once (running the pipeline's prefix), cuts it into halo'd tiles and returns one subtask per tile. */
export async function planTiles(o: PlanTilesOptions): Promise<SubtaskPlan[]> {
  const config = o.config ?? tileConfig();
  const pipeline = o.pipeline ?? applyPipeline;
  const p = o.params;
  const split = splitForTiles(p);
  const name = o.input.name;
  const dir = path.join(o.workDir, `tiles-${safeStem(name)}-${createHash('sha256').update(name).digest('hex').slice(0, 8)}`);
  await mkdir(dir, { recursive: true });

  const inputMeta = await readMeta(o.input.path, config, name);
  const format = outputFormat(p, inputMeta.format);

  // One decode pass: auto-orient, crop, greyscale and resize as the whole-image pipeline would do them.
  const intermediate = path.join(dir, 'decoded.v');
  o.signal.throwIfAborted();
  const src = sharp(o.input.path, { limitInputPixels: config.limitInputPixels, sequentialRead: true });
  const decoded = await wrapBadInput(pipeline(src, split.prefix).toFile(intermediate), name);
  o.signal.throwIfAborted();

  const { width, height } = decoded;
  const channels = decoded.channels;
  const depth = (await sharp(intermediate, { limitInputPixels: config.limitInputPixels }).metadata()).depth ?? 'uchar';
  const out = mapSize(width, height, split.orientation);
  checkFormatFits(format, split.output, out.width, out.height, name);
  const tileSize = chooseTileSize(width, height, o.slots, p.tileSize);
  // The grid is laid on the *output* canvas so that its short last row and column end up at the
  // bottom and right whatever the rotation: arrayjoin pads every cell to the largest, and padding
  // there is cropped off in one extract.
  const grid = tileGrid(out.width, out.height, tileSize, 0);

  const plans: SubtaskPlan[] = [];
  for (const t of grid) {
    o.signal.throwIfAborted();
    const core = unmapRect(t.core, width, height, split.orientation);
    const cut = grow(core, split.halo, width, height);
    const tilePath = path.join(dir, `cut-${t.index}.v`);
    await sharp(intermediate, { limitInputPixels: config.limitInputPixels })
      .extract({ left: cut.x, top: cut.y, width: cut.w, height: cut.h })
      .toFile(tilePath);
    const file: SpoolFile = { name: 'tile.v', path: tilePath, ...(await sizeAndHash(tilePath)) };
    const plan: TilePlan = {
      type: 'tile',
      source: name,
      index: t.index,
      count: grid.length,
      cut,
      coreInCut: { x: core.x - cut.x, y: core.y - cut.y, w: core.w, h: core.h },
      out: t.core,
      outWidth: out.width,
      outHeight: out.height,
      orientation: split.orientation,
      params: split.tile,
      format,
      output: split.output,
      quality: p.quality,
      outputName: withExtension(o.outputName ?? name, tiledExtension(format, split.output)),
      channels,
      depth,
      limitInputPixels: config.limitInputPixels,
    };
    plans.push({
      label: `${name} tile ${t.index + 1}/${grid.length} (${cut.x},${cut.y} ${cut.w}x${cut.h})`,
      inputs: [file],
      plan,
      weight: cut.w * cut.h,
      items: [name],
    });
  }
  return plans;
}

/**
 * The image kind's entry point: picks the inputs that go down the tiled path and plans their tiles.
 * A tiled input that cannot be planned (bad file, refused op) becomes a per-input error, so the
 * other inputs of the job still run.
 */
export async function planTiledInputs(
  inputs: readonly SpoolFile[],
  params: TileImageParams,
  o: { workDir: string; slots: number; signal: AbortSignal; outputNames?: ReadonlyMap<string, string>; config?: TileConfig },
): Promise<{ tiled: Set<string>; subtasks: SubtaskPlan[]; errors: ItemFailure[] }> {
  const config = o.config ?? tileConfig();
  const tiled = new Set<string>();
  const subtasks: SubtaskPlan[] = [];
  const errors: ItemFailure[] = [];
  for (const input of inputs) {
    if (!(await needsTiling(input, params, config))) continue;
    tiled.add(input.name);
    try {
      subtasks.push(...(await planTiles({ input, params, workDir: o.workDir, slots: o.slots, signal: o.signal, outputName: o.outputNames?.get(input.name), config })));
    } catch (err) {
      if (!(err instanceof TesseraError) || o.signal.aborted) throw err;
      errors.push({ input: input.name, code: err.codeName, message: err.message });
    }
  }
  return { tiled, subtasks, errors };
}

/**
 * Stitches the tile outcomes of every tiled input into outputs in `outputDir`. Each tile is checked
 * (succeeded, right size, all present) before stitching; an input with a bad tile gets an error, not
 * an output with a hole.
 */
export async function mergeTiles(
  outcomes: readonly SubtaskOutcome[],
  outputDir: string,
  signal: AbortSignal,
): Promise<{ outputs: FinalOutput[]; errors: ItemFailure[] }> {
  const bySource = new Map<string, SubtaskOutcome[]>();
  for (const o of outcomes) {
    if (!isTilePlan(o.plan)) continue;
    const list = bySource.get(o.plan.source) ?? [];
    list.push(o);
    bySource.set(o.plan.source, list);
  }
  const outputs: FinalOutput[] = [];
  const errors: ItemFailure[] = [];
  for (const [source, list] of bySource) {
    signal.throwIfAborted();
    try {
      outputs.push(await stitchSource(source, list, outputDir));
    } catch (err) {
      if (err instanceof TesseraError || err instanceof TileCheckError) {
        errors.push({ input: source, code: err instanceof TesseraError ? err.codeName : 'DATA_LOSS', message: err.message });
      } else {
        throw err;
      }
    }
  }
  return { outputs, errors };
}

class TileCheckError extends Error {}

async function stitchSource(source: string, list: SubtaskOutcome[], outputDir: string): Promise<FinalOutput> {
  const first = list[0]!.plan as TilePlan;
  const failed = list.find((o) => !o.ok);
  if (failed) {
    const e = failed.error;
    throw new TileCheckError(`${source}: tile ${(failed.plan as TilePlan).index + 1} failed: ${e?.message ?? 'unknown error'}`);
  }
  if (list.length !== first.count) throw new TileCheckError(`${source}: ${list.length} of ${first.count} tiles came back`);
  const tiles: PlacedTile[] = [];
  for (const o of list) {
    const plan = o.plan as TilePlan;
    const r = o.result as Partial<TileResult> | undefined;
    const file = o.outputs[0];
    if (!file || r?.width !== plan.out.w || r.height !== plan.out.h || r.channels !== plan.channels) {
      throw new TileCheckError(
        `${source}: tile ${plan.index + 1} came back ${r?.width}x${r?.height}x${r?.channels}, expected ${plan.out.w}x${plan.out.h}x${plan.channels}`,
      );
    }
    tiles.push({ path: file.path, rect: plan.out });
  }
  const name = first.outputName;
  const outPath = path.join(outputDir, name);
  const got = await stitchTiles({
    tiles,
    width: first.outWidth,
    height: first.outHeight,
    channels: first.channels,
    format: first.format,
    output: first.output,
    quality: first.quality,
    outPath,
    limitInputPixels: first.limitInputPixels,
  });
  if (first.output === 'image' && (got.width !== first.outWidth || got.height !== first.outHeight)) {
    throw new TileCheckError(`${source}: stitched ${got.width}x${got.height}, expected ${first.outWidth}x${first.outHeight}`);
  }
  return { name, path: outPath, source, contentType: contentTypeOf(first.format, first.output) };
}

async function readMeta(file: string, config: TileConfig, input: string): Promise<sharp.Metadata> {
  const m = await wrapBadInput(sharp(file, { limitInputPixels: config.limitInputPixels }).metadata(), input);
  if (!m.width || !m.height) throw invalidArgument(`${input}: not a readable image (no dimensions)`, input);
  if ((m.pages ?? 1) > 1) throw invalidArgument(`${input}: multi-page images are not tiled; send one page`, input);
  return m;
}

/** Turns sharp's decode errors (corrupt file, too many pixels) into INVALID_ARGUMENT naming the input. */
async function wrapBadInput<T>(p: Promise<T>, input: string): Promise<T> {
  try {
    return await p;
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw invalidArgument(`${input}: cannot decode image for tiling: ${msg.split('\n')[0]}`, input);
  }
}

async function sizeAndHash(file: string): Promise<{ size: number; sha256: string }> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return { size: (await stat(file)).size, sha256: h.digest('hex') };
}

function safeStem(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^\.+/, '') || 'image';
}

function contentTypeOf(format: TiledFormat, output: string): string {
  if (output !== 'image') return 'application/zip';
  return format === 'tiff' ? 'image/tiff' : `image/${format}`;
}
