/**
 * The thumbnails merge of one video's N thumbnails should cost about N file copies. It looked each
 * thumbnail up by name in a fresh flat list of all the video's outputs (`mine.flatMap(...).find`),
 * so it grew as N^2: 10,000 thumbnails (the limit) spent ~12 s of coordinator CPU after the last
 * subtask before the first thumbnail was published. What is bounded is the work, not its time: the
 * reads of the subtasks' output lists (one pass, N reads; the scan per thumbnail made N^2 / 2).
 * A bound of 1 s on the time read 0.95 s on a loaded 2-core machine where it takes 0.1 s alone.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import type { MergeContext, SubtaskOutcome } from '../../shared/job-kind.js';
import type { ThumbnailJobParams } from '../../shared/kinds/thumbnails-params.js';
import { thumbnailName, type ThumbnailRangePlan } from '../../shared/media/video-thumbnails.js';
import { thumbnailsKind } from './thumbnails.js';

// The copies themselves are not what is measured: each is stubbed to nothing, leaving the merge's own work.
vi.mock('node:fs/promises', async (original) => {
  const real = await original<typeof import('node:fs/promises')>();
  return { ...real, default: real, copyFile: async () => {}, link: async () => {} };
});

/**
 * Merges `n` thumbnails of one video (8 range subtasks): the reads of the subtasks' output lists,
 * and the ms it took. Past 4 reads an output the reads throw (the merge then fails): an N^2 merge
 * is stopped there rather than run its 20 million reads.
 */
async function merge(n: number): Promise<{ reads: number; ms: number }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-thumbs-merge-'));
  try {
    const src = path.join(dir, 'one.jpg');
    await writeFile(src, 'x');
    const parts = 8;
    const per = n / parts;
    let reads = 0;
    /** `list`, counting each read of one of its entries. */
    const counted = <T extends object>(list: T[]): T[] =>
      new Proxy(list, {
        get(target, key, receiver) {
          if (typeof key === 'string' && /^\d+$/.test(key) && ++reads > 4 * n) throw new Error(`over ${4 * n} reads of the subtasks' outputs to merge ${n} thumbnails`);
          return Reflect.get(target, key, receiver) as unknown;
        },
      });
    const results: SubtaskOutcome[] = Array.from({ length: parts }, (_, p) => ({
      index: p, phase: 0, label: `range ${p}`, items: ['v.mp4'], ok: true, itemErrors: [], result: {}, worker: 'w',
      plan: { source: 'v.mp4', times: Array<number>(per).fill(0), numbers: [], cues: [], width: 32, height: 18 } satisfies ThumbnailRangePlan,
      outputs: counted(Array.from({ length: per }, (_, k) => ({ name: thumbnailName(p * per + k + 1, 'jpeg'), path: src, size: 1 }))),
    })) as unknown as SubtaskOutcome[];
    const params: ThumbnailJobParams = { every: 0, count: n, width: 32, format: 'jpeg', sprite: null } as unknown as ThumbnailJobParams;
    const ctx = { params, inputs: [{ name: 'v.mp4', path: src, size: 1 }], results, history: [], phase: 0, outputDir: dir, signal: new AbortController().signal } as unknown as MergeContext<ThumbnailJobParams>;
    const t = performance.now();
    const merged = await thumbnailsKind.merge!(ctx);
    const ms = performance.now() - t;
    expect(merged.outputs).toHaveLength(n);
    return { reads, ms };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('thumbnails merge at scale', () => {
  it('merging 6,400 thumbnails of one video (copies stubbed out) reads each output a few times, not N^2 lookups', async () => {
    const small = await merge(800);
    const large = await merge(6_400);
    const seen = `800: ${small.reads} reads, ${small.ms.toFixed(0)} ms; 6,400: ${large.reads} reads, ${large.ms.toFixed(0)} ms`;
    // Linear: one read of each output (at most 4 each, or the merge fails). Quadratic (a new
    // 6,400-entry list built and searched per thumbnail): about 20 million.
    expect(small.reads, seen).toBeLessThanOrEqual(4 * 800);
    expect(large.reads, seen).toBeLessThanOrEqual(4 * 6_400);
  }, 60_000);
});
