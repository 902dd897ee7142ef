/** ICC profiles made by hand for tests of how images carry them. */

/** A minimal ICC v2 greyscale display profile with a pure gamma curve (kTRC). */
export function greyIcc(gamma: number): Buffer {
  const s15 = (v: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeInt32BE(Math.round(v * 65536));
    return b;
  };
  const pad4 = (b: Buffer): Buffer => Buffer.concat([b, Buffer.alloc((4 - (b.length % 4)) % 4)]);
  const descText = Buffer.from('Grey test\0', 'latin1');
  const descHead = Buffer.alloc(12);
  descHead.write('desc', 0);
  descHead.writeUInt32BE(descText.length, 8);
  const desc = pad4(Buffer.concat([descHead, descText, Buffer.alloc(4 + 4 + 2 + 1 + 67)]));
  const wtpt = Buffer.concat([Buffer.from('XYZ \0\0\0\0', 'latin1'), s15(0.9642), s15(1.0), s15(0.8249)]);
  const ktrc = Buffer.alloc(16);
  ktrc.write('curv', 0);
  ktrc.writeUInt32BE(1, 8);
  ktrc.writeUInt16BE(Math.round(gamma * 256), 12);
  const cprt = pad4(Buffer.from('text\0\0\0\0none\0', 'latin1'));
  const tags: [string, Buffer][] = [['desc', desc], ['wtpt', wtpt], ['kTRC', ktrc], ['cprt', cprt]];
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
  head.write('mntr', 12);
  head.write('GRAY', 16);
  head.write('XYZ ', 20);
  head.writeUInt16BE(2020, 24);
  head.writeUInt16BE(1, 26);
  head.writeUInt16BE(1, 28);
  head.write('acsp', 36);
  s15(0.9642).copy(head, 68);
  s15(1.0).copy(head, 72);
  s15(0.8249).copy(head, 76);
  return Buffer.concat([head, table, ...tags.map(([, d]) => d)]);
}

/** `jpeg` with `icc` embedded as one APP2 ICC_PROFILE segment. */
export function withIcc(jpeg: Buffer, icc: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from('ICC_PROFILE\0', 'latin1'), Buffer.from([1, 1]), icc]);
  const marker = Buffer.from([0xff, 0xe2, 0, 0]);
  marker.writeUInt16BE(body.length + 2, 2);
  return Buffer.concat([jpeg.subarray(0, 2), marker, body, jpeg.subarray(2)]);
}
