/**
 * Sprite sheets and their WebVTT index for the thumbnails kind: thumbnails laid out left to right,
 * top to bottom on COLSxROWS grids (as many sheets as needed), and cues mapping each time range to
 * `sheet#xywh=x,y,w,h`, the form web players use for seek previews.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import pLimit from 'p-limit';
import sharp from 'sharp';

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

/** Writes the sheets and `thumbnails.vtt` into `dir`; returns the written file names. */
export async function writeSprites(dir: string, s: SpriteInput, signal: AbortSignal): Promise<string[]> {
  const perSheet = s.cols * s.rows;
  const sheets = Math.ceil(s.files.length / perSheet);
  const ext = s.format === 'jpeg' ? 'jpg' : 'webp';
  const sheetName = (k: number): string => `${s.prefix}${sheets === 1 ? 'sprite' : `sprite-${k + 1}`}.${ext}`;
  const names: string[] = [];
  for (let k = 0; k < sheets; k++) {
    signal.throwIfAborted();
    const members = s.files.slice(k * perSheet, (k + 1) * perSheet);
    // The last sheet is only as tall as the rows it fills.
    const rows = Math.ceil(members.length / s.cols);
    const cols = sheets === 1 ? Math.min(s.cols, members.length) : s.cols;
    const sheet = await assemble(members, cols, rows, s, signal);
    const out = path.join(dir, sheetName(k));
    await (s.format === 'jpeg' ? sheet.jpeg({ quality: 80 }) : sheet.webp({ quality: 80 })).toFile(out);
    names.push(sheetName(k));
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
