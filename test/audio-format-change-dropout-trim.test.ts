/**
 * Review K17: a dropout where a broadcast's layout changes is closed up, not kept as silence, in a trim.
 *
 * A trimmed MPEG-TS keeps its dropouts as silence, so that the trim's seconds are the file's
 * (README, Audio, Tracks; FILL_GAPS, review K15). Decoded apart, the gaps are filled on the decoding
 * side (audio-render.ts renderStageA / decodeToWav: FILL_GAPS before the pinning aformat), but that
 * process's ffmpeg builds its filter graph afresh where the decoded layout changes, and the new
 * `aresample=async=1` starts from the first frame it is given: a dropout just before the change is
 * lost, since the bare samples carry no timestamps. A capture of stereo to 8 s, nothing to 11 s,
 * then 5.1 to 14 s, trimmed 7..13, came out 4 s long (the 5.1 part moved 3 s earlier); trimmed
 * 12..14 it was refused, "no audio to encode in the trimmed range", though 660 Hz plays there.
 * The same file with no layout change keeps the 3 s of silence.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runFfmpeg } from '../shared/ffmpeg.js';
import { crossingsPerSecond, decodeFloat, peak, runAudioInProcess } from './helpers/audio-media.js';

let dir: string;
/** MPEG-TS: AC-3 stereo 440 Hz 0..8 s, a dropout 8..11 s, AC-3 5.1 660 Hz 11..14 s. */
let capture: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-change-dropout-'));
  const stereo = path.join(dir, 'a.ts');
  const surround = path.join(dir, 'b.ts');
  await Promise.all([
    runFfmpeg(['-f', 'lavfi', '-i', 'sine=f=440:r=48000:d=8', '-af', 'pan=stereo|c0=c0|c1=0.5*c0', '-c:a', 'ac3', '-f', 'mpegts', '-y', stereo]),
    runFfmpeg(['-f', 'lavfi', '-i', 'sine=f=660:r=48000:d=3', '-af', 'pan=5.1|c0=c0|c1=c0|c2=c0|c3=0.1*c0|c4=c0|c5=c0', '-c:a', 'ac3', '-output_ts_offset', '11', '-f', 'mpegts', '-y', surround]),
  ]);
  capture = path.join(dir, 'capture.ts');
  await writeFile(capture, Buffer.concat([await readFile(stereo), await readFile(surround)]));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('a dropout where the layout changes, trimmed', () => {
  test.each([180, 2])('trim 7..13 keeps 1 s of stereo, the 3 s dropout as silence, then 2 s of 5.1 (segment_seconds %i)', async (segment_seconds) => {
    const r = await runAudioInProcess({ codec: 'wav', trim: { start: 7, end: 13 }, segment_seconds }, [capture], path.join(dir, `a-${segment_seconds}`));
    expect(r.errors).toEqual([]);
    const out = r.outputs.find((o) => o.name === 'capture.wav')!;
    const { samples, channels } = await decodeFloat(out.path, dir);
    const rate = 48000;
    const at = (s: number, len = 0.5): Float32Array => samples.subarray(Math.round(s * rate) * channels, Math.round((s + len) * rate) * channels);
    // Observed: 4.01 s, 660 Hz from 1 s on (the dropout closed up).
    expect(samples.length / channels / rate).toBeCloseTo(6, 1);
    expect(peak(at(2))).toBeLessThan(0.001);
    expect(crossingsPerSecond(at(4.5), channels, rate) / 2).toBeCloseTo(660, -1);
  }, 60_000);

  test('trim 12..14, inside the 5.1 part, is not refused as holding no audio', async () => {
    // Observed: INVALID_ARGUMENT "capture.ts: no audio to encode in the trimmed range: the decoded file has no samples".
    const r = await runAudioInProcess({ codec: 'wav', trim: { start: 12, end: 14 } }, [capture], path.join(dir, 'b'));
    expect(r.errors).toEqual([]);
    expect(r.outputs.map((o) => o.name)).toContain('capture.wav');
  }, 60_000);
});
