/**
 * writeWithBackpressure on streams that fail or close while a writer loops over them: the loop
 * must end with the stream's error, never wait for a 'drain' that cannot come. Real file streams
 * on a full tmpfs, and a Writable destroyed by its owner.
 */
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { withSmallDisk } from '../test/helpers/tmpfs.js';
import { writeWithBackpressure } from './streams.js';

const disk = withSmallDisk('tessera-streams-');

/** Writes `count` chunks of `bytes` through writeWithBackpressure, as the uploads do; what it threw. */
async function writeAll(out: Writable, count: number, bytes: number): Promise<unknown> {
  try {
    for (let i = 0; i < count; i++) await writeWithBackpressure(out, Buffer.alloc(bytes, i));
    return undefined;
  } catch (err) {
    return err;
  }
}

describe('writeWithBackpressure', () => {
  it('ends a loop writing into a file on a full disk with ENOSPC', async () => {
    // The failure comes while the loop waits for 'drain'.
    const file = path.join(disk.small, 'full.bin');
    const out = createWriteStream(file, { highWaterMark: 16 * 1024 });
    out.on('error', () => undefined);
    expect((await writeAll(out, 16, 512 * 1024)) as NodeJS.ErrnoException).toMatchObject({ code: 'ENOSPC' });
    await rm(file, { force: true });
    // The failure came before this write: the stream has destroyed itself, write() only returns
    // false, and the loop used to wait there for ever.
    const late = createWriteStream(file, { highWaterMark: 64 * 1024 * 1024 });
    const failed = once(late, 'error');
    late.write(Buffer.alloc(2 * 1024 * 1024));
    expect(await failed).toMatchObject([{ code: 'ENOSPC' }]);
    await expect(writeWithBackpressure(late, Buffer.alloc(1024))).rejects.toMatchObject({ code: 'ENOSPC' });
    await rm(file, { force: true });
  });

  it('ends a loop waiting for room in a stream its owner destroys, with an error', async () => {
    // Takes writes but never finishes them: the buffer fills and the writer waits.
    const stuck = new Writable({ highWaterMark: 1024, write: () => undefined });
    const loop = writeAll(stuck, 100, 1024);
    setTimeout(() => stuck.destroy(), 50);
    expect(String(await loop)).toMatch(/closed before it took everything/);
    // And one that failed: its error.
    const failing = new Writable({ highWaterMark: 1024, write: () => undefined });
    const second = writeAll(failing, 100, 1024);
    failing.on('error', () => undefined);
    setTimeout(() => failing.destroy(Object.assign(new Error('device gone'), { code: 'EIO' })), 50);
    expect((await second) as NodeJS.ErrnoException).toMatchObject({ code: 'EIO' });
  });

  it('still waits for room and goes on, and still stops at the signal', async () => {
    const taken: number[] = [];
    const slow = new Writable({ highWaterMark: 1024, write: (chunk: Buffer, _enc, cb) => void setTimeout(() => (taken.push(chunk[0]!), cb()), 2) });
    expect(await writeAll(slow, 20, 1024)).toBeUndefined();
    await new Promise<void>((resolve) => slow.end(resolve));
    expect(taken).toEqual(Array.from({ length: 20 }, (_, i) => i));
    const never = new Writable({ highWaterMark: 1024, write: () => undefined });
    const stop = new AbortController();
    setTimeout(() => stop.abort(), 20);
    await writeWithBackpressure(never, Buffer.alloc(512), stop.signal); // fits in the buffer
    await expect(writeWithBackpressure(never, Buffer.alloc(1024), stop.signal)).rejects.toMatchObject({ name: 'AbortError' });
  });
});
