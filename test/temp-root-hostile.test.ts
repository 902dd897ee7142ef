/**
 * The temp-root sweep (worker/temp-root.ts) against folders another local user can plant in a
 * shared TMPDIR: a `tessera-worker-*-PID-r<8 hex digits>` name is anyone's to make in /tmp. A planted
 * `.alive` that is a FIFO hung the sweep (and, four sweeps on, every file read of the worker); a
 * subfolder swapped for a link mid-removal had the sweep delete the link target's files.
 */
import { execFileSync, spawn } from 'node:child_process';
import { constants, openSync, closeSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, readdir, readlink, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { removeStaleTempRoots } from '../worker/temp-root.js';

let tmp = '';
let savedTmpdir: string | undefined;
const fifos: string[] = [];

beforeEach(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'tessera-hostile-'));
  savedTmpdir = process.env.TMPDIR;
  process.env.TMPDIR = tmp;
});

afterEach(async () => {
  // Release any read still blocked on a FIFO (a writer opening and closing gives it end-of-file).
  for (const f of fifos.splice(0)) {
    try {
      closeSync(openSync(f, constants.O_WRONLY | constants.O_NONBLOCK));
    } catch {
      // No reader left.
    }
  }
  if (savedTmpdir === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = savedTmpdir;
  await rm(tmp, { recursive: true, force: true });
});

describe('temp-root sweep: folders planted by another local user', () => {
  it('a planted root whose .alive is a FIFO does not hang the sweep (nor the dead roots after it)', async () => {
    // Another user's folder, named like a worker's root, its `.alive` a named pipe no one writes.
    const planted = path.join(tmp, 'tessera-worker-evil-1-rdeadbeef');
    await mkdir(planted);
    execFileSync('mkfifo', [path.join(planted, '.alive')]);
    fifos.push(path.join(planted, '.alive'));
    const sweep = removeStaleTempRoots();
    const outcome = await Promise.race([
      sweep.then(() => 'finished', () => 'failed'),
      new Promise<string>((resolve) => setTimeout(() => resolve('still running after 5 s'), 5000).unref()),
    ]);
    // Observed: 'still running after 5 s' -- readFile blocks in open(2) for ever, holding one of
    // libuv's 4 threadpool threads; a sweep runs every 30 s, so after 2 minutes every fs call of the
    // worker (its subtasks' reads and writes) waits behind them.
    expect(outcome).toBe('finished');
  }, 10_000);

  it("four sweeps (two minutes of a worker's heartbeats) past such a root leave the worker's file reads stuck", async () => {
    const planted = path.join(tmp, 'tessera-worker-evil-1-rdeadbeef');
    await mkdir(planted);
    execFileSync('mkfifo', [path.join(planted, '.alive')]);
    fifos.push(path.join(planted, '.alive'));
    const plain = path.join(tmp, 'input.bin');
    await writeFile(plain, 'x');
    // What the heartbeat timer does every TEMP_HEARTBEAT_MS (each sweep blocks on the FIFO).
    for (let i = 0; i < 4; i++) void removeStaleTempRoots().catch(() => undefined);
    const read = await Promise.race([
      readFile(plain, 'utf8'),
      new Promise<string>((resolve) => setTimeout(() => resolve('read still waiting after 3 s'), 3000).unref()),
    ]);
    // Observed: 'read still waiting after 3 s' (libuv's threadpool, 4 threads, all in open() of the FIFO).
    expect(read).toBe('x');
  }, 10_000);

  it("the sweep of a planted root never deletes files outside it (a folder swapped for a symlink mid-sweep)", async () => {
    // Another user's planted root, dead by its own say (.alive: this PID namespace, a PID no one has),
    // whose subfolder `a` it swaps, again and again, with a symlink to a folder of the worker's user
    // (renameat2 RENAME_EXCHANGE): fs.rm lstat()s `a` as a folder, then readdir()s and unlinks
    // through whatever `a` is by then.
    const victim = path.join(tmp, 'victim-data');
    await mkdir(victim);
    for (let i = 0; i < 50; i++) await writeFile(path.join(victim, `keep${i}`), 'precious');
    const ns = await readlink('/proc/self/ns/pid');
    const swapper = `
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
d = os.path.join(sys.argv[1], 'tessera-worker-evil-1-rdeadbeef')
end = time.time() + 4
while time.time() < end:
    try:
        os.makedirs(os.path.join(d, 'a'), exist_ok=True)
        open(os.path.join(d, '.alive'), 'w').write(sys.argv[3] + ' 999999999\\n')
        for i in range(20): open(os.path.join(d, 'a', 'f%d' % i), 'w').close()
        if not os.path.lexists(os.path.join(d, 'b')): os.symlink(sys.argv[2], os.path.join(d, 'b'))
        for _ in range(2000): libc.renameat2(-100, os.path.join(d, 'a').encode(), -100, os.path.join(d, 'b').encode(), 2)
    except OSError:
        pass
`;
    // Another user indeed (nobody), in a TMPDIR that everyone may write, as /tmp is.
    await chmod(tmp, 0o1777);
    const child = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '/usr/bin/python3', '-c', swapper, tmp, victim, ns], { stdio: 'ignore' });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      // What the worker's heartbeat timer does every 30 s, here back to back for 3 s.
      for (const end = Date.now() + 3000; Date.now() < end; ) await removeStaleTempRoots().catch(() => 0);
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    // Observed: 0 (all 50 of the victim's files deleted through the swapped-in symlink, in under 3 s).
    expect((await readdir(victim)).length).toBe(50);
    // The planted root is another user's: left alone.
    expect(await readdir(tmp)).toContain('tessera-worker-evil-1-rdeadbeef');
  }, 15_000);
});
