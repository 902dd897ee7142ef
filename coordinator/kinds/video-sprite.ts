/**
 * Sprite sheets and their WebVTT index for the thumbnails kind: thumbnails laid out left to right,
 * top to bottom on COLSxROWS grids (as many sheets as needed), and cues mapping each time range to
 * `sheet#xywh=x,y,w,h`, the form web players use for seek previews.
 */
import { copyFile, link, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pLimit from 'p-limit';
import sharp from 'sharp';
import { runFfmpeg } from '../../shared/ffmpeg.js';

export interface SpriteInput {
  /** Thumbnail files in time order. */
  files: string[];
  /** Cue start and end times in seconds (one pair per thumbnail). */
  cues: Array<[number, number]>;
  width: number;
  height: number;
  cols: number;
  rows: number;
  format: 'jpeg' | 'webp';
  /** Prefix of the written file names (distinguishes the inputs of a multi-input job). */
  prefix: string;
}

/**
 * Writes the sheets and `thumbnails.vtt` into `dir`; returns the written file names. `scratch`: a
 * folder of the job's own for the files the assembly needs on the way; `onFallback` is told why
 * ffmpeg could not tile them, where sharp then does.
 */
export async function writeSprites(dir: string, s: SpriteInput, signal: AbortSignal, scratch = dir, onFallback?: (err: unknown) => void): Promise<string[]> {
  const perSheet = s.cols * s.rows;
  const sheets = Math.ceil(s.files.length / perSheet);
  const ext = s.format === 'jpeg' ? 'jpg' : 'webp';
  const sheetName = (k: number): string => `${s.prefix}${sheets === 1 ? 'sprite' : `sprite-${k + 1}`}.${ext}`;
  // Each sheet's grid: the last one only as tall as the rows it fills, a lone sheet only as wide.
  const grids = Array.from({ length: sheets }, (_, k) => {
    const members = Math.min(perSheet, s.files.length - k * perSheet);
    return { cols: sheets === 1 ? Math.min(s.cols, members) : s.cols, rows: Math.ceil(members / s.cols) };
  });
  const names = grids.map((_, k) => sheetName(k));
  const tiled = await tileWithFfmpeg(dir, names, grids, s, signal, scratch).then(
    () => true,
    (err: unknown) => {
      if (signal.aborted) throw err;
      onFallback?.(err);
      return false;
    },
  );
  // Where ffmpeg could not (an encoder it lacks), sharp makes them, a thumbnail at a time.
  for (let k = 0; !tiled && k < sheets; k++) {
    signal.throwIfAborted();
    const members = s.files.slice(k * perSheet, (k + 1) * perSheet);
    const sheet = await assemble(members, grids[k]!.cols, grids[k]!.rows, s, signal);
    await (s.format === 'jpeg' ? sheet.jpeg({ quality: 80 }) : sheet.webp({ quality: 80 })).toFile(path.join(dir, names[k]!));
  }
  const lines = ['WEBVTT', ''];
  s.cues.forEach(([start, end], i) => {
    const k = Math.floor(i / perSheet);
    const j = i % perSheet;
    // A URL relative to the .vtt, as players read it: a name's `#`, `%`, `?` or space escaped.
    lines.push(`${vttTime(start)} --> ${vttTime(end)}`, `${encodeURIComponent(sheetName(k))}#xywh=${(j % s.cols) * s.width},${Math.floor(j / s.cols) * s.height},${s.width},${s.height}`, '');
  });
  await writeFile(path.join(dir, `${s.prefix}thumbnails.vtt`), lines.join('\n'));
  names.push(`${s.prefix}thumbnails.vtt`);
  return names;
}

/**
 * The sheets made by ffmpeg's `tile` filter, every full-sized one in one run and the last (a
 * grid of its own) in another, from the thumbnails linked under numbered names in a scratch
 * folder. sharp took 2.5 ms of CPU to decode each 320 px thumbnail on a 2-core machine (1.5 s for
 * the 600 of a 3-minute video's scrubbing previews, after the workers had finished), ffmpeg 0.4
 * s for all of them and the sheets' encoding.
 */
async function tileWithFfmpeg(dir: string, names: string[], grids: Array<{ cols: number; rows: number }>, s: SpriteInput, signal: AbortSignal, scratch: string): Promise<void> {
  const ext = s.format === 'jpeg' ? 'jpg' : 'webp';
  const src = await mkdtemp(path.join(scratch, 'sprite-'));
  try {
    const limit = pLimit(8);
    await Promise.all(s.files.map((file, i) => limit(async () => {
      const to = path.join(src, `${String(i + 1).padStart(6, '0')}.${ext}`);
      await link(file, to).catch(() => copyFile(file, to));
    })));
    const perSheet = s.cols * s.rows;
    const same = grids.findIndex((g) => g.cols !== grids[0]!.cols || g.rows !== grids[0]!.rows);
    // Runs of sheets of one grid: all but perhaps the last, then the last.
    const runs: Array<[number, number]> = same < 0 ? [[0, grids.length]] : [[0, same], [same, grids.length]];
    for (const [from, to] of runs) {
      signal.throwIfAborted();
      const { cols, rows } = grids[from]!;
      // Tiled in a format without chroma subsampling, whatever a thumbnail's size; the unused cells of a last row stay black.
      const vf = `format=yuv444p,tile=${cols}x${rows},format=${s.format === 'jpeg' ? 'yuvj420p' : 'yuv420p'}`;
      const codec = s.format === 'jpeg' ? ['-c:v', 'mjpeg', '-q:v', '5'] : ['-c:v', 'libwebp', '-quality', '80'];
      await runFfmpeg(
        ['-y', '-f', 'image2', '-framerate', '1', '-start_number', String(from * perSheet + 1), '-i', `%06d.${ext}`, '-frames:v', String(to - from), '-vf', vf, ...codec, '-f', 'image2', '-start_number', String(from + 1), `sheet-%06d.${ext}`],
        { signal, cwd: src, input: 'sprite sheets' },
      );
    }
    for (const [k, name] of names.entries()) await rename(path.join(src, `sheet-${String(k + 1).padStart(6, '0')}.${ext}`), path.join(dir, name));
  } finally {
    await rm(src, { recursive: true, force: true });
  }
}

/** Thumbnails decoded at once while a sheet is assembled. */
const DECODE_CONCURRENCY = 4;

/**
 * One sheet: each thumbnail decoded in turn (over black, as it would be composited) and its pixels
 * copied into the sheet's own raw buffer, then encoded once. One composite of every thumbnail held
 * a decoder and buffers per overlay: 10,000 thumbnails on one sheet took the coordinator to 2 GB.
 */
async function assemble(members: string[], cols: number, rows: number, s: SpriteInput, signal: AbortSignal): Promise<sharp.Sharp> {
  const width = cols * s.width;
  const height = rows * s.height;
  const sheet = Buffer.alloc(width * height * 3);
  const limit = pLimit(DECODE_CONCURRENCY);
  await Promise.all(
    members.map((file, i) =>
      limit(async () => {
        signal.throwIfAborted();
        const { data, info } = await sharp(file).flatten({ background: { r: 0, g: 0, b: 0 } }).toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
        const left = (i % s.cols) * s.width;
        const top = Math.floor(i / s.cols) * s.height;
        // A thumbnail larger than its cell (none is planned so) is cut to the cell.
        const w = Math.min(info.width, s.width);
        for (let y = 0; y < Math.min(info.height, s.height); y++) {
          data.copy(sheet, ((top + y) * width + left) * 3, y * info.width * info.channels, (y * info.width + w) * info.channels);
        }
      }),
    ),
  );
  return sharp(sheet, { raw: { width, height, channels: 3 } });
}

/** WebVTT timestamp hh:mm:ss.mmm. */
export function vttTime(seconds: number): string {
  const ms = Math.max(0, Math.round(seconds * 1000));
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const sec = Math.floor((ms % 60_000) / 1000);
  const pad = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${pad(h)}:${pad(m)}:${pad(sec)}.${pad(ms % 1000, 3)}`;
}
