/**
 * A client that may write under a --shared-root cannot read files outside it by swapping a folder
 * on the path for a symbolic link while the coordinator looks the path up: the descriptor opened is
 * checked to be the file at the resolved path. O_NOFOLLOW refuses a link at the last step only: the
 * swapped folder was followed, the outside file's identity recorded as the input's, every later
 * read checked against it through the same link, and a passthrough job handed the outside file's
 * bytes back to the client (review SEC).
 */
import { spawn } from 'node:child_process';
import { lstat, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { TesseraClient } from '../../client/client.js';
import { Coordinator } from '../../coordinator/coordinator.js';
import { createLogger } from '../../shared/logger.js';
import type { Job__Output } from '../../shared/proto/generated/tessera/v1/Job.js';
import { Worker } from '../../worker/worker.js';
import { rawJobService } from '../helpers/raw-grpc.js';

const log = createLogger('test', 'silent', 'json');
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/** Swaps `d` between a real folder and a symlink to `outside` until `stop` exists (at most 60 s); ends with the symlink in place. */
const SWAPPER = `
const fs = require('fs');
const [d, real, lnk, stop] = process.argv.slice(1);
const until = Date.now() + 60000;
let n = 0;
while (Date.now() < until && !(n++ % 256 === 0 && fs.existsSync(stop))) {
  fs.renameSync(d, real); fs.renameSync(lnk, d);
  fs.renameSync(d, lnk); fs.renameSync(real, d);
}
fs.renameSync(d, real); fs.renameSync(lnk, d);
`;

function submitShared(address: string, inputs: { name: string; shared_path: string }[]): Promise<{ err: grpc.ServiceError | null; job?: Job__Output }> {
  const client = rawJobService(address);
  return new Promise((resolve) => {
    const call = client.SubmitJob({ deadline: Date.now() + 10_000 }, (err, job) => {
      client.close();
      resolve({ err, job });
    });
    call.write({ spec: { passthrough: {}, input_count: inputs.length } });
    for (const i of inputs) call.write({ input: { name: i.name, size: 0, shared_path: i.shared_path } });
    call.end();
  });
}

describe('--shared-root', () => {
  it('a client that may write under the root cannot read a file outside it by swapping a folder on the path for a symlink', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-sec-swap-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const share = path.join(dir, 'share');
    const outside = path.join(dir, 'outside');
    await mkdir(path.join(share, 'd'), { recursive: true });
    await mkdir(outside);
    const secret = Buffer.from('TOP SECRET: the coordinator can read me, clients must not\n');
    await writeFile(path.join(outside, 'x.bin'), secret);
    await writeFile(path.join(share, 'd', 'x.bin'), 'public');
    await writeFile(path.join(share, 'ok.bin'), 'a genuine shared input');
    await symlink(outside, path.join(share, 'd.lnk'));

    const coordinator = new Coordinator({ listen: '127.0.0.1:0', dataDir: path.join(dir, 'data'), log, http: '', sharedRoots: [share] });
    const address = await coordinator.start();
    cleanups.push(() => coordinator.close());
    const client = new TesseraClient({ address, deadlineMs: 10_000 });
    cleanups.push(async () => client.close());

    const stop = path.join(dir, 'stop');
    const swapper = spawn(process.execPath, ['-e', SWAPPER, path.join(share, 'd'), path.join(share, 'd.real'), path.join(share, 'd.lnk'), stop], { stdio: 'ignore' });
    const swapped = new Promise((resolve) => swapper.once('exit', resolve));
    cleanups.push(async () => {
      await writeFile(stop, '');
      await swapped;
    });

    // A client's attempts, while the folder flips: most are refused (outside the roots, not found)
    // or read the public file; one that resolved the real folder and opened through the symlink wins.
    let won: Job__Output | undefined;
    for (let i = 0; i < 400 && !won; i++) {
      const r = await submitShared(address, [
        { name: 'ok.bin', shared_path: path.join(share, 'ok.bin') },
        { name: 'x.bin', shared_path: path.join(share, 'd', 'x.bin') },
      ]);
      if (!r.job) continue;
      if (r.job.inputs.find((f) => f.name === 'x.bin')?.size === String(secret.length)) won = r.job;
      else await client.cancel(r.job.id).catch(() => undefined);
    }
    await writeFile(stop, '');
    await swapped;
    expect((await lstat(path.join(share, 'd'))).isSymbolicLink()).toBe(true);
    // Observed: an attempt is accepted with the outside file's size (its identity recorded).
    expect.soft(won?.inputs.map((f) => `${f.name}: ${f.size} bytes`), 'an input under the root was accepted as the file outside it').toBeUndefined();
    if (!won) return;

    // What a worker then does with it (not reached when the lookup refuses as it should).
    const worker = new Worker({ coordinator: address, slots: 1, log, memoryLimitMb: 0, name: 'w1' });
    worker.start();
    cleanups.push(() => worker.close());
    const out = path.join(dir, 'out');
    const { job: done, paths } = await client.collect(won.id, out);
    // Observed: the client downloads the outside file's bytes.
    expect(done.state).toBe('JOB_STATE_SUCCEEDED');
    expect((await readFile(paths.get('x.bin')!)).toString()).not.toBe(secret.toString());
  }, 90_000);
});
