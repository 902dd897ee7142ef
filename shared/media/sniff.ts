/**
 * Recognises a file's format by its content (magic bytes), never by its name, and says which
 * formats each job kind accepts. Formats that can make a decoder open other files or the network
 * (HLS/DASH playlists, ffconcat lists, SDP, SVG) are recognised by name so that a refusal can say
 * what the file is, and are on no allow-list.
 */

/** Formats we can tell apart from the first bytes. */
export type SniffedFormat =
  | 'jpeg' | 'png' | 'gif' | 'webp' | 'tiff' | 'avif' | 'heif'
  | 'mp4' | 'matroska' | 'avi' | 'mpegts' | 'mpegps' | 'flv' | 'ogg' | 'y4m'
  | 'wav' | 'mp3' | 'aac' | 'flac' | 'aiff'
  | 'ac3' | 'eac3' | 'dts' | 'wavpack' | 'w64' | 'caf' | 'au' | 'tta' | 'asf'
  | 'svg' | 'hls-playlist' | 'dash-manifest' | 'concat-list' | 'sdp' | 'text' | 'empty' | 'unknown';

/** Bytes read from the start of a file; enough for every signature below (MPEG-TS needs 3 x 188). */
export const SNIFF_BYTES = 4096;

const VIDEO: readonly SniffedFormat[] = ['mp4', 'matroska', 'avi', 'mpegts', 'mpegps', 'flv', 'ogg', 'y4m'];

/** Formats each kind accepts; a kind not listed (passthrough: bytes in = bytes out, nothing decodes them) accepts anything. */
export const KIND_FORMATS: Readonly<Record<string, readonly SniffedFormat[]>> = {
  image: ['jpeg', 'png', 'gif', 'webp', 'tiff', 'avif', 'heif'],
  video: VIDEO,
  thumbnails: VIDEO,
  // Besides the containers: a DVD's or broadcast's MPEG-PS and its bare AC-3/E-AC-3/DTS soundtracks,
  // and the lossless and studio formats ffmpeg decodes (review AUD1).
  audio: ['wav', 'mp3', 'aac', 'flac', 'aiff', 'ogg', 'mp4', 'matroska', 'mpegts', 'mpegps', 'avi', 'flv', 'ac3', 'eac3', 'dts', 'wavpack', 'w64', 'caf', 'au', 'tta', 'asf'],
};

/** Why a refused format is refused, when that is more useful than "not allowed". */
const DANGEROUS: Partial<Record<SniffedFormat, string>> = {
  svg: 'SVG is not accepted (it can reference external files and URLs)',
  'hls-playlist': 'HLS playlists are not accepted (they reference other files or URLs); upload the media itself',
  'dash-manifest': 'DASH manifests are not accepted (they reference other files or URLs); upload the media itself',
  'concat-list': 'ffconcat lists are not accepted (they reference other files); upload the media itself',
  sdp: 'SDP files are not accepted (they open network streams)',
};

const ascii = (b: Buffer, start: number, end: number): string => b.toString('latin1', start, end);

/** Identifies the format of `head` (the first bytes of a file). */
export function sniffBuffer(head: Buffer): SniffedFormat {
  if (head.length === 0) return 'empty';
  const b = head;
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (b.length >= 8 && b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) return 'png';
  const a4 = ascii(b, 0, 4);
  if (a4 === 'GIF8') return 'gif';
  if (a4 === 'RIFF' && b.length >= 12) {
    const sub = ascii(b, 8, 12);
    if (sub === 'WEBP') return 'webp';
    if (sub === 'WAVE') return 'wav';
    if (sub === 'AVI ') return 'avi';
  }
  if (a4 === 'RF64' || a4 === 'BW64') return 'wav';
  if (a4 === 'II*\0' || a4 === 'MM\0*' || a4 === 'II+\0' || a4 === 'MM\0+') return 'tiff';
  const box = ascii(b, 4, 8);
  if (box === 'ftyp' && b.length >= 12) {
    const brand = ascii(b, 8, 12);
    if (brand === 'avif' || brand === 'avis') return 'avif';
    if (['heic', 'heix', 'hevc', 'hevx', 'mif1', 'msf1'].includes(brand)) return 'heif';
    return 'mp4';
  }
  // QuickTime files written without an ftyp box start with one of these atoms.
  if (['moov', 'mdat', 'wide', 'free', 'skip', 'pnot'].includes(box)) return 'mp4';
  if (b.length >= 4 && b.readUInt32BE(0) === 0x1a45dfa3) return 'matroska';
  if (b.length >= 4 && b.readUInt32BE(0) === 0x000001ba) return 'mpegps';
  if (b[0] === 0x47 && b.length >= 189 && b[188] === 0x47 && (b.length < 377 || b[376] === 0x47)) return 'mpegts';
  if (ascii(b, 0, 3) === 'FLV') return 'flv';
  if (a4 === 'OggS') return 'ogg';
  if (a4 === 'fLaC') return 'flac';
  if (a4 === 'FORM' && b.length >= 12 && ['AIFF', 'AIFC'].includes(ascii(b, 8, 12))) return 'aiff';
  if (ascii(b, 0, 10) === 'YUV4MPEG2 ') return 'y4m';
  if (a4 === 'wvpk') return 'wavpack';
  // Sony Wave64: "riff" and the rest of its GUID, 66666972-912E-11CF-A5D6-28DB04C10000.
  if (a4 === 'riff' && b.length >= 8 && b.readUInt32BE(4) === 0x2e91cf11) return 'w64';
  if (a4 === 'caff') return 'caf';
  if (a4 === '.snd') return 'au';
  if (a4 === 'TTA1') return 'tta';
  // ASF (WMA, WMV): its header object's GUID, 75B22630-668E-11CF-A6D9-00AA0062CE6C.
  if (b.length >= 8 && b.readUInt32BE(0) === 0x3026b275 && b.readUInt32BE(4) === 0x8e66cf11) return 'asf';
  // A DTS core frame's sync word, in each of its four packings (16-bit and 14-bit, either byte order).
  if (b.length >= 4 && [0x7ffe8001, 0xfe7f0180, 0x1fffe800, 0xff1f00e8].includes(b.readUInt32BE(0))) return 'dts';
  // AC-3's sync word; the bitstream id (5 bits of byte 5) is at most 10 for AC-3, 11 to 16 for E-AC-3.
  if (b.length >= 6 && b[0] === 0x0b && b[1] === 0x77) return b[5]! >> 3 > 10 ? 'eac3' : 'ac3';
  if (ascii(b, 0, 3) === 'ID3') return 'mp3';
  // A UTF-16 byte order mark (FF FE, FE FF): FF FE also reads as an MPEG-1 layer I frame header,
  // so text that decodes as UTF-16 is taken as text (and a playlist in it still as a playlist).
  const utf16 = utf16Text(b);
  if (utf16 !== undefined) return sniffText(Buffer.from(utf16, 'utf8'));
  if (b.length >= 2 && b[0] === 0xff) {
    const b1 = b[1]!;
    if ((b1 & 0xf6) === 0xf0) return 'aac'; // ADTS: sync 0xFFF, layer 00
    if ((b1 & 0xe0) === 0xe0 && ((b1 >> 1) & 3) !== 0) return 'mp3'; // MPEG audio frame sync, layer != reserved
  }
  return sniffText(b);
}

/** The text of `b` when it starts with a UTF-16 byte order mark and decodes to mostly printable characters, else undefined. */
function utf16Text(b: Buffer): string | undefined {
  if (b.length < 4) return undefined;
  const le = b[0] === 0xff && b[1] === 0xfe;
  const be = b[0] === 0xfe && b[1] === 0xff;
  if (!le && !be) return undefined;
  const body = b.subarray(2, 2 + ((b.length - 2) & ~1));
  const text = le ? body.toString('utf16le') : Buffer.from(body).swap16().toString('utf16le');
  let printable = 0;
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    if (c === 9 || c === 10 || c === 13 || (c >= 32 && c !== 0x7f && c !== 0xfffd && !(c >= 0x80 && c < 0xa0))) printable++;
  }
  return text.length > 0 && printable / [...text].length > 0.95 ? text : undefined;
}

/** Text formats: recognised so that a refusal names them; anything else textual is 'text'. */
function sniffText(b: Buffer): SniffedFormat {
  // Strip a UTF-8 BOM and leading whitespace: "  #EXTM3U" is still a playlist to ffmpeg's probe.
  const text = b.toString('utf8').replace(/^\uFEFF/, '').trimStart();
  if (text.startsWith('#EXTM3U') || /^#EXT-X-/m.test(text)) return 'hls-playlist';
  if (/^ffconcat\s+version/i.test(text)) return 'concat-list';
  if (/<svg[\s>]/i.test(text) && /^(<\?xml|<!--|<!DOCTYPE|<svg)/i.test(text)) return 'svg';
  if (/<MPD[\s>]/.test(text)) return 'dash-manifest';
  if (/^v=0\r?\n/.test(text) && /^[mc]=/m.test(text)) return 'sdp';
  if (/^(file|# ?ffconcat)\s/m.test(text)) return 'concat-list';
  // Mostly printable: call it text so the message says "looks like text".
  let printable = 0;
  for (const c of b) if (c === 9 || c === 10 || c === 13 || (c >= 32 && c < 127) || c >= 0xc0) printable++;
  return printable / b.length > 0.95 ? 'text' : 'unknown';
}

/**
 * Why `format` is refused for `kind`, or undefined when it is accepted. The message does not name
 * the file; the caller adds it.
 */
export function refusalFor(kind: string, format: SniffedFormat): string | undefined {
  const allowed = KIND_FORMATS[kind];
  if (!allowed || allowed.includes(format)) return undefined;
  const danger = DANGEROUS[format];
  if (danger) return danger;
  if (format === 'empty') return 'the file is empty';
  const what = format === 'unknown' ? 'unrecognised binary data' : format === 'text' ? 'it looks like text' : `it is ${format}`;
  return `content is not an accepted ${kind === 'thumbnails' ? 'video' : kind} format (${what}; accepted: ${allowed.join(', ')})`;
}
