/**
 * Minimal WAV (RIFF/WAVE) reading and writing: the sample-addressable intermediate of the audio kind.
 * Segments are cut from a WAV by byte range (sample-exact by construction) and workers hand back WAV
 * intermediates that the coordinator concatenates before the single final encode.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { invalidArgument } from '../errors.js';

/** PCM sample encodings we read and write. */
export type WavSampleFormat = 's16' | 's24' | 's32' | 'f32' | 'u8';

/** Layout of a WAV file's sample data. */
export interface WavInfo {
  format: WavSampleFormat;
  sampleRate: number;
  channels: number;
  /** Bytes per frame (all channels of one sample instant). */
  blockAlign: number;
  /** WAVE_FORMAT_EXTENSIBLE channel mask (0 when absent). */
  channelMask: number;
  /** Byte offset of the first sample. */
  dataOffset: number;
  /** Bytes of sample data the header declares. */
  declaredBytes: number;
  /** Bytes of sample data really present (less than declared when the file is truncated). */
  dataBytes: number;
  /** Whether the header states the data's size (RIFF below 4 GiB, RF64's ds64), not "to the end". */
  sizeStated: boolean;
  /** Whole frames present. */
  frames: number;
}

/** Reads the header of a WAV file (RIFF, or RF64/BW64 past 4 GiB). Throws INVALID_ARGUMENT naming `input` if it is not a PCM WAV. */
export async function readWavInfo(path: string, input = path): Promise<WavInfo> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const head = Buffer.alloc(12);
    await fh.read(head, 0, 12, 0);
    const riff = head.toString('ascii', 0, 4);
    // RF64 and BW64 (EBU Tech 3306/ITU-R BS.2088) are WAV past 4 GiB: 64-bit sizes in a ds64 chunk.
    const rf64 = riff === 'RF64' || riff === 'BW64';
    if ((riff !== 'RIFF' && !rf64) || head.toString('ascii', 8, 12) !== 'WAVE') throw invalidArgument(`${input}: not a RIFF/WAVE file`, input);
    let pos = 12;
    let fmt: Omit<WavInfo, 'dataOffset' | 'declaredBytes' | 'dataBytes' | 'frames' | 'sizeStated'> | undefined;
    let dataSize64: number | undefined;
    const ch = Buffer.alloc(8);
    while (pos + 8 <= size) {
      await fh.read(ch, 0, 8, pos);
      const id = ch.toString('ascii', 0, 4);
      let len = ch.readUInt32LE(4);
      if (id === 'ds64' && rf64 && len >= 16) {
        const d = Buffer.alloc(16);
        await fh.read(d, 0, 16, pos + 8);
        dataSize64 = Number(d.readBigUInt64LE(8));
      } else if (id === 'fmt ') {
        const f = Buffer.alloc(Math.min(len, 40));
        await fh.read(f, 0, f.length, pos + 8);
        fmt = parseFmt(f, input);
      } else if (id === 'data') {
        if (!fmt) throw invalidArgument(`${input}: WAV data chunk before its fmt chunk`, input);
        const dataOffset = pos + 8;
        // 0xFFFFFFFF: the size is in ds64 (RF64), or unknown (a WAV written as a stream): to the end.
        // Writers that could not seek back put a size at or near 0xFFFFFFFF, or leave the 0 they
        // began with (ffmpeg reads both as "to the end"): stated, it is not.
        let sizeStated = len < 0xfffffff0 && !(len === 0 && size > dataOffset);
        if (len === 0xffffffff && dataSize64 !== undefined) [len, sizeStated] = [dataSize64, true];
        else if (!sizeStated) len = size - dataOffset;
        const dataBytes = Math.min(len, size - dataOffset);
        return { ...fmt, dataOffset, declaredBytes: len, dataBytes, sizeStated, frames: Math.floor(dataBytes / fmt.blockAlign) };
      }
      pos += 8 + len + (len & 1);
    }
    throw invalidArgument(`${input}: WAV file has no data chunk`, input);
  } finally {
    await fh.close();
  }
}

/**
 * Refuses a WAV cut short: its header states more sample data than the file holds (by more than one
 * frame). A WAV written as a stream (to a pipe) states 0 or about 0xFFFFFFFF bytes, meaning "to the
 * end", and is complete however long it is.
 */
export function checkWavComplete(info: WavInfo, input: string): void {
  if (info.sizeStated && info.declaredBytes > info.dataBytes + info.blockAlign) {
    throw invalidArgument(`${input}: truncated file: ${(info.frames / info.sampleRate).toFixed(2)} s present of the ${(info.declaredBytes / info.blockAlign / info.sampleRate).toFixed(2)} s its header declares`, input);
  }
}

function parseFmt(f: Buffer, input: string): Omit<WavInfo, 'dataOffset' | 'declaredBytes' | 'dataBytes' | 'frames' | 'sizeStated'> {
  let tag = f.readUInt16LE(0);
  const channels = f.readUInt16LE(2);
  const sampleRate = f.readUInt32LE(4);
  const blockAlign = f.readUInt16LE(12);
  const bits = f.readUInt16LE(14);
  let channelMask = 0;
  if (tag === 0xfffe && f.length >= 26) {
    channelMask = f.readUInt32LE(20);
    tag = f.readUInt16LE(24); // first two bytes of the sub-format GUID are the format tag
  }
  // Integer samples are stored in whole bytes: 20 valid bits in 3 (a field recorder's), 12 in 2. Read
  // as their container, as ffmpeg reads them (the bits below are zero).
  const bytes = channels > 0 ? blockAlign / channels : 0;
  let format: WavSampleFormat | undefined;
  if (tag === 1 && bits > 8 * bytes - 8 && bits <= 8 * bytes) format = bytes === 2 ? 's16' : bytes === 3 ? 's24' : bytes === 4 ? 's32' : bytes === 1 ? 'u8' : undefined;
  else if (tag === 3 && bits === 32 && bytes === 4) format = 'f32';
  if (!format || channels < 1) throw invalidArgument(`${input}: unsupported WAV sample format (tag ${tag}, ${bits} bits in ${bytes || '?'} bytes)`, input);
  return { format, sampleRate, channels, blockAlign, channelMask };
}

/** A 44-byte canonical header (68 with WAVE_FORMAT_EXTENSIBLE, used for > 2 channels or a channel mask). */
export function wavHeader(format: WavSampleFormat, sampleRate: number, channels: number, frames: number, channelMask = 0): Buffer {
  const bits = format === 's16' ? 16 : format === 's24' ? 24 : format === 'u8' ? 8 : 32;
  const blockAlign = (channels * bits) / 8;
  const dataBytes = frames * blockAlign;
  const extensible = channels > 2 || channelMask !== 0;
  const fmtLen = extensible ? 40 : 16;
  const b = Buffer.alloc(12 + 8 + fmtLen + 8);
  b.write('RIFF', 0, 'ascii');
  b.writeUInt32LE(Math.min(0xffffffff, 4 + 8 + fmtLen + 8 + dataBytes), 4);
  b.write('WAVE', 8, 'ascii');
  b.write('fmt ', 12, 'ascii');
  b.writeUInt32LE(fmtLen, 16);
  const tag = format === 'f32' ? 3 : 1;
  b.writeUInt16LE(extensible ? 0xfffe : tag, 20);
  b.writeUInt16LE(channels, 22);
  b.writeUInt32LE(sampleRate, 24);
  b.writeUInt32LE(sampleRate * blockAlign, 28);
  b.writeUInt16LE(blockAlign, 32);
  b.writeUInt16LE(bits, 34);
  let p = 36;
  if (extensible) {
    b.writeUInt16LE(22, 36);
    b.writeUInt16LE(bits, 38);
    b.writeUInt32LE(channelMask, 40);
    // KSDATAFORMAT_SUBTYPE_{PCM,IEEE_FLOAT}: tag followed by the fixed GUID tail.
    Buffer.from([tag, 0, 0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xaa, 0, 0x38, 0x9b, 0x71]).copy(b, 44);
    p = 60;
  }
  b.write('data', p, 'ascii');
  b.writeUInt32LE(Math.min(0xffffffff, dataBytes), p + 4);
  return b;
}

/** Bytes per sample of one channel. */
export function bytesPerSample(format: WavSampleFormat): number {
  return format === 's16' ? 2 : format === 's24' ? 3 : format === 'u8' ? 1 : 4;
}

/** Converts raw little-endian PCM bytes (whole samples) to floats in [-1, 1) exactly as ffmpeg does. */
export function toFloat32(buf: Buffer, format: WavSampleFormat): Float32Array {
  const n = Math.floor(buf.length / bytesPerSample(format));
  const out = new Float32Array(n);
  switch (format) {
    case 'f32':
      if (buf.byteOffset % 4 === 0) out.set(new Float32Array(buf.buffer, buf.byteOffset, n));
      else for (let i = 0; i < n; i++) out[i] = buf.readFloatLE(i * 4);
      break;
    case 's16':
      if (buf.byteOffset % 2 === 0) {
        const v = new Int16Array(buf.buffer, buf.byteOffset, n);
        for (let i = 0; i < n; i++) out[i] = v[i]! / 32768;
      } else for (let i = 0; i < n; i++) out[i] = buf.readInt16LE(i * 2) / 32768;
      break;
    case 's24':
      for (let i = 0; i < n; i++) out[i] = buf.readIntLE(i * 3, 3) / 8388608;
      break;
    case 's32':
      for (let i = 0; i < n; i++) out[i] = buf.readInt32LE(i * 4) / 2147483648;
      break;
    case 'u8':
      for (let i = 0; i < n; i++) out[i] = (buf[i]! - 128) / 128;
      break;
  }
  return out;
}

/**
 * Calls `onChunk` with consecutive whole-frame chunks of `frames` frames starting at frame `from`.
 * Chunks are about 1 MiB so that a segment never has to fit in memory.
 */
export async function forEachFrameChunk(
  fh: FileHandle,
  info: WavInfo,
  from: number,
  frames: number,
  onChunk: (bytes: Buffer, frameCount: number) => Promise<void> | void,
  signal?: AbortSignal,
): Promise<void> {
  const perChunk = Math.max(1, Math.floor((1 << 20) / info.blockAlign));
  const buf = Buffer.alloc(perChunk * info.blockAlign);
  for (let done = 0; done < frames; ) {
    signal?.throwIfAborted();
    const n = Math.min(perChunk, frames - done);
    const want = n * info.blockAlign;
    const { bytesRead } = await fh.read(buf, 0, want, info.dataOffset + (from + done) * info.blockAlign);
    if (bytesRead !== want) throw new Error(`short read in WAV data at frame ${from + done}`);
    await onChunk(buf.subarray(0, want), n);
    done += n;
  }
}
