/**
 * The memory ceiling (--memory-limit-mb) and pooled processor children, through a real cluster: a
 * subtask is charged for what earlier subtasks left resident in the child it is handed. The same
 * image job (a 9000x9000 JPEG blurred: one strip from the decoded intermediate) whose
 * processor child peaks well under the ceiling on a fresh child is killed as RESOURCE_EXHAUSTED
 * (not retryable: the job fails) when it runs on the child that ran it before, which glibc left
 * holding ~300 MiB of freed heap and the pool handed out again.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

let dir: string;
let photo: string;
let cluster: TestCluster;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-pooled-memory-'));
  photo = path.join(dir, 'photo.jpg');
  // Noise made at 1500 px and scaled up six times: as heavy to decode and as big decoded (libvips'
  // gaussian noise at 9000 px cost 15 CPU-s, the most of any fixture in the suite).
  const noise = await sharp({ create: { width: 1500, height: 1500, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 40 } } }).png({ compressionLevel: 0 }).toBuffer();
  await sharp(noise).resize(9000, 9000, { kernel: 'nearest' }).jpeg({ quality: 90 }).toFile(photo);
  cluster = await startCluster({ workers: 0 });
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** Resident high-water mark (MiB) of the processor children (isolation.js) of process `pid`. */
function childrenPeakMb(pid: number): number {
  let peak = 0;
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const st = readFileSync(`/proc/${p}/status`, 'utf8');
      if (Number(/^PPid:\s*(\d+)/m.exec(st)?.[1]) !== pid || !readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('isolation.js')) continue;
      peak = Math.max(peak, Number(/^VmHWM:\s*(\d+) kB/m.exec(st)?.[1] ?? 0) / 1024);
    } catch {
      // gone
    }
  }
  return peak;
}

async function submit(i: number): Promise<{ state: string; message: string }> {
  const r = await cluster.runCli(['submit', 'image', '--width', '8999', '--blur', '3', '--format', 'jpeg', photo, '-o', path.join(dir, `out-${i}`), '--json'], { timeoutMs: 60_000 });
  return JSON.parse(r.stdout) as { state: string; message: string };
}

describe('memory ceiling with pooled processor children', () => {
  it('the same image job that fits the ceiling on a fresh processor child is not killed on a reused one', async () => {
    // Its processor's peak on a fresh child (Node, sharp and libvips included), under no ceiling to speak of.
    const probe = cluster.startWorker('probe', ['--slots', '1', '--memory-limit-mb', '8192']);
    await cluster.waitForWorkers(1, 30_000, [probe]);
    expect((await submit(0)).state).toBe('succeeded');
    const freshPeakMb = childrenPeakMb(probe.child.pid!);
    expect(freshPeakMb).toBeGreaterThan(250);
    probe.child.kill('SIGTERM');
    await probe.exited;

    // A ceiling 15% above that peak: the job fits it, every time it runs alone on the worker.
    const limitMb = Math.ceil(freshPeakMb * 1.15);
    const worker = cluster.startWorker('w', ['--slots', '1', '--memory-limit-mb', String(limitMb)]);
    await cluster.waitForWorkers(1, 30_000, [worker]);
    const outcomes: string[] = [];
    for (let i = 1; i <= 2; i++) {
      const job = await submit(i);
      outcomes.push(job.state === 'succeeded' ? 'succeeded' : job.message);
    }
    expect(outcomes, `fresh-child peak ${Math.round(freshPeakMb)} MiB, --memory-limit-mb ${limitMb}`).toEqual(['succeeded', 'succeeded']);
  }, 120_000);
});
