/**
 * The video kind's Opus audio track from surround sources whose layout Opus cannot hold as it is
 * (in process: real planner, processors and merge, on a generated clip).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { videoKind } from '../../coordinator/kinds/video.js';
import { runFfmpeg } from '../../shared/ffmpeg.js';
import { probeMedia } from '../../shared/media/probe.js';
import { videoProcessor } from '../../worker/processors/video.js';
import { decodeFloat } from '../helpers/audio-media.js';
import { runKindInProcess, specOf } from '../helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-video-opus-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('video kind: opus audio from surround sources', () => {
  // A 2.1 track is written as 5.1: Opus's 3-channel layout (3.0) has no LFE, and the down-mix to it
  // dropped the track's sub-bass (review AUD3, as the audio kind).
  it.each([
    ['FLAC 5.1(side)', 'side.mkv', '5.1(side)', 6, '5.1', 6],
    ['FLAC 2.1', 'sub.mkv', '2.1', 3, '5.1', 6],
  ] as const)('webm with opus audio from %s: the Vorbis layout that holds its channels', async (_what, name, layout, channels, want, outChannels) => {
    const src = path.join(dir, name);
    // A 440 Hz tone in each channel, quieter each, and 50 Hz in the LFE (Opus codes its LFE narrow).
    const lfe = layout === '2.1' ? 2 : 3;
    const tones = Array.from({ length: channels }, (_, i) => `${(0.5 - 0.05 * i).toFixed(2)}*sin(2*PI*${i === lfe ? 50 : 440}*t)`).join('|');
    await runFfmpeg([
      '-f', 'lavfi', '-i', 'testsrc2=size=128x72:rate=25:duration=2',
      '-f', 'lavfi', '-i', `aevalsrc=${tones}:s=48000:d=2:channel_layout=${layout}`,
      '-map', '0:v', '-map', '1:a', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-c:a', 'flac', '-y', src,
    ]);
    expect((await probeMedia(src)).audio[0]!.channelLayout).toBe(layout);
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { container: 'webm', codec: 'vp9', audio_codec: 'opus', crf: 40, preset: 'ultrafast' }), [src], { dir });
    expect(run.errors).toEqual([]);
    expect(run.outputs).toHaveLength(1);
    const out = await probeMedia(run.outputs[0]!.path);
    expect(out.audio.map((a) => [a.codec, a.channels, a.channelLayout])).toEqual([['opus', outChannels, want]]);
    const { samples } = await decodeFloat(run.outputs[0]!.path, dir);
    expect(Math.abs(samples.length / outChannels / 48000 - 2)).toBeLessThan(0.05);
    // The LFE (5.1's fourth channel) carries the source's LFE (its third channel, 2.1's last; 5.1(side)'s fourth).
    let energy = 0;
    for (let i = 3; i < samples.length; i += outChannels) energy += samples[i]! ** 2;
    expect(Math.sqrt(energy / (samples.length / outChannels))).toBeGreaterThan(0.05);
  });
});
