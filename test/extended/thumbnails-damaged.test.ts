/**
 * Thumbnails of a damaged video (in process: the real planner, worker processor and merge). Bytes
 * overwritten in the middle of an MP4 left thumbnails of smeared blocks, or of a picture 1.5 s
 * earlier, and the job succeeded without a word, where the video kind refuses the same file
 * (review VID1). The job now names the thumbnails whose decode the decoder complained of, and only
 * those; a clean file's thumbnails get no warning, whichever way they are grabbed.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { thumbnailsKind } from '../../coordinator/kinds/thumbnails.js';
import { runFfmpeg } from '../../shared/ffmpeg.js';
import { thumbnailsProcessor } from '../../worker/processors/thumbnails.js';
import { runKindInProcess, specOf } from '../helpers/media.js';

let dir: string;
let clean: string;
let damaged: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-thumbnails-damaged-'));
  clean = path.join(dir, 'clean.mp4');
  // A keyframe every 2 s; the damage lies in the GOP from 4 s (its frames from about 4.2 s on).
  await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=s=320x240:r=25:d=10', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '50', '-pix_fmt', 'yuv420p', '-movflags', '+faststart', clean]);
  const bytes = await readFile(clean);
  const at = Math.round(bytes.length * 0.45);
  for (let i = at; i < at + Math.round(bytes.length * 0.08); i += 7) bytes[i] = (i * 131 + 7) & 0xff;
  damaged = path.join(dir, 'damaged.mp4');
  await writeFile(damaged, bytes);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The thumbnail numbers a warning names ("... thumbnails 5 (4.00 s), 6 (5.00 s) ..."). */
function named(message: string): number[] {
  return [...message.matchAll(/(\d+) \(\d+\.\d+ s\)/g)].map((m) => Number(m[1]));
}

it.each([
  ['seeked', { count: 10, width: 64 }],
  ['in one pass', { every: 0.5, width: 64 }],
])('thumbnails %s: the ones taken where the video is damaged are named, and only they; the clean file gets no warning', async (_how, params) => {
  const good = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', params), [clean], { dir });
  expect([good.errors, good.warnings]).toEqual([[], []]);
  const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', params), [damaged], { dir });
  expect(run.errors).toEqual([]);
  expect(run.warnings).toHaveLength(1);
  const w = run.warnings[0]!;
  expect(w.input).toBe('damaged.mp4');
  expect(w.message).toMatch(/^the video is damaged where thumbnails .* were taken \(ffmpeg: .+\): they may show smeared blocks or an earlier picture; repair or re-encode the file for clean ones$/);
  // The damaged ones lie in the GOP from 4 s: none before it, and not every thumbnail.
  const numbers = named(w.message);
  const times = [...w.message.matchAll(/\((\d+\.\d+) s\)/g)].map((m) => Number(m[1]));
  expect(numbers.length).toBeGreaterThan(0);
  expect(Math.min(...times)).toBeGreaterThanOrEqual(4);
  expect(Math.max(...times)).toBeLessThan(8);
});

it('a clean MPEG-TS capture that starts part-way into a group of pictures gets no warning', async () => {
  // As a tuner's or an IPTV dump starts: its first frames lack their parameter sets, and ffmpeg
  // complains of them as it opens the file, whatever the seek (every thumbnail was named; review S56).
  const whole = path.join(dir, 'capture-whole.ts');
  await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=s=320x240:r=25:d=6', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '50', whole]);
  const bytes = await readFile(whole);
  const capture = path.join(dir, 'capture.ts');
  await writeFile(capture, bytes.subarray(Math.floor((bytes.length * 0.12) / 188) * 188));
  for (const params of [{ every: 1, width: 64 }, { count: 1, width: 64 }]) {
    const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', params), [capture], { dir });
    expect([run.errors, run.warnings], JSON.stringify(params)).toEqual([[], []]);
  }
});
