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

describe('the worker paths in a decode error', () => {
  it("leave out a task's text beside this one's (libvips' error buffer is one per process), naming neither its folder nor its input", () => {
    // Two tasks failing at the same moment where subtasks share a process: this task's error may
    // carry the other's text, naming its link or its input in its own work folder (CI stop 53, review K24).
    const own = { path: '/tmp/w/st-job-1-tile-1-a1/in/x', name: 'tiled [1]', linksIn: '/tmp/w/st-job-1-tile-1-a1' };
    expect(describeSharpError(new Error('/tmp/w/st-job-1-tile-2-a1/vips-source-c77e217cdbe5: bad seek to 2147483632\n'), own)).toBe('not a decodable image');
    expect(describeSharpError(new Error('/tmp/w/st-other-job-a1/in/payroll.tif: bad seek to 2147483632'), own)).toBe('not a decodable image');
    // Its own lines are kept, said by the input's name, the other's left out.
    const both = new Error('/tmp/w/st-other-job-a1/in/payroll.tif: bad seek to 2147483632\n/tmp/w/st-job-1-tile-1-a1/vips-source-0123456789ab: bad seek to 1\n');
    expect(describeSharpError(both, own)).toBe('not a decodable image (tiled [1]: bad seek to 1)');
    // Nor one read in place from shared storage, outside the worker's folders (review MTEN).
    const shared = new Error('/mnt/share/bob/contract.tif: bad seek to 2147483632\n/tmp/w/st-job-1-tile-1-a1/in/x: bad seek to 1');
    expect(describeSharpError(shared, own)).toBe('not a decodable image (tiled [1]: bad seek to 1)');
    // Lines naming no file are kept.
    expect(describeSharpError(new Error('VipsJpeg: Premature end of input file\n'), own)).toBe('not a decodable image (VipsJpeg: Premature end of input file)');
  });
});
