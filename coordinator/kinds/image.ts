/**
 * `image` — one pipeline applied to each of N images. The planner groups images into subtasks by
 * count and bytes so that both small and large batches spread evenly over the workers.
 */
import { open } from 'node:fs/promises';
import pLimit from 'p-limit';
import type { ClusterView, CoordinatorKind, PlanContext, PlanErrors, SpoolFile, SubtaskPlan } from '../../shared/job-kind.js';
import { checkNewImageParams, validateImageParams, type ImageParams } from '../../shared/kinds/image-params.js';
import { FORMAT_EXTENSION, backgroundShows, isSixteenBitRgbOrGrey, openImage, outputFormat } from '../../shared/media/image-pipeline.js';
import { withVipsPath } from '../../shared/media/vips-path.js';
import { SNIFF_BYTES, sniffBuffer } from '../../shared/media/sniff.js';
import { splitForTiles } from '../../shared/media/tile-pipeline.js';
import { iiifName } from '../../shared/media/tile-stitch.js';
import { NameSet, withExtension } from '../../shared/names.js';
import { isTilePlan, mergeTiles, planTiledInputs } from './image-tiles.js';
import { IMAGE_16BIT_FEATURE, IMAGE_BACKGROUND_FEATURE } from '../../shared/media/tile-plan.js';
import { ARRIVAL_PAUSE_MS } from './plan-each.js';

/** What a batch subtask is told: which inputs, and the output name of each. */
export interface ImageBatchPlan {
  type: 'batch';
  items: { input: string; output: string }[];
  /** 16-bit results allowed: every image worker has IMAGE_16BIT_FEATURE (tile-plan.ts). */
  sixteenBit?: boolean;
}

const MAX_ITEMS_PER_SUBTASK = 8;
const MAX_BYTES_PER_SUBTASK = 16 * 1024 * 1024;

/**
 * Output names, distinct, given in submission order: the input's base name with the new
 * extension; a name already given (`a.png`, then `a.jpg` -> `a.webp`) keeps the full input name as
 * the base instead (`a.jpg.webp`); a name still taken (an input named `a.jpg.webp` too) gets a
 * number (`a.jpg-2.webp`). Names that differ only in case or Unicode form count as one
 * (`A.png`, then `a.jpg` -> `a.jpg.webp`). A name depends only on the inputs before it, so a job planned while its
 * inputs still arrive names them as one planned at once.
 */
export class OutputNamer {
  private readonly taken = new NameSet();

  /**
   * `fold`: what else makes two names one. An IIIF pyramid's folder and `id` are its name with
   * every character a URI path cannot hold made `_` (iiifName): `a b.png` and `a_b.png` made one
   * `id`, the second zip unpacked over the first.
   */
  constructor(private readonly fold: (name: string) => string = (name) => name) {}

  name(input: string, ext: string): string {
    const taken = (n: string): boolean => this.taken.has(this.fold(n));
    let name = withExtension(input, ext);
    if (taken(name)) name = `${input}.${ext}`;
    const base = name.slice(0, name.lastIndexOf('.'));
    for (let n = 2; taken(name); n++) name = `${base}-${n}.${ext}`;
    this.taken.add(this.fold(name));
    return name;
  }
}

/** The namer of a job's outputs: IIIF pyramids also distinct as their `id`s. */
export function namerFor(params: ImageParams): OutputNamer {
  return params.tiledOutput === 'iiif' ? new OutputNamer(iiifName) : new OutputNamer();
}

/** {@link OutputNamer}'s names of `inputs`, by input. */
export function outputNames(inputs: string[], ext: (input: string) => string, namer = new OutputNamer()): Map<string, string> {
  return new Map(inputs.map((input) => [input, namer.name(input, ext(input))]));
}

/** Single-file subtasks kept for the end of a large batch, per slot. */
const TAIL_SINGLES_PER_SLOT = 2;

/**
 * Groups files into subtasks: bounded by count and bytes, at least `perSlot` (~2) per slot,
 * balanced by size (LPT). On two slots or more, a batch of more than a few files per slot keeps
 * its smallest files, two per slot, as single-file subtasks: the scheduler runs a job's heaviest
 * subtasks first, so those run last, and whichever slot finishes its last group first takes
 * them. The slots then end within about one file of each other instead of one group (400 photos
 * on 2 slots: groups of ~4).
 */
export function groupBatches(files: SpoolFile[], slots: number, perSlot = 2): SpoolFile[][] {
  if (files.length === 0) return [];
  const sorted = [...files].sort((a, b) => b.size - a.size);
  const slotCount = Math.max(1, slots);
  // A single slot has nothing to balance against.
  const singles = slots >= 2 && sorted.length > 4 * slotCount * TAIL_SINGLES_PER_SLOT ? sorted.splice(sorted.length - slotCount * TAIL_SINGLES_PER_SLOT) : [];
  const bytes = sorted.reduce((n, f) => n + f.size, 0);
  const groups = Math.min(
    sorted.length,
    Math.max(Math.ceil(sorted.length / MAX_ITEMS_PER_SUBTASK), Math.ceil(bytes / MAX_BYTES_PER_SUBTASK), slotCount * perSlot),
  );
  const bins = Array.from({ length: groups }, () => ({ files: [] as SpoolFile[], bytes: 0 }));
  for (const f of sorted) {
    let best = bins[0]!;
    for (const b of bins) if (b.bytes < best.bytes || (b.bytes === best.bytes && b.files.length < best.files.length)) best = b;
    best.files.push(f);
    best.bytes += f.size;
  }
  return [...bins.filter((b) => b.files.length > 0).map((b) => b.files), ...singles.map((f) => [f])];
}

export const imageKind: CoordinatorKind<ImageParams> = {
  name: 'image',
  validate: (params) => {
    const p = validateImageParams(params);
    // With tile_size every input takes the tiled path: what it cannot do exactly is refused before any upload.
    if (p.tileSize > 0) splitForTiles(p);
    return p;
  },
  checkNew: (p) => {
    // So does a pyramid, whatever the image's size.
    if (p.tiledOutput) splitForTiles(p);
    checkNewImageParams(p);
  },
  // Each photo can be planned on its own: its name depends only on those before it, and the tiled
  // path reads only the input it tiles.
  plansWhileReceiving: () => true,
  async plan({ params, inputs, cluster, workDir, signal, arriving, warn }) {
    if (arriving) return { subtasks: [], later: planArriving(arriving, params, { workDir, cluster, signal, warn }) };
    // Every output's name is decided here, once, from what the worker will write: a pyramid is a
    // zip; else the format asked for, or (none asked for) the one the worker picks from the input's
    // content (image-pipeline.ts `outputFormat`), never from its name: `a.jpg` holding a PNG
    // becomes `a.png`. The worker writes the names it is given.
    // Reads a file's head only without an explicit format; a few at once (a batch may hold thousands).
    // Unless asked for 8 bits, 16-bit results where every image worker makes them (then on such
    // workers only): one choice for the whole job.
    const sixteenBit = params.bitDepth !== 8 && cluster.features.has(IMAGE_16BIT_FEATURE);
    const extensions = new Map<string, string>();
    const sniffs = pLimit(8);
    await Promise.all(
      inputs.map((f) =>
        sniffs(async () => {
          const extension = await outputExtension(f, params);
          extensions.set(f.name, extension);
          await warnOfLosses(f, extension, params, sixteenBit, warn);
        }),
      ),
    );
    const names = outputNames(inputs.map((i) => i.name), (input) => extensions.get(input) ?? 'jpg', namerFor(params));
    // Huge images (or --tile) go down the tiled path: one subtask per tile, stitched in merge.
    const tiles = await planTiledInputs(inputs, params, { workDir, slots: cluster.slots, signal, outputNames: names, sixteenBit });
    const batched = inputs.filter((f) => !tiles.tiled.has(f.name));
    const subtasks = groupBatches(batched, cluster.slots).map((group) => batchSubtask(group, names, sixteenBit, params));
    // A huge input's strips keep coming while the coordinator decodes it (`later`).
    return { subtasks: [...subtasks, ...tiles.subtasks], errors: tiles.errors, later: tiles.later };
  },
  // A batch's photos are final as they arrive (published at once); tiles wait for the stitch. Only
  // the names the plan gave are published: a worker cannot name (or overwrite) another's output.
  finalOutputs: (r) =>
    isTilePlan(r.plan)
      ? []
      : r.outputs.flatMap((o) => {
          const source = sourceOf(r.plan as ImageBatchPlan, o.name);
          return source ? [{ name: o.name, path: o.path, source }] : [];
        }),
  outputsAreFinal: (plan) => !isTilePlan(plan),
  // A batch whose failure names no photo runs again one photo at a time: only the culprit fails.
  split: (s, only) => {
    if (isTilePlan(s.plan)) return undefined;
    const plan = s.plan as ImageBatchPlan;
    if (!only && plan.items.length < 2) return undefined;
    return plan.items.filter((item) => !only || only.includes(item.input)).map((item) => {
      const file = s.inputs.find((f) => f.name === item.input);
      return { label: item.input, inputs: file ? [file] : [], plan: { ...plan, items: [item] } satisfies ImageBatchPlan, weight: file?.size ?? 0, items: [item.input], ...(s.requires ? { requires: s.requires } : {}) };
    });
  },
  // Resized photos are published as they come; only tiles are stitched here (from their strips).
  mergeReadsInputs: (results) => results.some((r) => isTilePlan(r.plan)),
  async merge({ results, outputDir, signal, params, workDir }) {
    const tiled = await mergeTiles(results, outputDir, signal, workDir);
    const outputs = results.flatMap((r) => imageKind.finalOutputs!(r, params));
    return { outputs: [...outputs, ...tiled.outputs], errors: tiled.errors };
  },
};

/**
 * What a batch subtask requires of its worker: 16-bit results, and a background where it shows (an
 * older worker ignores it: black bars and corners, transparency laid on black in JPEG), not where
 * it has no effect (a cover resize into PNG: such a batch waited for upgraded workers for nothing).
 */
function requiredFeatures(sixteenBit: boolean, params: ImageParams, outputs: string[]): Pick<SubtaskPlan, 'requires'> {
  const shows = outputs.some((n) => backgroundShows(params, /\.jpe?g$/i.test(n)));
  const features = [...(sixteenBit ? [IMAGE_16BIT_FEATURE] : []), ...(shows ? [IMAGE_BACKGROUND_FEATURE] : [])];
  return features.length > 0 ? { requires: { features } } : {};
}

/**
 * One subtask resizing `group`, into the names given; with `sixteenBit` (every image worker has
 * IMAGE_16BIT_FEATURE), 16-bit PNG and TIFF results of 16-bit sources, on such workers only, so
 * that a job's results do not depend on which worker took them.
 */
function batchSubtask(group: SpoolFile[], names: ReadonlyMap<string, string>, sixteenBit: boolean, params: ImageParams): SubtaskPlan {
  const plan: ImageBatchPlan = { type: 'batch', items: group.map((f) => ({ input: f.name, output: names.get(f.name)! })), ...(sixteenBit ? { sixteenBit } : {}) };
  const first = group[0]!.name;
  return {
    label: group.length === 1 ? first : `${group.length} images (${first}, ...)`,
    inputs: group,
    plan,
    weight: group.reduce((n, f) => n + f.size, 0),
    items: group.map((f) => f.name),
    ...requiredFeatures(sixteenBit, params, plan.items.map((i) => i.output)),
  };
}

/**
 * Plans a batch whose photos are still arriving (an upload), as they come: each is named in turn
 * (as `plan` names them), a huge one takes the tiled path, and the others go out in subtasks of
 * up to MAX_ITEMS_PER_SUBTASK photos and MAX_BYTES_PER_SUBTASK as soon as one is full and
 * another is waiting beside the two photos per slot kept back. When no photo has come for ARRIVAL_PAUSE_MS (a slow upload:
 * slots must not wait for a subtask to fill), what waits is spread over the slots, a subtask
 * each; at the end of the upload, it is planned as a batch planned at once would be
 * (groupBatches: two subtasks per slot at least, the smaller ones run last, so that the slots end
 * together).
 */
async function* planArriving(
  arriving: NonNullable<PlanContext<ImageParams>['arriving']>,
  params: ImageParams,
  o: { workDir: string; cluster: Pick<ClusterView, 'slots' | 'features'>; signal: AbortSignal; warn: PlanContext<ImageParams>['warn'] },
): AsyncGenerator<SubtaskPlan | PlanErrors> {
  const namer = namerFor(params);
  const names = new Map<string, string>();
  // The slots as they are at each step (workers may join during a long upload).
  const slots = (): number => o.cluster.slots;
  const keptBack = (): number => Math.max(1, slots()) * TAIL_SINGLES_PER_SLOT;
  // Decided once, as the first photo is planned: a worker joining or leaving during the upload
  // must not make some of the job's results 16-bit and others 8-bit.
  let sixteen: boolean | undefined;
  const sixteenBit = (): boolean => (sixteen ??= params.bitDepth !== 8 && o.cluster.features.has(IMAGE_16BIT_FEATURE));
  const waiting: SpoolFile[] = [];
  /**
   * The first photos of `waiting` when they fill a subtask and another subtask's worth beside the
   * kept-back ones remains: a batch that is all in within a moment (a few dozen small photos) is
   * then planned at its end as a whole, spread over the slots, not as one full subtask and a tail.
   */
  const fullGroup = (): SpoolFile[] | undefined => {
    let n = 0;
    let bytes = 0;
    for (; n < waiting.length && n < MAX_ITEMS_PER_SUBTASK; n++) {
      if (n > 0 && bytes + waiting[n]!.size > MAX_BYTES_PER_SUBTASK) break;
      bytes += waiting[n]!.size;
    }
    const full = n === MAX_ITEMS_PER_SUBTASK || n < waiting.length;
    return full && waiting.length - n >= keptBack() + n ? waiting.splice(0, n) : undefined;
  };
  for (;;) {
    const run = await arriving.take(waiting.length > 0 ? ARRIVAL_PAUSE_MS : Infinity);
    if (run === undefined) break;
    for (const f of run) {
      o.signal.throwIfAborted();
      const extension = await outputExtension(f, params);
      names.set(f.name, namer.name(f.name, extension));
      await warnOfLosses(f, extension, params, sixteenBit(), o.warn);
      const tiles = await planTiledInputs([f], params, { workDir: o.workDir, slots: slots(), signal: o.signal, outputNames: names, sixteenBit: sixteenBit() });
      if (tiles.errors.length > 0) yield { errors: tiles.errors };
      if (!tiles.tiled.has(f.name)) {
        waiting.push(f);
        continue;
      }
      yield* tiles.subtasks;
      if (tiles.later) yield* tiles.later;
    }
    if (run.length === 0) {
      // One subtask per slot at most: more would only add subtasks where the upload goes on.
      for (const group of groupBatches(waiting.splice(0), slots(), 1)) yield batchSubtask(group, names, sixteenBit(), params);
      continue;
    }
    for (let group = fullGroup(); group; group = fullGroup()) yield batchSubtask(group, names, sixteenBit(), params);
  }
  for (const group of groupBatches(waiting, slots())) yield batchSubtask(group, names, sixteenBit(), params);
}

/** The input an output of a batch was made from: its planned name, or that name with the extension the worker added. */
function sourceOf(plan: ImageBatchPlan, output: string): string {
  return plan.items.find((i) => i.output === output || (output.startsWith(`${i.output}.`) && !output.slice(i.output.length + 1).includes('.')))?.input ?? '';
}

/**
 * The extension of `input`'s output: `zip` for a pyramid, else that of the format the worker
 * writes, the one asked for or the input's own as its content says (sniff.ts, the names sharp
 * gives formats), JPEG when unrecognised (such a file fails to decode anyway).
 */
export async function outputExtension(input: Pick<SpoolFile, 'path'>, params: Pick<ImageParams, 'format' | 'tiledOutput'>): Promise<string> {
  if (params.tiledOutput) return 'zip';
  if (params.format) return FORMAT_EXTENSION[params.format];
  return FORMAT_EXTENSION[outputFormat(params as ImageParams, await sniffFile(input.path))];
}

/**
 * What the output will lose of an input, said rather than lost without a word, from one read of its
 * header (only where something could be lost):
 * - `--keep-metadata` into TIFF keeps XMP and the profile but not EXIF (camera, time, GPS): libvips'
 *   TIFF writer writes none (review I).
 * - A 16-bit source is written at 8 bits into PNG or TIFF for want of workers that write 16 bits
 *   (`sixteenBit` false: none connected when the job was planned, or one of an older version; not
 *   where 8 bits were asked for).
 */
async function warnOfLosses(input: SpoolFile, extension: string, params: ImageParams, sixteenBit: boolean, warn: PlanContext<ImageParams>['warn']): Promise<void> {
  const exif = params.keepMetadata && extension === FORMAT_EXTENSION.tiff;
  const depth = !sixteenBit && params.bitDepth !== 8 && !params.tiledOutput && (extension === FORMAT_EXTENSION.png || extension === FORMAT_EXTENSION.tiff);
  if (!exif && !depth) return;
  // Only the header: a name libvips would read options from ('a[1].tif') through a link.
  const meta = await withVipsPath(input.path, (name) => openImage(name, { limitInputPixels: false }).metadata()).catch(() => undefined);
  if (exif && meta?.exif) warn(input.name, 'its EXIF (camera, time, GPS) is not kept in a TIFF output, which libvips writes without EXIF; XMP and the colour profile are kept; ask for another format (jpeg, png, webp, avif) to keep EXIF');
  if (depth && meta && isSixteenBitRgbOrGrey(meta)) {
    warn(input.name, `written at 8 bits a sample: no worker that writes 16-bit results (feature ${IMAGE_16BIT_FEATURE}) was connected when the job was planned, or one of an older version was; submit it again once every worker is of this version`);
  }
}

async function sniffFile(file: string): Promise<string | undefined> {
  try {
    const fh = await open(file, 'r');
    try {
      const { buffer, bytesRead } = await fh.read(Buffer.alloc(SNIFF_BYTES), 0, SNIFF_BYTES, 0);
      return sniffBuffer(buffer.subarray(0, bytesRead));
    } finally {
      await fh.close();
    }
  } catch {
    return undefined;
  }
}
