/**
 * The shared-root checks on a real file system: which folders may be shared at all, how a
 * reference is resolved, and how a file replaced after submission is caught.
 */
import { execFileSync } from 'node:child_process';
import { chmod, link, mkdir, mkdtemp, readdir, realpath, rename, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SharedRoots } from './shared-inputs.js';

let dir: string;
let media: string;
let data: string;

beforeAll(async () => {
  dir = await realpath(await mkdtemp(path.join(os.tmpdir(), 'tessera-roots-')));
  media = path.join(dir, 'media');
  data = path.join(dir, 'data');
  await mkdir(media);
  await mkdir(data);
  await mkdir(path.join(dir, 'outside'));
  await writeFile(path.join(media, 'a.bin'), 'aaaa');
  await writeFile(path.join(dir, 'outside', 'b.bin'), 'bbbb');
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const code = async (p: Promise<unknown>): Promise<number | undefined> => p.then(() => undefined, (e: { code?: number }) => e.code);

describe('SharedRoots', () => {
  it('refuses to share the whole file system, system folders or anything overlapping the data dir', async () => {
    await expect(SharedRoots.create(['/'], data)).rejects.toThrow(/the whole file system cannot be shared/);
    await expect(SharedRoots.create(['/proc'], data)).rejects.toThrow(/a system folder cannot be shared/);
    await expect(SharedRoots.create([dir], data)).rejects.toThrow(/overlaps the data dir/);
    await expect(SharedRoots.create([path.join(data)], data)).rejects.toThrow(/overlaps the data dir/);
    await expect(SharedRoots.create([path.join(dir, 'nope')], data)).rejects.toThrow(/no such folder/);
    expect((await SharedRoots.create([`${media}/`], data)).list).toEqual([media]);
  });

  it('refuses paths outside the roots before looking them up, and what is not a regular file', async () => {
    const roots = await SharedRoots.create([media], data);
    // Outside, whether it exists or not: the same answer, so nothing can be probed.
    expect(await code(roots.resolve('x', path.join(dir, 'outside', 'b.bin')))).toBe(status.PERMISSION_DENIED);
    expect(await code(roots.resolve('x', path.join(dir, 'outside', 'missing.bin')))).toBe(status.PERMISSION_DENIED);
    expect(await code(roots.resolve('x', `${media}/../outside/b.bin`))).toBe(status.PERMISSION_DENIED);
    expect(await code(roots.resolve('x', path.join(media, 'missing.bin')))).toBe(status.NOT_FOUND);
    // A FIFO is refused at once rather than blocking the coordinator on open.
    execFileSync('mkfifo', [path.join(media, 'pipe')]);
    expect(await code(roots.resolve('x', path.join(media, 'pipe')))).toBe(status.INVALID_ARGUMENT);
    const f = await roots.resolve('a.bin', path.join(media, 'a.bin'));
    expect(f).toMatchObject({ name: 'a.bin', path: path.join(media, 'a.bin'), size: 4, sha256: '' });
    await roots.assertUnchanged(f);
  });

  it('folds `..` as written before it resolves or makes anything: `lnk/..` is not taken through a link that leads outside', async () => {
    const renders = path.join(dir, 'renders');
    await mkdir(path.join(dir, 'outside', 'deep'), { recursive: true });
    await mkdir(renders);
    // Someone who may write under the roots links a folder from outside in.
    await symlink(path.join(dir, 'outside', 'deep'), path.join(media, 'lnk'));
    await symlink(path.join(dir, 'outside', 'deep'), path.join(renders, 'lnk'));
    const roots = await SharedRoots.create([media], data, [renders]);
    // As written, <media>/b.bin; through the link, <outside>/b.bin, which exists: the answer must
    // not tell whether files outside exist.
    expect(await code(roots.resolve('x', `${media}/lnk/../b.bin`))).toBe(await code(roots.resolve('y', `${media}/lnk/../nothing.bin`)));
    // An output folder asked for the same way is made where it reads, inside; nothing outside.
    expect(await roots.resolveOutputDir(`${renders}/lnk/../made/sub`)).toBe(path.join(renders, 'made', 'sub'));
    await expect(stat(path.join(dir, 'outside', 'made'))).rejects.toThrow(/ENOENT/);
    // Through the link itself, the folder made would be outside: refused, and not made.
    expect(await code(roots.resolveOutputDir(`${renders}/lnk/made`))).toBe(status.PERMISSION_DENIED);
    await expect(stat(path.join(dir, 'outside', 'deep', 'made'))).rejects.toThrow(/ENOENT/);
  });

  it('refuses an output folder with control or invisible characters (INVALID_ARGUMENT, shown quoted), and makes nothing', async () => {
    const out = path.join(dir, 'odd-renders');
    await mkdir(out);
    const roots = await SharedRoots.create([media], data, [out]);
    // Before: a NUL was FAILED_PRECONDITION "cannot create it: ERR_INVALID_ARG_VALUE", with the NUL
    // in the message; a line break or a right-to-left override was made in the root.
    for (const name of ['a\0b', 'line\nbreak', 'report\u202Egnp.exe', 'zero\u200Bwidth']) {
      const err = await roots.resolveOutputDir(path.join(out, name)).then(
        () => undefined,
        (e: { code?: number; message?: string }) => e,
      );
      expect(err?.code, JSON.stringify(name)).toBe(status.INVALID_ARGUMENT);
      expect(err?.message).toContain(`spec.shared_output_dir ${JSON.stringify(path.join(out, name))}: contains`);
    }
    expect(await readdir(out)).toEqual([]);
    // Letters of any script are names like any other.
    expect(await roots.resolveOutputDir(path.join(out, 'rendus-été-日本'))).toBe(path.join(out, 'rendus-été-日本'));
  });

  it('refuses a file with other names (hard links), which may lie outside the roots, unless allowed', async () => {
    const roots = await SharedRoots.create([media], data);
    // A hard link inside the root to a file outside it: realpath says it is inside.
    const secret = path.join(dir, 'outside', 'hard-secret.bin');
    await writeFile(secret, 'secret bytes');
    const inRoot = path.join(media, 'hard.bin');
    await link(secret, inRoot);
    expect(await realpath(inRoot)).toBe(inRoot);
    const refused = await roots.lookup('hard.bin', inRoot, 64).then(
      () => undefined,
      (e: { code?: number; message?: string; input?: string }) => e,
    );
    expect(refused?.code).toBe(status.PERMISSION_DENIED);
    expect(refused?.input).toBe('hard.bin');
    expect(refused?.message).toBe(
      `input hard.bin: shared path ${inRoot} is a file with 2 names (hard links), and the coordinator cannot tell whether the others lie outside its shared folders: submit a copy, or start the coordinator with --shared-root-allow-hardlinks where hard links under the shared folders are made on purpose`,
    );
    // Two names both inside the root look the same from here: refused too.
    await link(path.join(media, 'a.bin'), path.join(media, 'a-again.bin'));
    expect(await code(roots.resolve('a-again.bin', path.join(media, 'a-again.bin')))).toBe(status.PERMISSION_DENIED);
    expect(await code(roots.resolve('a.bin', path.join(media, 'a.bin')))).toBe(status.PERMISSION_DENIED);
    await rm(path.join(media, 'a-again.bin'));
    // The site that links on purpose says so.
    const allowing = await SharedRoots.create([media], data, [], { allowHardlinks: true });
    const taken = await allowing.lookup('hard.bin', inRoot, 64);
    expect(taken.file).toMatchObject({ name: 'hard.bin', path: inRoot, size: 12 });
    expect(taken.head?.toString()).toBe('secret bytes');
    await allowing.assertUnchanged(taken.file);
    await rm(inRoot);
    // Once it has one name again, it is taken by default.
    expect((await roots.resolve('a.bin', path.join(media, 'a.bin'))).size).toBe(4);
  });

  it('reads the head of a file through the lookup: the bytes asked for, fewer of a shorter file, none of a FIFO', async () => {
    const roots = await SharedRoots.create([media], data);
    await writeFile(path.join(media, 'long.bin'), Buffer.from('0123456789'));
    const long = await roots.lookup('long.bin', path.join(media, 'long.bin'), 4);
    expect(long.head?.toString()).toBe('0123');
    expect(long.file).toMatchObject({ name: 'long.bin', size: 10 });
    expect((await roots.lookup('a.bin', path.join(media, 'a.bin'), 64))?.head?.toString()).toBe('aaaa');
    expect((await roots.lookup('a.bin', path.join(media, 'a.bin'), 0)).head).toBeUndefined();
    if (!(await stat(path.join(media, 'pipe')).catch(() => undefined))) execFileSync('mkfifo', [path.join(media, 'pipe')]);
    expect(await code(roots.lookup('x', path.join(media, 'pipe'), 64))).toBe(status.INVALID_ARGUMENT);
  });

  it('catches a file replaced after submission: by a symlink, or by another file of the same size and time', async () => {
    const roots = await SharedRoots.create([media], data);
    const file = path.join(media, 'decoy.bin');
    await writeFile(file, 'dddd');
    const f = await roots.resolve('decoy.bin', file);
    const { mtime } = await stat(file);

    // Swapped for a symlink to a file elsewhere with the same size and time.
    const target = path.join(dir, 'outside', 'b.bin');
    await utimes(target, mtime, mtime);
    await rm(file);
    await symlink(target, file);
    await expect(roots.assertUnchanged(f)).rejects.toThrow(/input decoy\.bin: the shared file .* changed after the job was submitted/);

    // Replaced by a new file (another inode) with the same size and time.
    await rm(file);
    await writeFile(`${file}.new`, 'eeee');
    await utimes(`${file}.new`, mtime, mtime);
    await rename(`${file}.new`, file);
    expect(await code(roots.assertUnchanged(f))).toBe(status.FAILED_PRECONDITION);

    // A coordinator restarted without the folder shared reads none of it any more.
    expect(await code(SharedRoots.none().assertUnchanged(await roots.resolve('a.bin', path.join(media, 'a.bin'))))).toBe(status.FAILED_PRECONDITION);
  });

  it('refuses a file the coordinator may not read with PERMISSION_DENIED naming it, and the format check fails only that input', async () => {
    // The check runs in a process without the capabilities that let root read any file (tests
    // run as root), against a file nobody may read.
    const secret = path.join(media, 'secret.jpg');
    await writeFile(secret, 'not readable');
    await chmod(secret, 0o000);
    const dist = (p: string): string => JSON.stringify(new URL(`../dist/coordinator/${p}`, import.meta.url).pathname);
    const code = `
      import { SharedRoots } from ${dist('shared-inputs.js')};
      import { checkInput } from ${dist('input-check.js')};
      import { resolveLimits } from ${dist('../shared/limits.js')};
      const roots = await SharedRoots.create([${JSON.stringify(media)}], ${JSON.stringify(data)});
      const out = {};
      try { await roots.resolve('secret.jpg', ${JSON.stringify(secret)}); out.resolve = 'accepted'; } catch (e) { out.resolve = { code: e.code, message: e.message }; }
      out.check = await checkInput('image', { name: 'secret.jpg', path: ${JSON.stringify(secret)}, size: 12, sha256: '' }, resolveLimits());
      console.log(JSON.stringify(out));
    `;
    const stdout = execFileSync('setpriv', ['--bounding-set', '-dac_override,-dac_read_search', process.execPath, '--input-type=module', '-e', code], { encoding: 'utf8' });
    const out = JSON.parse(stdout.trim()) as { resolve: { code: number; message: string }; check: { input: string; code: string; message: string } };
    expect(out.resolve.code).toBe(status.PERMISSION_DENIED);
    expect(out.resolve.message).toBe(`input secret.jpg: shared path ${secret} is not readable by the coordinator`);
    expect(out.check).toEqual({ input: 'secret.jpg', code: 'PERMISSION_DENIED', message: 'secret.jpg: could not be read (EACCES)' });
  });

  it('an output folder no longer under an output root (the coordinator restarted without it) is said so, not "now resolves elsewhere"', async () => {
    const out = path.join(dir, 'outroot');
    await mkdir(path.join(out, 'j1'), { recursive: true });
    const before = await SharedRoots.create([], data, [out]);
    const resolved = await before.resolveOutputDir(path.join(out, 'j1'));
    await expect(before.assertOutputDir(resolved)).resolves.toBeUndefined();
    const without = await SharedRoots.create([], data, []);
    const err = await without.assertOutputDir(resolved).then(() => undefined, (e: { code?: number; message?: string }) => e);
    expect(err?.code).toBe(status.FAILED_PRECONDITION);
    // Was: "... now resolves elsewhere after the job was submitted", of a folder that had not moved.
    expect(err?.message).toBe(`spec.shared_output_dir ${resolved} is no longer under a shared output root of this coordinator (it now has no --shared-output-root): start it with the root the job was submitted under`);
    // A folder swapped for a link since is still said to resolve elsewhere.
    await rename(path.join(out, 'j1'), path.join(out, 'j1-moved'));
    await symlink(path.join(out, 'j1-moved'), path.join(out, 'j1'));
    await expect(before.assertOutputDir(resolved)).rejects.toThrow(/now resolves elsewhere after the job was submitted/);
  });
});
