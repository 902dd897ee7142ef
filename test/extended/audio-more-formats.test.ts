/**
 * The audio kind on the formats its README names and ffmpeg reads, besides the common containers:
 * a DVD's MPEG-PS (VOB) and an MPEG-PS of audio only, bare AC-3, E-AC-3 and DTS soundtracks,
 * WavPack, Wave64, CAF, Sun AU, TTA and WMA (ASF). Each was refused at submission as "not an
 * accepted audio format" (review AUD1); each now passes the submission check (its format sniffed,
 * ffprobe on the demuxer its bytes claim) and comes out as ffmpeg decodes it, sample for sample (to
 * 24-bit rounding), through the real planner, processor and merge in process.
 */
import { open, mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { checkInput } from '../../coordinator/input-check.js';
import { runFfmpeg } from '../../shared/ffmpeg.js';
import { resolveLimits } from '../../shared/limits.js';
import { SNIFF_BYTES, refusalFor, sniffBuffer, type SniffedFormat } from '../../shared/media/sniff.js';
import { decodeFloat, runAudioInProcess } from '../helpers/audio-media.js';

let dir: string;
let stereo: string;
let surround: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-audio-formats-'));
  stereo = path.join(dir, 'stereo.wav');
  await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'aevalsrc=0.5*sin(2*PI*440*t)|0.4*sin(2*PI*660*t):s=48000:d=3', stereo]);
  surround = path.join(dir, 'surround.wav');
  const tones = [200, 300, 400, 50, 600, 700].map((f) => `0.4*sin(2*PI*${f}*t)`).join('|');
  await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', `aevalsrc=${tones}:s=48000:d=3:channel_layout=5.1`, surround]);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** [file name, format sniffed, how ffmpeg makes it from the stereo or 5.1 source] */
const FORMATS: Array<[string, SniffedFormat, 'stereo' | 'surround', string[]]> = [
  ['film.vob', 'mpegps', 'stereo', ['-f', 'lavfi', '-i', 'testsrc=s=160x120:r=25:d=3', '-i', 'SRC', '-map', '0:v', '-map', '1:a', '-c:v', 'mpeg2video', '-c:a', 'mp2', '-f', 'vob']],
  ['radio.mpg', 'mpegps', 'stereo', ['-i', 'SRC', '-c:a', 'mp2', '-f', 'mpeg']],
  ['dvd.ac3', 'ac3', 'surround', ['-i', 'SRC', '-c:a', 'ac3']],
  ['stream.eac3', 'eac3', 'surround', ['-i', 'SRC', '-c:a', 'eac3']],
  ['cinema.dts', 'dts', 'surround', ['-i', 'SRC', '-strict', '-2', '-c:a', 'dca']],
  ['master.wv', 'wavpack', 'stereo', ['-i', 'SRC', '-c:a', 'wavpack']],
  ['long.w64', 'w64', 'stereo', ['-i', 'SRC', '-f', 'w64']],
  ['apple.caf', 'caf', 'stereo', ['-i', 'SRC', '-c:a', 'alac']],
  ['sun.au', 'au', 'stereo', ['-i', 'SRC']],
  ['true.tta', 'tta', 'stereo', ['-i', 'SRC', '-c:a', 'tta']],
  ['windows.wma', 'asf', 'stereo', ['-i', 'SRC', '-c:a', 'wmav2']],
];

describe('audio formats besides the common containers', () => {
  test.each(FORMATS)('%s (%s) is converted to FLAC as ffmpeg decodes it', async (name, format, source, args) => {
    const file = path.join(dir, name);
    await runFfmpeg(['-y', '-v', 'error', ...args.map((a) => (a === 'SRC' ? (source === 'stereo' ? stereo : surround) : a)), file]);
    const handle = await open(file);
    const head = Buffer.alloc(SNIFF_BYTES);
    const { bytesRead } = await handle.read(head, 0, SNIFF_BYTES, 0);
    await handle.close();
    expect(sniffBuffer(head.subarray(0, bytesRead))).toBe(format);
    expect(await checkInput('audio', { name, path: file, size: (await stat(file)).size, sha256: '' }, resolveLimits())).toBeUndefined();
    const r = await runAudioInProcess({ codec: 'flac' }, [file], path.join(dir, `out-${name}`));
    expect(r.errors).toEqual([]);
    const out = await decodeFloat(r.outputs.find((o) => o.name.endsWith('.flac'))!.path, dir);
    const ref = await decodeFloat(file, dir);
    expect([out.channels, out.samples.length]).toEqual([ref.channels, ref.samples.length]);
    let most = 0;
    for (let i = 0; i < ref.samples.length; i++) most = Math.max(most, Math.abs(out.samples[i]! - ref.samples[i]!));
    // FLAC keeps 24 bits of a float source: at most one step of them apart.
    expect(most).toBeLessThan(2 ** -23);
  });

  test('the video kind still takes no ASF, and a bare AC-3 is no video', () => {
    expect(refusalFor('video', 'asf')).toBe('content is not an accepted video format (it is asf; accepted: mp4, matroska, avi, mpegts, mpegps, flv, ogg, y4m)');
    expect(refusalFor('video', 'ac3')).toMatch(/^content is not an accepted video format \(it is ac3;/);
  });
});
