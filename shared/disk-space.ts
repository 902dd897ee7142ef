/**
 * Whether a failed write was for want of room. Tools do not always say so: ffmpeg reports a
 * segment's trailer it could not write on a full disk as "Invalid argument", and libvips as
 * "write failed". Looking at the file system after the failure does.
 */
import { statfs } from 'node:fs/promises';
import path from 'node:path';

/** Less room than this left to the tool's user (root's reserve not counted) is a full disk. */
export const FULL_BELOW_BYTES = 16 * 1024 * 1024;

/**
 * True when the file system holding `file` (or its folder, where the file is not there) has less
 * than FULL_BELOW_BYTES free; false where that cannot be told.
 */
export async function nearlyFull(file: string): Promise<boolean> {
  const free = await freeBytes(file);
  return free !== undefined && free < FULL_BELOW_BYTES;
}

/**
 * Bytes free to the tool's user (root's reserve not counted) on the file system holding `file`, or
 * its folder where the file is not there; undefined where that cannot be told.
 */
export async function freeBytes(file: string): Promise<number | undefined> {
  for (const at of [file, path.dirname(file)]) {
    const st = await statfs(at).catch(() => undefined);
    if (st) return st.bavail * st.bsize;
  }
  return undefined;
}

/**
 * Bytes free to the tool's user and the size of the file system holding `dir`; undefined where
 * that cannot be told.
 */
export async function diskRoom(dir: string): Promise<{ free: number; total: number } | undefined> {
  const st = await statfs(dir).catch(() => undefined);
  return st && { free: st.bavail * st.bsize, total: st.blocks * st.bsize };
}

/**
 * Where an ffmpeg command line writes: its last argument, unless that is stdout, a pipe or the null
 * muxer's "-"; undefined then.
 */
export function ffmpegOutput(args: readonly string[]): string | undefined {
  const last = args.at(-1);
  if (!last || last === '-' || last.startsWith('pipe:') || last.startsWith('-') || args.at(-2) === '-f' || !path.isAbsolute(last)) return undefined;
  return last;
}
