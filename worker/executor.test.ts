/**
 * A worker writing outputs into a shared folder (writeSharedOutput), on the real file system: the
 * temporary name is its lease's, made exclusively, so nothing someone put there first (a file, a
 * symlink to a file the worker may write) is written through, replaced or removed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { lstat, mkdtemp, readFile, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Assignment__Output } from '../shared/proto/generated/tessera/v1/Assignment.js';
import { sharedOutputTemp } from '../shared/shared-output.js';
import { writeSharedOutput } from './executor.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-executor-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const lease = { job_id: '0b5f3c52-7a51-4d2e-9a40-0f2b8a3c1d11', subtask_id: '0b5f3c52-0-3-copy', attempt: 1, shared_output_token: 'tok-1' } as Assignment__Output;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('writeSharedOutput', () => {
  it('writes small and streamed outputs at the lease temporary name, with their size and SHA-256', async () => {
    for (const bytes of [1000, 3 * 1024 * 1024 + 5]) {
      const data = randomBytes(bytes);
      const src = path.join(dir, `src-${bytes}.bin`);
      await writeFile(src, data);
      const ref = await writeSharedOutput(lease, { name: `out-${bytes}.bin`, path: src, source: 'in.bin' }, dir, new AbortController().signal);
      expect(ref.shared_path).toBe(sharedOutputTemp(dir, lease.job_id, lease.subtask_id, lease.shared_output_token, `out-${bytes}.bin`));
      expect(ref).toMatchObject({ name: `out-${bytes}.bin`, size: String(bytes), sha256: sha(data), inline: false, source: 'in.bin' });
      expect(sha(await readFile(ref.shared_path!))).toBe(sha(data));
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
    expect((err as Error).message).toMatch(/output big\.bin: something else took its temporary name .* in the shared folder/);
    expect(await readFile(victim, 'utf8')).toBe('unchanged');
    expect((await lstat(temp)).isSymbolicLink()).toBe(true);
    expect(await readlink(temp)).toBe(victim);
    // Another lease of the same subtask has other names: its write goes through.
    const next = { ...lease, attempt: 2, shared_output_token: 'tok-2' } as Assignment__Output;
    const ref = await writeSharedOutput(next, { name: 'big.bin', path: src }, dir, new AbortController().signal);
    expect(ref.shared_path).not.toBe(temp);
    expect((await readdir(dir)).sort()).toEqual(['big.bin', path.basename(temp), path.basename(ref.shared_path!), 'victim.txt'].sort());
  });
});
