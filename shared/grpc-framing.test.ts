/**
 * Chunks read by readEncodedChunks go through real grpc-js calls (a client stream and a server
 * stream over loopback) framed where they lie, and arrive byte for byte; other messages are framed
 * as grpc-js frames them. Fails when a grpc-js upgrade no longer takes the in-place framing.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHUNK_SIZE } from './config.js';
import { EncodedMessage, readEncodedChunks } from './encoded-chunks.js';
import { framedInPlace, inPlaceFraming } from './grpc-framing.js';

let dir: string;
let server: grpc.Server;
let client: grpc.Client & Record<string, (...args: never[]) => unknown>;
let file: string;

const raw = (m: Buffer | EncodedMessage): Buffer => (m instanceof EncodedMessage ? m.bytes : m);
const same = (b: Buffer): Buffer => b;
const service: grpc.ServiceDefinition = {
  up: { path: '/test.Framing/Up', requestStream: true, responseStream: false, requestSerialize: raw, requestDeserialize: same, responseSerialize: raw, responseDeserialize: same, originalName: 'up' },
  down: { path: '/test.Framing/Down', requestStream: false, responseStream: true, requestSerialize: raw, requestDeserialize: same, responseSerialize: raw, responseDeserialize: same, originalName: 'down' },
};

/** The wire bytes of each chunk of `file`, copied (as the sender hands them to grpc-js), and the messages. */
async function chunksOf(f: string): Promise<{ messages: EncodedMessage[]; wire: Buffer[] }> {
  const messages: EncodedMessage[] = [];
  for await (const c of readEncodedChunks(f, { field: 2 })) messages.push(c.message);
  return { messages, wire: messages.map((m) => Buffer.from(m.bytes)) };
}

/** The same messages, byte for byte (vitest's deep equality takes seconds over MiBs). */
function expectSame(got: Buffer[], want: Buffer[]): void {
  expect(got.map((b) => b.length)).toEqual(want.map((b) => b.length));
  got.forEach((b, i) => expect(b.equals(want[i]!), `message ${i}`).toBe(true));
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-framing-'));
  file = path.join(dir, 'bytes');
  // Three full chunks and a short one: every message has room in front.
  await writeFile(file, randomBytes(3 * CHUNK_SIZE + 12_345));
  server = new grpc.Server();
  server.addService(service, {
    up: (call: grpc.ServerReadableStream<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      const got: Buffer[] = [];
      call.on('data', (b: Buffer) => got.push(b));
      call.on('end', () => callback(null, Buffer.concat(got.map((b) => Buffer.concat([Buffer.from([b.length >> 16, (b.length >> 8) & 0xff, b.length & 0xff]), b])))));
    },
    down: async (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      const { messages } = await chunksOf(file);
      for (const m of messages) call.write(m as unknown as Buffer);
      // A message without room in front goes through grpc-js's own framing.
      call.write(Buffer.from('plain'));
      call.end();
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  const Client = grpc.makeGenericClientConstructor(service, 'Framing');
  client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as typeof client;
});

afterAll(async () => {
  client?.close();
  await new Promise<void>((resolve) => (server ? server.tryShutdown(() => resolve()) : resolve()));
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('in-place framing', () => {
  it('is taken on both sides by the grpc-js this package installs', () => {
    expect(inPlaceFraming()).toEqual({ client: true, server: true });
  });

  it('sends an upload\'s chunks framed in place, byte for byte', async () => {
    const { messages, wire } = await chunksOf(file);
    expect(messages).toHaveLength(4);
    const before = framedInPlace.client;
    const echoed = await new Promise<Buffer>((resolve, reject) => {
      const call = (client['up'] as (cb: (err: Error | null, res: Buffer) => void) => grpc.ClientWritableStream<unknown>)((err, res) => (err ? reject(err) : resolve(res)));
      for (const m of messages) call.write(m);
      call.end();
    });
    expect(framedInPlace.client - before).toBe(4);
    const got: Buffer[] = [];
    for (let at = 0; at < echoed.length; ) {
      const n = (echoed[at]! << 16) | (echoed[at + 1]! << 8) | echoed[at + 2]!;
      got.push(echoed.subarray(at + 3, at + 3 + n));
      at += 3 + n;
    }
    expectSame(got, wire);
  });

  it('sends a download\'s chunks framed in place, and other messages as grpc-js does', async () => {
    const { wire } = await chunksOf(file);
    const before = framedInPlace.server;
    const got: Buffer[] = [];
    await new Promise<void>((resolve, reject) => {
      const call = (client['down'] as (req: Buffer) => grpc.ClientReadableStream<Buffer>)(Buffer.alloc(0));
      call.on('data', (b: Buffer) => got.push(b));
      call.on('end', resolve);
      call.on('error', reject);
    });
    expect(framedInPlace.server - before).toBe(4);
    expectSame(got, [...wire, Buffer.from('plain')]);
  });
});
