import { describe, expect, test } from 'vitest';
import { TesseraError } from '../errors.js';
import { checkNewAudioParams, keepsTooLittle, outputChannels, outputSampleRate, parseBitrate, validateAudioParams } from './audio-params.js';

function rejects(raw: Record<string, unknown>, field: string): void {
  let err: unknown;
  try {
    validateAudioParams(raw);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(TesseraError);
  expect((err as TesseraError).codeName).toBe('INVALID_ARGUMENT');
  expect((err as TesseraError).message.startsWith(`${field}:`)).toBe(true);
}

describe('audio params', () => {
  test('defaults: aac 128k, keep rate and channels, -16 LUFS / -1.5 dBTP when normalising, 180 s segments', () => {
    const p = validateAudioParams({ normalize: true });
    expect(p).toMatchObject({ codec: 'aac', bitrate: 128000, sampleRate: 0, channels: 0, trim: null, loudness: -16, truePeak: -1.5, segmentSeconds: 180 });
    expect(validateAudioParams({ codec: 'flac' }).bitrate).toBe(0);
    expect(validateAudioParams({ codec: 'opus' }).bitrate).toBe(96000);
  });

  test('bad values name the field and say why', () => {
    rejects({ codec: 'ogg' }, 'codec');
    rejects({ codec: 'flac', bitrate: '128k' }, 'bitrate');
    rejects({ bitrate: 'fast' }, 'bitrate');
    rejects({ bitrate: '2M' }, 'bitrate');
    rejects({ sample_rate: 1000 }, 'sample_rate');
    rejects({ codec: 'opus', sample_rate: 44100 }, 'sample_rate');
    rejects({ channels: 3 }, 'channels');
    rejects({ codec: 'mp3', channels: 6 }, 'channels');
    rejects({ trim: { start: 5, end: 2 } }, 'trim.end');
    rejects({ trim: { start: -1, end: 0 } }, 'trim.start');
    rejects({ fade_in: -2 }, 'fade_in');
    rejects({ normalize: true, loudness: -80 }, 'loudness');
    rejects({ normalize: true, true_peak: 1 }, 'true_peak');
    rejects({ loudness: -14 }, 'loudness');
    rejects({ loudness: -14, true_peak: -2 }, 'loudness/true_peak');
    rejects({ segment_seconds: 1.5 }, 'segment_seconds');
  });

  test('bitrates parse with k/M suffixes; codec-forced rates and channel counts', () => {
    expect(parseBitrate('96k')).toBe(96000);
    expect(parseBitrate('0.256M')).toBe(256000);
    expect(parseBitrate('64000')).toBe(64000);
    const opus = validateAudioParams({ codec: 'opus' });
    expect(outputSampleRate(opus, 44100)).toBe(48000);
    expect(outputSampleRate(validateAudioParams({ codec: 'flac' }), 44100)).toBe(44100);
    expect(outputChannels(validateAudioParams({ codec: 'mp3' }), 6)).toBe(2);
    expect(outputChannels(validateAudioParams({ codec: 'aac', channels: 1 }), 6)).toBe(1);
    expect(validateAudioParams({ trim: { start: 1.5, end: 0 } }).trim).toEqual({ start: 1.5, end: 0 });
  });

  test('a trim of exactly 10 ms, as its decimals say, is kept (5.01 - 5 is under 0.01 in floating point)', () => {
    expect(5.01 - 5 < 0.01).toBe(true);
    expect(() => checkNewAudioParams(validateAudioParams({ trim: { start: 5, end: 5.01 } }))).not.toThrow();
    expect(() => checkNewAudioParams(validateAudioParams({ trim: { start: 5, end: 5.009 } }))).toThrow('a trim must keep at least 0.01 s');
    expect([keepsTooLittle(8 - 7.99), keepsTooLittle(0.0099)]).toEqual([false, true]);
  });
});
