/**
 * A limited lossy output gets no codec correction (7d43158: more gain in front of the limiter only
 * drove it harder). That holds for a whole file only: a segmented one still learns a "codec loss"
 * from one piece encoded alone (pieceCodecLoss), measured through the limiter, so what the limiter
 * took is added back as gain before the single encode. The same audio then gets up to 3 dB more gain and
 * harder limiting when it is long enough to be cut than when it is not, and the report calls the
 * limiter's take a codec correction.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { audioKind } from '../coordinator/kinds/audio.js';
import { runFfmpeg } from '../shared/ffmpeg.js';
import type { FileReport } from '../shared/media/audio-finish.js';
import { audioProcessor } from '../worker/processors/audio.js';
import { runKindInProcess, specOf } from './helpers/media.js';

let dir: string;
let pink: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-seg-limited-'));
  pink = path.join(dir, 'pink.wav');
  await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'anoisesrc=d=6:a=0.3:c=pink:seed=1:r=48000', '-ac', '2', pink]);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function report(params: Record<string, unknown>): Promise<FileReport> {
  const run = await runKindInProcess(audioKind, audioProcessor, specOf('audio', params), [pink], { dir });
  expect(run.errors).toEqual([]);
  const file = run.outputs.find((o) => o.name === 'audio-report.json')!;
  return (JSON.parse(await readFile(file.path, 'utf8')) as { files: FileReport[] }).files[0]!;
}

it('a limited AAC output gets the same gain and no codec correction whether the file is segmented or whole', async () => {
  const params = { codec: 'aac', normalize: true, loudness: -12, true_peak: -3 };
  const whole = await report(params);
  const segmented = await report({ ...params, segment_seconds: 2 });
  const seen = JSON.stringify({ whole, segmented });
  expect(whole.pieces).toBe(1);
  expect(segmented.pieces).toBeGreaterThan(1);
  expect(whole.limited && segmented.limited, seen).toBe(true);
  expect(whole.codecCorrectionDb, seen).toBe(0);
  // Observed: 0.6 dB of "codec correction" (the limiter's take on the middle piece), 0.6 dB more gain, a lower limit
  // (at -8 LUFS under -3 dBTP: 2.98 dB and 3 dB more gain).
  expect(segmented.codecCorrectionDb, seen).toBe(0);
  expect(Math.abs(segmented.gainDb - whole.gainDb), seen).toBeLessThan(0.5);
}, 60_000);
