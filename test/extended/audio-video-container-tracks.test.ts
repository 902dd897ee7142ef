/**
 * The audio kind on the sound of video files (in process: the real planner, worker processor and
 * merge, on generated media), compared with one plain ffmpeg run on the same input:
 *  - which audio track is taken where a file holds several (a commentary track first, the main
 *    track flagged default second: ffmpeg takes the default one);
 *  - an MPEG-TS recording whose audio has a gap (a dropout): ffmpeg converts it, it is no truncated file;
 *  - a trim on a file whose audio starts later than its picture: the trim's seconds are the file's.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { runFfmpeg, runFfprobe } from '../../shared/ffmpeg.js';
import { validateAudioParams } from '../../shared/kinds/audio-params.js';
import { crossingsPerSecond, decodeFloat, runAudioInProcess } from '../helpers/audio-media.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-audio-video-tracks-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Samples per channel of a file's first audio stream, as ffmpeg decodes it. */
async function decodedFrames(file: string, before: string[] = []): Promise<number> {
  const wav = path.join(dir, `ref-${path.basename(file)}-${before.join('_')}.wav`);
  await runFfmpeg([...before, '-i', file, '-vn', '-c:a', 'pcm_s16le', '-f', 'wav', '-y', wav]);
  const p = await runFfprobe<{ streams: Array<{ duration_ts: number }> }>(['-show_entries', 'stream=duration_ts', '-i', wav]);
  return Number(p.streams[0]!.duration_ts);
}

describe('audio of video files', () => {
  test('of several audio tracks, the default one is taken (as ffmpeg does), not a commentary track that comes first', async () => {
    // Track 1: mono 300 Hz commentary (not default); track 2: stereo 1 kHz main sound, flagged default.
    const src = path.join(dir, 'film.mkv');
    await runFfmpeg([
      '-f', 'lavfi', '-i', 'testsrc=s=64x48:r=10:d=2', '-f', 'lavfi', '-i', 'sine=f=300:r=48000:d=2', '-f', 'lavfi', '-i', 'sine=f=1000:r=48000:d=2',
      '-filter_complex', '[2]aformat=channel_layouts=stereo[main]', '-map', '0', '-map', '1', '-map', '[main]', '-c:v', 'libx264', '-c:a', 'flac',
      '-disposition:a:0', 'comment', '-disposition:a:1', 'default', '-metadata:s:a:0', 'title=Commentary', '-y', src,
    ]);
    // What `ffmpeg -i film.mkv out.flac` writes: the main track.
    const ref = path.join(dir, 'ref.flac');
    await runFfmpeg(['-i', src, '-vn', '-y', ref]);
    const want = await decodeFloat(ref, dir);
    expect(want.channels).toBe(2);

    const r = await runAudioInProcess({ codec: 'flac' }, [src], path.join(dir, 'job'));
    expect(r.errors).toEqual([]);
    const out = r.outputs.find((o) => o.name === 'film.flac');
    expect(out).toBeDefined();
    const got = await decodeFloat(out!.path, dir);
    // The commentary came out instead: mono, 300 Hz.
    expect(got.channels).toBe(2);
    expect(crossingsPerSecond(got.samples, got.channels, 48000)).toBeGreaterThan(1900);
    // Said, naming the track taken.
    expect(r.warnings.map((w) => w.message)).toContainEqual(expect.stringMatching(/it has 2 audio tracks: track 2 \(.*2 channels\) is encoded, the one ffmpeg takes .*; --track N \(from 1\) or --language picks another$/));
  }, 30_000);

  test.each([180, 2])('an MPEG-TS recording whose audio has a 3 s gap is converted, not refused as truncated (segment_seconds %i)', async (segment_seconds) => {
    // 6 s of sound, its second half 3 s later than the first (a dropout in a broadcast capture).
    const src = path.join(dir, 'capture.ts');
    await runFfmpeg([
      '-f', 'lavfi', '-i', 'testsrc=s=64x48:r=10:d=9', '-f', 'lavfi', '-i', 'sine=f=440:r=48000:d=6',
      '-filter_complex', "[1]asetpts='if(gte(PTS*TB,3),PTS+3/TB,PTS)'[a]", '-map', '0', '-map', '[a]', '-c:v', 'libx264', '-c:a', 'mp2', '-y', src,
    ]);
    // ffmpeg converts the file without a word: 6 s of sound.
    expect(await decodedFrames(src)).toBe(6 * 48000);

    const r = await runAudioInProcess({ codec: 'wav', segment_seconds }, [src], path.join(dir, `job-${segment_seconds}`));
    // Observed: INVALID_ARGUMENT "capture.ts: truncated file: decoded 6.00 s of the 8.98 s it announces".
    expect(r.errors).toEqual([]);
    const out = r.outputs.find((o) => o.name === 'capture.wav');
    expect(out).toBeDefined();
    expect(await decodedFrames(out!.path)).toBeGreaterThanOrEqual(6 * 48000);
  }, 30_000);

  test('a trim on a video whose audio starts 2 s after its picture keeps those seconds of the file, as ffmpeg -ss/-to does', async () => {
    // 5 s of picture; its 3 s of sound start at 2 s (PCM in MOV: no codec delay, the edit list exact).
    const src = path.join(dir, 'late.mov');
    await runFfmpeg([
      '-f', 'lavfi', '-i', 'testsrc=s=64x48:r=10:d=5', '-itsoffset', '2', '-f', 'lavfi', '-i', 'sine=f=440:r=48000:d=3',
      '-map', '0', '-map', '1', '-c:v', 'libx264', '-c:a', 'pcm_s16le', '-y', src,
    ]);
    // ffmpeg keeps 1 s for each of these trims: there is sound in the file from 2 s to 5 s.
    expect(await decodedFrames(src, ['-ss', '2.5', '-to', '3.5'])).toBe(48000);
    expect(await decodedFrames(src, ['-ss', '4', '-to', '5'])).toBe(48000);

    const a = await runAudioInProcess({ codec: 'wav', trim: { start: 2.5, end: 3.5 } }, [src], path.join(dir, 'a'));
    expect(a.errors).toEqual([]);
    // Observed: 24,000 frames (0.5 s): the trim was counted from the audio's first sample (the file's 4.5 s to 5 s).
    expect(await decodedFrames(a.outputs.find((o) => o.name === 'late.wav')!.path)).toBe(48000);

    const b = await runAudioInProcess({ codec: 'wav', trim: { start: 4, end: 5 } }, [src], path.join(dir, 'b'));
    // Observed: INVALID_ARGUMENT "late.mov: trim.start 4 s is past the end (3.00 s)" on a 5 s file with sound at 4 s.
    expect(b.errors).toEqual([]);
    expect(await decodedFrames(b.outputs.find((o) => o.name === 'late.wav')!.path)).toBe(48000);
  }, 30_000);
});

describe('the audio track a job chooses (track, language)', () => {
  /**
   * A film of 4 s: track 1 mono 300 Hz commentary tagged `eng`; track 2 stereo 1 kHz main sound,
   * default, tagged `fre` (mkvmerge's ISO 639-2/B code for French); track 3 stereo 500 Hz `ger`.
   */
  async function film(): Promise<string> {
    const src = path.join(dir, 'film.mkv');
    await runFfmpeg([
      '-f', 'lavfi', '-i', 'testsrc=s=64x48:r=10:d=4', '-f', 'lavfi', '-i', 'sine=f=300:r=48000:d=4', '-f', 'lavfi', '-i', 'sine=f=1000:r=48000:d=4', '-f', 'lavfi', '-i', 'sine=f=500:r=48000:d=4',
      '-filter_complex', '[2]aformat=channel_layouts=stereo[main];[3]aformat=channel_layouts=stereo[dub]', '-map', '0', '-map', '1', '-map', '[main]', '-map', '[dub]', '-c:v', 'libx264', '-c:a', 'flac',
      '-disposition:a:0', 'comment', '-disposition:a:1', 'default', '-disposition:a:2', '0',
      '-metadata:s:a:0', 'language=eng', '-metadata:s:a:1', 'language=fre', '-metadata:s:a:2', 'language=ger', '-y', src,
    ]);
    return src;
  }

  /** The job's output of the film: its channels and tone (Hz), and the job's warnings. */
  async function encoded(src: string, raw: Record<string, unknown>, tag: string): Promise<{ channels: number; hz: number; warnings: string[] }> {
    const r = await runAudioInProcess({ codec: 'wav', ...raw }, [src], path.join(dir, tag));
    expect(r.errors).toEqual([]);
    const got = await decodeFloat(r.outputs.find((o) => o.name === 'film.wav')!.path, dir);
    return { channels: got.channels, hz: Math.round(crossingsPerSecond(got.samples, got.channels, 48000) / 2 / 10) * 10, warnings: r.warnings.map((w) => w.message) };
  }

  test('by number, rendered whole and in segments; by language in any ISO 639 form of it', async () => {
    const src = await film();
    // The one ffmpeg takes, and said so.
    const auto = await encoded(src, {}, 'auto');
    expect(auto).toEqual({ channels: 2, hz: 1000, warnings: [expect.stringMatching(/it has 3 audio tracks: track 2 \(fre, 2 channels\) is encoded/)] });
    // Asked for: no warning.
    expect(await encoded(src, { track: 1 }, 'track1')).toEqual({ channels: 1, hz: 300, warnings: [] });
    expect(await encoded(src, { track: 3, segment_seconds: 2 }, 'track3-segmented')).toEqual({ channels: 2, hz: 500, warnings: [] });
    // `fra` (ISO 639-2/T) and `fr` (639-1) find the track mkvmerge tags `fre`; `de-AT` the `ger` one.
    expect(await encoded(src, { language: 'fra' }, 'fra')).toMatchObject({ hz: 1000 });
    expect(await encoded(src, { language: 'fr' }, 'fr')).toMatchObject({ hz: 1000 });
    expect(await encoded(src, { language: 'de-AT', segment_seconds: 2 }, 'de')).toMatchObject({ channels: 2, hz: 500 });
    expect(await encoded(src, { language: 'ENG' }, 'eng')).toMatchObject({ channels: 1, hz: 300 });
  }, 60_000);

  test('a track the file does not have fails that file, naming what it has; the other files are converted', async () => {
    const src = await film();
    const other = path.join(dir, 'song.wav');
    await runFfmpeg(['-f', 'lavfi', '-i', 'sine=f=440:r=48000:d=1', '-y', other]);
    const four = await runAudioInProcess({ codec: 'wav', track: 2 }, [src, other], path.join(dir, 'four'));
    expect(four.errors).toEqual([{ input: 'song.wav', code: 'INVALID_ARGUMENT', message: 'song.wav: audio track 2 asked, but it has one audio track' }]);
    expect(four.outputs.map((o) => o.name)).toContain('film.wav');
    const spanish = await runAudioInProcess({ codec: 'wav', language: 'spa' }, [src, other], path.join(dir, 'spa'));
    expect(spanish.errors).toEqual([
      { input: 'film.mkv', code: 'INVALID_ARGUMENT', message: 'film.mkv: no audio track in language "spa" (it has 3 audio tracks: 1 eng, 2 fre, 3 ger)' },
      { input: 'song.wav', code: 'INVALID_ARGUMENT', message: 'song.wav: no audio track in language "spa" (it has one audio track: 1 untagged)' },
    ]);
  }, 60_000);

  test('track and language are checked when the job is submitted', () => {
    const refused = (raw: Record<string, unknown>): string => {
      try {
        validateAudioParams(raw);
      } catch (err) {
        expect((err as { codeName?: string }).codeName).toBe('INVALID_ARGUMENT');
        return (err as Error).message;
      }
      throw new Error(`${JSON.stringify(raw)} was accepted`);
    };
    expect(refused({ track: 1.5 })).toBe('track: 1.5 must be a whole number in 1..128 (1 = a file\'s first audio track; unset = its default one)');
    expect(refused({ track: 2, language: 'fra' })).toBe('track/language: give one of track 2 and language "fra", not both');
    expect(refused({ language: 'French' })).toBe('language: "French" is not a language code such as eng, fra, de or pt-BR');
    expect(validateAudioParams({ track: 2 }).track).toEqual({ number: 2 });
    expect(validateAudioParams({ language: ' pt-BR ' }).track).toEqual({ language: 'pt-br' });
    expect(validateAudioParams({ track: 0, language: '' }).track).toBeUndefined();
  });
});
