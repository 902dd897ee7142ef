/**
 * An ffmpeg that dies by a signal mid-encode (it segfaults, the kernel's OOM killer picks it: it is
 * the biggest process of a subtask) fails the run as INTERNAL and retryable, and the message must
 * say so. Before, it quoted the last lines of ffmpeg's log instead ("segment 3: ffmpeg failed: Side
 * data:; cpb: bitrate maxavg: 00 buffer size: 0 vbv_delay: N/A"), naming neither the signal nor a
 * crash: in the job's error and the coordinator's log a crash read like a failed encode setting.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { status } from '../shared/grpc-status.js';
import { runFfmpeg } from '../shared/ffmpeg.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-ffmpeg-signal-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Pids of this process's ffmpeg children. */
function ffmpegChildren(): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const st = readFileSync(`/proc/${p}/status`, 'utf8');
      if (/^Name:\s*ffmpeg$/m.test(st) && Number(/^PPid:\s*(\d+)/m.exec(st)?.[1]) === process.pid) out.push(Number(p));
    } catch {
      // gone
    }
  }
  return out;
}

describe('ffmpeg killed by a signal mid-encode', () => {
  for (const sig of ['SIGSEGV', 'SIGKILL'] as const) {
    it(`says it was killed by ${sig} (a crash), not the last lines of its log`, async () => {
      let killed = false;
      const args = ['-y', '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30:duration=60', '-c:v', 'libx264', '-preset', 'medium', '-threads', '1', '-f', 'mp4', path.join(dir, `${sig}.mp4`)];
      const err = await runFfmpeg(args, {
        input: 'segment 3',
        onProgress: () => {
          if (killed) return;
          const [pid] = ffmpegChildren();
          if (pid === undefined) return;
          killed = true;
          process.kill(pid, sig);
        },
      }).then(
        () => new Error('the encode finished'),
        (e: unknown) => e as Error & { code?: number; retryable?: boolean },
      );
      expect(killed).toBe(true);
      expect(err).toMatchObject({ code: status.INTERNAL, retryable: true });
      expect(err.message).toMatch(new RegExp(`segment 3: .*${sig}`));
    }, 30_000);
  }
});
