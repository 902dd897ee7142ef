import { mkdir, mkdtemp, realpath, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Spool } from './spool.js';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-spool-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('spool files offered to workers on this machine', () => {
  it('are offered by their path without symlinks, with the inode and time a worker checks, once offerLocalReads has run', async () => {
    const real = path.join(dir, 'real-data');
    await mkdir(real);
    // The data dir reached through a symlink, as a configured path may be.
    await symlink(real, path.join(dir, 'data'));
    const spool = new Spool(path.join(dir, 'data', 'spool'));
    const file = spool.inputPath('j1', 'a.bin');
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, 'abc');
    expect(spool.localFile(file), 'not offered before offerLocalReads').toBeUndefined();

    await spool.offerLocalReads();
    const st = await stat(file);
    const offered = spool.localFile(file);
    expect(offered).toEqual({ path: await realpath(file), ino: st.ino, mtimeMs: st.mtimeMs });
    expect(offered!.path.startsWith(await realpath(real))).toBe(true);
    // Outside the spool, or not a file there: nothing.
    expect(spool.localFile(path.join(dir, 'elsewhere.bin'))).toBeUndefined();
    expect(spool.localFile(path.join(dir, 'data', 'spool-other', 'x'))).toBeUndefined();
    expect(spool.localFile(spool.jobDir('j1'))).toBeUndefined();
  });

  it('looks a file up until it exists, remembers it, and forgets the files of a job as they are removed', async () => {
    const spool = new Spool(path.join(dir, 'data2', 'spool'));
    await spool.offerLocalReads();
    const file = spool.inputPath('j2', 'late.bin');
    expect(spool.localFile(file), 'not there yet').toBeUndefined();
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, 'x');
    const first = spool.localFile(file);
    expect(first?.ino).toBe((await stat(file)).ino);
    // Remembered: a file of the spool is written once, then only read or removed.
    await writeFile(file, 'changed');
    expect(spool.localFile(file)).toEqual(first);
    await spool.removeIntermediates('j2', { inputs: true });
    expect(spool.localFile(file), 'removed with the job').toBeUndefined();
  });

  it('offers a file it wrote itself (an upload) as it lies in place', async () => {
    const spool = new Spool(path.join(dir, 'data3', 'spool'));
    await spool.offerLocalReads();
    const file = spool.inputPath('j3', 'up.bin');
    async function* chunks(): AsyncGenerator<Buffer> {
      yield Buffer.from('uploaded');
    }
    await spool.writeAtomic(file, chunks(), { what: 'input up.bin' });
    const st = await stat(file);
    expect(spool.localFile(file)).toEqual({ path: await realpath(file), ino: st.ino, mtimeMs: st.mtimeMs });
  });
});
