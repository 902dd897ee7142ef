import path from 'node:path';
import { invalidArgument } from './errors.js';

/**
 * Longest name, in UTF-8 bytes. File systems allow 255 bytes per name, and the spool, the client
 * and the derived outputs add suffixes (`.1a2b3c4d.tmp`, `.part`, a new extension) to it.
 */
export const MAX_NAME_BYTES = 200;

/**
 * Checks a client-supplied file name: a plain name, never a path. Keeps names predictable on every
 * platform and makes it impossible for an output or a spool file to land outside its folder.
 */
export function safeFileName(name: string, what = 'file name'): string {
  if (typeof name !== 'string' || name.length === 0) throw invalidArgument(`${what} is empty`);
  if (Buffer.byteLength(name) > MAX_NAME_BYTES) throw invalidArgument(`${what} "${printable(name.slice(0, 40))}..." is longer than ${MAX_NAME_BYTES} bytes (UTF-8)`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f/\\]/.test(name)) throw invalidArgument(`${what} "${printable(name)}" must not contain slashes or control characters`);
  if (name === '.' || name === '..' || path.basename(name) !== name) throw invalidArgument(`${what} "${printable(name)}" is not a plain file name`);
  return name;
}

function printable(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f]/g, '?').slice(0, 80);
}

/** Replaces a file's extension: `photo.jpeg` + `webp` -> `photo.webp`. */
export function withExtension(name: string, ext: string): string {
  const base = name.includes('.') ? name.slice(0, name.lastIndexOf('.')) : name;
  return `${base || 'output'}.${ext}`;
}
