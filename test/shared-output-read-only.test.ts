/**
 * `--shared-output` into a folder the coordinator cannot write to is PERMISSION_DENIED, naming the
 * folder ("not writable"), whether the folder exists or is to be made. On a read-only file system
 * (a share mounted ro, a read-only volume) a missing folder came out FAILED_PRECONDITION "cannot
 * create it: ENOENT": Node's recursive mkdir reports EROFS as ENOENT.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdir, mkdtemp, realpath, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import sharp from 'sharp';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { rawSubmit } from './helpers/raw-grpc.js';
import { startCluster, type TestCluster } from './helpers/cluster.js';

const run = promisify(execFile);
let dir: string;
let shared: string;
let ro: string;
let photo: string;
let c: TestCluster;

beforeAll(async () => {
  dir = await realpath(await mkdtemp(path.join(os.tmpdir(), 'tessera-shared-ro-')));
  shared = path.join(dir, 'shared');
  ro = path.join(shared, 'ro');
  await mkdir(ro, { recursive: true });
  await run('mount', ['-t', 'tmpfs', '-o', 'size=1m,ro', 'tmpfs', ro]);
  photo = path.join(shared, 'p0.jpg');
  await sharp({ create: { width: 32, height: 32, channels: 3, background: { r: 40, g: 120, b: 200 } } }).jpeg().toFile(photo);
  c = await startCluster({ workers: 0, coordinatorArgs: ['--shared-root', shared, '--shared-output-root', shared] });
}, 60_000);

afterAll(async () => {
  await c?.stop();
  if (ro) await run('umount', [ro]).catch(() => undefined);
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('a folder to be made on a read-only file system is PERMISSION_DENIED, as an existing read-only folder is', async () => {
  const submit = (folder: string) => rawSubmit(c.address, [{ spec: { passthrough: {}, shared_output_dir: folder } }, { input: { name: 'p0.jpg', shared_path: photo } }]);
  const existing = await submit(ro);
  expect(existing?.code).toBe(grpc.status.PERMISSION_DENIED);
  expect(existing?.details).toBe(`spec.shared_output_dir ${ro}: not writable by the coordinator`);
  const missing = await submit(path.join(ro, 'renders'));
  expect(missing?.details).not.toMatch(/ENOENT/);
  expect(missing?.code, missing?.details).toBe(grpc.status.PERMISSION_DENIED);
  expect(missing?.details).toMatch(new RegExp(`^spec\\.shared_output_dir ${path.join(ro, 'renders')}: .*(not writable|EROFS|read-only)`));
}, 30_000);
