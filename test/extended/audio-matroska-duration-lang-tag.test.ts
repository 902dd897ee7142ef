/**
 * Regression review K14 of 19ffcd3 (audio: a Matroska track's length is its DURATION tag, so one
 * with a video track cut short fails as truncated). The tag is read under the key `DURATION` only.
 * A track statistics tag written with a language, as mkvmerge writes them (ffprobe shows them as
 * `DURATION-eng`, `BPS-eng`; see NOT_CARRIED's comment in shared/media/audio-probe.ts), is not read:
 * such a recording cut short is still converted to the part before the cut and reported as
 * succeeded, 40 % of its sound gone, with no error and no warning - the very case 19ffcd3 fixes.
 *
 * The file: ffmpeg's Matroska with its tracks' statistics tags as mkvmerge has them (a DURATION
 * with TagLanguage eng; ffmpeg's own language-less DURATION renamed away, same byte length), cut to 60 %.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

let cluster: TestCluster;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-mkvlang-'));
  cluster = await startCluster({ workers: 1, slots: 1 });
});

afterAll(async () => {
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** SimpleTag TagName "DURATION" (id 0x45A3, size 8). */
const NAME = Buffer.from([0x45, 0xa3, 0x88, ...Buffer.from('DURATION')]);
/** TagLanguage's id, which follows a name written with a language. */
const TAG_LANGUAGE = [0x44, 0x7a];

describe('audio job of a Matroska cut short whose track tags carry a language (mkvmerge)', () => {
  it('fails as truncated, as the same file with a language-less DURATION tag does', async () => {
    const whole = path.join(dir, 'whole.mkv');
    execFileSync('ffmpeg', ['-v', 'error', '-y',
      '-f', 'lavfi', '-i', 'testsrc=size=160x120:rate=25:duration=4', '-f', 'lavfi', '-i', 'sine=frequency=440:duration=4',
      '-pix_fmt', 'yuv420p', '-c:v', 'libx264', '-g', '25', '-c:a', 'aac',
      '-metadata:s:v:0', 'DURATION-eng=00:00:04.000000000', '-metadata:s:a:0', 'DURATION-eng=00:00:04.000000000', whole]);
    const bytes = await readFile(whole);
    let renamed = 0;
    for (let at = bytes.indexOf(NAME); at >= 0; at = bytes.indexOf(NAME, at + 1)) {
      const next = bytes.subarray(at + NAME.length, at + NAME.length + 2);
      if (next[0] === TAG_LANGUAGE[0] && next[1] === TAG_LANGUAGE[1]) continue;
      bytes.write('STATDURA', at + 3, 'latin1');
      renamed++;
    }
    expect(renamed).toBe(2);
    const probe = JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-of', 'json', '-show_streams', '-'], { input: bytes }).toString()) as { streams: Array<{ codec_type: string; tags: Record<string, string> }> };
    expect(probe.streams.find((s) => s.codec_type === 'audio')!.tags).toMatchObject({ 'DURATION-eng': '00:00:04.000000000' });
    const cut = path.join(dir, 'recording.mkv');
    await writeFile(cut, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    const job = await cluster.client.wait((await cluster.client.submit({ audio: { codec: 'flac' } }, [cut])).id);
    const what = `state ${job.state}; outputs ${job.outputs.map((o) => `${o.name} ${o.size} B`).join(', ')}; errors ${JSON.stringify(job.errors)}; warnings ${JSON.stringify(job.warnings)}`;
    // Observed: JOB_STATE_SUCCEEDED, recording.flac of the ~2.3 s before the cut, no error, no warning.
    expect(job.state, what).toBe('JOB_STATE_FAILED');
    expect(job.errors.map((e) => e.message).join('\n'), what).toMatch(/recording\.mkv: truncated file/);
  }, 60_000);
});
