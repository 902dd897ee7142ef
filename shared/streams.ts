import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { CHUNK_SIZE } from './config.js';

/** SHA-256 of a file, streamed. */
export async function sha256File(file: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: CHUNK_SIZE, signal })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export function sha256(data: Buffer | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export type { Hash };
export const newSha256 = (): Hash => createHash('sha256');

/**
 * Writes one message and, when the stream's buffer is full, waits for 'drain' (or the signal).
 * Every streaming writer goes through this so backpressure is always honoured.
 *
 * A stream that has failed or closed never drains: its error is thrown instead of a wait for
 * ever. A file stream whose write failed (a full disk) destroys itself, and a later write only
 * returns false; a loop writing an upload into such a file hung there, and the uploader with it.
 */
export async function writeWithBackpressure<T>(stream: Writable & { write(chunk: T): boolean }, chunk: T, signal?: AbortSignal): Promise<void> {
  if (stream.errored) throw stream.errored;
  if (stream.write(chunk)) return;
  const closed = (): Error => stream.errored ?? new Error('the stream was closed before it took everything');
  if (stream.destroyed) throw closed();
  // Both waits end together: the one that loses is stopped by `done` (its rejection is handled by the race).
  const done = new AbortController();
  const waits = { signal: signal ? AbortSignal.any([signal, done.signal]) : done.signal };
  try {
    await Promise.race([
      once(stream, 'drain', waits),
      // 'error' rejects either wait; a close without one (destroyed by its owner) ends it too.
      once(stream, 'close', waits).then(() => {
        throw closed();
      }),
    ]);
  } finally {
    done.abort();
  }
}

/**
 * The callback of a client-streaming call that settles `resolve`/`reject` and, with them, the
 * returned `signal`, to hand to the loop that writes the call (with `also`, aborted by it too).
 * grpc-js never drains a call that has its answer: a writer waiting for room after a refusal
 * mid-stream would wait forever, holding what it reads open.
 */
export function endsWithAnswer<T>(resolve: (value: T) => void, reject: (err: unknown) => void, also?: AbortSignal): { signal: AbortSignal; callback: (err: unknown, value?: T) => void } {
  const ended = new AbortController();
  return {
    signal: also ? AbortSignal.any([also, ended.signal]) : ended.signal,
    callback: (err, value) => {
      ended.abort(err ?? new Error('the call was answered'));
      if (err || value === undefined) reject(err);
      else resolve(value);
    },
  };
}
