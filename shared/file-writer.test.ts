/**
 * threadedWriteStream: the file stream the spool, a worker's fetched inputs and the client's
 * downloads write through, its writes made by a thread in 64 KiB pieces. Real files (and a full
 * tmpfs), real threads; the bytes, the errors, and that nothing writes after 'close'.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { finished } from 'node:stream/promises';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { withSmallDisk } from '../test/helpers/tmpfs.js';
import { closeWriteStream, threadedWriteStream } from './file-writer.js';
import { writeWithBackpressure } from './streams.js';

const MiB = 1024 * 1024;
const disk = withSmallDisk('tessera-file-writer-');

/** `data` cut into pieces of the given sizes, in turn, to the end. */
function cut(data: Buffer, sizes: number[]): Buffer[] {
  const pieces: Buffer[] = [];
  for (let at = 0, i = 0; at < data.length; i++) {
    const n = Math.min(sizes[i % sizes.length]!, data.length - at);
    pieces.push(data.subarray(at, at + n));
    at += n;
  }
  return pieces;
}

describe('threadedWriteStream', () => {
  it('writes chunks of any size (smaller and larger than its slots) in order, and truncates a file it replaces', async () => {
    const file = path.join(disk.dir, 'sizes.bin');
    await writeFile(file, Buffer.alloc(20 * MiB, 7));
    const data = randomBytes(11 * MiB + 12345);
    const out = threadedWriteStream(file);
    for (const piece of cut(data, [1, 100 * 1024, 2.5 * MiB, MiB, 65537, 3 * MiB])) await writeWithBackpressure(out, piece);
    out.end();
    await finished(out);
    expect(out.closed).toBe(true);
    expect((await readFile(file)).equals(data)).toBe(true);
  });

  it('goes on from `start` in an existing file (r+), keeping what is before it', async () => {
    const file = path.join(disk.dir, 'resume.bin');
    const data = randomBytes(5 * MiB + 3);
    await writeFile(file, data.subarray(0, 2 * MiB + 1));
    const out = threadedWriteStream(file, { start: 2 * MiB + 1, flags: 'r+' });
    for (const piece of cut(data.subarray(2 * MiB + 1), [MiB])) await writeWithBackpressure(out, piece);
    out.end();
    await finished(out);
    expect((await readFile(file)).equals(data)).toBe(true);
    // r+ never makes a file.
    const missing = threadedWriteStream(path.join(disk.dir, 'absent.bin'), { flags: 'r+' });
    await expect(finished(missing)).rejects.toMatchObject({ code: 'ENOENT', syscall: 'open' });
    // Nor writes through a link put in its place.
    const target = path.join(disk.dir, 'target.bin');
    await writeFile(target, 'kept');
    await symlink(target, path.join(disk.dir, 'link.bin'));
    for (const flags of ['r+', 'w'] as const) await expect(finished(threadedWriteStream(path.join(disk.dir, 'link.bin'), { flags }))).rejects.toMatchObject({ code: 'ELOOP' });
    expect(await readFile(target, 'utf8')).toBe('kept');
  });

  it('fails with the file system\'s error: a folder that is not there, a full disk', async () => {
    const nowhere = threadedWriteStream(path.join(disk.dir, 'no-such-folder', 'x.bin'));
    await expect(finished(nowhere)).rejects.toMatchObject({ code: 'ENOENT', path: path.join(disk.dir, 'no-such-folder', 'x.bin') });

    // The loop writing into it ends with ENOSPC (the upload's and the download's way of writing).
    const file = path.join(disk.small, 'full.bin');
    const out = threadedWriteStream(file);
    out.on('error', () => undefined);
    let failed: unknown;
    try {
      for (let i = 0; i < 8; i++) await writeWithBackpressure(out, Buffer.alloc(MiB, i));
    } catch (err) {
      failed = err;
    }
    expect(failed).toMatchObject({ code: 'ENOSPC' });
    await closeWriteStream(out);
    // Closed by the thread: the file can go and nothing makes it again.
    await rm(file);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await expect(stat(file)).rejects.toMatchObject({ code: 'ENOENT' });

    // A failure in the last writes surfaces at the end.
    const last = threadedWriteStream(path.join(disk.small, 'last.bin'));
    last.write(Buffer.alloc(2 * MiB));
    last.end();
    await expect(finished(last)).rejects.toMatchObject({ code: 'ENOSPC' });
    await rm(path.join(disk.small, 'last.bin'), { force: true });
  });

  it('once destroyed and closed, writes nothing more, and several streams at once (more than the pool holds) each get their own bytes', async () => {
    const file = path.join(disk.dir, 'destroyed.bin');
    const out = threadedWriteStream(file);
    for (let i = 0; i < 16; i++) out.write(Buffer.alloc(MiB, i));
    await closeWriteStream(out);
    const size = (await stat(file)).size;
    expect(size % MiB).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await stat(file)).size).toBe(size);

    // Six streams, four slots each, share the process's eight: a seventh destroyed while its writes
    // wait for the pool gives its places back, and the others go on.
    const datas = Array.from({ length: 6 }, (_, i) => randomBytes(3 * MiB + i * 1000));
    const dropped = threadedWriteStream(path.join(disk.dir, 'dropped.bin'));
    dropped.on('error', () => undefined);
    await Promise.all([
      (async () => {
        for (let i = 0; i < 8; i++) dropped.write(Buffer.alloc(MiB, i));
        await new Promise((resolve) => setTimeout(resolve, 1));
        await closeWriteStream(dropped);
      })(),
      ...datas.map(async (data, i) => {
        const s = threadedWriteStream(path.join(disk.dir, `many-${i}.bin`));
        for (const piece of cut(data, [MiB - i, 300 * 1024])) await writeWithBackpressure(s, piece);
        s.end();
        await finished(s);
      }),
    ]);
    for (const [i, data] of datas.entries()) expect((await readFile(path.join(disk.dir, `many-${i}.bin`))).equals(data)).toBe(true);
  });

  it('does not keep a process up once its files are written', async () => {
    // The compiled module (npm test builds first), in a process of its own that must end by itself.
    const module = path.resolve('dist/shared/file-writer.js');
    const file = path.join(disk.dir, 'child.bin');
    const script = `import { threadedWriteStream } from ${JSON.stringify(module)};
      const out = threadedWriteStream(${JSON.stringify(file)});
      out.write(Buffer.alloc(3 * 1024 * 1024, 1));
      out.end(() => console.log('written'));`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { timeout: 20_000 });
    expect(stdout.trim()).toBe('written');
    expect((await stat(file)).size).toBe(3 * MiB);
  });
});
