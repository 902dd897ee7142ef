/**
 * A job writing into the folder it reads from never replaces one of its own inputs "by name or as
 * the same file under another" (README, "Inputs and outputs on shared storage"). An input submitted
 * by the name of a symlink (`photos/latest.jpg -> p1.jpg`) is that input by name too: the download
 * path (`submit -o`) protects it (the client's `protect` follows the link), the shared folder did not.
 */
import { lstat, mkdir, mkdtemp, readlink, realpath, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

let dir: string;
let photos: string;
let c: TestCluster;

beforeAll(async () => {
  dir = await realpath(await mkdtemp(path.join(os.tmpdir(), 'tessera-shared-link-')));
  photos = path.join(dir, 'shared', 'photos');
  await mkdir(photos, { recursive: true });
  await sharp({ create: { width: 320, height: 240, channels: 3, background: { r: 40, g: 120, b: 200 } } }).jpeg().toFile(path.join(photos, 'p1.jpg'));
  await symlink('p1.jpg', path.join(photos, 'latest.jpg'));
  c = await startCluster({ workers: 1, slots: 1, coordinatorArgs: ['--shared-root', path.join(dir, 'shared'), '--shared-output-root', path.join(dir, 'shared')] });
}, 60_000);

afterAll(async () => {
  await c?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('an input submitted through a symlink in the output folder is not replaced by its own output', async () => {
  const r = await c.runCli(['submit', 'image', path.join(photos, 'latest.jpg'), '--shared', '--width', '64', '--format', 'jpeg', '--shared-output', photos, '--json']);
  const job = JSON.parse(r.stdout) as { state: string; outputs: { name: string }[] };
  // The name the user submitted still leads to the original photo...
  const st = await lstat(path.join(photos, 'latest.jpg'));
  expect(st.isSymbolicLink(), `latest.jpg was replaced by the job's output (job ${job.state}, outputs ${JSON.stringify(job.outputs)})`).toBe(true);
  expect(await readlink(path.join(photos, 'latest.jpg'))).toBe('p1.jpg');
  expect((await sharp(path.join(photos, 'latest.jpg')).metadata()).width).toBe(320);
  // ...and the job is refused as one writing over its own input is.
  expect(job.state).toBe('failed');
}, 30_000);
