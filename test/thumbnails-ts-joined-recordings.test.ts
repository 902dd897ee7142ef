/**
 * Two MPEG-TS recordings joined end to end (`cat a.ts b.ts`: the clock restarts at the join) play
 * for the length of both, and the video kind plays them straight on across the jump, with a
 * warning (README, "Timing"). The thumbnails kind plans by the clock as it is: `--every 1` of 3 s +
 * 3 s made 3 thumbnails, all of the first recording, the second left out without a word.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { thumbnailsKind } from '../coordinator/kinds/thumbnails.js';
import { runFfmpeg } from '../shared/ffmpeg.js';
import { thumbnailsProcessor } from '../worker/processors/thumbnails.js';
import { runKindInProcess, specOf } from './helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-thumbs-tsjoined-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Frame N of a source is flat grey at limited-range level 16 + 4 * k: k back from a thumbnail. */
async function levelOf(file: string): Promise<number> {
  const { channels } = await sharp(file).greyscale().stats();
  return Math.round(channels[0]!.mean / ((4 * 255) / 219));
}

describe('thumbnails of two MPEG-TS recordings joined with cat', () => {
  it('--every 1 of 3 s + 3 s makes 6 thumbnails, the last 3 of the second recording', async () => {
    const parts: Buffer[] = [];
    // The first recording's frames are at levels N mod 50 (0, 25, 0 at 0, 1, 2 s); the second's all at 49.
    for (const [name, lum] of [['a.ts', "16+mod(N\\,50)*4"], ['b.ts', '16+49*4']] as const) {
      const f = path.join(dir, name);
      await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', `nullsrc=s=160x120:r=25:d=3,geq=lum='${lum}':cb=128:cr=128`, '-c:v', 'libx264', '-preset', 'veryfast', '-g', '25', '-f', 'mpegts', f]);
      parts.push(await readFile(f));
    }
    const joined = path.join(dir, 'joined.ts');
    await writeFile(joined, Buffer.concat(parts));
    const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { every: 1, width: 32 }), [joined], { dir });
    expect(run.errors).toEqual([]);
    const thumbs = run.outputs.filter((o) => o.name.startsWith('thumb-'));
    // Observed: [0, 25, 0]: three thumbnails, none of the second recording, and no warning.
    expect(await Promise.all(thumbs.map((o) => levelOf(o.path)))).toEqual([0, 25, 0, 49, 49, 49]);
    // Said, as the video kind says it.
    expect(run.warnings.map((w) => w.message)).toEqual([expect.stringContaining('its clock jumps')]);
  });
});
