/**
 * A surround source with no bitrate given is encoded at what ffmpeg gives that many channels (5.1:
 * AAC 341k, Opus 320k), not the stereo default spread over six: 5.1 to Opus at 96k came out with a
 * 1.5 dB SNR and its true peak at +11.5 dBTP where one `ffmpeg -c:a libopus` had 22 dB (review aud).
 * Stereo keeps its default (128k AAC, 96k Opus), and a bitrate given is kept, whatever the channels.
 * The audio kind and the video kind's sound alike.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { videoKind } from '../../coordinator/kinds/video.js';
import { bitrateFor } from '../../shared/kinds/audio-params.js';
import { runFfmpeg, runFfprobe } from '../../shared/ffmpeg.js';
import { videoProcessor } from '../../worker/processors/video.js';
import { runAudioInProcess } from '../helpers/audio-media.js';
import { runKindInProcess, specOf } from '../helpers/media.js';

let dir: string;
let surround: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-surround-bitrate-'));
  surround = path.join(dir, 'film.wav');
  // Six channels of their own (pink noise of six seeds), as a film mix's are: no encoder can share bits between them.
  const noise = [0, 1, 2, 3, 4, 5].map((k) => `anoisesrc=r=48000:d=3:c=pink:a=0.3:s=${k + 1}[n${k}]`).join(';');
  await runFfmpeg(['-y', '-v', 'error', '-filter_complex', `${noise};[n0][n1][n2][n3][n4][n5]join=inputs=6:channel_layout=5.1[a]`, '-map', '[a]', '-c:a', 'pcm_s16le', surround]);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** An audio file's bits per second over its length, container included. */
async function kbps(file: string): Promise<number> {
  const r = await runFfprobe<{ format?: { duration?: string } }>(['-show_entries', 'format=duration', '-i', file]);
  return ((await stat(file)).size * 8) / Number(r.format?.duration) / 1000;
}

describe('the default bitrate of a surround output', () => {
  it('is ffmpeg\'s for its channels where none is given; stereo and a given one are kept', () => {
    expect([bitrateFor('aac', 128_000, false, 6), bitrateFor('opus', 96_000, false, 6), bitrateFor('libopus', 96_000, false, 8)]).toEqual([341_000, 320_000, 416_000]);
    expect([bitrateFor('aac', 128_000, false, 2), bitrateFor('opus', 96_000, false, 1), bitrateFor('aac', 128_000, true, 6), bitrateFor('mp3', 128_000, false, 6)]).toEqual([128_000, 96_000, 128_000, 128_000]);
    // Past Vorbis's layouts (discrete channels): 64k each, as libopus gives them.
    expect(bitrateFor('opus', 96_000, false, 12)).toBe(768_000);
  });

  it('audio kind: 5.1 to Opus and to AAC without a bitrate gets about ffmpeg\'s rate (observed: 96k and 128k)', async () => {
    for (const [codec, name, least] of [['opus', 'film.opus', 280], ['aac', 'film.m4a', 280]] as const) {
      const r = await runAudioInProcess({ codec }, [surround], path.join(dir, `audio-${codec}`));
      expect(r.errors).toEqual([]);
      expect(await kbps(r.outputs.find((o) => o.name === name)!.path), codec).toBeGreaterThan(least);
    }
    const given = await runAudioInProcess({ codec: 'opus', bitrate: '96k' }, [surround], path.join(dir, 'audio-given'));
    expect(await kbps(given.outputs.find((o) => o.name === 'film.opus')!.path)).toBeLessThan(120);
  });

  it('video kind: a 5.1 track encoded to AAC without --audio-bitrate gets about ffmpeg\'s rate', async () => {
    const clip = path.join(dir, 'clip.mkv');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=s=96x64:r=10:d=3', '-i', surround, '-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'flac', '-shortest', clip]);
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast' }), [clip], { dir, slots: 2 });
    expect(run.errors).toEqual([]);
    const audio = path.join(dir, 'clip-audio.m4a');
    await runFfmpeg(['-y', '-v', 'error', '-i', run.outputs[0]!.path, '-map', '0:a:0', '-c', 'copy', audio]);
    // Observed: 128k for six channels.
    expect(await kbps(audio)).toBeGreaterThan(280);
  });

  it('a 2.1 source written as Opus (as 5.1, the layout libopus takes) gets the rate of the six channels written, in both kinds', async () => {
    const twoOne = path.join(dir, 'sub.wav');
    const noise = [0, 1, 2].map((k) => `anoisesrc=r=48000:d=3:c=pink:a=0.3:s=${k + 11}[n${k}]`).join(';');
    await runFfmpeg(['-y', '-v', 'error', '-filter_complex', `${noise};[n0][n1][n2]join=inputs=3:channel_layout=2.1[a]`, '-map', '[a]', '-c:a', 'pcm_s16le', twoOne]);
    const r = await runAudioInProcess({ codec: 'opus' }, [twoOne], path.join(dir, 'audio-21'));
    expect(r.errors).toEqual([]);
    // Three of the six written are silent, which libopus spends little on: asked for 320k it writes
    // about 150k of this source, for 160k (three channels' rate) about 75k.
    expect(await kbps(r.outputs.find((o) => o.name === 'sub.opus')!.path)).toBeGreaterThan(120);
    const clip = path.join(dir, 'clip21.mkv');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=s=96x64:r=10:d=3', '-i', twoOne, '-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'flac', '-shortest', clip]);
    const run = await runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', container: 'mkv', audio_codec: 'opus' }), [clip], { dir, slots: 2 });
    expect(run.errors).toEqual([]);
    const audio = path.join(dir, 'clip21-audio.mka');
    await runFfmpeg(['-y', '-v', 'error', '-i', run.outputs[0]!.path, '-map', '0:a:0', '-c', 'copy', audio]);
    // Observed: 85k (three channels' rate).
    expect(await kbps(audio)).toBeGreaterThan(120);
  });
});
