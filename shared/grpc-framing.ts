/**
 * Bulk-byte messages framed where they lie.
 *
 * grpc-js puts every message it sends behind gRPC's 5-byte frame header (a flag and the length) by
 * copying it into a fresh buffer five bytes longer: on the client in its identity "compression"
 * handler, on the server in `serializeMessage`. For the 1 MiB chunks of an upload, a download or a
 * worker's transfers, that copy and the garbage it leaves were a quarter of the sender's CPU. The
 * chunks {@link readEncodedChunks} makes have room in front of them, so the header can be written
 * there instead and the same memory handed to HTTP/2.
 *
 * This reaches into grpc-js's internals (the client's identity handler, the server call's
 * `serializeMessage`), so it is careful: each side is changed only where it looks as expected, it
 * takes only messages marked as having the room, and everything else goes through grpc-js's own
 * code. {@link inPlaceFraming} says which sides are on; a test fails when a grpc-js upgrade turns
 * one off, so that the copy does not come back unnoticed.
 */
import { createRequire } from 'node:module';

/** gRPC's frame header: a compressed flag and the message length (big-endian). */
export const FRAME_HEADER_BYTES = 5;

/** Message buffers with at least {@link FRAME_HEADER_BYTES} bytes of their own allocation in front, free to overwrite. */
const roomy = new WeakSet<Buffer>();

/** Marks `bytes` as framable in place: the {@link FRAME_HEADER_BYTES} bytes before it belong to its buffer and are unused. */
export function markFramable(bytes: Buffer): void {
  roomy.add(bytes);
}

/** How many messages each side framed in place (for the tests). */
export const framedInPlace = { client: 0, server: 0 };

/** `bytes` with its frame header written in front of it (uncompressed), as one view; undefined where it has no room. */
function frameInPlace(bytes: Buffer): Buffer | undefined {
  if (!roomy.has(bytes)) return undefined;
  const framed = Buffer.from(bytes.buffer, bytes.byteOffset - FRAME_HEADER_BYTES, bytes.length + FRAME_HEADER_BYTES);
  framed[0] = 0;
  framed.writeUInt32BE(bytes.length, 1);
  return framed;
}

type WriteMessage = (this: unknown, message: Buffer, compress: boolean) => Promise<Buffer>;
type SerializeMessage = (this: { handler?: { serialize?: (value: unknown) => Buffer } }, value: unknown) => Buffer;

let installed: { client: boolean; server: boolean } | undefined;

/** Installs the in-place framing on both sides (once per process); says which sides took it. */
export function inPlaceFraming(): { client: boolean; server: boolean } {
  installed ??= { client: installClient(), server: installServer() };
  return installed;
}

function internals(path: string): Record<string, unknown> | undefined {
  try {
    return createRequire(import.meta.url)(`@grpc/grpc-js/build/src/${path}`) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** The client's identity handler: the class of a fresh compression filter's `sendCompression`. */
function installClient(): boolean {
  const Filter = internals('compression-filter.js')?.['CompressionFilter'] as (new (options: object, shared: object) => { sendCompression?: object }) | undefined;
  if (typeof Filter !== 'function') return false;
  let handler: object | undefined;
  try {
    handler = new Filter({}, {}).sendCompression;
  } catch {
    return false;
  }
  const proto = handler && (Object.getPrototypeOf(handler) as { writeMessage?: WriteMessage; constructor?: { name?: string } });
  if (!proto || proto.constructor?.name !== 'IdentityHandler' || !looksLikeFraming(proto.writeMessage, 2)) return false;
  const original = proto.writeMessage;
  proto.writeMessage = async function (message: Buffer, compress: boolean): Promise<Buffer> {
    const framed = Buffer.isBuffer(message) ? frameInPlace(message) : undefined;
    if (!framed) return original.call(this, message, compress);
    framedInPlace.client++;
    return framed;
  };
  return true;
}

/** The server call's `serializeMessage`, which serialises with the method's handler and then frames. */
function installServer(): boolean {
  const Call = internals('server-interceptors.js')?.['BaseServerInterceptingCall'] as { prototype?: { serializeMessage?: SerializeMessage } } | undefined;
  const proto = Call?.prototype;
  if (!proto || !looksLikeFraming(proto.serializeMessage, 1) || !String(proto.serializeMessage).includes('this.handler.serialize(')) return false;
  const original = proto.serializeMessage;
  proto.serializeMessage = function (value: unknown): Buffer {
    const handler = this.handler;
    if (typeof handler?.serialize !== 'function') return original.call(this, value);
    const bytes = handler.serialize(value);
    const framed = Buffer.isBuffer(bytes) ? frameInPlace(bytes) : undefined;
    if (framed) {
      framedInPlace.server++;
      return framed;
    }
    // What grpc-js does (responses are never compressed): the message copied behind its header.
    const output = Buffer.allocUnsafe(bytes.byteLength + FRAME_HEADER_BYTES);
    output[0] = 0;
    output.writeUInt32BE(bytes.byteLength, 1);
    bytes.copy(output, FRAME_HEADER_BYTES);
    return output;
  };
  return true;
}

/** A function of `arity` arguments whose body frames a message as grpc-js 1.x does: the one to replace. */
function looksLikeFraming(fn: unknown, arity: number): fn is (...args: never[]) => unknown {
  if (typeof fn !== 'function' || fn.length !== arity) return false;
  const body = String(fn);
  return body.includes('allocUnsafe(') && body.includes('writeUInt32BE(') && body.includes('.copy(');
}
