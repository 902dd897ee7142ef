/**
 * The gRPC keepalive is what each process was told (README, "Running on several machines"): a
 * coordinator, a worker and a client command, each a real process given its own setting by flag or
 * environment variable, ping (and wait for the answer) at those intervals, as grpc-js's own
 * keepalive trace shows; and none of them is cut off for pinging too often.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI_PATH, startCluster, type TestCluster } from '../helpers/cluster.js';

let cluster: TestCluster | undefined;
let dir: string | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

/** grpc-js's keepalive trace, on stderr (a client command) or in the log (a coordinator, a worker). */
const TRACE = { GRPC_TRACE: 'keepalive', GRPC_VERBOSITY: 'DEBUG' };

/** Waits until `lines()` has a line matching each of `patterns`; fails naming what is missing. */
async function waitForLines(lines: () => string[], patterns: RegExp[], what: string, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const missing = patterns.filter((p) => !lines().some((l) => p.test(l)));
    if (missing.length === 0) return;
    if (Date.now() > until) throw new Error(`${what}: no line matching ${missing.join(', ')} within ${timeoutMs} ms; got:\n${lines().slice(-20).join('\n')}`);
    await sleep(100);
  }
}

describe('keepalive settings', () => {
  it('a coordinator (flags), a worker (environment) and `tessera watch` (flags) each ping at their own settings, and none is cut off', async () => {
    const logs: Record<string, string[]> = {};
    cluster = await startCluster({
      workers: 0,
      coordinatorArgs: ['--keepalive-ms', '6500', '--keepalive-timeout-ms', '2500'],
      env: TRACE,
      onLog: (who, line) => (logs[who] ??= []).push(line),
    });
    cluster.startWorker('w1', [], { env: { TESSERA_KEEPALIVE_MS: '5000', TESSERA_KEEPALIVE_TIMEOUT_MS: '1500' } });
    await cluster.waitForWorkers(1);
    dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-keepalive-'));
    const blob = path.join(dir, 'blob.bin');
    await writeFile(blob, 'bytes');
    // A job that runs long enough for a few pings each way.
    const job = await cluster.client.submit({ passthrough: { work_ms: 60_000 } }, [blob]);

    // The client command: flags, on a client whose environment says otherwise.
    const watch = spawn(process.execPath, [CLI_PATH, 'watch', job.id, '--json', '--coordinator', cluster.address, '--keepalive-ms', '5500', '--keepalive-timeout-ms', '1700'], {
      env: { ...process.env, ...TRACE, TESSERA_KEEPALIVE_MS: '9000', TESSERA_KEEPALIVE_TIMEOUT_MS: '9000', TESSERA_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let watchErr = '';
    watch.stderr.on('data', (d: Buffer) => (watchErr += d.toString()));
    watch.stdout.resume();
    const watchExited = new Promise((resolve) => watch.once('close', resolve));
    try {
      // Each side arms its timer with its interval, then pings with its timeout, and gets answers.
      await Promise.all([
        waitForLines(() => logs['coordinator'] ?? [], [/Starting keepalive timer for 6500ms/, /Sending ping with timeout 2500ms/, /Received ping response/], 'coordinator'),
        waitForLines(() => logs['w1'] ?? [], [/Starting keepalive timer for 5000ms/, /Sending ping with timeout 1500ms/, /Received ping response/], 'worker'),
        waitForLines(() => watchErr.split('\n'), [/Starting keepalive timer for 5500ms/, /Sending ping with timeout 1700ms/, /Received ping response/], 'tessera watch'),
      ]);
      // No other interval was used by any of them (the defaults, or the watch's environment).
      for (const [who, lines] of [...Object.entries(logs), ['tessera watch', watchErr.split('\n')] as const]) {
        expect(lines.filter((l) => /Starting keepalive timer for 10000ms|Sending ping with timeout (20000|9000)ms/.test(l)), who).toEqual([]);
        expect(lines.filter((l) => /too_many_pings|Ping timeout passed/.test(l)), who).toEqual([]);
      }
      expect((await cluster.client.listWorkers()).map((w) => w.state)).toEqual(['active']);
      expect(watch.exitCode).toBeNull();
    } finally {
      watch.kill('SIGKILL');
      await watchExited;
    }
  }, 60_000);

  it('a value out of range is refused before anything starts, naming it as given (exit 2)', async () => {
    const { runCli } = await import('../helpers/cluster.js');
    const coordinator = await runCli(['coordinator', '--keepalive-ms', '1000', '--print-config']);
    expect(coordinator.code).toBe(2);
    expect(coordinator.stderr).toMatch(/^tessera: --keepalive-ms 1000: must be a whole number of ms, at least 5000: the coordinator permits pings no more often/);
    const worker = await runCli(['worker', '--print-config'], { env: { TESSERA_KEEPALIVE_TIMEOUT_MS: '10' } });
    expect(worker.code).toBe(2);
    expect(worker.stderr).toMatch(/^tessera: TESSERA_KEEPALIVE_TIMEOUT_MS=10: must be a whole number of ms, at least 1000/);
    const client = await runCli(['jobs', '--keepalive-ms', '4999', '--coordinator', '127.0.0.1:9']);
    expect(client.code).toBe(2);
    expect(client.stderr).toMatch(/^tessera: --keepalive-ms 4999: must be a whole number of ms, at least 5000/);
    // And shown as resolved where they are accepted.
    const shown = await runCli(['worker', '--keepalive-timeout-ms', '20000', '--print-config'], { env: { TESSERA_KEEPALIVE_MS: '15000' } });
    expect(shown.code, shown.stderr).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({ options: { keepaliveMs: 15000, keepaliveTimeoutMs: 20000 }, sources: { keepaliveMs: 'env', keepaliveTimeoutMs: 'cli' } });
  });
});
