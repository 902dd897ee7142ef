/** How image inputs are recognised and their decode failures told: content sniffing and sharp's error messages. */
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { sniffBuffer, refusalFor } from '../shared/media/sniff.js';
import { describeSharpError } from '../shared/media/image-errors.js';

describe('sniffing', () => {
  it('takes a UTF-16 byte order mark for text, not an MP3 frame header', () => {
    const le = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('hello, this is a text file\r\n'.repeat(4), 'utf16le')]);
    const be = Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from('hello, this is a text file\r\n'.repeat(4), 'utf16le').swap16()]);
    expect(sniffBuffer(le)).toBe('text');
    expect(sniffBuffer(be)).toBe('text');
    expect(refusalFor('image', sniffBuffer(le))).toMatch(/it looks like text/);
    // A playlist in UTF-16 is still named as one.
    expect(sniffBuffer(Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('#EXTM3U\n#EXTINF:1,\nx.ts\n', 'utf16le')]))).toBe('hls-playlist');
    // An MPEG-1 layer I frame that starts FF FE stays audio.
    expect(sniffBuffer(Buffer.from([0xff, 0xfe, 0x90, 0x00, 0x12, 0x34, 0x00, 0x01, 0xff, 0x00]))).toBe('mp3');
  });
});

describe('decode errors', () => {
  it('a truncated PNG is "not a decodable image", as a truncated JPEG is', async () => {
    const png = await sharp({ create: { width: 200, height: 200, channels: 3, background: '#123456', noise: { type: 'gaussian', mean: 128, sigma: 50 } } }).png().toBuffer();
    const err = await sharp(png.subarray(0, Math.floor(png.length / 2))).raw().toBuffer().catch((e: unknown) => e);
    expect(String((err as Error).message)).toMatch(/end of stream|pngload|spng/i);
    expect(describeSharpError(err)).toMatch(/^not a decodable image \(/);
  });
});
