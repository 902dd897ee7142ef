/** `tessera coordinator` and `tessera worker`: long-running processes with signal handling. */
import path from 'node:path';
import type { LevelWithSilent } from 'pino';
import { Coordinator } from '../../coordinator/coordinator.js';
import { createLogger } from '../../shared/logger.js';
import { Worker } from '../../worker/worker.js';
import { coordinatorAddress } from '../../shared/config.js';
import { coordinatorSecurity, workerSecurity } from './security-options.js';

export async function runCoordinator(o: { listen: string; dataDir: string; heartbeatMs: number; ttlMs: number; maxAttempts: number; logLevel: LevelWithSilent }): Promise<void> {
  const log = createLogger('coordinator', o.logLevel);
  const coordinator = new Coordinator({ listen: o.listen, dataDir: path.resolve(o.dataDir), log, heartbeatMs: o.heartbeatMs, ttlMs: o.ttlMs, maxAttempts: o.maxAttempts, ...coordinatorSecurity(o) });
  const address = await coordinator.start();
  // One plain line on stdout so scripts (and the test harness) learn the bound port.
  process.stdout.write(`tessera coordinator listening on ${address}\n`);
  const stop = (signal: string): void => {
    log.info({ signal }, 'shutting down');
    void coordinator.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

export async function runWorker(o: { coordinator?: string; slots?: number; name?: string; label?: string[]; drainGraceMs: number; logLevel: LevelWithSilent }): Promise<void> {
  const log = createLogger('worker', o.logLevel);
  const labels = Object.fromEntries((o.label ?? []).map((l) => [l.split('=')[0] ?? l, l.split('=').slice(1).join('=')]));
  const worker = new Worker({
    coordinator: coordinatorAddress(o.coordinator),
    ...(o.slots ? { slots: o.slots } : {}),
    ...(o.name ? { name: o.name } : {}),
    labels,
    log,
    drainGraceMs: o.drainGraceMs,
    ...workerSecurity(o),
  });
  worker.start();
  process.stdout.write(`tessera worker ${worker.name} (${worker.slots} slots) connecting to ${coordinatorAddress(o.coordinator)}\n`);
  let signals = 0;
  const stop = (signal: string): void => {
    signals++;
    log.info({ signal }, signals > 1 ? 'stopping now' : 'draining: finishing running subtasks (signal again to stop now)');
    const done = signals > 1 ? worker.close() : worker.drain();
    void done.then(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
