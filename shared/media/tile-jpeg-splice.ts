/**
 * Joins JPEG strips (whole-width horizontal bands encoded separately with the same settings) into
 * one baseline JPEG, without decoding or re-encoding pixels.
 *
 * Why this is exact: a baseline JPEG encodes each MCU (16 x 16 pixels with 4:2:0 chroma, 8 x 8 for
 * grey) from that MCU's pixels alone: colour conversion is per pixel, libjpeg's plain chroma
 * downsampling averages within the MCU, and the DCT and quantisation are per block. A strip whose
 * top edge lies on an MCU row of the whole image therefore holds exactly the coefficients of those
 * MCU rows of the whole-image encode. Only the entropy coding differs: each strip starts its DC
 * predictors at 0 and ends with pad bits. Joining means decoding the Huffman symbols (not the
 * pixels) to find where each strip's bits end and what its last DC values are, rewriting the first
 * DC difference of each component in every later strip, and copying all other bits.
 *
 * Only what the tiled path's own encoder writes is accepted: baseline Huffman (SOF0/SOF1), one
 * interleaved scan, no restart markers, identical tables in every strip. Anything else throws.
 */
import { readFile, writeFile } from 'node:fs/promises';

/** Huffman table: decode lookup and per-symbol code for re-encoding. */
interface Huffman {
  /** For a 9-bit prefix: (length << 8) | symbol, or 0 when the code is longer than 9 bits. */
  fast: Uint16Array;
  maxcode: Int32Array;
  valptr: Int32Array;
  mincode: Int32Array;
  values: Uint8Array;
  code: Uint16Array;
  size: Uint8Array;
}

interface Component {
  id: number;
  h: number;
  v: number;
  dc: Huffman;
  ac: Huffman;
}

/** A parsed strip: header bytes, geometry and its unstuffed entropy-coded data. */
interface Strip {
  width: number;
  height: number;
  /** Offset of the frame header's height field in `bytes`. */
  sofHeightAt: number;
  /** Bytes from SOI to the end of the SOS header. */
  head: Buffer;
  /** Headers that must match across strips (tables, frame and scan minus the height). */
  signature: string;
  components: Component[];
  maxH: number;
  maxV: number;
  /** Entropy-coded data with stuffing removed, followed by zero padding. */
  data: Uint8Array;
}

const FAST_BITS = 9;

/** Reads `files` (strips in top-to-bottom order) and writes their join to `outPath`. Returns the result's size. */
export async function spliceJpegStrips(files: readonly string[], outPath: string): Promise<{ width: number; height: number; bytes: number }> {
  if (files.length === 0) throw new Error('jpeg splice: no strips');
  const strips: Strip[] = [];
  for (const f of files) strips.push(parseStrip(await readFile(f), f));
  const first = strips[0]!;
  const mcuH = 8 * first.maxV;
  let height = 0;
  for (const [i, s] of strips.entries()) {
    if (s.signature !== first.signature || s.width !== first.width) throw new Error(`jpeg splice: strip ${i + 1} was encoded with other settings than strip 1`);
    if (i < strips.length - 1 && s.height % mcuH !== 0) throw new Error(`jpeg splice: strip ${i + 1} is ${s.height} rows, not a multiple of the ${mcuH}-row MCU`);
    height += s.height;
  }
  if (height > 65_535) throw new Error(`jpeg splice: ${height} rows is more than a JPEG holds`);

  const out = new BitWriter(strips.reduce((n, s) => n + s.data.length, 0) + first.head.length + 1024);
  const head = Buffer.from(first.head);
  head.writeUInt16BE(height, first.sofHeightAt);
  out.bytes(head);
  const pred = new Int32Array(first.components.length);
  for (const s of strips) {
    const scan = walkScan(s);
    const r = new BitReader(s.data);
    let at = 0;
    // The first block of each component in this strip coded its DC against 0; recode it against
    // the previous strip's last DC, and copy everything in between.
    for (const [c, comp] of s.components.entries()) {
      const dc = scan.firstDc[c]!;
      out.copy(r, at, dc.start);
      writeDc(out, comp.dc, dc.value - pred[c]!);
      at = dc.end;
    }
    out.copy(r, at, scan.endBit);
    for (let c = 0; c < pred.length; c++) pred[c] = scan.lastDc[c]!;
  }
  out.padToByte();
  out.bytes(Buffer.from([0xff, 0xd9]));
  const result = out.result();
  await writeFile(outPath, result);
  return { width: first.width, height, bytes: result.length };
}

function parseStrip(buf: Buffer, name: string): Strip {
  const fail = (why: string): never => {
    throw new Error(`jpeg splice: ${name}: ${why}`);
  };
  if (buf.readUInt16BE(0) !== 0xffd8) fail('not a JPEG');
  let p = 2;
  const dcTables = new Map<number, Huffman>();
  const acTables = new Map<number, Huffman>();
  const signature: string[] = [];
  let frame: { width: number; height: number; sofHeightAt: number; comps: { id: number; h: number; v: number }[] } | undefined;
  for (;;) {
    if (p + 4 > buf.length || buf[p] !== 0xff) fail(`bad marker at ${p}`);
    const marker = buf[p + 1]!;
    const len = buf.readUInt16BE(p + 2);
    const seg = buf.subarray(p + 4, p + 2 + len);
    if (marker === 0xc0 || marker === 0xc1) {
      if (seg[0] !== 8) fail(`${seg[0]}-bit samples`);
      const n = seg[5]!;
      const comps = Array.from({ length: n }, (_, i) => ({ id: seg[6 + 3 * i]!, h: seg[7 + 3 * i]! >> 4, v: seg[7 + 3 * i]! & 15 }));
      frame = { height: seg.readUInt16BE(1), width: seg.readUInt16BE(3), sofHeightAt: p + 5, comps };
      // Everything but the height must match.
      signature.push(`sof${marker}:${seg.subarray(3).toString('hex')}`);
    } else if (marker >= 0xc2 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      fail(`frame type 0x${marker.toString(16)} (only baseline Huffman is joined)`);
    } else if (marker === 0xc4) {
      let q = 0;
      while (q < seg.length) {
        const tc = seg[q]! >> 4;
        const th = seg[q]! & 15;
        const counts = seg.subarray(q + 1, q + 17);
        const total = counts.reduce((a, b) => a + b, 0);
        const table = buildHuffman(counts, seg.subarray(q + 17, q + 17 + total));
        (tc === 0 ? dcTables : acTables).set(th, table);
        q += 17 + total;
      }
      signature.push(`dht:${seg.toString('hex')}`);
    } else if (marker === 0xdb) {
      signature.push(`dqt:${seg.toString('hex')}`);
    } else if (marker === 0xdd) {
      if (seg.readUInt16BE(0) !== 0) fail('restart markers are not joined');
    } else if (marker === 0xda) {
      if (!frame) fail('scan before frame header');
      const f = frame!;
      const ns = seg[0]!;
      if (ns !== f.comps.length) fail('more than one scan');
      const components: Component[] = [];
      for (let i = 0; i < ns; i++) {
        const id = seg[1 + 2 * i]!;
        const t = seg[2 + 2 * i]!;
        const fc = f.comps.find((c) => c.id === id) ?? fail(`scan names unknown component ${id}`);
        const dc = dcTables.get(t >> 4) ?? fail('missing DC table');
        const ac = acTables.get(t & 15) ?? fail('missing AC table');
        // A one-component scan is not interleaved: its MCU is one block whatever the sampling.
        components.push({ id, h: ns === 1 ? 1 : fc.h, v: ns === 1 ? 1 : fc.v, dc, ac });
      }
      const ss = seg[1 + 2 * ns]!;
      const se = seg[2 + 2 * ns]!;
      if (ss !== 0 || se !== 63 || seg[3 + 2 * ns] !== 0) fail('not a sequential scan');
      signature.push(`sos:${seg.toString('hex')}`);
      const dataStart = p + 2 + len;
      const maxH = Math.max(...f.comps.map((c) => c.h));
      const maxV = Math.max(...f.comps.map((c) => c.v));
      return {
        width: f.width,
        height: f.height,
        sofHeightAt: f.sofHeightAt,
        head: buf.subarray(0, dataStart),
        signature: signature.join('|'),
        components,
        maxH: ns === 1 ? 1 : maxH,
        maxV: ns === 1 ? 1 : maxV,
        data: unstuff(buf, dataStart, name),
      };
    }
    p += 2 + len;
  }
}

/** Entropy-coded bytes up to the next marker, with the 0x00 after each 0xFF removed; 4 zero bytes of slack. */
function unstuff(buf: Buffer, from: number, name: string): Uint8Array {
  const out = new Uint8Array(buf.length - from + 4);
  let o = 0;
  for (let i = from; i < buf.length; i++) {
    const b = buf[i]!;
    if (b === 0xff) {
      const next = buf[i + 1];
      if (next === 0x00) {
        out[o++] = 0xff;
        i++;
        continue;
      }
      if (next === 0xd9) return out.subarray(0, o + 4);
      throw new Error(`jpeg splice: ${name}: marker 0xff${next?.toString(16)} inside the scan`);
    }
    out[o++] = b;
  }
  throw new Error(`jpeg splice: ${name}: no end of image`);
}

function buildHuffman(counts: Uint8Array, values: Uint8Array): Huffman {
  const fast = new Uint16Array(1 << FAST_BITS);
  const maxcode = new Int32Array(18).fill(-1);
  const valptr = new Int32Array(17);
  const mincode = new Int32Array(17);
  const code = new Uint16Array(256);
  const size = new Uint8Array(256);
  let c = 0;
  let k = 0;
  for (let len = 1; len <= 16; len++) {
    valptr[len] = k;
    mincode[len] = c;
    for (let i = 0; i < counts[len - 1]!; i++, k++, c++) {
      const sym = values[k]!;
      code[sym] = c;
      size[sym] = len;
      if (len <= FAST_BITS) {
        const shift = FAST_BITS - len;
        for (let j = 0; j < 1 << shift; j++) fast[(c << shift) | j] = (len << 8) | sym;
      }
    }
    maxcode[len] = counts[len - 1]! > 0 ? c - 1 : -1;
    c <<= 1;
  }
  return { fast, maxcode, valptr, mincode, values: Uint8Array.from(values), code, size };
}

/** Reads bits MSB first from unstuffed scan data. */
class BitReader {
  constructor(readonly d: Uint8Array) {}
  /** 16 bits starting at bit `pos`. */
  peek16(pos: number): number {
    const i = pos >>> 3;
    const d = this.d;
    return ((((d[i]! << 16) | (d[i + 1]! << 8) | d[i + 2]!) >>> (8 - (pos & 7))) & 0xffff) >>> 0;
  }
}

/** Where a strip's scan ends and what the DC predictors are at its start and end. */
function walkScan(s: Strip): { endBit: number; firstDc: { start: number; end: number; value: number }[]; lastDc: number[] } {
  const r = new BitReader(s.data);
  const limit = (s.data.length - 4) * 8;
  const comps = s.components;
  const ncomp = comps.length;
  let mcus: number;
  if (ncomp === 1) {
    mcus = Math.ceil(s.width / 8) * Math.ceil(s.height / 8);
  } else {
    mcus = Math.ceil(s.width / (8 * s.maxH)) * Math.ceil(s.height / (8 * s.maxV));
  }
  const pred = new Array<number>(ncomp).fill(0);
  const firstDc: { start: number; end: number; value: number }[] = [];
  let pos = 0;
  const decode = (h: Huffman): number => {
    const bits = r.peek16(pos);
    const e = h.fast[bits >>> (16 - FAST_BITS)]!;
    if (e !== 0) {
      pos += e >>> 8;
      return e & 0xff;
    }
    for (let len = FAST_BITS + 1; len <= 16; len++) {
      const code = bits >>> (16 - len);
      if (code <= h.maxcode[len]!) {
        pos += len;
        return h.values[h.valptr[len]! + code - h.mincode[len]!]!;
      }
    }
    throw new Error(`jpeg splice: bad Huffman code at bit ${pos}`);
  };
  for (let m = 0; m < mcus; m++) {
    for (let c = 0; c < ncomp; c++) {
      const comp = comps[c]!;
      const blocks = comp.h * comp.v;
      for (let b = 0; b < blocks; b++) {
        const start = pos;
        const t = decode(comp.dc);
        let diff = 0;
        if (t !== 0) {
          const v = r.peek16(pos) >>> (16 - t);
          pos += t;
          diff = v < 1 << (t - 1) ? v - (1 << t) + 1 : v;
        }
        pred[c]! += diff;
        if (m === 0 && b === 0) firstDc.push({ start, end: pos, value: pred[c]! });
        for (let k = 1; k < 64; ) {
          const rs = decode(comp.ac);
          const size = rs & 15;
          if (size !== 0) {
            k += (rs >>> 4) + 1;
            pos += size;
          } else if (rs === 0xf0) {
            k += 16;
          } else {
            break;
          }
        }
      }
    }
    if (pos > limit) throw new Error(`jpeg splice: scan data ends inside MCU ${m + 1} of ${mcus}`);
  }
  return { endBit: pos, firstDc, lastDc: pred };
}

/** Writes the DC difference `diff` with `table` (size category code, then the magnitude bits). */
function writeDc(out: BitWriter, table: Huffman, diff: number): void {
  const abs = Math.abs(diff);
  const t = abs === 0 ? 0 : 32 - Math.clz32(abs);
  if (t > 11 || table.size[t] === 0) throw new Error(`jpeg splice: DC difference ${diff} has no code in the table`);
  out.bits(table.code[t]!, table.size[t]!);
  if (t > 0) out.bits(diff < 0 ? diff + (1 << t) - 1 : diff, t);
}

/** Writes bits MSB first, stuffing a 0x00 after each 0xFF byte of entropy-coded data. */
class BitWriter {
  private buf: Buffer;
  private n = 0;
  private acc = 0;
  private nbits = 0;
  constructor(capacity: number) {
    this.buf = Buffer.allocUnsafe(capacity);
  }
  private ensure(extra: number): void {
    if (this.n + extra <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.n + extra));
    this.buf.copy(bigger, 0, 0, this.n);
    this.buf = bigger;
  }
  /** Raw bytes (headers), written at a byte boundary. */
  bytes(b: Buffer): void {
    if (this.nbits !== 0) throw new Error('jpeg splice: unaligned header write');
    this.ensure(b.length);
    b.copy(this.buf, this.n);
    this.n += b.length;
  }
  /** The low `count` (<= 16) bits of `value`. */
  bits(value: number, count: number): void {
    this.acc = ((this.acc << count) | (value & ((1 << count) - 1))) >>> 0;
    this.nbits += count;
    while (this.nbits >= 8) {
      this.nbits -= 8;
      const byte = (this.acc >>> this.nbits) & 0xff;
      this.ensure(2);
      this.buf[this.n++] = byte;
      if (byte === 0xff) this.buf[this.n++] = 0;
    }
    this.acc &= (1 << this.nbits) - 1;
  }
  /** Bits [from, to) of `r`. */
  copy(r: BitReader, from: number, to: number): void {
    let pos = from;
    while (to - pos >= 16) {
      this.bits(r.peek16(pos), 16);
      pos += 16;
    }
    const left = to - pos;
    if (left > 0) this.bits(r.peek16(pos) >>> (16 - left), left);
  }
  /** Fills the last byte with 1 bits, as the standard asks. */
  padToByte(): void {
    if (this.nbits > 0) this.bits((1 << (8 - this.nbits)) - 1, 8 - this.nbits);
  }
  result(): Buffer {
    return this.buf.subarray(0, this.n);
  }
}
