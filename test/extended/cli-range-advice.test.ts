/**
 * A value out of range is refused with the range to pick from; the CLI user is told that 0 is one
 * of the choices ("or 0 for the encoder's default", "0 keeps the source timing"), and the very
 * command it suggests is then refused by the CLI itself ("--quality must be 1 or more, got 0").
 * What a CLI user is told to do must be something the CLI takes.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Coordinator } from '../../coordinator/coordinator.js';
import { createLogger } from '../../shared/logger.js';
import { runCli } from '../helpers/cluster.js';

const log = createLogger('test', 'silent', 'json');
let dir: string;
let coordinator: Coordinator;
let address: string;
let photo: string;
let video: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-range-'));
  photo = path.join(dir, 'a.png');
  video = path.join(dir, 'v.mp4');
  execFileSync('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc=size=64x48', '-frames:v', '1', photo]);
  execFileSync('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc=size=64x48:rate=10:duration=1', '-pix_fmt', 'yuv420p', video]);
  coordinator = new Coordinator({ listen: '127.0.0.1:0', dataDir: path.join(dir, 'data'), log, http: '' });
  address = await coordinator.start();
});

afterAll(async () => {
  await coordinator?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The advice of the refusal of `bad`, then whether the CLI takes the `0` it offers. */
async function adviceAndZero(kind: string, flag: string, bad: string, file: string): Promise<{ advice: string; zero: { code: number | null; stderr: string } }> {
  const out = path.join(dir, `out-${kind}`);
  const r = await runCli(['submit', kind, flag, bad, file, '-o', out, '--no-progress', '--coordinator', address], { timeoutMs: 30_000 });
  expect(r.code, r.stderr).toBe(2);
  const zero = await runCli(['submit', kind, flag, '0', file, '-o', out, '--no-progress', '--coordinator', address], { timeoutMs: 30_000 });
  return { advice: r.stderr, zero: { code: zero.code, stderr: zero.stderr } };
}

describe('the range told for an out-of-range flag', () => {
  it('--quality 101: does not offer 0, which `--quality 0` refuses', async () => {
    const { advice, zero } = await adviceAndZero('image', '--quality', '101', photo);
    // `tessera submit image --quality 0` is refused (README: flags whose 0 would mean "unset" refuse 0).
    expect(zero.code).toBe(2);
    // It was "image.quality: 101 is out of range (1..100, or 0 for the encoder's default)".
    expect(advice).not.toMatch(/\b0 for the encoder's default/);
  });

  it('--fps 1000: does not offer 0, which `--fps 0` refuses', async () => {
    const { advice, zero } = await adviceAndZero('video', '--fps', '1000', video);
    expect(zero.code).toBe(2);
    // It was "fps: 1000 is outside 1..240 (0 keeps the source timing)".
    expect(advice).not.toMatch(/0 keeps the source timing/);
  });
});
