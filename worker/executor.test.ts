/**
 * A worker writing outputs into a shared folder (writeSharedOutput), on the real file system: the
 * temporary name is its lease's, made exclusively, so nothing someone put there first (a file, a
 * symlink to a file the worker may write) is written through, replaced or removed.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Assignment__Output } from '../shared/proto/generated/tessera/v1/Assignment.js';
import type { OutputRef } from '../shared/proto/generated/tessera/v1/OutputRef.js';
import { sharedOutputTemp } from '../shared/shared-output.js';
import { writeSharedOutput } from './executor.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-executor-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const lease = { job_id: '0b5f3c52-7a51-4d2e-9a40-0f2b8a3c1d11', subtask_id: '0b5f3c52-0-3-copy', attempt: 1, shared_output_token: 'tok-1', inputs: [] } as unknown as Assignment__Output;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** writeSharedOutput, expected to place the output. */
async function place(...args: Parameters<typeof writeSharedOutput>): Promise<OutputRef> {
  const ref = await writeSharedOutput(...args);
  expect(ref).toBeDefined();
  return ref!;
}

describe('writeSharedOutput', () => {
  it('writes small and streamed outputs at the lease temporary name, with their size and SHA-256', async () => {
    for (const bytes of [1000, 3 * 1024 * 1024 + 5]) {
      const data = randomBytes(bytes);
      const src = path.join(dir, `src-${bytes}.bin`);
      await writeFile(src, data);
      const ref = await place(lease, { name: `out-${bytes}.bin`, path: src, source: 'in.bin' }, dir, new AbortController().signal);
      expect(ref.shared_path).toBe(sharedOutputTemp(dir, lease.job_id, lease.subtask_id, lease.shared_output_token, `out-${bytes}.bin`));
      expect(ref).toMatchObject({ name: `out-${bytes}.bin`, size: String(bytes), sha256: sha(data), inline: false, source: 'in.bin' });
      expect(sha(await readFile(ref.shared_path!))).toBe(sha(data));
    }
  });

  it('links a file the processor made when it can, and copies an input passed through (a symlink to where it was read in place)', async () => {
    const data = randomBytes(1024 * 1024 + 9);
    const made = path.join(dir, 'made.bin');
    await writeFile(made, data);
    const linked = await place(lease, { name: 'made.bin', path: made }, dir, new AbortController().signal);
    expect(linked).toMatchObject({ size: String(data.length), sha256: sha(data) });
    expect((await lstat(linked.shared_path!)).ino).toBe((await lstat(made)).ino);

    const viaLink = path.join(dir, 'read-in-place.bin');
    await symlink(made, viaLink);
    const copied = await place(lease, { name: 'passed.bin', path: viaLink }, dir, new AbortController().signal);
    const st = await lstat(copied.shared_path!);
    expect(st.isFile()).toBe(true);
    expect(st.ino).not.toBe((await lstat(made)).ino);
    expect(copied).toMatchObject({ size: String(data.length), sha256: sha(data) });
    expect(sha(await readFile(copied.shared_path!))).toBe(sha(data));
  });

  it('takes the checksum of an input read in place and handed back from the assignment, unless the file is no longer that input', async () => {
    const data = randomBytes(512 * 1024);
    const input = path.join(dir, 'spooled.bin');
    await writeFile(input, data);
    const st = await stat(input);
    // The assignment's checksum stands for the file while its identity holds: it is not read again.
    const stated = 'ab'.repeat(32);
    const a = { ...lease, inputs: [{ name: 'spooled.bin', size: String(data.length), sha256: stated, shared_path: input, mtime_ms: st.mtimeMs, ino: String(st.ino), inline: false }] } as unknown as Assignment__Output;
    const viaLink = path.join(dir, 'work-spooled.bin');
    await symlink(input, viaLink);
    const ref = await place(a, { name: 'spooled.bin', path: viaLink }, dir, new AbortController().signal);
    expect(ref).toMatchObject({ size: String(data.length), sha256: stated });
    expect(sha(await readFile(ref.shared_path!))).toBe(sha(data));
    // Changed since it was submitted (another modification time): hashed as it is.
    await utimes(input, new Date(), new Date(Date.now() + 5000));
    const next = { ...a, shared_output_token: 'tok-3' } as Assignment__Output;
    expect((await place(next, { name: 'spooled.bin', path: viaLink }, dir, new AbortController().signal)).sha256).toBe(sha(data));
  });

  it('leaves an output to the upload when the folder has no room for it, and nothing behind', async () => {
    const small = path.join(dir, 'small-disk');
    await mkdir(small);
    // A 1 MiB tmpfs (the tests run as root, as CI does).
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small]);
    try {
      for (const [what, file] of [['made', path.join(dir, 'too-big.bin')], ['handed back', path.join(dir, 'too-big-link.bin')]] as const) {
        if (what === 'made') await writeFile(file, randomBytes(3 * 1024 * 1024));
        else await symlink(path.join(dir, 'too-big.bin'), file);
        expect(await writeSharedOutput(lease, { name: `${what}.bin`, path: file }, small, new AbortController().signal)).toBeUndefined();
        expect(await readdir(small)).toEqual([]);
      }
    } finally {
      execFileSync('umount', ['-l', small]);
    }
  });

  it('refuses a temporary name someone took first, without writing through or removing what is there', async () => {
    const victim = path.join(dir, 'victim.txt');
    await writeFile(victim, 'unchanged');
    const src = path.join(dir, 'big.bin');
    await writeFile(src, randomBytes(2 * 1024 * 1024));
    const temp = sharedOutputTemp(dir, lease.job_id, lease.subtask_id, lease.shared_output_token, 'big.bin');
    await symlink(victim, temp);
    const err = await writeSharedOutput(lease, { name: 'big.bin', path: src }, dir, new AbortController().signal).catch((e: unknown) => e);
    expect(err).toMatchObject({ codeName: 'ALREADY_EXISTS', retryable: true });
    expect((err as Error).message).toMatch(/output big\.bin: something else took its temporary name /);
    expect(await readFile(victim, 'utf8')).toBe('unchanged');
    expect((await lstat(temp)).isSymbolicLink()).toBe(true);
    expect(await readlink(temp)).toBe(victim);
    // Another lease of the same subtask has other names: its write goes through.
    const next = { ...lease, attempt: 2, shared_output_token: 'tok-2' } as Assignment__Output;
    const ref = await place(next, { name: 'big.bin', path: src }, dir, new AbortController().signal);
    expect(ref.shared_path).not.toBe(temp);
    expect((await readdir(dir)).sort()).toEqual(['big.bin', path.basename(temp), path.basename(ref.shared_path!), 'victim.txt'].sort());
  });
});
