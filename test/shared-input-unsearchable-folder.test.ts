/**
 * A shared input the coordinator may not read is PERMISSION_DENIED naming it ("not readable by the
 * coordinator"); NOT_FOUND is for a missing file (README, "Inputs and outputs on shared storage").
 * A file that exists in a folder the coordinator may not enter (mode 0700 of another user, an NFS
 * export squashing root) was answered NOT_FOUND "does not exist": realpath's EACCES was taken for
 * a missing file. The coordinator runs without the capabilities that let root read anything (tests
 * run as root), as the existing unreadable-file test in coordinator/shared-inputs.test.ts does.
 */
import type { ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startUnprivilegedCoordinator, stopCoordinator } from './helpers/unprivileged.js';
import { rawSubmit } from './helpers/raw-grpc.js';

let dir: string;
let media: string;
let coordinator: ChildProcess | undefined;
let address: string;

beforeAll(async () => {
  dir = await realpath(await mkdtemp(path.join(os.tmpdir(), 'tessera-shared-unsearchable-')));
  media = path.join(dir, 'media');
  await mkdir(path.join(media, 'private'), { recursive: true });
  await mkdir(path.join(dir, 'data'));
  await writeFile(path.join(media, 'private', 'a.bin'), 'exists');
  await writeFile(path.join(media, 'secret.bin'), 'exists');
  await chmod(path.join(media, 'secret.bin'), 0o000);
  await chmod(path.join(media, 'private'), 0o000);
  ({ child: coordinator, address } = await startUnprivilegedCoordinator(['--http', 'off', '--data-dir', path.join(dir, 'data'), '--shared-root', media]));
}, 30_000);

afterAll(async () => {
  await stopCoordinator(coordinator);
  if (dir) {
    await chmod(path.join(media, 'private'), 0o755).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
});

it('an input in a folder the coordinator may not enter is PERMISSION_DENIED naming it, not NOT_FOUND', async () => {
  const submit = (name: string, p: string) => rawSubmit(address, [{ spec: { passthrough: {} } }, { input: { name, shared_path: p } }]);
  // The file itself unreadable: refused as the README says.
  const secret = await submit('secret.bin', path.join(media, 'secret.bin'));
  expect(secret?.code).toBe(grpc.status.PERMISSION_DENIED);
  expect(secret?.details).toBe(`input secret.bin: shared path ${path.join(media, 'secret.bin')} is not readable by the coordinator`);
  // A file that is there, in a folder it may not enter.
  const hidden = await submit('a.bin', path.join(media, 'private', 'a.bin'));
  expect(hidden?.details).not.toMatch(/does not exist/);
  expect(hidden?.code, hidden?.details).toBe(grpc.status.PERMISSION_DENIED);
  expect(hidden?.details).toMatch(/^input a\.bin: shared path .*private\/a\.bin is not readable by the coordinator/);
}, 30_000);
