/**
 * How long the client goes on without its coordinator is what `--reconnect-for` (`reconnectForMs`)
 * says, for the watch and for the downloads alike, and a command that gives up leaves the terminal
 * as it found it and exits.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TesseraClient } from '../../client/client.js';
import { CLI_PATH, startCluster, type TestCluster } from '../helpers/cluster.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

let dir: string;
let blob: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-review-f-'));
  blob = path.join(dir, 'blob.bin');
  await writeFile(blob, Buffer.alloc(1000, 7));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('giving up on a lost coordinator', () => {
  it('tessera watch on a terminal exits 4 once the coordinator is gone past --reconnect-for, its bar taken down', async () => {
    const own: TestCluster = await startCluster({ workers: 0 });
    try {
      const job = await own.client.submit({ passthrough: {} }, [blob]);
      const command = [process.execPath, CLI_PATH, 'watch', job.id, '--reconnect-for', '2', '--coordinator', own.address].map((a) => `'${a}'`).join(' ');
      const child = spawn('script', ['-qfec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, TESSERA_LOG_LEVEL: 'warn' } });
      let screen = '';
      child.stdout.on('data', (d: Buffer) => (screen += d.toString()));
      child.stderr.on('data', (d: Buffer) => (screen += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
      for (let i = 0; i < 300 && !screen.includes('%'); i++) await sleep(100);
      expect(screen).toContain('%');
      own.coordinator!.child.kill('SIGKILL');
      const code = await Promise.race([exited, sleep(25_000).then(() => 'still running')]);
      if (code === 'still running') child.kill('SIGKILL');
      expect(code, JSON.stringify(screen.slice(-600))).toBe(4);
      // The cursor the bar hid is shown again.
      expect(screen.lastIndexOf('\u001b[?25h')).toBeGreaterThan(screen.lastIndexOf('\u001b[?25l'));
    } finally {
      await own.stop();
    }
  }, 90_000);

  it('a coordinator stopped with SIGTERM (its streams ended, not cut) is told lost at once by a client that has made a call before (as every CLI command has), and given up reconnectForMs later', async () => {
    const own: TestCluster = await startCluster({ workers: 0 });
    const client = new TesseraClient({ address: own.address });
    try {
      const job = await own.client.submit({ passthrough: {} }, [blob]);
      // As `tessera watch` does before it watches (and `submit` before it collects): a unary call.
      await client.getJob(job.id);
      let termAt = 0;
      let lostAt = 0;
      const watching = (async () => {
        for await (const e of client.watch(job.id, { reconnectForMs: 2000, onReconnect: () => (lostAt ||= Date.now()) })) void e;
      })().then(() => 'ended', (err: { code?: number }) => `rejected ${err.code}`);
      await sleep(1000);
      termAt = Date.now();
      own.coordinator!.child.kill('SIGTERM');
      const r = await Promise.race([watching, sleep(40_000).then(() => 'still waiting')]);
      const gaveUpAfter = Date.now() - termAt;
      expect(lostAt, 'onReconnect was called').toBeGreaterThan(0);
      // The loss is told when it happens, not once a 15 s unary deadline has run out.
      expect(lostAt - termAt, 'ms from SIGTERM to "lost the coordinator"').toBeLessThan(5_000);
      expect(r).toBe('rejected 14');
      // reconnectForMs 2000: given up within a few seconds of the loss, not 2 s after a 15 s wait.
      expect(gaveUpAfter, 'ms from SIGTERM to giving up').toBeLessThan(9_000);
    } finally {
      client.close();
      await own.stop();
    }
  }, 90_000);

  it("a download cut once says it lost the coordinator, then that it is back once bytes come in again (README: \"and say when they are back\")", async () => {
    const own: TestCluster = await startCluster({ workers: 1 });
    const big = path.join(dir, 'cut-once.bin');
    await writeFile(big, Buffer.alloc(48 * 1024 * 1024, 5));
    const [host, port] = own.address.split(':');
    const proxy = new TcpProxy({ host: host!, port: Number(port) });
    const client = new TesseraClient({ address: await proxy.start() });
    try {
      const job = await own.client.submit({ passthrough: {} }, [big]);
      await own.client.wait(job.id);
      const notes: string[] = [];
      let cut = false;
      const { paths } = await client.collect(job.id, path.join(dir, 'out-cut-once'), {
        onReconnect: () => notes.push('lost'),
        onReattach: () => notes.push('back'),
        onProgress: () => {
          if (!cut) {
            cut = true;
            proxy.cut();
          }
        },
      });
      expect(notes).toEqual(['lost', 'back']);
      expect((await readFile(paths.get('cut-once.bin')!)).equals(await readFile(big))).toBe(true);
    } finally {
      client.close();
      await proxy.stop();
      await own.stop();
    }
  }, 120_000);

  it('collect with reconnectForMs 2000: a download cut by a lost coordinator gives up within about that, not after 2 minutes', async () => {
    const own: TestCluster = await startCluster({ workers: 1 });
    const big = path.join(dir, 'big.bin');
    await writeFile(big, Buffer.alloc(48 * 1024 * 1024, 3));
    const [host, port] = own.address.split(':');
    const proxy = new TcpProxy({ host: host!, port: Number(port) });
    const via = await proxy.start();
    const client = new TesseraClient({ address: via });
    const ac = new AbortController();
    try {
      const job = await own.client.submit({ passthrough: {} }, [big]);
      await own.client.wait(job.id);
      let cutAt = 0;
      const started = client.collect(job.id, path.join(dir, 'out'), {
        reconnectForMs: 2000,
        signal: ac.signal,
        onProgress: () => {
          if (!cutAt) {
            cutAt = Date.now();
            void proxy.stop();
          }
        },
      }).then(() => 'done', (err: { code?: number }) => `rejected ${err.code}`);
      const r = await Promise.race([started, sleep(40_000).then(() => 'still retrying')]);
      expect(cutAt).toBeGreaterThan(0);
      const after = Date.now() - cutAt;
      expect(r, `after ${after} ms`).toBe('rejected 14');
      expect(after).toBeLessThan(20_000);
    } finally {
      ac.abort();
      client.close();
      await proxy.stop().catch(() => undefined);
      await own.stop();
    }
  }, 120_000);
});
