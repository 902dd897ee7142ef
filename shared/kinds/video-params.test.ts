import { describe, expect, it } from 'vitest';
import { TesseraError } from '../errors.js';
import { ntscRate, parseBitrate, parseVideoParams, rateExpression } from './video-params.js';

function rejection(raw: Record<string, unknown>): TesseraError {
  try {
    parseVideoParams(raw);
  } catch (err) {
    return err as TesseraError;
  }
  throw new Error('expected a rejection');
}

describe('parseVideoParams', () => {
  it('applies defaults: h264 crf 23 medium, aac 128k, mp4, automatic segments', () => {
    expect(parseVideoParams({})).toEqual({
      codec: 'h264', crf: 23, bitrate: undefined, passes: 1, lossless: false, preset: 'medium', width: 0, height: 0, fps: 0,
      audioCodec: 'aac', audioBitrate: 128000, audioBitrateGiven: false, container: 'mp4', segmentSeconds: 0,
    });
  });

  it('gives WebM its own defaults: VP9 video and Opus audio', () => {
    expect(parseVideoParams({ container: 'webm' })).toMatchObject({ codec: 'vp9', audioCodec: 'opus', container: 'webm' });
    expect(parseVideoParams({ container: 'webm', codec: 'av1', audio_codec: 'none' })).toMatchObject({ codec: 'av1', audioCodec: 'none' });
  });

  it('takes a bitrate instead of a crf', () => {
    const p = parseVideoParams({ codec: 'vp9', bitrate: '1.5M', container: 'webm', audio_codec: 'opus', audio_bitrate: '96k' });
    expect([p.crf, p.bitrate, p.audioBitrate]).toEqual([undefined, 1_500_000, 96_000]);
    // Two passes per segment unless one is asked.
    expect([p.passes, parseVideoParams({ bitrate: '2M', passes: 1 }).passes, parseVideoParams({ bitrate: '2M', passes: 2 }).passes]).toEqual([2, 1, 2]);
    expect(parseBitrate('800k')).toBe(800_000);
    expect(parseBitrate('2 M')).toBe(2_000_000);
    expect(parseBitrate('fast')).toBeNaN();
  });

  it('asks for a lossless encode with neither crf nor bitrate', () => {
    for (const codec of ['h264', 'h265', 'vp9'] as const) {
      const p = parseVideoParams({ codec, lossless: true, container: codec === 'vp9' ? 'webm' : 'mkv' });
      expect([p.lossless, p.crf, p.bitrate]).toEqual([true, undefined, undefined]);
    }
  });

  it.each([
    [{ lossless: true, crf: 18 }, 'lossless: has no crf (a lossless encode has no quality setting)'],
    [{ lossless: true, bitrate: '2M' }, 'lossless: has no bitrate'],
    [{ lossless: true, codec: 'av1', container: 'mkv' }, 'lossless: not available for av1 (use h264, h265, vp9)'],
    [{ lossless: 'yes' }, 'video.lossless: expected a boolean'],
    [{ codec: 'mpeg2' }, 'codec: "mpeg2" is not one of h264, h265, vp9, av1'],
    [{ crf: 20, bitrate: '2M' }, 'crf and bitrate: give one or the other, not both'],
    [{ crf: 60 }, 'crf: 60 is outside 1..51 for h264'],
    [{ bitrate: 'lots' }, 'bitrate: "lots" is not a rate such as 2M or 800k'],
    [{ preset: 'insane' }, 'preset: "insane" is not one of ultrafast'],
    [{ width: 9000 }, "width: 9000 is outside 16..8192 (0 keeps the source's)"],
    [{ height: 8 }, 'height: 8 is below the 16-pixel minimum'],
    [{ fps: 0.5 }, 'fps: 0.5 is outside 1..240'],
    [{ audio_codec: 'flac' }, 'audio_codec: "flac" is not one of aac, opus, mp3, copy, none'],
    [{ audio_codec: 'none', audio_bitrate: '96k' }, 'audio_bitrate: has no meaning with audio_codec none'],
    [{ codec: 'h264', container: 'webm' }, 'container: webm cannot hold h264 video (use vp9 or av1)'],
    [{ codec: 'vp9', container: 'webm', audio_codec: 'aac' }, 'audio_codec: webm cannot hold aac audio'],
    [{ container: 'avi' }, 'container: "avi" is not one of mp4, mkv, webm'],
    [{ segment_seconds: 0.2 }, 'segment_seconds: 0.2 is outside 1..3600'],
    [{ passes: 2 }, 'passes: only with bitrate (a crf encode takes one pass)'],
    [{ passes: 1, lossless: true }, 'passes: only with bitrate (a lossless encode takes one pass)'],
    [{ passes: 3, bitrate: '1M' }, 'passes: 3 is not 1 or 2 (0 = the default: 2 with a bitrate)'],
    [{ passes: 'two', bitrate: '1M' }, 'video.passes: expected a number'],
  ])('rejects %j naming the field', (raw, message) => {
    const err = rejection(raw);
    expect(err).toBeInstanceOf(TesseraError);
    expect(err.codeName).toBe('INVALID_ARGUMENT');
    expect(err.message).toContain(message);
  });
});

describe('NTSC rates (review VID3)', () => {
  it('29.97, 23.976, 59.94 and the fraction itself are taken as N x 1000/1001, written as ffmpeg reads them exactly', () => {
    expect(parseVideoParams({ fps: 29.97 }).fps).toBe(30000 / 1001);
    expect(parseVideoParams({ fps: 30000 / 1001 }).fps).toBe(30000 / 1001);
    expect(parseVideoParams({ fps: 23.976 }).fps).toBe(24000 / 1001);
    expect(rateExpression(parseVideoParams({ fps: 59.94 }).fps)).toBe('60000/1001');
    // Other rates are as given.
    expect(parseVideoParams({ fps: 25 }).fps).toBe(25);
    expect(parseVideoParams({ fps: 29.9 }).fps).toBe(29.9);
    expect(rateExpression(12.5)).toBe('12.5');
    expect(ntscRate(30)).toBeUndefined();
  });
});
