/**
 * A damaged TIFF (its second page's last strips' offsets point past the end of the file, a bad
 * copy: the header reads, the pixels do not) whose name ends in `]` (`scan [1]`). libvips
 * would read such a name as file + load options, so the worker opens it through a symlink it makes
 * in its work folder (vips-path.ts `vipsSafePath`), and libvips names that symlink in its error
 * ("<path>: bad seek to ..."). The error is then told with `describeSharpError(err, { path:
 * input.path, ... })`, which takes out the input's own path but not the symlink's, so the job's
 * error shows the worker's scratch path instead of the input's name. The README: "a refusal names
 * the input, never a path of the coordinator's" (and the batch path means the same of a worker's:
 * "libvips names the file by the worker's path to it, a folder of the worker's own: the input's
 * name instead", image-errors.ts).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageKind } from '../../coordinator/kinds/image.js';
import type { JobSpec__Output } from '../../shared/proto/generated/tessera/v1/JobSpec.js';
import { imageProcessor } from '../../worker/processors/image.js';
import { runImageBatch } from '../helpers/image-batch.js';
import { runKindInProcess } from '../helpers/media.js';
import { damagedTiff } from '../helpers/damaged-images.js';
import { startCluster } from '../helpers/cluster.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-err-path-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});


const imageSpec = (params: Record<string, unknown>): JobSpec__Output =>
  ({ label: 'test', priority: 0, max_attempts: 3, params: 'image', image: params }) as unknown as JobSpec__Output;

describe('the error of a damaged input whose name ends in ]', () => {
  it('names the input (as for any other name), not the worker symlink libvips was given', async () => {
    const bytes = await damagedTiff(300, 200, 5, true);
    const res = await runImageBatch(dir, { 'scan.tif': bytes, 'scan [1]': bytes }, { width: 100 });
    const byInput = Object.fromEntries((res.itemErrors ?? []).map((e) => [e.input, e.message]));
    // The same file under a plain name: "scan.tif: not a decodable image (scan.tif: bad seek to 2147483632)".
    expect(byInput['scan.tif']).toMatch(/^scan\.tif: not a decodable image \(scan\.tif: bad seek/);
    // Observed: "scan [1]: not a decodable image (/tmp/.../work-XXXX/vips-source-3f1c...: bad seek to 2147483632)".
    expect(byInput['scan [1]']).toMatch(/^scan \[1\]: not a decodable image \(scan \[1\]: bad seek/);
    expect(byInput['scan [1]']).not.toContain('vips-source-');
    expect(byInput['scan [1]']).not.toContain(dir);
  });

  it('on the tiled path too (a worker reads its strip from the source through the same symlink)', async () => {
    const file = path.join(dir, 'tiled [1]');
    await writeFile(file, await damagedTiff());
    const saved = process.env['TESSERA_TILE_THRESHOLD_PIXELS'];
    // Auto tiling (strips read straight from the source by the workers) for this small image.
    process.env['TESSERA_TILE_THRESHOLD_PIXELS'] = '1000';
    try {
      const run = await runKindInProcess(imageKind, imageProcessor, imageSpec({ format: 'png' }), [file], { dir, slots: 2 });
      expect(run.outputs).toEqual([]);
      const messages = [...run.errors.map((e) => e.message), ...run.outcomes.map((o) => o.error?.message ?? '')].filter(Boolean);
      expect(messages.length).toBeGreaterThan(0);
      for (const m of messages) expect(m).not.toContain('vips-source-');
    } finally {
      if (saved === undefined) delete process.env['TESSERA_TILE_THRESHOLD_PIXELS'];
      else process.env['TESSERA_TILE_THRESHOLD_PIXELS'] = saved;
    }
  });

  it('names it as given where the name holds `$` patterns (`$$`, `$\'`), not as a replacement pattern reads them', async () => {
    const bytes = await damagedTiff(300, 200, 5, true);
    const names = ['Ca$$h scan [1]', "Bob$'s scan [2]"];
    const res = await runImageBatch(dir, Object.fromEntries(names.map((n) => [n, bytes])), { width: 100 });
    const byInput = Object.fromEntries((res.itemErrors ?? []).map((e) => [e.input, e.message]));
    // Observed: "Ca$$h scan [1]: not a decodable image (Ca$h scan [1]: bad seek ...)"; the $' one spliced the rest of the message in (review K22).
    for (const name of names) expect(byInput[name], name).toContain(`not a decodable image (${name}: bad seek`);
  });
});

/**
 * libvips keeps one error buffer per process: where subtasks share one (a worker with
 * --memory-limit-mb 0), an image failing while another task fails beside it may get the other's
 * text, naming that task's input in its work folder: another job's, another client's (review K24).
 */
describe('the error of a damaged input beside other failing tasks in one process', () => {
  it("a job's image error names neither the worker's scratch folder nor another job's input (worker with --memory-limit-mb 0)", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-sibling-jobs-'));
    const cluster = await startCluster({ workers: 1, slots: 4, workerArgs: ['--memory-limit-mb', '0'] });
    try {
      const bytes = await damagedTiff(1500, 1000, 50, true);
      const names = ['payroll-2026.tif', 'scan.tif', 'map.tif', 'plan.tif'];
      for (const n of names) await writeFile(path.join(dir, n), bytes);
      const errors: Array<{ input: string; message: string }> = [];
      // Two rounds (on this machine the first already showed it).
      for (let round = 0; round < 2; round++) {
        const jobs = await Promise.all(names.map((n) => cluster.client.submit({ image: { width: 700 } }, [path.join(dir, n)])));
        for (const job of await Promise.all(jobs.map((j) => cluster.client.wait(j.id)))) {
          for (const e of job.errors ?? []) {
            errors.push({ input: e.input, message: e.message });
          }
        }
      }
      expect(errors.length).toBeGreaterThan(0);
      // Observed: { input: 'payroll-2026.tif', message: 'payroll-2026.tif: not a decodable image
      // (/tmp/tessera-worker-worker-1-7902-rce7fa122/st-49a97048-0-0-312dd7-a1/in/map.tif: bad seek to 2147483632)' }.
      expect(errors.filter((e) => /\/st-[^/]*-a\d+\/|tessera-worker-|\/in\//.test(e.message) || names.some((n) => n !== e.input && e.message.includes(n))).slice(0, 2)).toEqual([]);
    } finally {
      await cluster.stop();
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
