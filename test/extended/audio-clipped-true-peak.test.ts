/**
 * Clipped input: a source whose samples sit at full scale (a clipped recording, a loud
 * master) has inter-sample peaks several dB over its samples. Normalised, the output must still keep
 * under the true-peak ceiling, and the report's outputTruePeak must say where it is.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, test } from 'vitest';
import { runFfmpeg } from '../../shared/ffmpeg.js';
import { audioReport, ebur128, runAudioInProcess } from '../helpers/audio-media.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-audio-clipped-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('a clipped source normalised to -16 LUFS keeps its output under the -1.5 dBTP ceiling, and the report says its true peak', async () => {
  // Clipped percussive hits: 15 ms of bright noise driven 10 dB into full scale every 250 ms over a
  // quiet bed (a clipped drum loop). ffmpeg's ebur128 reads about +6.9 dBTP; its samples are at 0 dBFS.
  const src = path.join(dir, 'clipped.wav');
  await runFfmpeg(['-f', 'lavfi', '-i', "anoisesrc=r=44100:d=4:c=white:a=1:s=5,volume='if(lt(mod(t,0.25),0.015),3,0.02)':eval=frame", '-c:a', 'pcm_s16le', '-y', src]);
  const source = await ebur128(src);
  expect(source.truePeak).toBeGreaterThan(5);
  const r = await runAudioInProcess({ codec: 'flac', normalize: true }, [src], dir);
  expect(r.errors).toEqual([]);
  const [rep] = await audioReport(r);
  const out = await ebur128(r.outputs.find((o) => o.name === 'clipped.flac')!.path);
  // The ceiling the README promises (ebur128 reports tenths of a dB).
  expect(out.truePeak, `output true peak (report says ${rep!.outputTruePeak}, limited: ${rep!.limited})`).toBeLessThanOrEqual(-1.5 + 0.2);
  expect(Math.abs(rep!.outputTruePeak! - out.truePeak), 'outputTruePeak vs ebur128 on the output').toBeLessThanOrEqual(0.3);
  // The source's true peak as Tessera estimates it (what decides whether the limiter runs), against ffmpeg's reading.
  expect(rep!.sourceTruePeak!, 'sourceTruePeak vs ffmpeg ebur128 on the source').toBeGreaterThan(source.truePeak - 0.5);
});

test('bright material (a hi-hat loop, nothing clipped) normalised to -8 LUFS keeps its output under the -1.5 dBTP ceiling', async () => {
  // White noise over 12 kHz, samples at -4.7 dBFS: its inter-sample peaks rise 1.3 dB (ebur128) to
  // 1.8 dB (an ideal reconstruction) over them.
  const src = path.join(dir, 'hihat.wav');
  await runFfmpeg(['-f', 'lavfi', '-i', 'anoisesrc=r=44100:d=3:c=white:a=0.5:s=9,highpass=f=12000', '-c:a', 'pcm_s16le', '-y', src]);
  const r = await runAudioInProcess({ codec: 'flac', normalize: true, loudness: -8 }, [src], dir);
  expect(r.errors).toEqual([]);
  const [rep] = await audioReport(r);
  const out = await ebur128(r.outputs.find((o) => o.name === 'hihat.flac')!.path);
  expect(out.truePeak, `output true peak (report says ${rep!.outputTruePeak}, limited: ${rep!.limited}; source ${rep!.sourceTruePeak} vs ebur128 ${(await ebur128(src)).truePeak})`).toBeLessThanOrEqual(-1.5 + 0.2);
});

test("a lossy output over the ceiling is encoded again with a lower limit, and the job warns where its encoder's peaks still pass it", async () => {
  // Bright noise brought up near the ceiling: the encoders' peaks pass it where the source's do not.
  const src = path.join(dir, 'hihat.wav');
  await runFfmpeg(['-f', 'lavfi', '-i', 'anoisesrc=r=44100:d=3:c=white:a=0.5:s=9,highpass=f=12000', '-c:a', 'pcm_s16le', '-y', src]);
  const seen: string[] = [];
  for (const codec of ['aac', 'opus']) {
    const r = await runAudioInProcess({ codec, normalize: true, loudness: -11, bitrate: '64k' }, [src], path.join(dir, codec));
    expect(r.errors).toEqual([]);
    const [rep] = await audioReport(r);
    const out = await ebur128(r.outputs.find((o) => o.name === `hihat.${codec === 'aac' ? 'm4a' : codec}`)!.path);
    // The report says what the file measures, and the job warns exactly where that is over the ceiling.
    expect(rep!.outputTruePeak).toBeCloseTo(out.truePeak, 1);
    const over = out.truePeak > -1.5 + 0.5;
    // (Its loudness may be said too, where the limit lowered for the encoder's peaks took more than 0.5 LU off.)
    const peaks = r.warnings.map((w) => w.message).filter((m) => !/^normalised to -?\d+\.\d LUFS, not the -11 LUFS asked: the true-peak ceiling/.test(m));
    expect(peaks, `${codec}: output ${out.truePeak} dBTP`).toEqual(over ? [expect.stringMatching(/^true peak -?\d+\.\d dBTP, over the -1\.5 dBTP ceiling: the encoder's own peaks/)] : []);
    seen.push(`${codec} ${over ? 'warned' : 'kept'}`);
  }
  // aac keeps the ceiling; opus at 64k on such material does not even with the limit lowered three times.
  expect(seen).toEqual(['aac kept', 'opus warned']);
});
