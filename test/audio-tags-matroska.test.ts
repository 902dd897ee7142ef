/**
 * The source tags carried into an audio output (shared/media/audio-probe.ts listenerTags) leave out
 * Matroska's statistics (BPS, DURATION, NUMBER_OF_FRAMES, NUMBER_OF_BYTES) as they would be wrong
 * for the new encode -- but mkvmerge writes them with a language (TagLanguage eng), which ffmpeg
 * reads back as `BPS-eng`, `DURATION-eng`, ... (what ffprobe shows for most Matroska files in the
 * wild): those were carried, stating the source's bitrate and length in a trimmed, re-encoded file.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { runFfmpeg, runFfprobe } from '../shared/ffmpeg.js';
import { listenerTags } from '../shared/media/audio-probe.js';
import { runAudioInProcess } from './helpers/audio-media.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-mkv-tags-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("audio kind: a Matroska source's statistics tags", () => {
  test('listenerTags leaves out the statistics tags with a language suffix, as it does those without', () => {
    const stats = { BPS: '1411200', DURATION: '00:00:03.000000000', 'BPS-eng': '1411200', 'DURATION-eng': '01:23:45.000000000', 'NUMBER_OF_FRAMES-eng': '123456', 'NUMBER_OF_BYTES-eng': '999999' };
    // Observed: { 'BPS-eng': ..., 'DURATION-eng': ..., 'NUMBER_OF_FRAMES-eng': ..., 'NUMBER_OF_BYTES-eng': ..., title }.
    expect(listenerTags({ ...stats, title: 'Track' })).toEqual({ title: 'Track' });
  });

  test("a trimmed MKA's output does not state the source's duration and bitrate", async () => {
    const src = path.join(dir, 'show.mka');
    const stats = ['BPS-eng=1411200', 'DURATION-eng=00:00:03.000000000', 'NUMBER_OF_FRAMES-eng=144000', 'NUMBER_OF_BYTES-eng=529200'].flatMap((t) => ['-metadata:s:a:0', t]);
    await runFfmpeg(['-f', 'lavfi', '-i', 'sine=r=48000:d=3', ...stats, '-metadata', 'title=Episode 1', '-c:a', 'flac', '-y', src]);
    const r = await runAudioInProcess({ codec: 'flac', trim: { start: 0, end: 1 } }, [src], dir);
    expect(r.errors).toEqual([]);
    const p = await runFfprobe<{ format?: { tags?: Record<string, string> } }>(['-show_format', '-i', r.outputs[0]!.path]);
    const keys = Object.keys(p.format?.tags ?? {}).map((k) => k.toLowerCase());
    expect(keys).toContain('title');
    // Observed: bps-eng, duration-eng (3 s, of a 1 s file), number_of_frames-eng, number_of_bytes-eng.
    expect(keys.filter((k) => /^(bps|duration|number_of_frames|number_of_bytes)/.test(k))).toEqual([]);
  }, 30_000);
});
