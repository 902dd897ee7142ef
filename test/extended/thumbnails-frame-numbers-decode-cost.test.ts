/**
 * An FLV or AVI source's thumbnails are picked by frame number, decoded from the start of the file
 * (`grabByNumber`). One run decodes for up to 960 of them (branches of 48, a select expression
 * holds no more): a run per 48, each decoding again from frame 0, made the work grow with the
 * square of the count (10 000 thumbnails of an hour-long OBS FLV on one slot: about 80 hours of
 * video decoded, far past the 30-minute subtask timeout). Measured here as the frames each ffmpeg
 * run decodes: up to the last frame its selects take.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

/** The frames each by-number ffmpeg run decodes (no seek: from frame 0 to the last one it selects). */
const decodedPerRun: number[] = [];
vi.mock('../../shared/ffmpeg.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../shared/ffmpeg.js')>();
  return {
    ...real,
    runFfmpeg: (args: string[], ...rest: unknown[]) => {
      const at = args.indexOf('-filter_complex') >= 0 ? args.indexOf('-filter_complex') : args.indexOf('-vf');
      const vf = at >= 0 ? (args[at + 1] ?? '') : '';
      const picked = [...vf.matchAll(/eq\(n,(\d+)\)/g)].map((m) => Number(m[1]));
      if (picked.length > 0 && !args.includes('-ss')) decodedPerRun.push(Math.max(...picked) + 1);
      return (real.runFfmpeg as (...a: unknown[]) => unknown)(args, ...rest);
    },
  };
});

const { thumbnailsKind } = await import('../../coordinator/kinds/thumbnails.js');
const { runFfmpeg } = await import('../../shared/ffmpeg.js');
const { thumbnailsProcessor } = await import('../../worker/processors/thumbnails.js');
const { runKindInProcess, specOf } = await import('../helpers/media.js');

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-thumbs-cost-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('thumbnails of an FLV, picked by frame number', () => {
  it('400 thumbnails of a 40 s FLV (1000 frames) decode the source about once, not once per 48 thumbnails', async () => {
    const src = path.join(dir, 'rec.flv');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=64x48:rate=25:duration=40', '-c:v', 'libx264', '-preset', 'ultrafast', '-bf', '3', '-g', '50', src]);
    const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { every: 0.1, width: 32 }), [src], { dir, slots: 1 });
    expect(run.errors).toEqual([]);
    expect(run.outputs.filter((o) => o.name.startsWith('thumb-'))).toHaveLength(400);
    const decoded = decodedPerRun.reduce((a, b) => a + b, 0);
    // Two subtasks (one slot): from frame 0 to the end of each is 500 + 1000 frames at most.
    // Before: 10 runs, about 5 900 frames decoded (each 48-thumbnail pass from frame 0 again).
    expect(decodedPerRun.length).toBeGreaterThan(0);
    expect(decoded, `runs decoded ${decodedPerRun.join(', ')} frames`).toBeLessThanOrEqual(2 * 1000);
  }, 60_000);
});
