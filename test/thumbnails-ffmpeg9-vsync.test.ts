/**
 * The thumbnails worker passed `-vsync passthrough` to ffmpeg whatever its
 * version (worker/processors/thumbnails.ts, grabByNumber and grabInOnePass), while every other
 * caller goes through `fpsModeFlag()`. FFmpeg 9 removed `-vsync` (deprecated since 5.1): it stops
 * with "Unrecognized option 'vsync'. Error splitting the argument list: Option not found".
 *
 * FFmpeg 9 is not installed here, so an `FFMPEG_PATH` wrapper (as test/capabilities-mixed-encoders
 * does) reports version 9.0 in its banner and refuses `-vsync` exactly as FFmpeg 9 does; all other
 * arguments run the real ffmpeg unchanged (so `-fps_mode`, which 5.1 has, works).
 */
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const real = process.env['FFMPEG_PATH'] || 'ffmpeg';
const dir = mkdtempSync(path.join(os.tmpdir(), 'tessera-thumbs-ff9-'));
const wrapper = path.join(dir, 'ffmpeg9');
writeFileSync(
  wrapper,
  `#!/bin/bash
for a in "$@"; do
  if [ "$a" = "-vsync" ]; then
    echo "Unrecognized option 'vsync'." >&2
    echo "Error splitting the argument list: Option not found" >&2
    exit 8
  fi
done
if [ "$*" = "-encoders" ]; then
  ${real} -encoders 2>&1 1>/dev/null | sed 's/^ffmpeg version [^ ]*/ffmpeg version 9.0/' >&2
  exec ${real} -hide_banner -encoders 2>/dev/null
fi
exec ${real} "$@"
`,
);
chmodSync(wrapper, 0o755);
// Before anything resolves the binaries (resolved once per process, on first use).
process.env['FFMPEG_PATH'] = wrapper;

const { ffmpegInfo, runFfmpeg } = await import('../shared/ffmpeg.js');
const { thumbnailsKind } = await import('../coordinator/kinds/thumbnails.js');
const { grabInOnePass, thumbnailsProcessor } = await import('../worker/processors/thumbnails.js');
const { makeVideo, runKindInProcess, specOf } = await import('./helpers/media.js');

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('thumbnails on a worker whose ffmpeg is 9 (no -vsync)', () => {
  it('the wrapper is read as ffmpeg 9', () => {
    expect(ffmpegInfo().major).toBe(9);
  });

  it('an FLV source (thumbnails picked by frame number) gets its thumbnails, not INVALID_ARGUMENT "Unrecognized option \'vsync\'"', async () => {
    const src = path.join(dir, 'clip.flv');
    await runFfmpeg(['-y', '-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=96x64:rate=25:duration=2', '-c:v', 'libx264', '-preset', 'ultrafast', src]);
    const run = await runKindInProcess(thumbnailsKind, thumbnailsProcessor, specOf('thumbnails', { every: 0.5, width: 48 }), [src], { dir });
    expect(run.errors).toEqual([]);
    expect(run.outputs.map((o) => o.name).sort()).toEqual(['thumb-00001.jpg', 'thumb-00002.jpg', 'thumb-00003.jpg', 'thumb-00004.jpg']);
  });

  it('no ffmpeg command of the product names -vsync itself (fpsModeFlag picks the flag by version)', () => {
    const root = path.join(path.dirname(new URL(import.meta.url).pathname), '..');
    const offenders: string[] = [];
    for (const top of ['coordinator', 'worker', 'shared', 'client']) {
      for (const f of readdirSync(path.join(root, top), { recursive: true, encoding: 'utf8' })) {
        if (!f.endsWith('.ts') || f.endsWith('.test.ts') || f.includes('generated')) continue;
        const file = path.join(top, f);
        if (file !== path.join('shared', 'ffmpeg.ts') && readFileSync(path.join(root, file), 'utf8').includes("'-vsync'")) offenders.push(file);
      }
    }
    expect(offenders).toEqual([]);
  });

  it('dense thumbnails of an MP4 are picked in one decoding pass (not an ffmpeg refusal and a fallback to one seek each)', async () => {
    const src = await makeVideo(dir, 'dense.mp4', { duration: 2, width: 96, height: 64 });
    const times = [0.2, 0.6, 1.0, 1.4];
    const outputs = times.map((_, i) => path.join(dir, `pass-${i}.jpg`));
    const passed = await grabInOnePass({ input: src, times, outputs, width: 48, height: 32, format: 'jpeg', threads: 1, source: 'dense.mp4' }, dir);
    expect(passed).toBe(true);
  });
});
