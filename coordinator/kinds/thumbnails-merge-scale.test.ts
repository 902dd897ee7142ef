/**
 * The thumbnails merge of one video's N thumbnails should cost about N file copies. It looked each
 * thumbnail up by name in a fresh flat list of all the video's outputs (`mine.flatMap(...).find`),
 * so it grew as N^2: 10,000 thumbnails (the limit) spent ~12 s of coordinator CPU after the last
 * subtask before the first thumbnail was published. The bound below is 20 times the linear time.
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
  return { ...real, default: real, copyFile: async () => {} };
});

/** Milliseconds that merging `n` thumbnails of one video (8 range subtasks) takes. */
async function mergeMs(n: number): Promise<number> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-thumbs-merge-'));
  try {
    const src = path.join(dir, 'one.jpg');
    await writeFile(src, 'x');
    const parts = 8;
    const per = n / parts;
    const results: SubtaskOutcome[] = Array.from({ length: parts }, (_, p) => ({
      index: p, phase: 0, label: `range ${p}`, items: ['v.mp4'], ok: true, itemErrors: [], result: {}, worker: 'w',
      plan: { source: 'v.mp4', times: Array<number>(per).fill(0), numbers: [], cues: [], width: 32, height: 18 } satisfies ThumbnailRangePlan,
      outputs: Array.from({ length: per }, (_, k) => ({ name: thumbnailName(p * per + k + 1, 'jpeg'), path: src, size: 1 })),
    })) as unknown as SubtaskOutcome[];
    const params: ThumbnailJobParams = { every: 0, count: n, width: 32, format: 'jpeg', sprite: null } as unknown as ThumbnailJobParams;
    const ctx = { params, inputs: [{ name: 'v.mp4', path: src, size: 1 }], results, history: [], phase: 0, outputDir: dir, signal: new AbortController().signal } as unknown as MergeContext<ThumbnailJobParams>;
    const t = performance.now();
    const merged = await thumbnailsKind.merge!(ctx);
    const ms = performance.now() - t;
    expect(merged.outputs).toHaveLength(n);
    return ms;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('thumbnails merge at scale', () => {
  it('merging 6,400 thumbnails of one video (copies stubbed out) takes well under a second, not N^2 lookups', async () => {
    const small = await mergeMs(800);
    const large = await mergeMs(6_400);
    // Linear: a few ms. Quadratic (a new 6,400-entry list built and searched per thumbnail): seconds.
    expect(large, `800: ${small.toFixed(0)} ms, 6,400: ${large.toFixed(0)} ms`).toBeLessThan(1_000);
  }, 60_000);
});
