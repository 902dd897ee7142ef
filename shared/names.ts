import path from 'node:path';
import { invalidArgument } from './errors.js';

/**
 * Longest name, in UTF-8 bytes. File systems allow 255 bytes per name, and the spool, the client
 * and the derived outputs add suffixes (`.1a2b3c4d.tmp`, `.part`, a new extension) to it.
 */
export const MAX_NAME_BYTES = 200;
/**
 * Longest output name: outputs are named after their inputs plus a little (`-thumb-00001.jpg`,
 * `.waveform.json`, another extension), and still leave room for a temporary suffix within 255.
 */
export const MAX_OUTPUT_NAME_BYTES = 240;

/**
 * Checks a client-supplied file name: a plain name, never a path. Keeps names predictable on every
 * platform and makes it impossible for an output or a spool file to land outside its folder. Names
 * Windows cannot hold as files are refused too (a device name such as `CON` or `nul.txt`, one of
 * `< > : " | ? *`, a trailing dot or space): outputs are named after inputs, and a client there
 * downloads them. INVALID_ARGUMENT naming `what`, the name and the rule it breaks.
 */
export function safeFileName(name: string, what = 'file name', maxBytes = MAX_NAME_BYTES): string {
  if (typeof name !== 'string' || name.length === 0) throw invalidArgument(`${what} is empty`);
  if (Buffer.byteLength(name) > maxBytes) throw invalidArgument(`${what} "${printable(leading(name, 40))}..." is longer than ${maxBytes} bytes (UTF-8)`);
  // protobufjs decodes bytes that are not UTF-8 as U+FFFD: the name the client meant is not this one.
  if (name.includes('\uFFFD')) throw invalidArgument(`${what} "${printable(name)}" is not valid UTF-8 (it holds U+FFFD, which stands for bytes that are not)`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f/\\]/.test(name)) throw invalidArgument(`${what} "${printable(name)}" must not contain slashes or control characters`);
  if (name === '.' || name === '..' || path.basename(name) !== name) throw invalidArgument(`${what} "${printable(name)}" is not a plain file name`);
  // Invisible characters (a right-to-left override, a zero-width space) make a name read as another
  // in a listing, and characters drawn as slashes may become one elsewhere.
  if (HIDDEN.test(name)) throw invalidArgument(`${what} "${printable(name)}" contains invisible or formatting characters (such as U+202E or U+200B)`);
  if (SLASH_LIKE.test(name)) throw invalidArgument(`${what} "${printable(name)}" contains a character drawn as a slash (such as U+2215 or U+FF0F)`);
  if (/^\s+$/u.test(name)) throw invalidArgument(`${what} "${name}" is blank`);
  const windows = windowsProblem(name);
  if (windows) throw invalidArgument(`${what} "${printable(name)}" ${windows}`);
  // Tessera's own temporary files: the coordinator's in shared output folders, the client's part files.
  if (name.startsWith(RESERVED_PREFIX) || name.endsWith(RESERVED_SUFFIX)) {
    throw invalidArgument(`${what} "${printable(name)}" is reserved: names starting with ${RESERVED_PREFIX} or ending with ${RESERVED_SUFFIX} are Tessera's temporary files`);
  }
  return name;
}

/**
 * Device names of Windows (`CON`, `NUL`, `COM1`, ...): a file named so, with any extension
 * (`nul.txt`, `COM1.tar.gz`) and spaces before it, is the device there, not a file. Superscript
 * digits count (`COM¹`), and so do the console's own names.
 */
const WINDOWS_DEVICE = /^(con|prn|aux|nul|com[0-9\u00b9\u00b2\u00b3]|lpt[0-9\u00b9\u00b2\u00b3]|conin\$|conout\$)$/i;
/** Characters Windows does not allow in a file name (besides the slashes and control characters refused before). */
const WINDOWS_FORBIDDEN = /[<>:"|?*]/;

/**
 * Why `name` cannot be written as it is on Windows, or undefined. A client there downloading such
 * an output would write to a device (`CON`, `nul.txt`), fail (`a:b.txt`, which NTFS also reads
 * as an alternate data stream), or write under another name (Windows drops a trailing dot or space).
 */
function windowsProblem(name: string): string | undefined {
  const bad = WINDOWS_FORBIDDEN.exec(name);
  if (bad) return `contains "${bad[0]}", which Windows does not allow in file names (none of < > : " | ? *)`;
  const stem = name.split('.')[0]!.replace(/ +$/, '');
  if (WINDOWS_DEVICE.test(stem)) return `is the device ${stem.toUpperCase()} on Windows (CON, PRN, AUX, NUL, COM0-9, LPT0-9, with any extension): rename it`;
  if (/[. ]$/.test(name)) return `ends with ${name.endsWith('.') ? 'a dot' : 'a space'}, which Windows drops from file names: rename it`;
  return undefined;
}

/** Format and separator characters: bidirectional overrides, zero-width ones, line separators. */
const HIDDEN = /[\p{Cf}\p{Zl}\p{Zp}\u{80}-\u{9F}]/u;

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Whether `s` holds a C0 control character or DEL (a line break forges lines in logs and listings; a NUL no system call takes). */
export function hasControlCharacters(s: string): boolean {
  return CONTROL.test(s);
}

/**
 * Why a path a client names for the coordinator to make (an output folder) is no name anyone should
 * find in a listing, or undefined: control characters (a line break forges lines in `ls`, logs and
 * scripts; a NUL no system call takes) and invisible ones (a right-to-left override shows
 * `report\u202Egnp.exe` as `reportexe.png`), as in file names.
 */
export function pathCharacterProblem(p: string): string | undefined {
  if (hasControlCharacters(p)) return 'contains control characters';
  if (HIDDEN.test(p)) return 'contains invisible or formatting characters (such as U+202E or U+200B)';
  return undefined;
}
/** Characters drawn as a slash or a backslash. */
const SLASH_LIKE = /[\u2044\u2215\u2216\u29F8\u29F9\uFF0F\uFF3C]/u;
const RESERVED_PREFIX = '.tessera-';
const RESERVED_SUFFIX = '.tessera-part';

/** {@link safeFileName} for an output's name (a little longer than an input's may be). */
export function safeOutputName(name: string): string {
  return safeFileName(name, 'output name', MAX_OUTPUT_NAME_BYTES);
}

/** The first `n` characters of `s`, by code point: a cut by UTF-16 unit can split an emoji in two. */
function leading(s: string, n: number): string {
  return Array.from(s.slice(0, 2 * n)).slice(0, n).join('');
}

/**
 * Text a peer sent to be shown to others (a worker's error message, the input it names), made safe
 * to print: line breaks and tabs as spaces, other control and invisible characters (escape
 * sequences that clear a terminal or set its title, a bidirectional override) as `?`, at most
 * `max` characters. A worker's message reached every client's terminal as it was sent, forged
 * lines (`tessera: job succeeded, run: curl ... | sh`) and all (review SEC).
 */
export function peerText(s: string, max = 4000): string {
  // eslint-disable-next-line no-control-regex
  return leading(s.replace(/[\t\n\r]/g, ' ').replace(/[\u0000-\u001f\u007f\p{Cf}\p{Zl}\p{Zp}\u{80}-\u{9F}]/gu, '?'), max);
}

function printable(s: string): string {
  // eslint-disable-next-line no-control-regex
  return leading(s.replace(/[\u0000-\u001f\u007f\p{Cf}\p{Zl}\p{Zp}\u{80}-\u{9F}]/gu, '?'), 80);
}

/**
 * A name as a file system that ignores case and Unicode form sees it: macOS's and Windows' by
 * default (`Photo.JPG` is `photo.jpg`; an `é` composed or as `e` + accent is one letter).
 */
export function foldedName(name: string): string {
  // Final sigma folds as sigma, as both file systems fold it (toLowerCase alone turns a final Σ
  // into σ, and leaves a typed ς as it is: ΟΔΟΣ and οδος came out two names).
  return name.normalize('NFC').toLowerCase().replace(/ς/g, 'σ');
}

/**
 * File names that stay distinct wherever they are written: two that differ only in case or
 * Unicode form count as one, so outputs downloaded to a Mac or a Windows share, or written to a
 * shared output folder there, never overwrite each other.
 */
export class NameSet {
  private readonly names = new Map<string, string>();

  constructor(names: Iterable<string> = []) {
    for (const name of names) this.add(name);
  }

  /** Whether `name`, or a name that differs from it only in case or Unicode form, is held. */
  has(name: string): boolean {
    return this.names.has(foldedName(name));
  }

  /** The name held that `name` is taken for, if any. */
  get(name: string): string | undefined {
    return this.names.get(foldedName(name));
  }

  add(name: string): this {
    if (!this.has(name)) this.names.set(foldedName(name), name);
    return this;
  }

  get size(): number {
    return this.names.size;
  }
}

/**
 * Replaces a file's extension: `photo.jpeg` + `webp` -> `photo.webp`. Dots and spaces the base
 * would end with are dropped (`photo..jpg` -> `photo.png`): a pyramid's zip holds a folder named
 * after its base, which Windows could not make.
 */
export function withExtension(name: string, ext: string): string {
  const base = (name.includes('.') ? name.slice(0, name.lastIndexOf('.')) : name).replace(/[. ]+$/, '');
  return `${base || 'output'}.${ext}`;
}
