/**
 * README, "CLI" (exit status 4: "the coordinator could not be reached (nothing listening, a wrong
 * address, a connection that never got an answer) ... `UNAVAILABLE`"; so a script "retries on 4")
 * and "Operating a cluster" (`tessera health`: "exit 0 when `SERVING`, 1 for any other answer, 4
 * when nothing answers").
 *
 * A port forwarder whose far end is down (Docker's published port while the coordinator's container
 * restarts, `ssh -L`, `kubectl port-forward`) accepts the TCP connection and closes it at once. No
 * coordinator answered anything, yet the CLI exits 1 (as for a TLS mistake) and tells a plaintext
 * user to pass --tls-ca. Likewise `tessera watch`, plaintext from the start, whose coordinator
 * behind such a forwarder is not back within --reconnect-for ("exits with 4 after
 * `--reconnect-for`", README "Names and failure detection"). The real CLI and a real coordinator
 * from dist/, and a loopback forwarder.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startCluster } from '../helpers/cluster.js';

let forwarder: net.Server;

/** Closes an accepted connection at once, sending nothing: reads what comes so that it ends with FIN, not a reset. */
function closeAtOnce(socket: net.Socket): void {
  socket.on('error', () => {});
  socket.resume();
  socket.end();
}
let address: string;

beforeAll(async () => {
  // What a forwarder with no backend does: accept, then close (no bytes, no TLS).
  forwarder = net.createServer(closeAtOnce);
  await new Promise<void>((resolve) => forwarder.listen(0, '127.0.0.1', resolve));
  address = `127.0.0.1:${(forwarder.address() as net.AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => forwarder.close(() => resolve()));
});

describe('a forwarded port with nothing behind it', () => {
  it('tessera health exits 4 (nothing answered), not 1', async () => {
    const r = await runCli(['health', '--coordinator', address, '--timeout-ms', '2000'], { timeoutMs: 20_000 });
    expect(r.code, r.stderr).toBe(4);
  });

  it('tessera jobs exits 4 (UNAVAILABLE, could not be reached) without a TLS hint', async () => {
    const r = await runCli(['jobs', '--coordinator', address], { timeoutMs: 30_000 });
    expect(r.stderr).toMatch(/UNAVAILABLE/);
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).not.toMatch(/TLS coordinator/);
  });
});

describe('tessera watch through a forwarder whose coordinator goes away', () => {
  it('exits 4 after --reconnect-for, as when nothing listens', async () => {
    const cluster = await startCluster({ workers: 0 });
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-forwarder-'));
    const [host, port] = [cluster.address.split(':')[0]!, Number(cluster.address.split(':')[1])];
    // Forwards to the coordinator until `down`, then accepts and closes, as ssh -L or Docker's
    // proxy do once the far end is gone.
    let down = false;
    let accepted = 0;
    const live = new Set<net.Socket>();
    const proxy = net.createServer((client) => {
      if (down) return closeAtOnce(client);
      accepted++;
      const upstream = net.connect(port, host);
      live.add(client).add(upstream);
      client.pipe(upstream);
      upstream.pipe(client);
      const close = (): void => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', close).on('close', close);
      upstream.on('error', close).on('close', close);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const via = `127.0.0.1:${(proxy.address() as net.AddressInfo).port}`;
    try {
      const file = path.join(dir, 'blob.bin');
      await writeFile(file, 'bytes '.repeat(100));
      // No worker: the job stays queued while the watch follows it.
      const sub = await runCli(['submit', 'passthrough', file, '--no-wait', '--coordinator', via], { timeoutMs: 30_000 });
      expect(sub.code, sub.stderr).toBe(0);
      const id = sub.stdout.trim();
      const before = accepted;
      const watching = runCli(['watch', id, '--coordinator', via, '--reconnect-for', '2'], { timeoutMs: 30_000 });
      // The link goes once the watch is through it: a fixed 1.5 s was before the CLI had even
      // connected on a busy machine, and it failed as "No connection established" (full suite).
      for (let i = 0; i < 200 && accepted === before; i++) await new Promise((r) => setTimeout(r, 50));
      await new Promise((r) => setTimeout(r, 1000));
      down = true;
      for (const s of live) s.destroy();
      const r = await watching;
      expect(r.stderr).toMatch(/lost the coordinator/);
      expect(r.code, r.stderr).toBe(4);
      expect(r.stderr).not.toMatch(/TLS coordinator/);
    } finally {
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
      await cluster.stop();
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
