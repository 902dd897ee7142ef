/**
 * The ffmpeg probe (version and encoders, for a worker's registration) against the real binary: one run
 * of `ffmpeg -encoders` must read the same as `-version` and `-hide_banner -encoders` run apart, and the
 * blocking and non-blocking probes must agree. Each test loads the module afresh (it probes once).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { afterEach, describe, expect, it, vi } from 'vitest';

const fresh = async (): Promise<typeof import('./ffmpeg.js')> => {
  vi.resetModules();
  return import('./ffmpeg.js');
};

const saved = process.env['FFMPEG_PATH'];
afterEach(() => {
  if (saved === undefined) delete process.env['FFMPEG_PATH'];
  else process.env['FFMPEG_PATH'] = saved;
});

describe('ffmpeg probe', () => {
  it('reads the version and the encoder list from one run, as the separate commands print them', async () => {
    const m = await fresh();
    const bin = m.ffmpegBinaries().ffmpeg;
    const info = m.ffmpegInfo();
    const version = /ffmpeg version (\S+)/.exec(execFileSync(bin, ['-hide_banner', '-version'], { encoding: 'utf8' }))![1]!;
    const listed = execFileSync(bin, ['-hide_banner', '-encoders'], { encoding: 'utf8' });
    const encoders = [...listed.matchAll(/^\s[VAS][F.][S.][X.][B.][D.]\s+(\S+)/gm)].map((x) => x[1]!).filter((e) => e !== '=');
    expect(info.version).toBe(version);
    expect(info.major).toBe(Number(/^n?(\d+)/.exec(version)![1]));
    expect(info.major).toBeGreaterThanOrEqual(4);
    expect(info.encoders).toEqual(encoders);
    expect(info.encoders).toEqual(expect.arrayContaining(['libx264', 'aac', 'libmp3lame', 'flac', 'pcm_s16le']));
  });

  it('probes without blocking to the same answer, which the blocking probe then reuses', async () => {
    const m = await fresh();
    const probed = await m.probeFfmpegInfo();
    const again = await fresh();
    expect(await again.probeFfmpegInfo()).toEqual(again.ffmpegInfo());
    expect(probed).toEqual(again.ffmpegInfo());
    // Probed once per module: the blocking call returns what the other one found.
    expect(m.ffmpegInfo()).toBe(probed);
    expect(m.knownFfmpegInfo()).toBe(probed);
  });

  it('a binary that is not there fails both probes, naming it, and caches nothing', async () => {
    const missing = path.join(os.tmpdir(), 'tessera-no-such-dir', 'ffmpeg');
    process.env['FFMPEG_PATH'] = missing;
    const m = await fresh();
    await expect(m.probeFfmpegInfo()).rejects.toMatchObject({ code: 'ENOENT', path: missing });
    expect(m.knownFfmpegInfo()).toBeUndefined();
    expect(() => m.ffmpegInfo()).toThrow(expect.objectContaining({ code: 'ENOENT', path: missing }));
  });

  it('a binary that exits with an error fails the probe with its status and last line', async () => {
    process.env['FFMPEG_PATH'] = '/bin/false';
    const m = await fresh();
    expect(() => m.ffmpegInfo()).toThrow(/\/bin\/false -encoders exited with 1/);
    await expect(m.probeFfmpegInfo()).rejects.toThrow();
    expect(m.knownFfmpegInfo()).toBeUndefined();
  });
});

describe('the version a build names itself', () => {
  it("reads a build of ffmpeg's development tree (N-..., git-...) by its libavutil, else takes it for the newest, not version 0", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tessera-ffmpeg-version-'));
    try {
      // [version, libavutil line or '', major, flag]
      const builds = [
        ['N-120000-g0123456789-static', '', 99, '-fps_mode'],
        ['git-2026-01-01-abcdef0', '', 99, '-fps_mode'],
        ['7.1.1-static', '  libavutil      59. 39.100 / 59. 39.100', 7, '-fps_mode'],
        ['5.0.3', '', 5, '-vsync'],
        ['4.4.2-0ubuntu', '', 4, '-vsync'],
        // A development build is read by its libavutil: the npm package's ffmpeg is one of 2018.
        ['N-47683-g0e8eb07980-static', '  libavutil      56. 24.101 / 56. 24.101', 4, '-vsync'],
        ['N-105000-g1234567890', '  libavutil      57. 17.100 / 57. 17.100', 5, '-vsync'],
        ['N-108000-gabcdef0123', '  libavutil      57. 28.100 / 57. 28.100', 5, '-fps_mode'],
        ['N-121000-g0123456789-static', '  libavutil      60.  8.100 / 60.  8.100', 8, '-fps_mode'],
      ] as const;
      for (const [version, libavutil, major, flag] of builds) {
        const fake = path.join(dir, `ffmpeg-${major}-${flag}-${version.length}-${libavutil.length}`);
        writeFileSync(fake, `#!/bin/sh\necho 'ffmpeg version ${version} Copyright (c) 2000-2026 the FFmpeg developers' >&2\necho '${libavutil}' >&2\necho 'Encoders:'\necho ' V....D libx264              libx264 H.264'\n`);
        chmodSync(fake, 0o755);
        process.env['FFMPEG_PATH'] = fake;
        const m = await fresh();
        // Before: "N-..." was read as version 0, and its commands got -vsync, which ffmpeg 9 removed (review M).
        expect([m.ffmpegInfo().major, m.fpsModeFlag()], version).toEqual([major, flag]);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('summariseStderr', () => {
  it("keeps ffmpeg's reason, not its progress line or stream mapping, where the error follows the progress on one line", async () => {
    const { summariseStderr } = await fresh();
    // As ffmpeg 5.1 wrote it for a subtitle cue MP4 cannot hold: progress ends with \r, not \n.
    const stderr = [
      'Stream mapping:',
      '  Stream #0:0 -> #0:0 (copy)',
      '  Stream #1:1 -> #0:1 (subrip (srt) -> mov_text (native))',
      'Press [q] to stop, [?] for help',
      'frame=    1 fps=0.0 q=-1.0 size=       0kB time=00:00:00.00 bitrate=24000.0kbits/s speed=0.0879x    \rSubtitle encoding failed',
      '',
    ].join('\n');
    expect(summariseStderr(stderr)).toBe('Subtitle encoding failed');
  });
});
