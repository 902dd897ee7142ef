/**
 * Cuts whole-width strips out of a libvips `.v` intermediate *while libvips is still writing it*.
 *
 * Why: the coordinator decodes a huge source once into `decoded.v` (raw pixels behind a 64-byte
 * header, written top to bottom as the sequential JPEG/PNG decode goes). Each worker then needs one
 * band of rows (its strip plus the halo). A whole-width band of a `.v` file is one contiguous byte
 * range, so a strip file is the original header with its height patched and that byte range: a
 * copy from the page cache, no second libvips pass. Copying as the rows land (rather than after the
 * decode) keeps the cut and its checksum off the critical path, and lets the first strips go to
 * workers while the rest of the image is still being decoded.
 */
import { createHash, type Hash } from 'node:crypto';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

/** libvips' magic number as it opens a little-endian `.v` file. */
const MAGIC_INTEL = 0xb6a6f208;
const HEADER_BYTES = 64;
/** Bytes per band of each VipsBandFormat (uchar, char, ushort, short, uint, int, float, complex, double, dpcomplex). */
const BAND_BYTES = [1, 1, 2, 2, 4, 4, 4, 8, 8, 16];
/** sharp's `depth` name of each VipsBandFormat. */
const DEPTHS = ['uchar', 'char', 'ushort', 'short', 'uint', 'int', 'float', 'complex', 'double', 'dpcomplex'];
const CHUNK_BYTES = 8 << 20;
const POLL_MS = 10;

/** What the intermediate's header says. */
export interface VipsImageHeader {
  width: number;
  height: number;
  channels: number;
  /** sharp's name of the band format, e.g. "uchar". */
  depth: string;
}

/** A band of rows [y0, y1) of the intermediate to write to `path` as a `.v` image. */
export interface StripCutSpec {
  y0: number;
  y1: number;
  path: string;
}

/** A written strip file. */
export interface CutStripFile {
  path: string;
  size: number;
  sha256: string;
}

/** What {@link cutStripsWhileDecoding} runs and cuts. */
export interface StripCutOptions<T> {
  /** Path of the `.v` file `decode` writes. */
  intermediate: string;
  /** Writes `intermediate` top to bottom (a sharp pipeline's `toFile`). */
  decode: () => Promise<T>;
  /** The bands to cut, given the header (called once, before the first row is copied). */
  plan: (header: VipsImageHeader) => StripCutSpec[];
  signal: AbortSignal;
}

/** A finished strip: its position in the `plan` list and its file. */
export interface CutStrip extends CutStripFile {
  index: number;
}

/** Reads the header of a complete or growing `.v` file; null while fewer than 64 bytes exist. */
export function parseVipsHeader(b: Buffer): VipsImageHeader | null {
  if (b.length < HEADER_BYTES) return null;
  if (b.readUInt32BE(0) !== MAGIC_INTEL) throw new Error('intermediate is not a little-endian libvips .v file');
  const format = b.readUInt32LE(20);
  if (b.readUInt32LE(24) !== 0 || DEPTHS[format] === undefined) throw new Error(`intermediate has coding ${b.readUInt32LE(24)}, band format ${format}: not raw pixels`);
  return { width: b.readUInt32LE(4), height: b.readUInt32LE(8), channels: b.readUInt32LE(12), depth: DEPTHS[format]! };
}

/**
 * Runs `decode` (which writes `intermediate`) and, as its rows appear, copies the bands `plan`
 * asks for (given the header) into their own `.v` files, hashing them on the way. Yields each
 * strip as soon as its last row is copied, in the order the rows land (so a caller can hand strip
 * 1 to a worker while libvips is still decoding the rest), and ends once the decode has finished.
 * The decode's error wins over the cutter's. A strip file is the header (height patched) and its
 * rows, without the XML metadata libvips appends at the very end: waiting for it would hold every
 * strip until the decode ends, and the tiled path reads nothing from it (the prefix has already
 * applied orientation and colour profile, and sharp's save keeps no profile in the intermediate).
 *
 * Stopping early (`return()` on the generator, or `signal`) waits for libvips to stop writing
 * before it settles, so the caller can then remove the files.
 */
export async function* cutStripsWhileDecoding<T>(o: StripCutOptions<T>): AsyncGenerator<CutStrip, { decoded: T; header: VipsImageHeader }, undefined> {
  let finished = false;
  let failure: unknown;
  const decoding = o.decode().then(
    (v) => {
      finished = true;
      return v;
    },
    (err: unknown) => {
      finished = true;
      failure = err ?? new Error('the decode failed');
      return undefined;
    },
  );
  const outs: { index: number; spec: StripCutSpec; fh: FileHandle; hash: Hash; size: number; done: boolean }[] = [];
  let src: FileHandle | undefined;
  try {
    // Wait for the header: libvips writes it before the first row.
    const head = Buffer.alloc(HEADER_BYTES);
    let header: VipsImageHeader | null = null;
    for (;;) {
      o.signal.throwIfAborted();
      // As below: a decode that failed since the last look may still have written rows, and the
      // strips they complete are handed out all the same (however late the cutter looks).
      const wasFinished = finished;
      const failed = failure !== undefined;
      src ??= await open(o.intermediate, 'r').catch(() => undefined);
      if (src) {
        const { bytesRead } = await src.read(head, 0, HEADER_BYTES, 0);
        header = parseVipsHeader(head.subarray(0, bytesRead));
        if (header) break;
      }
      if (failed) break;
      if (wasFinished) throw new Error('the decode finished without writing an intermediate');
      await sleep(POLL_MS);
    }
    if (!header || !src) {
      await decoding;
      throw failure;
    }
    const stride = header.width * header.channels * BAND_BYTES[DEPTHS.indexOf(header.depth)]!;
    const dataEnd = HEADER_BYTES + header.height * stride;
    for (const [index, spec] of o.plan(header).entries()) {
      if (!(spec.y0 >= 0 && spec.y1 > spec.y0 && spec.y1 <= header.height)) throw new RangeError(`strip rows ${spec.y0}..${spec.y1} outside ${header.height}`);
      const fh = await open(spec.path, 'w');
      const h = Buffer.from(head);
      h.writeUInt32LE(spec.y1 - spec.y0, 8);
      const out = { index, spec, fh, hash: createHash('sha256'), size: 0, done: false };
      outs.push(out);
      await append(out, h);
    }

    // One sequential read of the pixel rows; each chunk goes to every strip whose rows it holds.
    const buf = Buffer.allocUnsafe(CHUNK_BYTES);
    let pos = HEADER_BYTES;
    while (pos < dataEnd) {
      o.signal.throwIfAborted();
      // Read before the size: once the decode has settled, the size we then see is final. A failed
      // decode still has its rows so far cut (strips that were complete are handed out, however
      // far behind the cutter was), then its error ends the stream.
      const wasFinished = finished;
      const failed = failure !== undefined;
      const size = (await stat(o.intermediate)).size;
      const limit = Math.min(size, dataEnd);
      if (limit <= pos) {
        if (failed) break;
        if (wasFinished) throw new Error(`the intermediate ended at ${size} of ${dataEnd} bytes`);
        await sleep(POLL_MS);
        continue;
      }
      const n = Math.min(CHUNK_BYTES, limit - pos);
      const { bytesRead } = await src.read(buf, 0, n, pos);
      if (bytesRead <= 0) throw new Error(`short read of the intermediate at ${pos}`);
      const a = pos;
      const b = pos + bytesRead;
      pos = b;
      for (const out of outs) {
        if (out.done) continue;
        const end = HEADER_BYTES + out.spec.y1 * stride;
        const from = Math.max(a, HEADER_BYTES + out.spec.y0 * stride);
        const to = Math.min(b, end);
        if (to > from) await append(out, buf.subarray(from - a, to - a));
        if (b >= end) {
          out.done = true;
          await out.fh.close();
          yield { index: out.index, path: out.spec.path, size: out.size, sha256: out.hash.digest('hex') };
        }
      }
    }
    const decoded = await decoding;
    if (failure !== undefined) throw failure;
    return { decoded: decoded as T, header };
  } catch (err) {
    // The decode's error wins: a header or plan that fails to make sense of a failed decode's
    // partial output only hides why it failed.
    if (!finished) await decoding;
    throw failure !== undefined ? failure : err;
  } finally {
    // Let a failed or abandoned cut wait for libvips to stop writing before the caller cleans up.
    if (!finished) await decoding;
    await src?.close().catch(() => undefined);
    for (const x of outs) if (!x.done) await x.fh.close().catch(() => undefined);
  }
}

/**
 * {@link cutStripsWhileDecoding} run to the end: every strip file (in `plan` order) once the
 * decode has finished.
 */
export async function decodeAndCutStrips<T>(o: StripCutOptions<T>): Promise<{ decoded: T; header: VipsImageHeader; files: CutStripFile[] }> {
  const files: CutStripFile[] = [];
  const it = cutStripsWhileDecoding(o);
  for (;;) {
    const r = await it.next();
    if (r.done) return { ...r.value, files };
    const { index, ...file } = r.value;
    files[index] = file;
  }
}

async function append(out: { fh: FileHandle; hash: Hash; size: number }, data: Buffer): Promise<void> {
  out.hash.update(data);
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await out.fh.write(data, done, data.length - done);
    done += bytesWritten;
  }
  out.size += data.length;
}
