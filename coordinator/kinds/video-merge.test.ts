import { describe, expect, it } from 'vitest';
import { subtitleCodec } from './video-merge.js';

describe('subtitleCodec: each subtitle track in the form the output container holds', () => {
  it('keeps what the container takes, converts text to its own text form, and leaves out pictures it cannot hold', () => {
    const table = ['subrip', 'ass', 'mov_text', 'webvtt', 'hdmv_pgs_subtitle', 'dvd_subtitle', 'eia_608'].map((codec) => [codec, subtitleCodec(codec, 'mp4'), subtitleCodec(codec, 'mkv'), subtitleCodec(codec, 'webm')]);
    expect(table).toEqual([
      ['subrip', 'mov_text', 'copy', 'webvtt'],
      ['ass', 'mov_text', 'copy', 'webvtt'],
      ['mov_text', 'copy', 'srt', 'webvtt'],
      ['webvtt', 'mov_text', 'copy', 'copy'],
      ['hdmv_pgs_subtitle', undefined, 'copy', undefined],
      ['dvd_subtitle', undefined, 'copy', undefined],
      ['eia_608', undefined, undefined, undefined],
    ]);
  });
});
