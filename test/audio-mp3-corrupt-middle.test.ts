/**
 * An MP3 with a stretch of garbage in the middle (a damaged download or disk): since MP3 is decoded
 * without -xerror (joined MP3s, padding; review AWILD), the decoder skips the damaged frames and the
 * file converted "successfully", half a second shorter than its Xing header states, with no error and
 * no warning. It was refused as corrupt before. Its Xing header states its frames exactly, as a
 * FLAC's STREAMINFO does: audio lost must be refused (or at least said), not dropped silently.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { runFfmpeg } from '../shared/ffmpeg.js';
import { audioReport, runAudioInProcess } from './helpers/audio-media.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-mp3-corrupt-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('a corrupt MP3', () => {
  test('8 KB of garbage over the middle of a 6 s MP3 is refused or warned of, not converted 0.5 s short in silence', async () => {
    const src = path.join(dir, 'clean.mp3');
    await runFfmpeg(['-f', 'lavfi', '-i', 'sine=f=440:r=44100:d=6', '-c:a', 'libmp3lame', '-b:a', '128k', '-y', src]);
    const clean = await readFile(src);
    const garbage = Buffer.alloc(8000);
    for (let i = 0; i < garbage.length; i++) garbage[i] = ((i * 7919 + 13) & 0xff) ^ (i >> 3);
    const mid = Math.floor(clean.length / 2);
    const damaged = path.join(dir, 'damaged.mp3');
    await writeFile(damaged, Buffer.concat([clean.subarray(0, mid), garbage, clean.subarray(mid + garbage.length)]));

    for (const raw of [{ codec: 'wav' }, { codec: 'wav', segment_seconds: 2 }]) {
      const r = await runAudioInProcess(raw, [damaged], path.join(dir, `run-${raw.segment_seconds ?? 0}`));
      if (r.errors.length > 0) {
        expect(r.errors[0]!.message, JSON.stringify(raw)).toMatch(/damaged\.mp3: .*(corrupt|could not be decoded)/);
        continue;
      }
      const frames = (await audioReport(r))[0]!.frames;
      // Converted anyway: then at least told, the audio it lost being more than a few frames.
      expect(r.warnings.map((w) => w.message).join('\n'), `${JSON.stringify(raw)}: converted to ${(frames / 44100).toFixed(2)} s of 6.03 s, without a word`).toMatch(/corrupt|could not be decoded|lost|skipped/);
    }
  });
});
