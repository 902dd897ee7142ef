/**
 * Paths handed to libvips (through sharp). libvips reads a name ending in `[...]` as a file name and
 * load options (`x.jpg[shrink=2]`): `a.png[x]`, an input's own name, opened `a.png`, another input
 * of the job, and `scan [1]` nothing ("Input file is missing"; review NAMES). An empty option list
 * after it (`a.png[x][]`) is not enough: the loader splits the name again.
 */
import { existsSync } from 'node:fs';
import { mkdir, open, symlink } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

/** Whether libvips would take part of `file`'s name for options. */
export function vipsSplits(file: string): boolean {
  return file.endsWith(']');
}

/** How the links {@link vipsSafePath} makes are named (then 12 hex digits). */
export const VIPS_LINK_PREFIX = 'vips-source-';

/**
 * `file` under a name libvips opens as that file: itself, or a symlink to it made in `dir` (a
 * scratch folder that goes with the work).
 */
export async function vipsSafePath(file: string, dir: string): Promise<string> {
  if (!vipsSplits(file)) return file;
  await mkdir(dir, { recursive: true });
  const link = path.join(dir, `${VIPS_LINK_PREFIX}${randomBytes(6).toString('hex')}`);
  await symlink(path.resolve(file), link);
  return link;
}

/** Runs `fn` with a name libvips opens as `file`: itself, or its descriptor's (/proc/self/fd) while `fn` runs. */
export async function withVipsPath<T>(file: string, fn: (name: string) => Promise<T>): Promise<T> {
  if (!vipsSplits(file) || !existsSync('/proc/self/fd')) return fn(file);
  const fh = await open(file, 'r');
  try {
    return await fn(`/proc/self/fd/${fh.fd}`);
  } finally {
    await fh.close();
  }
}
