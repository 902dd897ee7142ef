/**
 * Chunks read straight into their wire form decode, with protobufjs (what proto-loader's
 * deserialisers run), to the same messages as encoding the bytes read would give.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHUNK_SIZE } from './config.js';
import { EncodedMessage, passEncoded, readEncodedChunks, type EncodedChunkOptions } from './encoded-chunks.js';
import { compileEncoder } from './proto-encoder.js';
import { fieldNumber, loadTesseraProto, loadTesseraRoot } from './proto.js';

let dir: string;
let files = 0;
const root = loadTesseraRoot();
const OutputChunk = root.lookupType('tessera.v1.OutputChunk');
const SubmitJobRequest = root.lookupType('tessera.v1.SubmitJobRequest');
const encodeOutputFields = compileEncoder(root, 'tessera.v1.OutputChunk');

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-encoded-chunks-'));
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function fileOf(bytes: number): Promise<{ file: string; data: Buffer }> {
  const data = randomBytes(bytes);
  const file = path.join(dir, `f-${++files}`);
  await writeFile(file, data);
  return { file, data };
}

interface Read {
  position: number;
  data: Buffer;
  wire: Buffer;
  /** The size of the memory the message was read into. */
  allocated: number;
}

async function collect(file: string, options: EncodedChunkOptions): Promise<Read[]> {
  const out: Read[] = [];
  for await (const c of readEncodedChunks(file, options)) out.push({ position: c.position, data: Buffer.from(c.data), wire: Buffer.from(c.message.bytes), allocated: c.message.bytes.buffer.byteLength });
  return out;
}

/** OutputChunk's other fields, as the coordinator's download sends them. */
const outputFields = (size: number, digest: string) => (at: number, length: number) =>
  encodeOutputFields({ offset: String(at), total_size: String(size), sha256: at + length >= size ? digest : '' });

describe('readEncodedChunks', () => {
  it('reads a file of several chunks into messages that decode to its bytes and the other fields', async () => {
    const size = 2 * CHUNK_SIZE + 12_345;
    const { file, data } = await fileOf(size);
    const chunks = await collect(file, { field: fieldNumber('tessera.v1.OutputChunk', 'data'), fields: outputFields(size, 'ab'.repeat(32)), size });
    expect(chunks.map((c) => c.data.length)).toEqual([CHUNK_SIZE, CHUNK_SIZE, 12_345]);
    expect(Buffer.concat(chunks.map((c) => c.data)).equals(data)).toBe(true);
    for (const [i, c] of chunks.entries()) {
      const m = OutputChunk.toObject(OutputChunk.decode(c.wire), { longs: String, defaults: true }) as { data: Uint8Array; offset: string; total_size: string; sha256: string };
      expect(Buffer.from(m.data).equals(c.data)).toBe(true);
      expect(m.offset).toBe(String(i * CHUNK_SIZE));
      expect(m.total_size).toBe(String(size));
      expect(m.sha256).toBe(i === 2 ? 'ab'.repeat(32) : '');
      expect(c.position).toBe(i * CHUNK_SIZE);
    }
  });

  it('gives the bytes protobufjs would for a oneof member, for sizes around the varint and chunk edges', async () => {
    for (const size of [1, 127, 128, 16_383, 16_384, CHUNK_SIZE, CHUNK_SIZE + 1]) {
      const { file, data } = await fileOf(size);
      const chunks = await collect(file, { field: fieldNumber('tessera.v1.SubmitJobRequest', 'data'), size });
      const expected: Buffer[] = [];
      for (let at = 0; at < size; at += CHUNK_SIZE) expected.push(Buffer.from(SubmitJobRequest.encode(SubmitJobRequest.fromObject({ data: data.subarray(at, at + CHUNK_SIZE) })).finish()));
      expect(chunks.map((c) => c.wire.toString('hex')), `size ${size}`).toEqual(expected.map((b) => b.toString('hex')));
    }
  });

  it('starts at an offset, stops at the size given (or the end without one), and sends nothing for an empty file', async () => {
    const { file, data } = await fileOf(CHUNK_SIZE + 100);
    const from = await collect(file, { field: 1, offset: CHUNK_SIZE - 50 });
    expect(Buffer.concat(from.map((c) => c.data)).equals(data.subarray(CHUNK_SIZE - 50))).toBe(true);
    expect(from.map((c) => c.position)).toEqual([CHUNK_SIZE - 50]);
    const upTo = await collect(file, { field: 1, size: 5000 });
    expect(upTo).toHaveLength(1);
    expect(upTo[0]!.data.equals(data.subarray(0, 5000))).toBe(true);
    // Asked for no more than is left: a small file's message is its own size, not a chunk's.
    expect(upTo[0]!.allocated).toBeLessThan(6000);
    expect(await collect(file, { field: 1, offset: CHUNK_SIZE + 100 })).toEqual([]);
    const empty = await fileOf(0);
    expect(await collect(empty.file, { field: 1 })).toEqual([]);
    // A file shorter than the size given ends where the file does: the caller compares.
    expect(Buffer.concat((await collect(file, { field: 1, size: 5 * CHUNK_SIZE })).map((c) => c.data)).equals(data)).toBe(true);
  });

  it('puts other fields longer than the room before the bytes in a message of their own making', async () => {
    const { file, data } = await fileOf(3000);
    const long = 'x'.repeat(300);
    const [c] = await collect(file, { field: 1, size: 3000, fields: () => encodeOutputFields({ sha256: long }) });
    const m = OutputChunk.decode(c!.wire) as unknown as { data: Uint8Array; sha256: string };
    expect(Buffer.from(m.data).equals(data)).toBe(true);
    expect(m.sha256).toBe(long);
  });

  it('leaves a handle it was given open, and stops at the signal', async () => {
    const { file, data } = await fileOf(3 * CHUNK_SIZE);
    const fh = await open(file, 'r');
    try {
      const got: Buffer[] = [];
      for await (const c of readEncodedChunks(fh, { field: 1 })) got.push(Buffer.from(c.data));
      expect(Buffer.concat(got).equals(data)).toBe(true);
      expect((await fh.stat()).size).toBe(data.length);
      const stop = new AbortController();
      const read: number[] = [];
      await expect(
        (async () => {
          for await (const c of readEncodedChunks(fh, { field: 1, signal: stop.signal })) {
            read.push(c.position);
            stop.abort(new Error('enough'));
          }
        })(),
      ).rejects.toThrow('enough');
      expect(read).toEqual([0]);
    } finally {
      await fh.close();
    }
  });

  it('refuses a field whose key takes more than one byte', async () => {
    const { file } = await fileOf(10);
    await expect(collect(file, { field: 16 })).rejects.toThrow(/field 16/);
  });

  it('is given the bytes fields the senders use by name, as numbered in the proto files', () => {
    expect(['SubmitJobRequest', 'OutputChunk', 'DataChunk', 'UploadTaskOutputRequest'].map((t) => fieldNumber(`tessera.v1.${t}`, 'data'))).toEqual([3, 1, 1, 2]);
    expect(() => fieldNumber('tessera.v1.DataChunk', 'bytes')).toThrow('tessera.v1.DataChunk has no field bytes');
  });
});

describe('passEncoded', () => {
  it('sends an encoded message as it is and anything else through the generic serialiser', () => {
    const service = loadTesseraProto().proto.tessera.v1.JobService.service;
    const serialize = passEncoded(service.DownloadOutput.responseSerialize);
    const bytes = Buffer.from([0x0a, 0x01, 0x7a]);
    expect(serialize(new EncodedMessage(bytes))).toBe(bytes);
    const generic = serialize({ data: Buffer.from('z'), offset: '7' });
    expect(OutputChunk.toObject(OutputChunk.decode(generic), { longs: String })).toEqual({ data: Buffer.from('z'), offset: '7' });
  });
});
