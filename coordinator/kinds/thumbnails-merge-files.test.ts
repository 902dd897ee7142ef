/**
 * What the thumbnails merge does with the subtasks' files: each thumbnail is published as a hard
 * link of its subtask's file (no copy, no second checksum read: `linkOf`), and the sprite sheets
 * are tiled from them by ffmpeg, each thumbnail in its cell, the last sheet only as tall as its rows.
 */
import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MergeContext, SubtaskOutcome } from '../../shared/job-kind.js';
import type { ThumbnailJobParams } from '../../shared/kinds/thumbnails-params.js';
import { thumbnailName, type ThumbnailRangePlan } from '../../shared/media/video-thumbnails.js';
import { thumbnailsKind } from './thumbnails.js';

const W = 32;
const H = 18;
/** One solid colour per thumbnail, far apart, so that a JPEG's cell is told from its neighbours'. */
const COLOURS = [
  { r: 230, g: 30, b: 30 },
  { r: 30, g: 200, b: 30 },
  { r: 30, g: 30, b: 230 },
  { r: 230, g: 230, b: 30 },
  { r: 30, g: 220, b: 220 },
];

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-thumbs-files-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Merges five thumbnails made by two subtasks, with sprites of `sprite` if given. */
/** Why ffmpeg could not tile sheets (sharp made them instead), per merge. */
let fellBack: unknown[] = [];

async function merge(name: string, sprite: { cols: number; rows: number } | null) {
  fellBack = [];
  const root = path.join(dir, name);
  const [spool, outputDir, workDir] = ['spool', 'merge', 'work'].map((d) => path.join(root, d));
  await Promise.all([spool, outputDir, workDir].map((d) => mkdir(d!, { recursive: true })));
  const files: string[] = [];
  for (const [i, background] of COLOURS.entries()) {
    const file = path.join(spool!, `s${i}.jpg`);
    await sharp({ create: { width: W, height: H, channels: 3, background } }).jpeg({ quality: 95 }).toFile(file);
    files.push(file);
  }
  const split = [[0, 3], [3, 5]] as const;
  const results = split.map(([from, to], p) => ({
    index: p, phase: 0, label: `range ${p}`, items: ['v.mp4'], ok: true, itemErrors: [], result: {}, worker: 'w',
    plan: { source: 'v.mp4', times: Array<number>(to - from).fill(0), numbers: [], cues: Array.from({ length: to - from }, (_, k) => [from + k, from + k + 1]), width: W, height: H } satisfies ThumbnailRangePlan,
    outputs: files.slice(from, to).map((file, k) => ({ name: thumbnailName(from + k + 1, 'jpeg'), path: file, size: 1 })),
  })) as unknown as SubtaskOutcome[];
  const params = { every: 0, count: COLOURS.length, width: W, format: 'jpeg', sprite } as unknown as ThumbnailJobParams;
  const ctx = { params, inputs: [{ name: 'v.mp4', path: files[0], size: 1 }], results, history: [], phase: 0, outputDir, workDir, signal: new AbortController().signal, warn: () => undefined, log: { warn: (o: { err: unknown }) => fellBack.push(o.err) } } as unknown as MergeContext<ThumbnailJobParams>;
  const merged = await thumbnailsKind.merge!(ctx);
  return { merged, files, outputDir: outputDir!, workDir: workDir! };
}

/** The mean colour of cell (col, row) of a sheet, its edges left out (JPEG blurs across them). */
async function cell(file: string, col: number, row: number): Promise<{ r: number; g: number; b: number }> {
  const { data, info } = await sharp(file).extract({ left: col * W + 4, top: row * H + 4, width: W - 8, height: H - 8 }).raw().toBuffer({ resolveWithObject: true });
  const sum = [0, 0, 0];
  for (let i = 0; i < data.length; i += info.channels) for (let c = 0; c < 3; c++) sum[c]! += data[i + c]!;
  const n = data.length / info.channels;
  return { r: sum[0]! / n, g: sum[1]! / n, b: sum[2]! / n };
}

function near(got: { r: number; g: number; b: number }, want: { r: number; g: number; b: number }): boolean {
  return Math.abs(got.r - want.r) < 25 && Math.abs(got.g - want.g) < 25 && Math.abs(got.b - want.b) < 25;
}

describe('thumbnails merge: files', () => {
  it('publishes each thumbnail as a hard link of its subtask file, named as that link', async () => {
    const { merged, files } = await merge('links', null);
    expect(merged.errors).toEqual([]);
    expect(merged.outputs!.map((o) => o.name)).toEqual(COLOURS.map((_, i) => thumbnailName(i + 1, 'jpeg')));
    for (const [i, o] of merged.outputs!.entries()) {
      expect(o.linkOf).toBe(files[i]);
      const [a, b] = await Promise.all([stat(o.path), stat(files[i]!)]);
      expect(a.ino).toBe(b.ino);
      expect((await readFile(o.path)).equals(await readFile(files[i]!))).toBe(true);
    }
  });

  it('tiles 2x2 sheets in order, the last one row tall with its unused cell black, and their WebVTT index', async () => {
    const { merged, outputDir, workDir } = await merge('sprites', { cols: 2, rows: 2 });
    expect(merged.errors).toEqual([]);
    const names = merged.outputs!.map((o) => o.name);
    expect(names.slice(COLOURS.length)).toEqual(['sprite-1.jpg', 'sprite-2.jpg', 'thumbnails.vtt']);
    const [first, second] = [path.join(outputDir, 'sprite-1.jpg'), path.join(outputDir, 'sprite-2.jpg')];
    expect(await sharp(first).metadata()).toMatchObject({ format: 'jpeg', width: 2 * W, height: 2 * H });
    expect(await sharp(second).metadata()).toMatchObject({ format: 'jpeg', width: 2 * W, height: H });
    // Tiled by ffmpeg (its encoder's mark), not by the fallback.
    expect(fellBack).toEqual([]);
    expect((await readFile(first)).includes('Lavc')).toBe(true);
    const cells = [await cell(first, 0, 0), await cell(first, 1, 0), await cell(first, 0, 1), await cell(first, 1, 1), await cell(second, 0, 0)];
    cells.forEach((c, i) => expect(near(c, COLOURS[i]!), `thumbnail ${i + 1}: ${JSON.stringify(c)}`).toBe(true));
    expect(near(await cell(second, 1, 0), { r: 0, g: 0, b: 0 })).toBe(true);
    const vtt = await readFile(path.join(outputDir, 'thumbnails.vtt'), 'utf8');
    expect(vtt).toContain(`sprite-2.jpg#xywh=0,0,${W},${H}`);
    // The numbered links the tiling read are gone from the job's scratch folder.
    expect(await import('node:fs/promises').then((fs) => fs.readdir(workDir))).toEqual([]);
  });
});
