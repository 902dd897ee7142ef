/** How a sharp/libvips failure on a user's image is told to the user (worker batch and tile paths alike). */
import path from 'node:path';
import { VIPS_LINK_PREFIX } from './vips-path.js';

/** `text` matched literally in a RegExp. */
const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** An absolute path in a line of libvips' (its file names are the paths it was given). */
const ABSOLUTE_PATH = /(?:^|[\s('"=])\/[^\s:'"]/;

/**
 * The lines of a libvips error that are this file's own, once its own paths are said by its name:
 * libvips keeps one error buffer for the process, so where several decodes fail at the same
 * moment in one process (a worker with --memory-limit-mb 0, the coordinator cutting two jobs'
 * huge images into strips), one may carry the other's text, naming that file by its path (another
 * job's, another client's, in the spool or on shared storage). Lines that still name an absolute
 * path are left out (CI stop 53, reviews K24, MTEN); where nothing is left, the caller says the
 * failure without libvips' words.
 */
export function ownLines(lines: readonly string[]): string[] {
  return lines.filter((l) => !ABSOLUTE_PATH.test(l));
}

/** sharp's first line where a decoder's warning failed the decode (its `failOn`), which says nothing of the file. */
const FAIL_ON_BANNER = /^Warning treated as error due to failOn setting$/i;

/**
 * The line of a libvips error that says what is wrong with the file: a HEIF decoder's own reason
 * where it gave one; after sharp's failOn banner, the warning it stands for (the decoder's reason,
 * "Improper JPEG strip/tile size, expected 60000x256, got 3001x256", before a tag it ignored,
 * before "error in tile 0 x 0"); else the first (review tiles: a TIFF whose header lied was told
 * only "Warning treated as error due to failOn setting", a setting the user never chose).
 */
export function reasonLine(lines: readonly string[]): string | undefined {
  const heif = lines.find((l) => /^heif: /.test(l));
  if (heif) return heif;
  if (!lines[0] || !FAIL_ON_BANNER.test(lines[0])) return lines[0];
  const told = lines.filter((l) => !FAIL_ON_BANNER.test(l));
  const generic = (l: string): boolean => /^error in tile \d+ x \d+$/i.test(l);
  return told.find((l) => !generic(l) && !/tag ignored/i.test(l)) ?? told.find((l) => !generic(l)) ?? told[0] ?? lines[0];
}

/**
 * A one-line description of a sharp error on an input: "not a decodable image (...)" for
 * unrecognised, truncated or corrupt files, whatever the loader (VipsJpeg, pngload, webpload...),
 * else libvips' first line. `file`: the input's path here, said as its name.
 */
export function describeSharpError(err: unknown, file?: { path: string; name: string; linksIn?: string }): string {
  let msg = (err as Error)?.message ?? String(err);
  // libvips names the file by the worker's path to it, a folder of the worker's own: the input's name instead.
  if (file && file.path) msg = msg.split(file.path).join(file.name);
  // So for the names it was given instead of a name it would split (vips-path.ts): a link in the
  // work folder `linksIn`, or the descriptor's /proc path (review IWILD).
  // The name as a function's result: a replacement string would read `$$` or `$'` in it (review K22).
  if (file && file.linksIn) msg = msg.replace(new RegExp(`${escapeRegExp(path.join(file.linksIn, VIPS_LINK_PREFIX))}[0-9a-f]+`, 'g'), () => file.name);
  if (file) msg = msg.replace(/\/proc\/self\/fd\/\d+/g, () => file.name);
  let lines = msg.split('\n').map((l) => l.trim()).filter(Boolean);
  if (file) {
    const own = ownLines(lines);
    if (own.length < lines.length) {
      if (own.length === 0) return 'not a decodable image';
      lines = own;
      msg = own.join('\n');
    }
  }
  // libvips' first line may be its loader's last step ("bad seek to 1024"); the decoder's own reason,
  // where it gave one, says more ("heif: ... Bitstream not supported by this decoder").
  const first = reasonLine(lines) ?? msg;
  if (/unsupported image format|Input file contains unsupported|Input buffer contains unsupported/i.test(msg)) return 'not a decodable image (unsupported or unrecognised format)';
  if (/extract_area|bad extract area/i.test(msg)) return 'the crop reaches outside the image';
  if (/premature end|truncated|end of stream|unexpected end|treated as error|VipsJpeg|\b[a-z0-9]+load(_source|_buffer)?:|read error|corrupt|Invalid|bad/i.test(msg)) return `not a decodable image (${first})`;
  return first;
}
