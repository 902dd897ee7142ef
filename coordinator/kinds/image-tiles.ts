/**
 * Coordinator side of huge-image tiling, called by the `image` kind: decide whether an input is
 * tiled and how its tiles reach the workers, plan one subtask per tile, and stitch the processed
 * tiles back.
 *
 * Two ways in for auto-tiling. By default each worker reads a whole-width strip straight from the
 * original file (the compressed source crosses the wire, not raw pixels, and the decode runs on the
 * workers in parallel), at the price of re-decoding the rows above its strip: (n + 1) / 2 decodes
 * for n strips. With `TESSERA_TILE_STRIP_READ=intermediate`, and for inputs the source read cannot
 * take (resize, EXIF rotation, progressive, too many strips), the coordinator decodes the source
 * once into libvips' native `.v` (raw pixels behind a header, where a band of rows is one byte
 * range) and copies whole-width strips out of it while it is being written, handing each strip to
 * the job manager as soon as it is cut (`PlanResult.later`): one decode, overlapped with the
 * workers, but the strips' raw pixels cross the wire. A forced `--tile` grid cuts halo'd squares
 * from the same kind of intermediate. JPEG strips come back encoded and are spliced without
 * re-encoding.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import type { FinalOutput, ItemFailure, SpoolFile, SubtaskOutcome, SubtaskPlan } from '../../shared/job-kind.js';
import { status } from '../../shared/grpc-status.js';
import { hasLocalTroubleCode, invalidArgument, localTroubleCode, TesseraError } from '../../shared/errors.js';
import { diskRoom, nearlyFull } from '../../shared/disk-space.js';
import { MAX_SOURCE_STRIPS, tileConfig, type TileConfig } from '../../shared/media/tile-config.js';
import { checkSampleFormat, intermediateSpace, keepsOwnSpace, needsSrgbFromSixteen, splitForTiles, writeSrgbCopy, type PipelineFn, type TileImageParams, type TileSplit } from '../../shared/media/tile-pipeline.js';
import { checkFormatFits, FORMAT_MAX_EDGE, gridOrder, stitchTiles, tiledExtension, tileFormatFor, type PlacedTile, type TiledFormat } from '../../shared/media/tile-stitch.js';
import { spliceJpegStrips } from '../../shared/media/tile-jpeg-splice.js';
import { vipsSafePath, withVipsPath } from '../../shared/media/vips-path.js';
import { ownLines, reasonLine } from '../../shared/media/image-errors.js';
import { cutStripsWhileDecoding } from '../../shared/media/tile-strip-cutter.js';
import { readVipsSize, vipsExtension, writeVipsCarrier } from '../../shared/media/tile-vips-file.js';
import { ANIMATED_FORMATS, applyPipeline, forFormat, maxInputPixels, outputFormat, outputPixels, imagePages, outputSize, padsAlpha, turnsQuarter } from '../../shared/media/image-pipeline.js';
import type { ImageParams } from '../../shared/kinds/image-params.js';
import { withExtension } from '../../shared/names.js';
import { IMAGE_16BIT_FEATURE, isTilePlan, type TilePlan, type TileResult } from '../../shared/media/tile-plan.js';
import { balancedStripEnds, chooseTileSize, grow, mapSize, stripGrid, stripsEndingAt, tileGrid, unmapRect, type Rect, type TileGeometry } from '../../shared/media/tiling.js';

export { isTilePlan, outputPixels, outputSize, type TilePlan, type TileResult };

/**
 * Whether `input` goes down the tiled path: `tile_size` or a pyramid (`tiled_output`, which only the
 * tiled path makes) asked for, whatever the image's size, or an image the pipeline makes with
 * more pixels than the threshold (after orientation, crop, resize and rotation: a 48 Mpx photo
 * resized to 800 px wide is a small job for one worker, which decodes it shrunk) unless it is
 * turned by an angle off the right angles, or a source the batch path cannot open at all (over
 * `TESSERA_MAX_INPUT_PIXELS`). Decided from the header only:
 * the dimensions the submission check read, else the file's. Unreadable inputs return false and
 * fail in the batch path with its own message.
 */
export async function needsTiling(input: SpoolFile, params: TileImageParams, config: TileConfig = tileConfig()): Promise<boolean> {
  if (params.tileSize > 0 || params.tiledOutput) return true;
  const dims = await headerDims(input);
  if (!dims) return false;
  if (dims.width * dims.height > maxInputPixels()) return true;
  // A turn off the right angles cannot be tiled exactly (it is refused there), and its canvas
  // grows past the threshold soon (a 30 Mpx photo straightened by 10 degrees: 40 Mpx): one worker
  // turns the whole image, within the batch path's own limits, rather than the job failing.
  if (params.rotate % 90 !== 0) return false;
  return outputPixels(dims, params) > config.thresholdPixels;
}

/** The source's size and orientation: as the submission check read them, else from the file's header; undefined when unreadable. */
async function headerDims(input: SpoolFile): Promise<SpoolFile['dims']> {
  if (input.dims) return input.dims;
  try {
    const m = await withVipsPath(input.path, (name) => sharp(name, { limitInputPixels: false }).metadata());
    return { width: m.width ?? 0, height: m.height ?? 0, orientation: m.orientation ?? 1 };
  } catch {
    return undefined;
  }
}

/**
 * Why a result from a source of `dims` is refused, or undefined when it is within `limit` pixels
 * (`limitName` names the limit in the message; `frames`: of an animation that keeps them).
 * Decided from the header alone: a 64 x 48 JPEG asked for 1,000,000 x 1,000,000 px would
 * otherwise be decoded into terabytes of intermediate on the coordinator's disk first.
 */
export function oversizeOutput(dims: { width: number; height: number; orientation: number }, p: ImageParams, limit: number, limitName: string, frames = 1): string | undefined {
  const size = outputSize(dims, p);
  const pixels = Math.round(size.width * size.height) * frames;
  if (pixels <= limit) return undefined;
  const shape = `${Math.round(size.width)}x${Math.round(size.height)}${frames > 1 ? `x${frames} frames` : ''}`;
  return `the result would be ${shape} = ${pixels} pixels, over the limit ${limitName}=${limit}; ask for a smaller width or height`;
}

/**
 * Where the result of `p` on an image of `dims` would be over the edge `format` holds (WebP 16,383
 * px, AVIF 16,384, JPEG 65,500, GIF 65,535): the refusal's words. A pyramid's tiles are small.
 */
export function formatEdgeProblem(dims: { width: number; height: number; orientation: number }, p: ImageParams, format: TiledFormat): string | undefined {
  if (p.tiledOutput) return undefined;
  const size = outputSize(dims, p);
  const [width, height] = [Math.round(size.width), Math.round(size.height)];
  const max = FORMAT_MAX_EDGE[format];
  if (width <= max && height <= max) return undefined;
  return `format: ${format} holds at most ${max} x ${max} pixels, the result would be ${width} x ${height}; ask for a smaller width or height, or use --format png or tiff (format png or tiff)`;
}

/** Options of {@link planTiles}. */
export interface PlanTilesOptions {
  input: SpoolFile;
  params: TileImageParams;
  /** Private scratch folder (the job's workDir). */
  workDir: string;
  /** The name libvips opens the input by, where not its path (vips-path.ts); set by planTiles. */
  source?: string;
  /** Worker slots, to size tiles when `tile_size` is 0. */
  slots: number;
  signal: AbortSignal;
  /** Output file name the image kind chose for this input (its extension is replaced to match the format). */
  outputName?: string;
  /** The image kind's pipeline; tests may pass another. */
  pipeline?: PipelineFn;
  config?: TileConfig;
  /** 16-bit tiles allowed (every image worker has IMAGE_16BIT_FEATURE): a 16-bit PNG or TIFF result. */
  sixteenBit?: boolean;
}

/** The subtasks of one tiled input: those ready now, and (strips still being decoded) the rest as they are cut. */
export interface TilePlanning {
  subtasks: SubtaskPlan[];
  /** The remaining strips, each yielded as soon as its rows are decoded and copied out (job-kind.ts `PlanResult.later`). */
  later?: AsyncIterable<SubtaskPlan>;
}

/**
 * Plans the tiles of one input: a forced `tile_size` gives a grid of halo'd squares cut from the
 * decoded intermediate; auto-tiling gives whole-width strips, read by each worker straight from the
 * source when it can ({@link sourceStripCount}) unless `TESSERA_TILE_STRIP_READ=intermediate`, else
 * cut from the intermediate as the decode writes it ({@link planDecodedStrips}: the first strip
 * now, the others `later`).
 */
export async function planTiles(o: PlanTilesOptions): Promise<TilePlanning> {
  const config = o.config ?? tileConfig();
  let split = splitForTiles(o.params);
  // The name libvips is given for the input (see vips-path.ts).
  o = { ...o, source: await vipsSafePath(o.input.path, o.workDir) };
  const sourceMeta = await readMeta(o.source!, config, o.input.name);
  // Not where the result pads a picture with alpha (see padsAlpha); whether its samples are 16-bit
  // is the workers' to see (the intermediate's or source's depth in the plan).
  o = { ...o, sixteenBit: o.sixteenBit === true && !padsAlpha(sourceMeta, o.params) };
  // A pyramid of a TIFF, AVIF/HEIF or GIF source gets JPEG (or, with alpha, PNG) tiles.
  const format = tileFormatFor(outputFormat(o.params, sourceMeta.format), split.output, sourceMeta.hasAlpha ?? false);
  // A JPEG result's transparency laid on the background, by the decode (the prefix) here.
  o = { ...o, params: forFormat(o.params, format) };
  split = splitForTiles(o.params);
  checkSampleFormat(sourceMeta, o.input.name, split);
  checkWholeDecode(sourceMeta, config, o.input.name, split.prefix.autoOrient, o.params.tileSize > 0 && split.output === 'image');
  const pages = await imagePages(o.source!, sourceMeta);
  if (pages > 1) {
    // An animated GIF or WebP gives its first frame in a format that does not keep frames (as on the
    // batch path); libvips reads page 0 alone unless told otherwise, here and on the workers.
    const animation = sourceMeta.format === 'gif' || sourceMeta.format === 'webp';
    if (!animation) throw invalidArgument(`${o.input.name}: multi-page images are not tiled; send one page`, o.input.name);
    if (split.output === 'image' && ANIMATED_FORMATS.has(format)) {
      // Forced (image.tile_size) or over the threshold: the way out differs.
      const why = o.params.tileSize > 0
        ? 'image.tile_size (--tile) tiles it; leave tile_size at 0'
        : 'the result here is over the tiling threshold; ask for a smaller size';
      throw invalidArgument(`${o.input.name}: an animation keeps its frames only untiled (${why}), or ask for another format for its first frame`, o.input.name);
    }
  }
  // A crop outside the image gets a message naming the crop rather than libvips' extract error.
  sourceRegion(upright(sourceMeta, o.params), o.params, o.input.name);
  // A result too big for its format is refused from the header, before a pixel is decoded (a
  // 400 x 300 JPEG asked 24000 wide in WebP decoded 2 GB of intermediate first). The cutter checks
  // the decoded size again.
  const predicted = outputSize({ width: sourceMeta.width ?? 0, height: sourceMeta.height ?? 0, orientation: sourceMeta.orientation ?? 1 }, o.params);
  checkFormatFits(format, split.output, Math.round(predicted.width), Math.round(predicted.height), o.input.name);
  if (o.params.keepMetadata) await saveMetadata(o, config, sourceMeta);
  // A 16-bit source with its own profile: converted to sRGB into a copy first, which the decode reads
  // instead (as the whole-image path does); never read as strips, which the workers take from the source.
  let inputMeta = sourceMeta;
  if (needsSrgbFromSixteen(sourceMeta, o.params.keepMetadata, format)) {
    const copy = path.join(await tileDir(o.workDir, o.input.name), 'srgb.v');
    await wrapBadInput(writeSrgbCopy(o.source!, copy, sourceMeta, config.limitInputPixels), o.input.name, copy, o.source ?? o.input.path);
    o = { ...o, input: { ...o.input, path: copy }, source: copy };
    inputMeta = { ...(await sharp(copy, { limitInputPixels: config.limitInputPixels }).metadata()), format: sourceMeta.format };
  }
  if (o.params.tileSize > 0) {
    checkForcedTile(o.params.tileSize, Math.round(predicted.width), Math.round(predicted.height), split.halo, config, o.input.name);
    return { subtasks: await planIntermediateTiles(o, config, split, format, inputMeta) };
  }
  if (config.stripRead === 'source' && inputMeta === sourceMeta) {
    const strips = sourceStripCount(inputMeta, o.params, split, config, o.slots, o.input.name);
    if (strips > 0) return { subtasks: planSourceStrips(o, config, split, inputMeta, format, strips) };
  }
  return planDecodedStrips(o, config, split, format, inputMeta);
}

/**
 * A source libvips decodes only whole (a progressive JPEG, an interlaced PNG, a WebP, AVIF/HEIF or
 * GIF frame) is decoded in the coordinator's memory, all of it at once, before its strips are cut:
 * refused, naming it, above the pixels a strip may have (TESSERA_TILE_MAX_STRIP_PIXELS, what a
 * decode is sized for). A few-hundred-KiB interlaced PNG of 16,000 x 16,000 took a coordinator to
 * 869 MiB; one of a gigapixel would take it down, with every job it holds (review MEM).
 */
function checkWholeDecode(m: sharp.Metadata, config: TileConfig, input: string, autoOrient: boolean, forcedTile: boolean): void {
  const pixels = (m.width ?? 0) * (m.height ?? 0);
  if (!tooWholeToCut(m, config, autoOrient)) return;
  const turned = autoOrient && (m.orientation ?? 1) > 2;
  // Both causes said where both hold (a phone's progressive portrait photo): the advice, followed, is enough.
  const format = m.isProgressive || !['jpeg', 'png', 'tiff'].includes(m.format ?? '');
  const kind = m.format === 'jpeg' ? 'a progressive JPEG' : m.format === 'png' ? 'an interlaced PNG' : `a ${(m.format ?? 'image').toUpperCase()}`;
  const what = format ? `${kind}${turned ? ` turned by its EXIF orientation ${m.orientation}` : ''}` : `an image turned by its EXIF orientation ${m.orientation}`;
  let fix = format ? `save it${turned ? ' upright' : ''} as a baseline JPEG, a non-interlaced PNG or a TIFF` : 'save it upright (orientation 1)';
  // Tiled only because tile_size asked it (not a pyramid): untiled, one worker makes it whole.
  if (forcedTile && pixels <= maxInputPixels()) fix += ', or leave image.tile_size at 0 (one worker then makes it whole)';
  throw new TesseraError(
    status.RESOURCE_EXHAUSTED,
    `${input}: ${what} of ${m.width}x${m.height} decodes only whole, and ${(pixels / 1e6).toFixed(0)} Mpx is more than a decode may hold (${(config.maxStripPixels / 1e6).toFixed(0)} Mpx, TESSERA_TILE_MAX_STRIP_PIXELS): ${fix}`,
    { input, retryable: false },
  );
}

/**
 * Whether `m` is a source libvips decodes only whole and larger than the coordinator may hold
 * decoded (TESSERA_TILE_MAX_STRIP_PIXELS): see {@link checkWholeDecode}.
 */
function tooWholeToCut(m: sharp.Metadata, config: TileConfig, autoOrient: boolean): boolean {
  // An EXIF orientation other than upright or mirrored left to right is applied by the decode, and
  // libvips turns (or flips top to bottom) only a whole image: a portrait photo of 1 Gpx held 3 GB
  // of the coordinator's memory, the process every job shares (review IWILD2).
  const turned = autoOrient && (m.orientation ?? 1) > 2;
  const whole = m.isProgressive || !['jpeg', 'png', 'tiff'].includes(m.format ?? '') || turned;
  return whole && (m.width ?? 0) * (m.height ?? 0) > config.maxStripPixels;
}

/**
 * Whether an input the job did not ask to tile (no `tile_size`, no pyramid), tiled only for its
 * size, goes to the batch path instead: a source the coordinator would have to hold decoded whole
 * to cut ({@link tooWholeToCut}) that a worker can open (within TESSERA_MAX_INPUT_PIXELS). One
 * worker then decodes and makes it whole, under its memory ceiling, as it does any image under the
 * tiling threshold: a phone's 200 Mpx portrait photo (EXIF orientation 6) converted at full size
 * was refused, asking for it to be saved upright.
 */
async function batchInstead(input: SpoolFile, params: TileImageParams, config: TileConfig): Promise<boolean> {
  if (params.tileSize > 0 || params.tiledOutput) return false;
  const m = await withVipsPath(input.path, (name) => sharp(name, { limitInputPixels: false }).metadata()).catch(() => undefined);
  return m !== undefined && (m.width ?? 0) * (m.height ?? 0) <= maxInputPixels() && tooWholeToCut(m, config, params.autoOrient);
}

/** Every subtask of a planning, waiting for the `later` ones (the whole decode). */
export async function allTiles(p: TilePlanning): Promise<SubtaskPlan[]> {
  const all = [...p.subtasks];
  if (p.later) for await (const s of p.later) all.push(s);
  return all;
}

/**
 * Strips from a source decoded once: the coordinator decodes the source once (running the
 * pipeline's prefix: orient, crop, greyscale, resize) into a `.v` intermediate, and whole-width
 * strips with their halo are copied out of it as libvips writes it top to bottom
 * (tile-strip-cutter.ts), so no row is decoded twice and cutting strip N costs only its own bytes.
 * Returns once the first strip is cut (so that an input that cannot be decoded at all is still a
 * per-input error) and yields the others `later`, each as soon as its last row is decoded: workers
 * start on the top of the image while the coordinator decodes the rest. One strip per slot (more if
 * a strip would exceed `maxStripPixels`), equal heights on 16-row boundaries; JPEG strips come back
 * encoded and are spliced (tile-jpeg-splice.ts), others as raw cores for the stitch.
 */
async function planDecodedStrips(o: PlanTilesOptions, config: TileConfig, split: TileSplit, format: TiledFormat, m: sharp.Metadata): Promise<TilePlanning> {
  const strips = decodedStrips(o, config, split, format, m, await tileDir(o.workDir, o.input.name));
  const first = await strips.next();
  if (first.done) return { subtasks: [] };
  return { subtasks: [first.value], later: strips };
}

async function* decodedStrips(o: PlanTilesOptions, config: TileConfig, split: TileSplit, format: TiledFormat, m: sharp.Metadata, dir: string): AsyncGenerator<SubtaskPlan, void, undefined> {
  const pipeline = o.pipeline ?? applyPipeline;
  const name = o.input.name;
  const intermediate = path.join(dir, 'decoded.v');
  const deliver = jpegStrips(format, split, o.params);
  o.signal.throwIfAborted();
  let planned: { t: TileGeometry; core: Rect; cut: Rect }[] = [];
  let out = { width: 0, height: 0 };
  let depth = 'uchar';
  const release = await reserveRoomForDecoded(dir, o, split, m, config, 'strips');
  const src = openSource(o, config, m, format);
  const cuts = cutStripsWhileDecoding({
    intermediate,
    decode: () => wrapBadInput(decodePrefix(pipeline, src, split, m).toFile(intermediate), name, intermediate, o.source ?? o.input.path),
    signal: o.signal,
    plan: ({ width, height, depth: d }) => {
      depth = d;
      out = mapSize(width, height, split.orientation);
      checkFormatFits(format, split.output, out.width, out.height, name);
      const n = Math.max(1, o.slots, Math.ceil((out.width * out.height) / config.maxStripPixels));
      // Equal strips: every worker now does the same work per row (no decode above its strip).
      const grid = stripGrid(out.width, out.height, n, split.orientation, 0, 16);
      planned = grid.map((t) => {
        const core = unmapRect(t.core, width, height, split.orientation);
        return { t, core, cut: grow(core, split.halo, width, height) };
      });
      // The grid's strips are bands of whole intermediate rows (stripGrid), so each cut is one byte range.
      return planned.map(({ t, cut }) => ({ y0: cut.y, y1: cut.y + cut.h, path: path.join(dir, `strip-${t.index}.v`) }));
    },
  });
  try {
    for await (const s of cuts) {
      const { t, core, cut } = planned[s.index]!;
      const file: SpoolFile = { name: 'strip.v', path: s.path, size: s.size, sha256: s.sha256 };
      const plan: TilePlan = {
        ...tilePlanBase(o, split, format, t, planned.length, out, cut, core, split.tile, config),
        read: 'intermediate',
        deliver,
        // Learned from the workers (who must all agree): grey + alpha comes back as RGBA for the stitch.
        channels: 0,
        depth,
      };
      yield {
        label: `${name} strip ${t.index + 1}/${planned.length} (${cut.x},${cut.y} ${cut.w}x${cut.h} from the decoded intermediate)`,
        inputs: [file],
        plan,
        weight: cut.w * cut.h,
        items: [name],
        ...requiresOf(plan),
        of: { group: name, count: planned.length },
      };
    }
  } finally {
    // Every strip holds its own copy of its rows: the intermediate is not needed any more.
    await rm(intermediate, { force: true });
    release();
  }
}

/**
 * Bytes per pixel of the decoded intermediate: libvips writes 8-bit sRGB (with the source's alpha)
 * whatever the source's bands, a one-band grey source included, unless the prefix makes it grey or
 * a 16-bit source is kept 16-bit in its own space ({@link intermediateSpace}).
 */
function intermediatePixelBytes(m: sharp.Metadata, prefix: TileImageParams): number {
  const space = intermediateSpace(m, prefix);
  if (space) return 2 * Math.max(m.channels ?? 4, 1);
  return (prefix.grayscale ? 1 : 3) + (m.hasAlpha ? 1 : 0);
}

/** Bytes of the coordinator's disk that the decodes under way may still write (see {@link reserveRoomForDecoded}). */
let reservedForDecodes = 0;

/**
 * Refuses, before a pixel is written, an image whose decoded copy and the pieces cut from it (about
 * twice the copy, until the last piece is cut) the disk of `dir` cannot hold: a photo upscaled a
 * hundred times would otherwise fill the coordinator's disk for minutes first. The room is held
 * until `release` (the pieces are cut): images tiled at once cannot all count the same free bytes,
 * and a twentieth of the file system stays free for the uploads and work of other jobs.
 */
async function reserveRoomForDecoded(dir: string, o: PlanTilesOptions, split: TileSplit, m: sharp.Metadata, config: TileConfig, pieces: 'grid' | 'strips'): Promise<() => void> {
  const { width, height } = outputSize({ width: m.width ?? 0, height: m.height ?? 0, orientation: m.orientation ?? 1 }, o.params);
  const decoded = width * height * intermediatePixelBytes(m, split.prefix);
  // The pieces hold every pixel again, and their halos some twice: a grid's squares grow on four
  // sides, the strips on two (the long ones).
  const h = split.halo;
  let copies: number;
  if (pieces === 'grid') {
    const t = chooseTileSize(width, height, o.slots, o.params.tileSize);
    copies = ((Math.min(t, width) + 2 * h) * (Math.min(t, height) + 2 * h)) / (Math.min(t, width) * Math.min(t, height));
  } else {
    const n = Math.max(1, o.slots, Math.ceil((width * height) / config.maxStripPixels));
    copies = 1 + (2 * h * n) / Math.max(1, Math.min(width, height));
  }
  const need = Math.ceil(decoded * (1 + copies));
  const room = await diskRoom(dir);
  if (room !== undefined) {
    const kept = Math.floor(room.total / 20);
    const usable = room.free - reservedForDecodes - kept;
    if (need > usable) {
      const gb = (b: number): string => `${(Math.max(0, b) / 1e9).toFixed(b < 1e9 ? 2 : 1)} GB`;
      const held = reservedForDecodes > 0 ? `, ${gb(reservedForDecodes)} of it held for other images being tiled` : '';
      throw new TesseraError(
        status.RESOURCE_EXHAUSTED,
        `${o.input.name}: tiling it needs about ${gb(need)} of the coordinator's disk (${width}x${height} decoded, and the pieces cut from it), and ${gb(room.free)} is free${held} (${gb(kept)} is kept for other jobs)`,
        { input: o.input.name, retryable: false },
      );
    }
  }
  reservedForDecodes += need;
  let held = true;
  return () => {
    if (held) reservedForDecodes -= need;
    held = false;
  };
}

/** The coordinator's decode pass: the pipeline's prefix, in the source's sample format (tile-pipeline.ts `intermediateSpace`). */
function decodePrefix(pipeline: PipelineFn, src: sharp.Sharp, split: TileSplit, m: sharp.Metadata): sharp.Sharp {
  const img = pipeline(src, split.prefix);
  const space = intermediateSpace(m, split.prefix);
  return space ? img.toColourspace(space) : img;
}

/**
 * How strips come back: JPEG-encoded, to be joined without re-encoding (tile-jpeg-splice.ts), for
 * horizontal strips of a JPEG image; else raw for the stitch. With `keep_metadata` always raw: the
 * stitch attaches the source's metadata ({@link saveMetadata}), the splice could not.
 */
function jpegStrips(format: TiledFormat, split: TileSplit, p: TileImageParams): 'jpeg' | 'raw' {
  return format === 'jpeg' && split.output === 'image' && split.orientation.angle % 180 === 0 && !p.keepMetadata ? 'jpeg' : 'raw';
}

/**
 * The source, opened for the coordinator's decode pass. With `keep_metadata` its embedded profile
 * is ignored, so that its pixels stay in its own colour space all along the tiled path (the
 * profile is attached to the result as it is), as the batch path keeps them.
 */
function openSource(o: PlanTilesOptions, config: TileConfig, m: sharp.Metadata, written: TiledFormat): sharp.Sharp {
  return sharp(o.source ?? o.input.path, { limitInputPixels: config.limitInputPixels, sequentialRead: true, ignoreIcc: keepsOwnSpace(m, o.params.keepMetadata, written) });
}


/** Where {@link saveMetadata} keeps an input's metadata for the stitch. */
const METADATA_FILE = 'metadata.v-extension';

/**
 * Keeps the source's metadata for the stitch (`keep_metadata`): libvips writes a 1 x 1 `.v` of the
 * source with its metadata, and the XML block after its pixel is kept. Auto-orientation runs after
 * the one-pixel extract, so it turns one pixel, not the image, and resets the EXIF orientation to
 * 1 as the batch path does.
 */
async function saveMetadata(o: PlanTilesOptions, config: TileConfig, m: sharp.Metadata): Promise<void> {
  const dir = await tileDir(o.workDir, o.input.name);
  const probe = path.join(dir, 'metadata-probe.v');
  const file = o.source ?? o.input.path;
  let img = sharp(file, { limitInputPixels: config.limitInputPixels, sequentialRead: true, ignoreIcc: true }).extract({ left: 0, top: 0, width: 1, height: 1 });
  if (o.params.autoOrient) img = img.autoOrient();
  // Written as sRGB, a grey source's probe lost its grey profile (libvips keeps no profile that
  // does not fit the bands), and the stitch then had none to keep: one band keeps it.
  if ((m.channels ?? 3) <= 2) img = img.toColourspace('b-w');
  try {
    await wrapBadInput(img.keepMetadata().toFile(probe), o.input.name, probe, file);
    await writeFile(path.join(dir, METADATA_FILE), vipsExtension(await readFile(probe)));
  } finally {
    await rm(probe, { force: true });
  }
}

async function tileDir(workDir: string, name: string): Promise<string> {
  const dir = path.join(workDir, `tiles-${safeStem(name)}-${createHash('sha256').update(name).digest('hex').slice(0, 8)}`);
  await mkdir(dir, { recursive: true });
  return dir;
}

/**
 * How many strips to read straight from the source, or 0 to go through the intermediate.
 *
 * Reading from the source saves the coordinator's serial decode and the raw pixels' two gRPC hops
 * (about 3 ms of CPU per MiB per hop, so 1.5 GB of raw tiles cost more CPU than the pipeline's
 * slowest filter), at the price of decoding the rows above each strip again: (n + 1) / 2 decodes in
 * all for a sequential source. So: auto-tiling only (`--tile` asks for a grid of squares), one
 * strip per slot unless a strip would exceed `maxStripPixels`, and at most {@link MAX_SOURCE_STRIPS}.
 * A resize needs the whole image (its tiles come from the resized intermediate), and so do an EXIF
 * rotation and a progressive or interlaced source (libvips would buffer the whole image per worker).
 */
export function sourceStripCount(m: sharp.Metadata, p: TileImageParams, split: TileSplit, config: TileConfig, slots: number, input = ''): number {
  if (p.tileSize > 0 || p.width > 0 || p.height > 0) return 0;
  // 8- and 16-bit only: each worker runs the whole-image pipeline on its crop of the source, so its
  // samples are the source's; other formats have not been checked pixel-exact and take the intermediate.
  if ((m.depth !== 'uchar' && m.depth !== 'ushort') || (p.autoOrient && (m.orientation ?? 1) !== 1)) return 0;
  // Progressive JPEG and interlaced PNG only decode as a whole: every worker would hold the image.
  if (m.isProgressive) return 0;
  // Of the others only JPEG, PNG and TIFF decode top down and stop at the strip's last row: libvips
  // decodes a WebP, AVIF/HEIF or GIF frame whole, so each worker would hold the image.
  if (!['jpeg', 'png', 'tiff'].includes(m.format ?? '')) return 0;
  // sharp's raw output of a greyscale pipeline keeps band 0 only (the alpha is dropped): such tiles come from the intermediate, whose prefix does the greyscale.
  if (p.grayscale && m.hasAlpha) return 0;
  // Nor a transparency laid on a background: the decode does that, and no worker need know of it
  // (IMAGE_BACKGROUND_FEATURE).
  if (p.flatten && m.hasAlpha) return 0;
  const { width, height } = sourceRegion(m, p, input);
  const out = mapSize(width, height, split.orientation);
  // Enough strips that the largest fits the limit: the top ones are cut taller (they decode
  // sooner, balancedStrips), and counted as equal they passed it (nearly twice, for eight strips).
  let n = Math.max(1, slots, Math.ceil((out.width * out.height) / config.maxStripPixels));
  const largest = (k: number): number => {
    const ends = balancedStripEnds(out.height, k, DECODE_SHARE);
    return Math.max(...ends.map((e, i) => e - (i === 0 ? 0 : ends[i - 1]!)));
  };
  while (n <= MAX_SOURCE_STRIPS && out.width * largest(n) > config.maxStripPixels) n++;
  return n <= MAX_SOURCE_STRIPS ? n : 0;
}

/** The source's metadata with width and height as the pipeline sees them after auto-orientation. */
function upright(m: sharp.Metadata, p: TileImageParams): sharp.Metadata {
  return turnsQuarter(p, m.orientation) ? { ...m, width: m.height, height: m.width } : m;
}

/** The region of the source the pipeline works on: the crop, else the whole (upright) image. */
function sourceRegion(m: sharp.Metadata, p: TileImageParams, input = ''): { left: number; top: number; width: number; height: number } {
  const width = m.width ?? 0;
  const height = m.height ?? 0;
  if (!p.crop) return { left: 0, top: 0, width, height };
  const c = p.crop;
  if (c.left + c.width > width || c.top + c.height > height) {
    throw invalidArgument(`crop: ${c.width}x${c.height} at ${c.left},${c.top} does not fit in the ${width}x${height} image`, input);
  }
  return c;
}

/** One subtask per strip; each worker decodes the source down to its strip and runs the job's own pipeline on it. */
function planSourceStrips(o: PlanTilesOptions, config: TileConfig, split: TileSplit, m: sharp.Metadata, format: TiledFormat, count: number): SubtaskPlan[] {
  const p = o.params;
  const name = o.input.name;
  const region = sourceRegion(m, p, name);
  const { width, height } = region;
  const out = mapSize(width, height, split.orientation);
  checkFormatFits(format, split.output, out.width, out.height, name);
  // Horizontal strips of a JPEG come back encoded and are joined as they are (tile-jpeg-splice.ts):
  // a few MB each instead of hundreds of MB of raw pixels over gRPC, and no decode or encode here.
  const deliver = jpegStrips(format, split, o.params);
  const grid = deliver === 'jpeg' ? balancedStrips(out.width, out.height, count, split) : stripGrid(out.width, out.height, count, split.orientation, 0, 16);
  return grid.map((t) => {
    const core = unmapRect(t.core, width, height, split.orientation);
    const cut = grow(core, split.halo, width, height);
    // The job's own pipeline with the crop narrowed to the cut: the worker's result is this
    // region of the whole-image result (plus the halo), by the same code and libvips calls.
    const params: TileImageParams = { ...p, crop: { left: region.left + cut.x, top: region.top + cut.y, width: cut.w, height: cut.h } };
    const plan: TilePlan = {
      ...tilePlanBase(o, split, format, t, grid.length, out, cut, core, params, config),
      read: 'source',
      deliver,
      channels: 0,
      depth: m.depth ?? 'uchar',
    };
    return {
      label: `${name} strip ${t.index + 1}/${grid.length} (${cut.x},${cut.y} ${cut.w}x${cut.h} from the source)`,
      inputs: [o.input],
      plan,
      // Strips lower in a sequential source decode more rows: start them first.
      weight: cut.w * cut.h + Math.round(((cut.y + cut.h) * width) / 4),
      items: [name],
      ...requiresOf(plan),
    };
  });
}

/**
 * Decoding a row of a JPEG costs about a quarter of running blur(8) + sharpen and encoding it
 * (measured: 2.2 s to decode 16,000 x 16,000, about 10 s for the rest).
 */
const DECODE_SHARE = 0.25;

/**
 * Horizontal output strips sized so that the ones lower in the source, whose workers decode more
 * rows above them, are shorter (tiling.ts `balancedStripEnds`); ends on 16-row MCU boundaries.
 * Only for the JPEG join, which does not need equal strips as arrayjoin does.
 */
function balancedStrips(width: number, height: number, count: number, split: TileSplit): TileGeometry[] {
  const ends = balancedStripEnds(height, count, DECODE_SHARE);
  // Flipped upside down (flip, or 180 degrees), the source's first rows are the output's last.
  const upsideDown = split.orientation.flip !== (split.orientation.angle === 180);
  const outEnds = upsideDown ? [...ends.slice(0, -1).map((e) => height - e).reverse(), height] : ends;
  return stripsEndingAt(width, height, outEnds, 16);
}

/**
 * Refuses a forced tile size (`--tile`) whose pieces, with their halo, are more than a worker holds
 * at once (`maxStripPixels`, as the strips the planner chooses keep to), naming the largest size that
 * fits: `--tile 65536` would hand one worker the whole decoded image of any size.
 */
function checkForcedTile(tile: number, width: number, height: number, halo: number, config: TileConfig, input: string): void {
  const piece = (t: number): number => (Math.min(t, width) + 2 * halo) * (Math.min(t, height) + 2 * halo);
  if (piece(tile) <= config.maxStripPixels) return;
  let fits = 0;
  for (let lo = 1, hi = tile; lo <= hi; ) {
    const mid = Math.floor((lo + hi) / 2);
    if (piece(mid) <= config.maxStripPixels) [fits, lo] = [mid, mid + 1];
    else hi = mid - 1;
  }
  const mpx = (n: number): string => `${(n / 1e6).toFixed(n < 1e7 ? 2 : 0)} Mpx`;
  const largest = fits >= 64 ? `at most ${fits} fits` : 'no tile size of 64 or more fits';
  throw invalidArgument(
    `${input}: image.tile_size ${tile} makes pieces of ${mpx(piece(tile))} with their ${halo} px halo, more than the ${mpx(config.maxStripPixels)} a worker holds at once (TESSERA_TILE_MAX_STRIP_PIXELS); ${largest}, or leave tile_size at 0 for strips`,
    input,
  );
}

/** Decodes `input` once (running the pipeline's prefix), cuts it into halo'd tiles and returns one subtask per tile. */
async function planIntermediateTiles(o: PlanTilesOptions, config: TileConfig, split: TileSplit, format: TiledFormat, m: sharp.Metadata): Promise<SubtaskPlan[]> {
  const dir = await tileDir(o.workDir, o.input.name);

  // One decode pass: auto-orient, crop, greyscale and resize as the whole-image pipeline would do them.
  const intermediate = path.join(dir, 'decoded.v');
  o.signal.throwIfAborted();
  const release = await reserveRoomForDecoded(dir, o, split, m, config, 'grid');
  try {
    return await cutIntermediateTiles(o, config, split, format, m, dir, intermediate);
  } catch (err) {
    // No subtask will read the pieces already cut.
    await rm(dir, { recursive: true, force: true });
    throw err;
  } finally {
    // Every tile holds its own copy of its pixels: the intermediate is not needed any more.
    await rm(intermediate, { force: true });
    release();
  }
}

/** {@link planIntermediateTiles}' decode and cuts, the room for them held. */
async function cutIntermediateTiles(o: PlanTilesOptions, config: TileConfig, split: TileSplit, format: TiledFormat, m: sharp.Metadata, dir: string, intermediate: string): Promise<SubtaskPlan[]> {
  const pipeline = o.pipeline ?? applyPipeline;
  const p = o.params;
  const name = o.input.name;
  const src = openSource(o, config, m, format);
  const space = intermediateSpace(m, split.prefix);
  const decoded = await wrapBadInput(decodePrefix(pipeline, src, split, m).toFile(intermediate), name, intermediate, o.source ?? o.input.path);
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
    const cutter = sharp(intermediate, { limitInputPixels: config.limitInputPixels }).extract({ left: cut.x, top: cut.y, width: cut.w, height: cut.h });
    // Without the space, sharp would write the cut of a 16-bit intermediate as 8-bit sRGB.
    await (space ? cutter.toColourspace(space) : cutter).toFile(tilePath);
    const file: SpoolFile = { name: 'tile.v', path: tilePath, ...(await sizeAndHash(tilePath)) };
    const plan: TilePlan = {
      ...tilePlanBase(o, split, format, t, grid.length, out, cut, core, split.tile, config),
      read: 'intermediate',
      deliver: 'raw',
      // A 16-bit intermediate's bands are not the output's (the tile's own pipeline converts grey16
      // to sRGB, as the whole-image pipeline does): learned from the workers then.
      channels: space ? 0 : channels,
      depth,
    };
    plans.push({
      label: `${name} tile ${t.index + 1}/${grid.length} (${cut.x},${cut.y} ${cut.w}x${cut.h})`,
      inputs: [file],
      plan,
      weight: cut.w * cut.h,
      items: [name],
      ...requiresOf(plan),
    });
  }
  return plans;
}

/** A tile that may be made 16-bit goes only to a worker that makes it so (its neighbours would be). */
function requiresOf(plan: TilePlan): Pick<SubtaskPlan, 'requires'> {
  return plan.sixteenBit ? { requires: { features: [IMAGE_16BIT_FEATURE] } } : {};
}

/** The fields of a tile plan that do not depend on where the worker reads its pixels. */
function tilePlanBase(
  o: PlanTilesOptions,
  split: TileSplit,
  format: TiledFormat,
  t: TileGeometry,
  count: number,
  out: { width: number; height: number },
  cut: Rect,
  core: Rect,
  params: TileImageParams,
  config: TileConfig,
): Omit<TilePlan, 'read' | 'deliver' | 'channels' | 'depth'> {
  return {
    type: 'tile',
    source: o.input.name,
    index: t.index,
    count,
    cut,
    coreInCut: { x: core.x - cut.x, y: core.y - cut.y, w: core.w, h: core.h },
    out: t.core,
    outWidth: out.width,
    outHeight: out.height,
    orientation: split.orientation,
    params,
    format,
    output: split.output,
    quality: o.params.quality,
    outputName: withExtension(o.outputName ?? o.input.name, tiledExtension(format, split.output)),
    limitInputPixels: config.limitInputPixels,
    ...(o.sixteenBit ? { sixteenBit: true } : {}),
  };
}

/**
 * The image kind's entry point: picks the inputs that go down the tiled path and plans their tiles.
 * `tiled` names them, those refused here included (a result over the tiled path's pixel limit,
 * {@link oversizeOutput}). A tiled input that cannot be planned (bad file, refused op) becomes a
 * per-input error, so the other inputs of the job still run. The last tiled input's strips may
 * come `later` (as its decode goes); earlier ones are planned in full, so that a decode failing
 * half-way is still an error of that input alone. A failure of the streamed input after its first
 * strip fails the job.
 */
export async function planTiledInputs(
  inputs: readonly SpoolFile[],
  params: TileImageParams,
  o: { workDir: string; slots: number; signal: AbortSignal; outputNames?: ReadonlyMap<string, string>; config?: TileConfig; sixteenBit?: boolean },
): Promise<{ tiled: Set<string>; subtasks: SubtaskPlan[]; later?: AsyncIterable<SubtaskPlan>; errors: ItemFailure[] }> {
  const config = o.config ?? tileConfig();
  const tiled: SpoolFile[] = [];
  const errors: ItemFailure[] = [];
  // Inputs refused here are neither tiled nor batched: they are in `handled` too.
  const handled = new Set<string>();
  for (const input of inputs) {
    if (!(await needsTiling(input, params, config)) || (await batchInstead(input, params, config))) continue;
    handled.add(input.name);
    // Every tiled step opens its images with this limit: a larger result could not be made, and
    // must not be decoded into the intermediate first.
    const dims = await headerDims(input);
    // The source too, which every step opens with the same limit: one over it (its result under
    // it, after a resize or crop) failed as the input's INVALID_ARGUMENT "cannot decode image".
    const sourcePixels = dims ? dims.width * dims.height : 0;
    const oversize =
      dims && sourcePixels > config.limitInputPixels
        ? `${dims.width}x${dims.height} = ${sourcePixels} pixels is over the limit of ${config.limitInputPixels} pixels (TESSERA_TILE_LIMIT_INPUT_PIXELS)`
        : dims && oversizeOutput(dims, params, config.limitInputPixels, 'TESSERA_TILE_LIMIT_INPUT_PIXELS');
    if (oversize) {
      errors.push({ input: input.name, code: 'RESOURCE_EXHAUSTED', message: `${input.name}: ${oversize}` });
      continue;
    }
    tiled.push(input);
  }
  const subtasks: SubtaskPlan[] = [];
  let later: AsyncIterable<SubtaskPlan> | undefined;
  for (const [k, input] of tiled.entries()) {
    try {
      const p = await planTiles({ input, params, workDir: o.workDir, slots: o.slots, signal: o.signal, outputName: o.outputNames?.get(input.name), config, sixteenBit: o.sixteenBit });
      if (k === tiled.length - 1) {
        subtasks.push(...p.subtasks);
        later = p.later;
      } else {
        subtasks.push(...(await allTiles(p)));
      }
    } catch (err) {
      if (!(err instanceof TesseraError) || o.signal.aborted) throw err;
      errors.push({ input: input.name, code: err.codeName, message: err.message });
    }
  }
  return { tiled: handled, subtasks, later, errors };
}

/**
 * Stitches the tile outcomes of every tiled input into outputs in `outputDir`. Each tile is checked
 * (succeeded, right size, all present) before stitching; an input with a bad tile gets an error, not
 * an output with a hole. `workDir`: the job's scratch folder the tiles were planned in (where
 * `keep_metadata` left the source's metadata).
 */
export async function mergeTiles(
  outcomes: readonly SubtaskOutcome[],
  outputDir: string,
  signal: AbortSignal,
  workDir: string,
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
      outputs.push(await stitchSource(source, list, outputDir, workDir));
    } catch (err) {
      // The coordinator's own trouble (a full disk): the job manager merges again later.
      if (hasLocalTroubleCode(err)) throw err;
      if (err instanceof TesseraError || err instanceof TileCheckError) {
        errors.push({ input: source, code: err instanceof TesseraError ? err.codeName : err.code, message: err.message });
      } else {
        throw err;
      }
    }
  }
  return { outputs, errors };
}

/** A tiled input that cannot be stitched: `code` DATA_LOSS for a tile missing or wrong, or a failed tile's own code. */
class TileCheckError extends Error {
  constructor(
    message: string,
    readonly code = 'DATA_LOSS',
  ) {
    super(message);
  }
}

async function stitchSource(source: string, list: SubtaskOutcome[], outputDir: string, workDir: string): Promise<FinalOutput> {
  const first = list[0]!.plan as TilePlan;
  const failed = list.find((o) => !o.ok);
  if (failed) {
    const e = failed.error;
    // The tile's own error (e.g. INVALID_ARGUMENT for a truncated source) is already the input's
    // (the job manager records a failed subtask's error for its items): the same code and message,
    // so that it is reported once, not again as a DATA_LOSS of the stitch.
    if (e) throw new TileCheckError(e.message, e.code);
    throw new TileCheckError(`${source}: tile ${(failed.plan as TilePlan).index + 1} failed: unknown error`);
  }
  if (list.length !== first.count) throw new TileCheckError(`${source}: ${list.length} of ${first.count} tiles came back`);
  const tiles: PlacedTile[] = [];
  // Strips read from the source learn their band count on the worker: they must all agree.
  let channels = first.channels;
  for (const o of list) {
    const plan = o.plan as TilePlan;
    const r = o.result as Partial<TileResult> | undefined;
    const file = o.outputs[0];
    if (channels === 0 && typeof r?.channels === 'number' && r.channels > 0) channels = r.channels;
    if (!file || r?.width !== plan.out.w || r.height !== plan.out.h || r.channels !== channels) {
      throw new TileCheckError(
        `${source}: tile ${plan.index + 1} came back ${r?.width}x${r?.height}x${r?.channels}, expected ${plan.out.w}x${plan.out.h}x${channels || 'any'}`,
      );
    }
    tiles.push({ path: file.path, rect: plan.out });
  }
  const name = first.outputName;
  const outPath = path.join(outputDir, name);
  if (list.every((o) => (o.plan as TilePlan).deliver === 'jpeg')) {
    const { ordered } = gridOrder(tiles, first.outWidth, first.outHeight);
    // Strips that cannot be joined (made by workers of different versions, say) fail this input, not the job.
    const got = await spliceJpegStrips(
      ordered.map((t) => t.path),
      outPath,
    ).catch((err: unknown) => {
      if (err instanceof TesseraError || hasLocalTroubleCode(err)) throw err;
      throw new TileCheckError(`${source}: its JPEG strips cannot be joined: ${(err as Error).message}`);
    });
    if (got.width !== first.outWidth || got.height !== first.outHeight) {
      throw new TileCheckError(`${source}: joined ${got.width}x${got.height}, expected ${first.outWidth}x${first.outHeight}`);
    }
    return { name, path: outPath, source, contentType: contentTypeOf(first.format, first.output) };
  }
  // Every tile must be the `.v` it says it is, of its size, before libvips (which picks a loader by
  // content) opens it.
  let bandFormat: number | undefined;
  for (const o of list) {
    const plan = o.plan as TilePlan;
    const v = await readVipsSize(o.outputs[0]!.path);
    if (!v || v.width !== plan.out.w || v.height !== plan.out.h) {
      throw new TileCheckError(`${source}: tile ${plan.index + 1} came back ${v ? `as a ${v.width}x${v.height} .v` : 'in another format than .v'}, expected a ${plan.out.w}x${plan.out.h} .v`);
    }
    // All of one sample format (8 or 16 bits: workers of different versions may disagree), or the
    // join would scale none of them and the 8-bit ones come out nearly black.
    bandFormat ??= v.bandFormat;
    if (v.bandFormat !== bandFormat) throw new TileCheckError(`${source}: tile ${plan.index + 1} came back with samples of band format ${v.bandFormat}, the others ${bandFormat}`);
  }
  const got = await stitchTiles({
    tiles,
    width: first.outWidth,
    height: first.outHeight,
    channels,
    format: first.format,
    output: first.output,
    quality: first.quality,
    outPath,
    limitInputPixels: first.limitInputPixels,
    metadata: first.params.keepMetadata ? await metadataCarrier(workDir, source, channels) : undefined,
    iiifId: first.params.iiifId,
  }).catch(async (err: unknown) => {
    throw await asDiskTrouble(err, outPath, workDir);
  });
  if (first.output === 'image' && (got.width !== first.outWidth || got.height !== first.outHeight)) {
    throw new TileCheckError(`${source}: stitched ${got.width}x${got.height}, expected ${first.outWidth}x${first.outHeight}`);
  }
  return { name, path: outPath, source, contentType: contentTypeOf(first.format, first.output) };
}

/**
 * `err` of a stitch, as the coordinator's disk trouble where it is that: libvips says a write
 * failed only in words ("write error", then "system error: No space left on device"), with no
 * errno for the job manager to see, which then failed the job (INTERNAL "merge failed") rather than
 * merge again once there is room.
 */
async function asDiskTrouble(err: unknown, outPath: string, workDir: string): Promise<unknown> {
  if (hasLocalTroubleCode(err) || err instanceof TesseraError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const code = localTroubleCode(message, [outPath, workDir]) ?? ((await nearlyFull(outPath)) ? 'ENOSPC' : undefined);
  if (!code) return err;
  return Object.assign(new Error(`the coordinator could not write ${path.basename(outPath)} (${code}: its disk is full, or out of quota or file descriptors): ${message.split('\n')[0]}`, { cause: err }), { code });
}

/** A `.v` carrier of the metadata {@link saveMetadata} kept, with the tiles' `channels` (tile-vips-file.ts `writeVipsCarrier`). */
async function metadataCarrier(workDir: string, source: string, channels: number): Promise<string> {
  const dir = await tileDir(workDir, source);
  const carrier = path.join(dir, 'metadata-carrier.v');
  await writeVipsCarrier(carrier, channels, await readFile(path.join(dir, METADATA_FILE)));
  return carrier;
}

async function readMeta(file: string, config: TileConfig, input: string): Promise<sharp.Metadata> {
  const m = await wrapBadInput(sharp(file, { limitInputPixels: config.limitInputPixels }).metadata(), input, undefined, file);
  if (!m.width || !m.height) throw invalidArgument(`${input}: not a readable image (no dimensions)`, input);
  return m;
}

/**
 * Turns sharp's decode errors (corrupt file, too many pixels) into INVALID_ARGUMENT naming the
 * input; a write that failed where the coordinator's disk (that of `writing`) is full into
 * RESOURCE_EXHAUSTED, since libvips tells it only as "write failed".
 */
async function wrapBadInput<T>(p: Promise<T>, input: string, writing?: string, file?: string): Promise<T> {
  try {
    return await p;
  } catch (err) {
    // libvips names the file by the coordinator's path to it (its data dir, the spool's layout):
    // never told to a client, which gets the input's name instead, as on the batch path.
    let raw = err instanceof Error ? err.message : String(err);
    if (file) raw = raw.split(file).join(input);
    if (writing) raw = raw.split(writing).join(`the coordinator's ${path.basename(writing)}`);
    raw = raw.replace(/\/proc\/self\/fd\/\d+/g, () => input);
    // Another job's decode failing at the same moment may have put its text here, naming its input
    // by the spool's path (libvips keeps one error buffer per process): left out (review MTEN).
    const all = raw.split('\n').map((l) => l.trim()).filter(Boolean);
    const lines = ownLines(all);
    const msg = reasonLine(lines) ?? (all.length > 0 ? 'not a decodable image' : raw);
    if (writing && (await nearlyFull(writing))) {
      throw new TesseraError(status.RESOURCE_EXHAUSTED, `${input}: the coordinator's disk is full: cannot write the decoded image for tiling (${msg})`, {
        input,
        retryable: false,
        cause: Object.assign(new Error(msg), { code: 'ENOSPC' }),
      });
    }
    throw invalidArgument(`${input}: cannot decode image for tiling: ${msg}`, input);
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
