/**
 * Chapters: an audiobook or a DJ mix with chapters, converted by one `ffmpeg -i in out` run, keeps
 * its chapter marks (ffmpeg copies them by default), and so does the audio kind, whole or segmented
 * (it dropped them, saying nothing); a trim moves them back and drops those cut away, as ffmpeg's
 * `-ss` does.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { runFfmpeg, runFfprobe } from '../shared/ffmpeg.js';
import { runAudioInProcess } from './helpers/audio-media.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-audio-chapters-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

type Chapters = { chapters?: Array<{ start_time: string; end_time: string; tags?: { title?: string } }> };
const chapters = async (file: string): Promise<Array<[string, string | undefined]>> =>
  ((await runFfprobe<Chapters>(['-show_chapters', '-i', file])).chapters ?? []).map((c) => [Number(c.start_time).toFixed(2), c.tags?.title]);

test("a source's chapters are kept in the output, as one ffmpeg run keeps them (whole and segmented)", async () => {
  const meta = path.join(dir, 'meta.txt');
  await writeFile(meta, ';FFMETADATA1\ntitle=Book\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=2000\ntitle=Chapter One\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=2000\nEND=5000\ntitle=Chapter Two\n');
  const src = path.join(dir, 'book.m4a');
  await runFfmpeg(['-f', 'lavfi', '-i', 'anoisesrc=r=44100:d=5:c=pink:a=0.2', '-f', 'ffmetadata', '-i', meta, '-map', '0:a', '-map_metadata', '1', '-map_chapters', '1', '-c:a', 'aac', '-y', src]);
  const want = [['0.00', 'Chapter One'], ['2.00', 'Chapter Two']];
  expect(await chapters(src)).toEqual(want);
  // What one ffmpeg run over the whole file writes.
  const plain = path.join(dir, 'plain.mp3');
  await runFfmpeg(['-i', src, '-c:a', 'libmp3lame', '-y', plain]);
  expect(await chapters(plain)).toEqual(want);
  for (const raw of [{ codec: 'mp3' }, { codec: 'aac', segment_seconds: 2 }]) {
    const r = await runAudioInProcess(raw, [src], path.join(dir, raw.codec));
    expect(r.errors).toEqual([]);
    const out = r.outputs.find((o) => o.name.startsWith('book.'))!;
    expect(await chapters(out.path), `${out.name} (${JSON.stringify(raw)})`).toEqual(want);
  }
  // Trimmed, normalised and measured as it is encoded (the tee muxer): the second chapter starts 1 s
  // in; the first, cut to its last second, starts the file.
  const r = await runAudioInProcess({ codec: 'opus', normalize: true, trim: { start: 1 } }, [src], path.join(dir, 'trimmed'));
  expect(r.errors).toEqual([]);
  expect(await chapters(r.outputs.find((o) => o.name === 'book.opus')!.path)).toEqual([['0.00', 'Chapter One'], ['1.00', 'Chapter Two']]);
  const late = await runAudioInProcess({ codec: 'mp3', trim: { start: 2.5 } }, [src], path.join(dir, 'late'));
  expect(await chapters(late.outputs.find((o) => o.name === 'book.mp3')!.path)).toEqual([['0.00', 'Chapter Two']]);
});
