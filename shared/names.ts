import path from 'node:path';
import { invalidArgument } from './errors.js';

/**
 * Checks a client-supplied file name: a plain name, never a path. Keeps names predictable on every
 * platform and makes it impossible for an output or a spool file to land outside its folder.
 */
export function safeFileName(name: string, what = 'file name'): string {
  if (typeof name !== 'string' || name.length === 0) throw invalidArgument(`${what} is empty`);
  if (name.length > 255) throw invalidArgument(`${what} "${name.slice(0, 40)}..." is longer than 255 characters`);
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
