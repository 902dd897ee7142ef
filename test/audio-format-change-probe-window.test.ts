/**
 * Review K17: a source whose layout changes inside ffprobe's analysis window is pinned to the
 * layout it changes to, not the one it starts with.
 *
 * ffprobe's stream layout is the one its parser saw last in the seconds it reads (the AC-3 and
 * MPEG audio parsers set it from every frame's header), so for a broadcast capture whose stereo
 * turns 5.1 after one second the probe says 5.1(side). The decodeApart pin (audio-plan.ts
 * planFile) takes that as "the first format": the stereo second is upmixed into six channels (four
 * of them silent) and the whole file comes out 5.1, where `ffmpeg -i in.ts out.wav` (and this
 * project's segmented path before the change) gives stereo, the layout the sound starts with
 * (README, Audio, Tracks: "converted whole in the channels and rate it starts with, as ffmpeg
 * converts it").
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runFfmpeg } from '../shared/ffmpeg.js';
import { probeAudio } from '../shared/media/audio-probe.js';
import { runAudioInProcess } from './helpers/audio-media.js';

let dir: string;
/** MPEG-TS: 1 s of AC-3 stereo, then 3 s of AC-3 5.1, one stream, times running on. */
let broadcast: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-probe-window-'));
  const stereo = path.join(dir, 'a.ts');
  const surround = path.join(dir, 'b.ts');
  await Promise.all([
    runFfmpeg(['-f', 'lavfi', '-i', 'sine=f=440:r=48000:d=1', '-af', 'pan=stereo|c0=c0|c1=0.5*c0', '-c:a', 'ac3', '-f', 'mpegts', '-y', stereo]),
    runFfmpeg(['-f', 'lavfi', '-i', 'sine=f=660:r=48000:d=3', '-af', 'pan=5.1|c0=c0|c1=c0|c2=c0|c3=0.1*c0|c4=c0|c5=c0', '-c:a', 'ac3', '-output_ts_offset', '1', '-f', 'mpegts', '-y', surround]),
  ]);
  broadcast = path.join(dir, 'broadcast.ts');
  await writeFile(broadcast, Buffer.concat([await readFile(stereo), await readFile(surround)]));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('a layout change inside the probe window', () => {
  test.each([180, 2])('a capture starting stereo converts in stereo, as ffmpeg converts it (segment_seconds %i)', async (segment_seconds) => {
    // What ffmpeg itself makes of the file: the layout of its first frame.
    const reference = path.join(dir, `ffmpeg-${segment_seconds}.wav`);
    await runFfmpeg(['-i', broadcast, '-c:a', 'pcm_f32le', '-y', reference]);
    expect((await probeAudio(reference, 'reference')).channels).toBe(2);

    const r = await runAudioInProcess({ codec: 'wav', segment_seconds }, [broadcast], path.join(dir, `job-${segment_seconds}`));
    expect(r.errors).toEqual([]);
    const out = r.outputs.find((o) => o.name === 'broadcast.wav')!;
    const probed = await probeAudio(out.path, out.name);
    // Observed: 6 channels, 5.1(side), the first second's stereo upmixed with four silent channels.
    expect({ channels: probed.channels, layout: probed.layout }).toEqual({ channels: 2, layout: 'stereo' });
    expect(probed.duration).toBeCloseTo(4, 1);
  }, 60_000);
});
