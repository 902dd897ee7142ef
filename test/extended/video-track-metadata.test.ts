/**
 * What a video job carries besides the picture, against what one `ffmpeg -i src -map 0 ...` with the
 * same request keeps: each audio track's dispositions (default, commentary), the video stream's own
 * tags, a healthy subtitle track beside one MP4 cannot hold, a DVD's MPEG audio copied into MP4,
 * a broadcast capture's silent audio PID.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { videoKind } from '../../coordinator/kinds/video.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ffmpegBinaries, runFfmpeg, runFfprobe } from '../../shared/ffmpeg.js';
import { videoProcessor } from '../../worker/processors/video.js';
import { runKindInProcess, specOf } from '../helpers/media.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-track-metadata-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

type Stream = { codec_type: string; codec_name: string; disposition: Record<string, number>; tags?: Record<string, string> };
const streamsOf = async (file: string): Promise<Stream[]> => (await runFfprobe<{ streams: Stream[] }>(['-show_entries', 'stream=codec_type,codec_name:stream_disposition:stream_tags', '-i', file])).streams;
const transcode = (src: string, params: Record<string, unknown>) => runKindInProcess(videoKind, videoProcessor, specOf('video', { preset: 'ultrafast', segment_seconds: 1, ...params }), [src], { dir });
const tone = (hz: number, rate = 48000) => ['-f', 'lavfi', '-i', `sine=frequency=${hz}:sample_rate=${rate}:duration=2`];
const picture = ['-f', 'lavfi', '-i', 'testsrc2=size=96x64:rate=25:duration=2'];

describe('video kind: what the job carries besides the picture', () => {
  it('keeps each audio track\'s dispositions: a commentary track stays commentary and not default, as `ffmpeg -map 0` keeps it', async () => {
    const src = path.join(dir, 'film.mkv');
    await runFfmpeg(['-y', '-v', 'error', ...picture, ...tone(440), ...tone(660), '-map', '0:v', '-map', '1:a', '-map', '2:a', '-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'aac',
      '-metadata:s:a:1', 'title=Director\'s commentary', '-disposition:a:0', 'default', '-disposition:a:1', 'comment', src]);
    const source = (await streamsOf(src)).filter((s) => s.codec_type === 'audio').map((s) => [s.disposition['default'], s.disposition['comment']]);
    expect(source).toEqual([[1, 0], [0, 1]]);
    for (const container of ['mkv', 'mp4']) {
      const run = await transcode(src, { container });
      expect(run.errors, container).toEqual([]);
      const audio = (await streamsOf(run.outputs[0]!.path)).filter((s) => s.codec_type === 'audio');
      // Observed: [[1, 0], [1, 0]]: the commentary is a second default track, and no longer commentary.
      expect(audio.map((s) => [s.disposition['default'], s.disposition['comment']]), container).toEqual(source);
    }
  });

  it('keeps the video stream\'s language and title, as `ffmpeg -map 0` keeps them', async () => {
    const src = path.join(dir, 'anime.mkv');
    await runFfmpeg(['-y', '-v', 'error', ...picture, ...tone(440), '-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'aac', '-metadata:s:v:0', 'language=jpn', '-metadata:s:v:0', 'title=Main feature', src]);
    const run = await transcode(src, { container: 'mkv' });
    expect(run.errors).toEqual([]);
    const video = (await streamsOf(run.outputs[0]!.path)).find((s) => s.codec_type === 'video')!;
    // Observed: no language (und) and no title.
    expect([video.tags?.['language'], video.tags?.['title']]).toEqual(['jpn', 'Main feature']);
  });

  it('keeps a healthy subtitle track in MP4 when another track has a cue MP4 cannot hold, and names the one left out', async () => {
    const good = path.join(dir, 'good.srt');
    const big = path.join(dir, 'big.srt');
    await writeFile(good, '1\n00:00:00,200 --> 00:00:00,900\nHello\n\n');
    await writeFile(big, `1\n00:00:00,200 --> 00:00:00,900\n${'x'.repeat(70_000)}\n\n`);
    const src = path.join(dir, 'subs.mkv');
    // Straight ffmpeg: Tessera's runner reads no .srt.
    await promisify(execFile)(ffmpegBinaries().ffmpeg, ['-y', '-v', 'error', ...picture, ...tone(440), '-i', good, '-i', big, '-map', '0:v', '-map', '1:a', '-map', '2', '-map', '3', '-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'aac', '-c:s', 'srt',
      '-metadata:s:s:0', 'language=eng', '-metadata:s:s:1', 'language=deu', src]);
    const run = await transcode(src, { container: 'mp4' });
    expect(run.errors).toEqual([]);
    const subs = (await streamsOf(run.outputs[0]!.path)).filter((s) => s.codec_type === 'subtitle');
    // Observed: no subtitle track at all; the warning says "the subtitle track(s) could not be carried over".
    expect(subs.map((s) => [s.codec_name, s.tags?.['language']])).toEqual([['mov_text', 'eng']]);
    expect(run.warnings.map((w) => w.message).join('\n')).toMatch(/stream 3/);
  });

  it('copies a DVD\'s MPEG-1 Layer II audio into MP4 with --audio-codec copy, as `ffmpeg -c:a copy` does', async () => {
    const src = path.join(dir, 'dvd.vob');
    await runFfmpeg(['-y', '-v', 'error', ...picture, ...tone(440), ...tone(660), '-map', '0:v', '-map', '1:a', '-map', '2:a', '-c:v', 'mpeg2video', '-c:a:0', 'ac3', '-c:a:1', 'mp2', '-f', 'vob', src]);
    const baseline = path.join(dir, 'dvd-baseline.mp4');
    await runFfmpeg(['-y', '-v', 'error', '-i', src, '-map', '0', '-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'copy', baseline]);
    expect((await streamsOf(baseline)).filter((s) => s.codec_type === 'audio')).toHaveLength(2);
    const run = await transcode(src, { container: 'mp4', audio_codec: 'copy' });
    // Observed: INVALID_ARGUMENT "dvd.vob: its mp2 audio track 2 cannot be copied into mp4".
    expect(run.errors).toEqual([]);
    expect((await streamsOf(run.outputs[0]!.path)).filter((s) => s.codec_type === 'audio')).toHaveLength(2);
  });

  it('a broadcast capture whose second audio PID carries no packets is made from its live tracks, or refused naming that track, not with ffmpeg\'s bare setup error', async () => {
    // A DVB recording: the PMT lists an audio PID (audio description, a second language) that sent nothing.
    const src = path.join(dir, 'capture.ts');
    await runFfmpeg(['-y', '-v', 'error', ...picture, ...tone(440), '-map', '0:v', '-map', '1:a', '-map', '1:a', '-c:v', 'libx264', '-preset', 'ultrafast', '-c:a', 'mp2', '-bsf:a:1', 'noise=dropamount=1', '-f', 'mpegts', src]);
    const run = await transcode(src, { container: 'mkv' });
    // Observed: INVALID_ARGUMENT "capture.ts: ffmpeg failed: Error initializing output stream 0:0 --; Last message repeated 1 times".
    if (run.errors.length > 0) expect(run.errors[0]!.message).toMatch(/track 2|stream 2/);
    else expect((await streamsOf(run.outputs[0]!.path)).filter((s) => s.codec_type === 'audio').length).toBeGreaterThanOrEqual(1);
  });
});
