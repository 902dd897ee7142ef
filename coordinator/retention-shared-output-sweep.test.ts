/**
 * The retention sweep and jobs that wrote their outputs into one shared output folder
 * (`--shared-output-root`, `spec.shared_output_dir`): the usual set-up of a pipeline that drops
 * every job's results into the same folder on a NAS, which therefore holds thousands of files.
 *
 * For each expired job the sweep calls removeSharedTemps(dir, job.id), which lists the whole
 * folder to find that one job's temporary files: a sweep of N expired jobs lists a folder of M
 * files N times, O(N x M). With 10,000 jobs (a folder of their 10,000 outputs) a real coordinator's
 * sweep took 63 s instead of 5.8 s, and each job's spool (what frees a full disk) waits its turn
 * behind those listings. The start-up sweep (sweepSharedTemps) already lists each folder once.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';

/** How many times each folder was listed (readdir), counted from here on. */
const listings = new Map<string, number>();
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const readdir = ((dir: string, ...rest: unknown[]) => {
    listings.set(String(dir), (listings.get(String(dir)) ?? 0) + 1);
    return (real.readdir as (...a: unknown[]) => unknown)(dir, ...rest);
  }) as typeof real.readdir;
  return { ...real, default: { ...real, readdir }, readdir };
});

const { SharedRoots } = await import('./shared-inputs.js');
const { inProcessManager } = await import('../test/helpers/job-manager.js');
type Spec = import('../shared/proto/generated/tessera/v1/JobSpec.js').JobSpec__Output;

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('the retention sweep of jobs sharing one output folder', () => {
  it('lists the shared output folder once per sweep, not once per expired job (O(jobs x files))', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tessera-retshared-'));
    dirs.push(dir);
    const root = path.join(dir, 'nas');
    const out = path.join(root, 'results');
    mkdirSync(out, { recursive: true });
    mkdirSync(path.join(dir, 'data'));
    const sharedRoots = await SharedRoots.create([], path.join(dir, 'data'), [root]);
    const { manager, store } = inProcessManager({ dataDir: path.join(dir, 'data'), sharedRoots });
    const JOBS = 500;
    for (let i = 0; i < JOBS; i++) {
      const spec = { label: `r${i}`, priority: 0, max_attempts: 0, params: 'passthrough', passthrough: { subtasks: 0, work_ms: 0, fail_first_attempts: 0 }, shared_output_dir: out } as unknown as Spec;
      const job = manager.newJob(spec, 'anonymous');
      await manager.accept(job);
      manager.cancel(job.id);
      // Each job's published result, as the pipeline leaves it there.
      writeFileSync(path.join(out, `result-${i}.jpg`), 'x');
    }
    await store.committed();
    // Let the listings each job's end made settle, then count only the sweep's.
    await new Promise((r) => setTimeout(r, 500));
    listings.clear();
    const t0 = performance.now();
    expect(await manager.removeExpired(1, Date.now() + 1000)).toBe(JOBS);
    const ms = performance.now() - t0;
    const listed = listings.get(out) ?? 0;
    // eslint-disable-next-line no-console
    console.log(`sweep of ${JOBS} jobs: ${ms.toFixed(0)} ms, ${listed} listings of the ${JOBS}-file shared folder`);
    expect(listed).toBeLessThanOrEqual(1);
    manager.close();
    store.close();
  }, 60_000);
});
