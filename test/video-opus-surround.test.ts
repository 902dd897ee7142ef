/**
 * The video kind's Opus audio track from surround sources whose layout Opus cannot hold as it is
 * (in process: real planner, processors and merge, on a generated clip).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { videoKind } from '../coordinator/kinds/video.js';
import { runFfmpeg } from '../shared/ffmpeg.js';
import { probeMedia } from '../shared/media/probe.js';
import { videoProcessor } from '../worker/processors/video.js';
import { decodeFloat } from './helpers/audio-media.js';
import { runKindInProcess, specOf } from './helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-video-opus-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('video kind: opus audio from surround sources', () => {
  it.each([
    ['FLAC 5.1(side)', 'side.mkv', '5.1(side)', 6, '5.1'],
    ['FLAC 2.1', 'sub.mkv', '2.1', 3, '3.0'],
  ] as const)('webm with opus audio from %s: the Vorbis layout of the same channel count', async (_what, name, layout, channels, want) => {
    const src = path.join(dir, name);
    const pan = Array.from({ length: channels }, (_, i) => `c${i}=${(0.5 - 0.05 * i).toFixed(2)}*c0`).join('|');
    await runFfmpeg([
      '-f', 'lavfi', '-i', 'testsrc2=size=128x72:rate=25:duration=2',
      '-f', 'lavfi', '-i', `sine=f=440:r=48000:d=2,aformat=channel_layouts=mono,pan=${layout}|${pan}`,
      '-map', '0:v', '-map', '1:a', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-c:a', 'flac', '-y', src,
    ]);
    expect((await probeMedia(src)).audio[0]!.channelLayout).toBe(layout);
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { container: 'webm', codec: 'vp9', audio_codec: 'opus', crf: 40, preset: 'ultrafast' }), [src], { dir });
    expect(run.errors).toEqual([]);
    expect(run.outputs).toHaveLength(1);
    const out = await probeMedia(run.outputs[0]!.path);
    expect(out.audio.map((a) => [a.codec, a.channels, a.channelLayout])).toEqual([['opus', channels, want]]);
    const { samples } = await decodeFloat(run.outputs[0]!.path, dir);
    expect(Math.abs(samples.length / channels / 48000 - 2)).toBeLessThan(0.05);
  });
});
