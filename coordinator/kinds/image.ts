/**
 * `image` — one pipeline applied to each of N images. The planner groups images into subtasks by
 * count and bytes so that both small and large batches spread evenly over the workers.
 */
import { open } from 'node:fs/promises';
import pLimit from 'p-limit';
import type { CoordinatorKind, SpoolFile, SubtaskPlan } from '../../shared/job-kind.js';
import { checkNewImageParams, validateImageParams, type ImageParams } from '../../shared/kinds/image-params.js';
import { FORMAT_EXTENSION, outputFormat } from '../../shared/media/image-pipeline.js';
import { SNIFF_BYTES, sniffBuffer } from '../../shared/media/sniff.js';
import { splitForTiles } from '../../shared/media/tile-pipeline.js';
import { withExtension } from '../../shared/names.js';
import { isTilePlan, mergeTiles, planTiledInputs } from './image-tiles.js';

/** What a batch subtask is told: which inputs, and the output name of each. */
export interface ImageBatchPlan {
  type: 'batch';
  items: { input: string; output: string }[];
}

const MAX_ITEMS_PER_SUBTASK = 8;
const MAX_BYTES_PER_SUBTASK = 16 * 1024 * 1024;

/**
 * Output names, distinct: the input's base name with the new extension; when two inputs would
 * collide (`a.png`, `a.jpg` -> `a.webp`), the full input name is kept as the base (`a.png.webp`);
 * a name still taken (an input named `a.png.webp` too) gets a number (`a.png-2.webp`).
 */
export function outputNames(inputs: string[], ext: (input: string) => string): Map<string, string> {
  const proposed = inputs.map((i) => withExtension(i, ext(i)));
  const counts = new Map<string, number>();
  for (const n of proposed) counts.set(n, (counts.get(n) ?? 0) + 1);
  const wanted = inputs.map((i, k) => (counts.get(proposed[k]!)! > 1 ? `${i}.${ext(i)}` : proposed[k]!));
  const taken = new Set<string>();
  return new Map(
    inputs.map((input, k) => {
      const base = wanted[k]!.slice(0, wanted[k]!.lastIndexOf('.'));
      let name = wanted[k]!;
      for (let n = 2; taken.has(name); n++) name = `${base}-${n}.${ext(input)}`;
      taken.add(name);
      return [input, name];
    }),
  );
}

/** Single-file subtasks kept for the end of a large batch, per slot. */
const TAIL_SINGLES_PER_SLOT = 2;

/**
 * Groups files into subtasks: bounded by count and bytes, at least ~2 per slot, balanced by size
 * (LPT). On two slots or more, a batch of more than a few files per slot keeps its smallest
 * files, two per slot, as single-file subtasks: the scheduler runs a job's heaviest subtasks
 * first, so those run last, and whichever slot finishes its last group first takes them. The
 * slots then end within about one file of each other instead of one group (400 photos on 2
 * slots: groups of ~4).
 */
export function groupBatches(files: SpoolFile[], slots: number): SpoolFile[][] {
  if (files.length === 0) return [];
  const sorted = [...files].sort((a, b) => b.size - a.size);
  const perSlot = Math.max(1, slots);
  // A single slot has nothing to balance against.
  const singles = slots >= 2 && sorted.length > 4 * perSlot * TAIL_SINGLES_PER_SLOT ? sorted.splice(sorted.length - perSlot * TAIL_SINGLES_PER_SLOT) : [];
  const bytes = sorted.reduce((n, f) => n + f.size, 0);
  const groups = Math.min(
    sorted.length,
    Math.max(Math.ceil(sorted.length / MAX_ITEMS_PER_SUBTASK), Math.ceil(bytes / MAX_BYTES_PER_SUBTASK), perSlot * 2),
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
  async plan({ params, inputs, cluster, workDir, signal }) {
    // Every output's name is decided here, once, from what the worker will write: a pyramid is a
    // zip; else the format asked for, or (none asked for) the one the worker picks from the input's
    // content (image-pipeline.ts `outputFormat`), never from its name: `a.jpg` holding a PNG
    // becomes `a.png`. The worker writes the names it is given.
    // Reads a file's head only without an explicit format; a few at once (a batch may hold thousands).
    const extensions = new Map<string, string>();
    const sniffs = pLimit(8);
    await Promise.all(inputs.map((f) => sniffs(async () => extensions.set(f.name, await outputExtension(f, params)))));
    const names = outputNames(inputs.map((i) => i.name), (input) => extensions.get(input) ?? 'jpg');
    // Huge images (or --tile) go down the tiled path: one subtask per tile, stitched in merge.
    const tiles = await planTiledInputs(inputs, params, { workDir, slots: cluster.slots, signal, outputNames: names });
    const batched = inputs.filter((f) => !tiles.tiled.has(f.name));
    const subtasks: SubtaskPlan[] = groupBatches(batched, cluster.slots).map((group) => {
      const plan: ImageBatchPlan = { type: 'batch', items: group.map((f) => ({ input: f.name, output: names.get(f.name)! })) };
      const first = group[0]!.name;
      return {
        label: group.length === 1 ? first : `${group.length} images (${first}, ...)`,
        inputs: group,
        plan,
        weight: group.reduce((n, f) => n + f.size, 0),
        items: group.map((f) => f.name),
      };
    });
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
  split: (s) => {
    if (isTilePlan(s.plan)) return undefined;
    const plan = s.plan as ImageBatchPlan;
    if (plan.items.length < 2) return undefined;
    return plan.items.map((item) => {
      const file = s.inputs.find((f) => f.name === item.input);
      return { label: item.input, inputs: file ? [file] : [], plan: { type: 'batch', items: [item] } satisfies ImageBatchPlan, weight: file?.size ?? 0, items: [item.input] };
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
