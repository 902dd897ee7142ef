/** How a sharp/libvips failure on a user's image is told to the user (worker batch and tile paths alike). */

/**
 * A one-line description of a sharp error on an input: "not a decodable image (...)" for
 * unrecognised, truncated or corrupt files, whatever the loader (VipsJpeg, pngload, webpload...),
 * else libvips' first line. `file`: the input's path here, said as its name.
 */
export function describeSharpError(err: unknown, file?: { path: string; name: string }): string {
  let msg = (err as Error)?.message ?? String(err);
  // libvips names the file by the worker's path to it, a folder of the worker's own: the input's name instead.
  if (file && file.path) msg = msg.split(file.path).join(file.name);
  // libvips' first line may be its loader's last step ("bad seek to 1024"); the decoder's own reason,
  // where it gave one, says more ("heif: ... Bitstream not supported by this decoder").
  const lines = msg.split('\n').map((l) => l.trim()).filter(Boolean);
  const first = lines.find((l) => /^heif: /.test(l)) ?? lines[0] ?? msg;
  if (/unsupported image format|Input file contains unsupported|Input buffer contains unsupported/i.test(msg)) return 'not a decodable image (unsupported or unrecognised format)';
  if (/extract_area|bad extract area/i.test(msg)) return 'the crop reaches outside the image';
  if (/premature end|truncated|end of stream|unexpected end|VipsJpeg|\b[a-z0-9]+load(_source|_buffer)?:|read error|corrupt|Invalid|bad/i.test(msg)) return `not a decodable image (${first})`;
  return first;
}
