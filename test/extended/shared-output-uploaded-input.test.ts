/**
 * "Files in it are replaced by outputs of the same name, but never one of the job's own inputs"
 * (README, "Inputs and outputs on shared storage"). With `--shared-output` the inputs may be
 * uploaded (no `--shared`): `tessera submit image renders/shoot/*.jpg --width 64 --shared-output
 * renders/shoot` replaced the user's originals with the 64 px copies, where `-o renders/shoot`
 * (a download) keeps them (the client's `protect`) and `--shared` inputs fail the job.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, realpath, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

let dir: string;
let shoot: string;
let c: TestCluster;
const sha = async (file: string): Promise<string> => createHash('sha256').update(await readFile(file)).digest('hex');

beforeAll(async () => {
  dir = await realpath(await mkdtemp(path.join(os.tmpdir(), 'tessera-shared-upload-')));
  shoot = path.join(dir, 'renders', 'shoot');
  await mkdir(shoot, { recursive: true });
  await sharp({ create: { width: 320, height: 240, channels: 3, background: { r: 40, g: 120, b: 200 } } }).jpeg().toFile(path.join(shoot, 'p0.jpg'));
  c = await startCluster({ workers: 1, slots: 1, coordinatorArgs: ['--shared-output-root', path.join(dir, 'renders')] });
}, 60_000);

afterAll(async () => {
  await c?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

it("an uploaded input is not replaced by its own output in the shared output folder", async () => {
  const original = path.join(shoot, 'p0.jpg');
  const before = await sha(original);
  const r = await c.runCli(['submit', 'image', original, '--width', '64', '--format', 'jpeg', '--shared-output', shoot, '--json']);
  expect(await sha(original), `the original was replaced (exit ${r.code}: ${r.stdout.slice(0, 300)} ${r.stderr.slice(-300)})`).toBe(before);
  expect((await sharp(original).metadata()).width).toBe(320);
}, 30_000);
