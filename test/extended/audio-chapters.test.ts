/**
 * Chapters: an audiobook or a DJ mix with chapters, converted by one `ffmpeg -i in out` run, keeps
 * its chapter marks (ffmpeg copies them by default), and so does the audio kind, whole or segmented
 * (it dropped them, saying nothing); a trim moves them back and drops those cut away, as ffmpeg's
 * `-ss` does. In Opus (Vorbis comments), a start in the second half of a second was written a second
 * late by ffmpeg's writer (4.5 s as 5.5), after a trim past the file's end (review AOUT); written as
 * command-line arguments, a thousand long titles passed the system's limit, spawn E2BIG (review K23).
 * Through the ffmetadata file that carries them instead, ffmpeg 5.1's reader ends a line at a bare
 * `\r`, and takes a line break after an escaped backslash for an escaped one: a Windows tagger's
 * comment or title was cut at its first line, and a title ending in `\` swallowed the next chapter
 * (review K24).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { runFfmpeg, runFfprobe } from '../../shared/ffmpeg.js';
import { runAudioInProcess } from '../helpers/audio-media.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-audio-chapters-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

type Chapters = { chapters?: Array<{ start_time: string; end_time: string; tags?: { title?: string } }> };
const chapters = async (file: string): Promise<Array<[string, string | undefined]>> =>
  ((await runFfprobe<Chapters>(['-show_chapters', '-i', file])).chapters ?? []).map((c) => [Number(c.start_time).toFixed(3), c.tags?.title]);

test("a source's chapters are kept in the output, as one ffmpeg run keeps them (whole and segmented)", async () => {
  const meta = path.join(dir, 'meta.txt');
  await writeFile(meta, ';FFMETADATA1\ntitle=Book\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=2000\ntitle=Chapter One\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=2000\nEND=5000\ntitle=Chapter Two\n');
  const src = path.join(dir, 'book.m4a');
  await runFfmpeg(['-f', 'lavfi', '-i', 'anoisesrc=r=44100:d=5:c=pink:a=0.2', '-f', 'ffmetadata', '-i', meta, '-map', '0:a', '-map_metadata', '1', '-map_chapters', '1', '-c:a', 'aac', '-y', src]);
  const want = [['0.000', 'Chapter One'], ['2.000', 'Chapter Two']];
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
    // An .m4a as `ffmpeg out.m4a` writes it (the ipod muxer): brand M4A, not MP4's isom.
    if (raw.codec === 'aac') expect((await runFfprobe<{ format?: { tags?: { major_brand?: string } } }>(['-show_entries', 'format_tags=major_brand', '-i', out.path])).format?.tags?.major_brand).toBe('M4A ');
  }
  // Trimmed, normalised and measured as it is encoded (the tee muxer): the second chapter starts 1 s
  // in; the first, cut to its last second, starts the file.
  const r = await runAudioInProcess({ codec: 'opus', normalize: true, trim: { start: 1 } }, [src], path.join(dir, 'trimmed'));
  expect(r.errors).toEqual([]);
  expect(await chapters(r.outputs.find((o) => o.name === 'book.opus')!.path)).toEqual([['0.000', 'Chapter One'], ['1.000', 'Chapter Two']]);
  const late = await runAudioInProcess({ codec: 'mp3', trim: { start: 2.5 } }, [src], path.join(dir, 'late'));
  expect(await chapters(late.outputs.find((o) => o.name === 'book.mp3')!.path)).toEqual([['0.000', 'Chapter Two']]);
});

test('opus output keeps chapter starts that fall in the second half of a second', async () => {
  const meta = path.join(dir, 'meta.txt');
  await writeFile(meta, ';FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=1700\ntitle=One\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=1700\nEND=4500\ntitle=Two\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=4500\nEND=6000\ntitle=Three\n');
  const src = path.join(dir, 'book.m4a');
  await runFfmpeg(['-f', 'lavfi', '-i', 'anoisesrc=r=48000:d=6:c=pink:a=0.2', '-f', 'ffmetadata', '-i', meta, '-map', '0:a', '-map_metadata', '1', '-map_chapters', '1', '-c:a', 'aac', '-y', src]);
  const want = [['0.000', 'One'], ['1.700', 'Two'], ['4.500', 'Three']];
  expect(await chapters(src)).toEqual(want);

  // MP3 keeps them exactly: the marks themselves are right.
  const mp3 = await runAudioInProcess({ codec: 'mp3' }, [src], path.join(dir, 'mp3'));
  expect(await chapters(mp3.outputs.find((o) => o.name === 'book.mp3')!.path)).toEqual(want);

  const opus = await runAudioInProcess({ codec: 'opus' }, [src], path.join(dir, 'opus'));
  expect(opus.errors).toEqual([]);
  // Observed: [['0.000','One'],['2.700','Two'],['5.500','Three']].
  expect(await chapters(opus.outputs.find((o) => o.name === 'book.opus')!.path)).toEqual(want);
});

test('a trimmed opus output has no chapter starting after its end', async () => {
  const meta = path.join(dir, 'meta.txt');
  await writeFile(meta, ';FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=4600\ntitle=One\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=4600\nEND=6000\ntitle=Two\n');
  const src = path.join(dir, 'mix.m4a');
  await runFfmpeg(['-f', 'lavfi', '-i', 'anoisesrc=r=48000:d=6:c=pink:a=0.2', '-f', 'ffmetadata', '-i', meta, '-map', '0:a', '-map_metadata', '1', '-map_chapters', '1', '-c:a', 'aac', '-y', src]);
  // Keeps [1, 5.4) s: 4.4 s, the second chapter starting at 3.6 s.
  const r = await runAudioInProcess({ codec: 'opus', trim: { start: 1, end: 5.4 } }, [src], path.join(dir, 'trim'));
  expect(r.errors).toEqual([]);
  const out = r.outputs.find((o) => o.name === 'mix.opus')!.path;
  const got = await chapters(out);
  // Observed: the second chapter at 4.600 s, after the end of the 4.4 s file.
  expect(got).toEqual([['0.000', 'One'], ['3.600', 'Two']]);
});

test('an opus output of a source with 1000 long-titled chapters is written, as aac is', async () => {
  // 1000 chapters of 10 ms, each titled with 2500 characters (under the probe's 4096).
  const marks = Array.from({ length: 1000 }, (_, i) => `[CHAPTER]\nTIMEBASE=1/1000\nSTART=${i * 10}\nEND=${(i + 1) * 10}\ntitle=${String(i).padStart(4, '0')} ${'n'.repeat(2500)}\n`);
  await writeFile(path.join(dir, 'meta.txt'), `;FFMETADATA1\n${marks.join('')}`);
  const src = path.join(dir, 'mix.m4a');
  await runFfmpeg(['-f', 'lavfi', '-i', 'anoisesrc=r=48000:d=10:c=pink:a=0.2', '-f', 'ffmetadata', '-i', path.join(dir, 'meta.txt'), '-map', '0:a', '-map_metadata', '1', '-map_chapters', '1', '-c:a', 'aac', '-y', src]);
  const count = async (file: string): Promise<number> => ((await runFfprobe<{ chapters?: unknown[] }>(['-show_chapters', '-i', file])).chapters ?? []).length;
  expect(await count(src)).toBe(1000);

  const aac = await runAudioInProcess({ codec: 'aac' }, [src], path.join(dir, 'aac'));
  expect(aac.errors).toEqual([]);
  expect(await count(aac.outputs.find((o) => o.name === 'mix.m4a')!.path)).toBe(1000);

  const opus = await runAudioInProcess({ codec: 'opus' }, [src], path.join(dir, 'opus'));
  // Observed: [{ input: 'mix.m4a', code: 'INTERNAL', message: 'spawn E2BIG' }].
  expect(opus.errors).toEqual([]);
  expect(await count(opus.outputs.find((o) => o.name === 'mix.opus')!.path)).toBe(1000);
});

type Probe = { streams?: Array<{ tags?: Record<string, string> }>; format?: { tags?: Record<string, string> }; chapters?: Array<{ start_time: string; tags?: { title?: string } }> };
const probe = (file: string): Promise<Probe> => runFfprobe<Probe>(['-show_entries', 'stream_tags:format_tags:chapters', '-select_streams', 'a:0', '-i', file]);
const tagsOf = (p: Probe): Record<string, string> => ({ ...p.format?.tags, ...p.streams?.[0]?.tags });
const chaptersOf = (p: Probe): Array<[string, string | undefined]> => (p.chapters ?? []).map((c) => [Number(c.start_time).toFixed(3), c.tags?.title]);

test('a comment with Windows line breaks is kept whole in an opus output with chapters', async () => {
  const comment = 'Recorded live.\r\nSecond line of the notes.';
  const meta = path.join(dir, 'meta.txt');
  await writeFile(meta, ';FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=1000\ntitle=One\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=1000\nEND=2000\ntitle=Two\n');
  const src = path.join(dir, 'talk.m4a');
  await runFfmpeg(['-f', 'lavfi', '-i', 'sine=f=440:r=48000:d=2', '-f', 'ffmetadata', '-i', meta, '-map', '0:a', '-map_chapters', '1', '-metadata', `comment=${comment}`, '-c:a', 'aac', '-y', src]);
  expect(tagsOf(await probe(src)).comment).toBe(comment);

  // MP3 (tags on the command line) keeps it.
  const mp3 = await runAudioInProcess({ codec: 'mp3' }, [src], path.join(dir, 'mp3'));
  expect(tagsOf(await probe(mp3.outputs.find((o) => o.name === 'talk.mp3')!.path)).comment).toBe(comment);

  const opus = await runAudioInProcess({ codec: 'opus' }, [src], path.join(dir, 'opus'));
  expect(opus.errors).toEqual([]);
  const p = await probe(opus.outputs.find((o) => o.name === 'talk.opus')!.path);
  expect(chaptersOf(p)).toEqual([['0.000', 'One'], ['1.000', 'Two']]);
  // Observed: 'Recorded live.' (the rest dropped at the \r).
  expect(tagsOf(p).comment).toBe(comment);
});

test('a chapter title with Windows line breaks is kept whole in mp3 and m4a outputs', async () => {
  const title = 'Part one\r\nof two';
  const src = path.join(dir, 'book.ogg');
  await runFfmpeg(['-f', 'lavfi', '-i', 'sine=f=440:r=48000:d=2', '-c:a', 'libopus', '-metadata', 'CHAPTER000=00:00:00.000', '-metadata', `CHAPTER000NAME=${title}`, '-metadata', 'CHAPTER001=00:00:01.000', '-metadata', 'CHAPTER001NAME=Two', '-y', src]);
  for (const codec of ['mp3', 'aac'] as const) {
    const run = await runAudioInProcess({ codec }, [src], path.join(dir, codec));
    expect(run.errors).toEqual([]);
    // Observed: 'Part one' (cut at the \r).
    expect(chaptersOf(await probe(run.outputs.find((o) => o.name.startsWith('book.'))!.path)), codec).toEqual([['0.000', title], ['1.000', 'Two']]);
  }
});

test('a chapter title ending in a backslash does not swallow the next chapter of an opus output', async () => {
  // An Ogg source whose chapters are Vorbis comments, given on the command line (no ffmetadata file).
  const src = path.join(dir, 'mix.ogg');
  await runFfmpeg([
    '-f', 'lavfi', '-i', 'sine=f=440:r=48000:d=3', '-c:a', 'libopus',
    '-metadata', 'CHAPTER000=00:00:00.000', '-metadata', 'CHAPTER000NAME=Left \\',
    '-metadata', 'CHAPTER001=00:00:01.000', '-metadata', 'CHAPTER001NAME=Middle',
    '-metadata', 'CHAPTER002=00:00:02.000', '-metadata', 'CHAPTER002NAME=Right',
    '-y', src,
  ]);
  const want = [['0.000', 'Left \\'], ['1.000', 'Middle'], ['2.000', 'Right']];
  expect(chaptersOf(await probe(src))).toEqual(want);

  const mp3 = await runAudioInProcess({ codec: 'mp3' }, [src], path.join(dir, 'mp3'));
  expect(mp3.errors).toEqual([]);
  // MP3's chapters (an ffmetadata file's [CHAPTER] sections) lost the middle one the same way.
  expect(chaptersOf(await probe(mp3.outputs.find((o) => o.name === 'mix.mp3')!.path))).toEqual(want);
  const opus = await runAudioInProcess({ codec: 'opus' }, [src], path.join(dir, 'opus'));
  expect(opus.errors).toEqual([]);
  // Observed: [['0.000', 'Left \\\nCHAPTER001=00:00:01.000'], ['2.000', 'Right']]: the second chapter gone.
  expect(chaptersOf(await probe(opus.outputs.find((o) => o.name === 'mix.opus')!.path))).toEqual(want);
});

test('an MP3 whose stream starts a microsecond after its container keeps its chapter starts to the millisecond in Opus', async () => {
  // LAME's delay puts an MP3's sound at 0.025057 s, and with a cover ffprobe its container at 0.025056: every
  // chapter was moved back by the microsecond, and Opus's Vorbis comments floored 7.249999 s to
  // 7.249 (MP3 and M4A outputs, whose chapters are rounded, had 7.250; review aud).
  const meta = path.join(dir, 'meta.txt');
  await writeFile(meta, ';FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=7250\ntitle=One\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=7250\nEND=15600\ntitle=Two\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=15600\nEND=20000\ntitle=Three\n');
  const src = path.join(dir, 'talk.mp3');
  await runFfmpeg(['-f', 'lavfi', '-i', 'sine=f=500:r=44100:d=20', '-f', 'ffmetadata', '-i', meta, '-f', 'lavfi', '-i', 'color=c=red:s=32x32:d=0.04', '-map', '0:a', '-map', '2:v', '-frames:v', '1', '-map_chapters', '1', '-c:a', 'libmp3lame', '-c:v', 'png', '-disposition:v', 'attached_pic', '-id3v2_version', '3', '-y', src]);
  const starts = await runFfprobe<{ format?: { start_time?: string }; streams?: Array<{ start_time?: string }> }>(['-show_entries', 'format=start_time:stream=start_time', '-i', src]);
  expect([starts.streams?.[0]?.start_time, starts.format?.start_time]).toEqual(['0.025057', '0.025056']);
  const r = await runAudioInProcess({ codec: 'opus', segment_seconds: 10 }, [src], path.join(dir, 'opus'));
  expect(r.errors).toEqual([]);
  expect(await chapters(r.outputs.find((o) => o.name === 'talk.opus')!.path)).toEqual([['0.000', 'One'], ['7.250', 'Two'], ['15.600', 'Three']]);
});
