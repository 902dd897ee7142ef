/**
 * Audio files with an ID3v2 tag in front of a format that is not MP3, as taggers and podcast tools
 * write them: ADTS AAC (`.aac`) and FLAC. ffmpeg (and every player) skips the tag and reads the
 * stream behind it; the submission check must not take the tag for an MP3 and refuse the file as
 * "not a readable media file" (it allowed ffprobe only the mp3 demuxer).
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { checkInput } from '../coordinator/input-check.js';
import { runFfmpeg } from '../shared/ffmpeg.js';
import { resolveLimits } from '../shared/limits.js';
import { runAudioInProcess } from './helpers/audio-media.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-audio-wild-id3-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** An ID3v2.3 tag holding a title (TIT2) and some padding, as a tagger writes it. */
function id3v2(title: string): Buffer {
  const text = Buffer.concat([Buffer.from([0x03]), Buffer.from(title, 'utf8')]);
  const frame = Buffer.alloc(10);
  frame.write('TIT2', 0, 'latin1');
  frame.writeUInt32BE(text.length, 4);
  const body = Buffer.concat([frame, text, Buffer.alloc(256)]);
  const n = body.length;
  const head = Buffer.from([0x49, 0x44, 0x33, 3, 0, 0, (n >> 21) & 0x7f, (n >> 14) & 0x7f, (n >> 7) & 0x7f, n & 0x7f]);
  return Buffer.concat([head, body]);
}

describe('ID3v2-tagged non-MP3 audio', () => {
  for (const [ext, codec] of [['aac', 'aac'], ['flac', 'flac']] as const) {
    test(`an ID3v2 tag in front of ${ext === 'aac' ? 'an ADTS AAC' : 'a FLAC'} stream passes the submission check and converts`, async () => {
      const plain = path.join(dir, `plain.${ext}`);
      await runFfmpeg(['-f', 'lavfi', '-i', 'sine=f=440:r=44100:d=2', '-c:a', codec, '-y', plain]);
      const tagged = path.join(dir, `tagged.${ext}`);
      await writeFile(tagged, Buffer.concat([id3v2('A podcast episode'), await readFile(plain)]));
      // ffmpeg itself reads it (the conversion works once past the check).
      const r = await runAudioInProcess({ codec: 'wav' }, [tagged], path.join(dir, 'run'));
      expect(r.errors).toEqual([]);
      const verdict = await checkInput('audio', { name: `tagged.${ext}`, path: tagged, size: (await stat(tagged)).size, sha256: '' }, resolveLimits());
      expect(verdict).toBeUndefined();
    });
  }
});
