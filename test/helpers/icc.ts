/** ICC profiles made by hand for tests of how images carry them. */
import zlib from 'node:zlib';
import sharp from 'sharp';

const s15 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32BE(Math.round(v * 65536));
  return b;
};
const pad4 = (b: Buffer): Buffer => Buffer.concat([b, Buffer.alloc((4 - (b.length % 4)) % 4)]);

/** A minimal ICC v2 profile of `deviceClass` (mntr, prtr), its `desc`, D50 `wtpt` and `cprt` tags and `more`. */
function iccProfile(deviceClass: string, colourSpace: string, pcs: string, name: string, more: [string, Buffer][]): Buffer {
  const descText = Buffer.from(`${name}\0`, 'latin1');
  const descHead = Buffer.alloc(12);
  descHead.write('desc', 0);
  descHead.writeUInt32BE(descText.length, 8);
  const desc = pad4(Buffer.concat([descHead, descText, Buffer.alloc(4 + 4 + 2 + 1 + 67)]));
  const wtpt = Buffer.concat([Buffer.from('XYZ \0\0\0\0', 'latin1'), s15(0.9642), s15(1.0), s15(0.8249)]);
  const cprt = pad4(Buffer.from('text\0\0\0\0none\0', 'latin1'));
  const tags: [string, Buffer][] = [['desc', desc], ['wtpt', wtpt], ...more, ['cprt', cprt]];
  const table = Buffer.alloc(4 + tags.length * 12);
  table.writeUInt32BE(tags.length, 0);
  let offset = 128 + table.length;
  tags.forEach(([sig, data], i) => {
    table.write(sig, 4 + i * 12, 'latin1');
    table.writeUInt32BE(offset, 8 + i * 12);
    table.writeUInt32BE(data.length, 12 + i * 12);
    offset += data.length;
  });
  const head = Buffer.alloc(128);
  head.writeUInt32BE(offset, 0);
  head.writeUInt32BE(0x02100000, 8);
  head.write(deviceClass, 12);
  head.write(colourSpace, 16);
  head.write(pcs, 20);
  head.writeUInt16BE(2020, 24);
  head.writeUInt16BE(1, 26);
  head.writeUInt16BE(1, 28);
  head.write('acsp', 36);
  s15(0.9642).copy(head, 68);
  s15(1.0).copy(head, 72);
  s15(0.8249).copy(head, 76);
  return Buffer.concat([head, table, ...tags.map(([, d]) => d)]);
}

/** A minimal ICC v2 greyscale display profile with a pure gamma curve (kTRC). */
export function greyIcc(gamma: number): Buffer {
  const ktrc = Buffer.alloc(16);
  ktrc.write('curv', 0);
  ktrc.writeUInt32BE(1, 8);
  ktrc.writeUInt16BE(Math.round(gamma * 256), 12);
  return iccProfile('mntr', 'GRAY', 'XYZ ', 'Grey test', [['kTRC', ktrc]]);
}

/**
 * A minimal ICC v2 CMYK output profile, not libvips' built-in one: A2B0 is a lut8 with a 2-point
 * CLUT holding the naive mix (R = (1-C)(1-K), ...) of each of the 16 corners, in Lab.
 */
export async function cmykIcc(): Promise<Buffer> {
  const rgb = Buffer.alloc(16 * 3);
  for (let i = 0; i < 16; i++) {
    const [c, m, y, k] = [(i >> 3) & 1, (i >> 2) & 1, (i >> 1) & 1, i & 1];
    [rgb[i * 3], rgb[i * 3 + 1], rgb[i * 3 + 2]] = [255 * (1 - c) * (1 - k), 255 * (1 - m) * (1 - k), 255 * (1 - y) * (1 - k)];
  }
  const lab = await sharp(rgb, { raw: { width: 16, height: 1, channels: 3 } }).toColourspace('lab').raw({ depth: 'float' }).toBuffer();
  const f = new Float32Array(lab.buffer, lab.byteOffset, 48);
  const byte = (v: number): number => Math.max(0, Math.min(255, Math.round(v)));
  const clut = Buffer.from(Array.from({ length: 48 }, (_, i) => (i % 3 === 0 ? byte((f[i]! / 100) * 255) : byte(f[i]! + 128))));
  const ramp = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  const lutHead = Buffer.alloc(12);
  lutHead.write('mft1', 0);
  [lutHead[8], lutHead[9], lutHead[10]] = [4, 3, 2];
  const matrix = Buffer.concat([1, 0, 0, 0, 1, 0, 0, 0, 1].map(s15));
  const a2b0 = pad4(Buffer.concat([lutHead, matrix, ramp, ramp, ramp, ramp, clut, ramp, ramp, ramp]));
  return iccProfile('prtr', 'CMYK', 'Lab ', 'Own CMYK test', [['A2B0', a2b0]]);
}

/** `jpeg` with `icc` embedded as one APP2 ICC_PROFILE segment. */
export function withIcc(jpeg: Buffer, icc: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from('ICC_PROFILE\0', 'latin1'), Buffer.from([1, 1]), icc]);
  const marker = Buffer.from([0xff, 0xe2, 0, 0]);
  marker.writeUInt16BE(body.length + 2, 2);
  return Buffer.concat([jpeg.subarray(0, 2), marker, body, jpeg.subarray(2)]);
}

function crc32(buf: Buffer): number {
  let crc = 0xffffffff;
  for (const byte of buf) {
    let c = (crc ^ byte) & 0xff;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    crc = (crc >>> 8) ^ c;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** `png` with `icc` embedded as an iCCP chunk right after IHDR: tagged, its samples untouched. */
export function withPngIcc(png: Buffer, icc: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from('ICC\0\0', 'latin1'), zlib.deflateSync(icc)]);
  const type = Buffer.from('iCCP', 'latin1');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([type, body])));
  return Buffer.concat([png.subarray(0, 33), len, type, body, crc, png.subarray(33)]);
}
