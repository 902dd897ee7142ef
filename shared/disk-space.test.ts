import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { withSmallDisk } from '../test/helpers/tmpfs.js';
import { ffmpegOutput, nearlyFull } from './disk-space.js';

const disk = withSmallDisk('tessera-disk-space-');

describe('disk space', () => {
  it('tells a full file system from one with room, by the file or by its folder', async () => {
    // The 1 MiB tmpfs is under the 16 MiB mark even empty; the test machine's /tmp is not.
    expect(await nearlyFull(path.join(disk.small, 'not-made-yet.nut'))).toBe(true);
    expect(await nearlyFull(path.join(os.tmpdir(), 'not-made-yet.nut'))).toBe(false);
    // Nothing to look at: not told full.
    expect(await nearlyFull('/no/such/folder/x.nut')).toBe(false);
  });

  it("finds where an ffmpeg command writes: its last argument, when that is a file's path", () => {
    expect(ffmpegOutput(['-i', '/in.mp4', '-f', 'segment', '/w/chunk%05d.nut'])).toBe('/w/chunk%05d.nut');
    expect(ffmpegOutput(['-i', '/in.mp4', '-f', 'null', '-'])).toBeUndefined();
    expect(ffmpegOutput(['-i', '/in.mp4', '-f', 'wav', 'pipe:1'])).toBeUndefined();
    expect(ffmpegOutput(['-i', '/in.mp4', '-c', 'copy', 'relative.mp4'])).toBeUndefined();
    expect(ffmpegOutput(['-version'])).toBeUndefined();
  });
});
