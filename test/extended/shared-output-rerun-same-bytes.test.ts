/**
 * A shared output folder takes outputs that replace files of the same name there ("Files in it
 * are replaced by outputs of the same name, but never one of the job's own inputs", README). A file
 * at an output's name with the size and checksum of an *uploaded* input is taken for the file that
 * input was uploaded from, but replaced by the very same bytes nothing is lost: the diagnostic
 * `passthrough` (bytes in = bytes out) run twice into one folder succeeds twice (the second run
 * failed INVALID_ARGUMENT "would replace ..., the file the job's input a.bin was uploaded from").
 */
import { mkdir, mkdtemp, readdir, realpath, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

let dir: string;
let out: string;
let src: string;
let c: TestCluster;

beforeAll(async () => {
  dir = await realpath(await mkdtemp(path.join(os.tmpdir(), 'tessera-shared-rerun-')));
  out = path.join(dir, 'renders', 'out');
  await mkdir(out, { recursive: true });
  // The input lies elsewhere (the user's own folder), uploaded: not in the output folder.
  await mkdir(path.join(dir, 'home'));
  src = path.join(dir, 'home', 'a.bin');
  await writeFile(src, Buffer.alloc(4096, 7));
  c = await startCluster({ workers: 1, slots: 1, coordinatorArgs: ['--shared-output-root', path.join(dir, 'renders')] });
}, 60_000);

afterAll(async () => {
  await c?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('the same job submitted again into the same shared output folder succeeds (its earlier output replaced)', async () => {
  const first = await c.runCli(['submit', 'passthrough', src, '--shared-output', out, '--json']);
  expect(first.code, first.stderr.slice(-300)).toBe(0);
  expect(await readdir(out)).toContain('a.bin');
  const again = await c.runCli(['submit', 'passthrough', src, '--shared-output', out, '--json']);
  // Observed: the job fails, INVALID_ARGUMENT "output a.bin would replace <out>/a.bin, the file the job's input a.bin was uploaded from (the same bytes)".
  expect(again.code, `${again.stdout.slice(-300)} ${again.stderr.slice(-300)}`).toBe(0);
}, 60_000);
