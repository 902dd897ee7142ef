/**
 * Measures how long the coordinator leaves a cheap RPC (ListWorkers) unanswered: a loop of calls,
 * one every 20 ms, from the moment `start` is called until `stop`; `stop` gives the longest wait.
 * A stall of the coordinator's event loop shows as one long call. The test process must stay idle
 * meanwhile (light calls only), or its own stalls count too.
 */
import type { TesseraClient } from '../../client/client.js';
import { setTimeout as sleep } from 'node:timers/promises';

export function stallProbe(client: TesseraClient): { stop(): Promise<{ longestMs: number; calls: number }> } {
  let running = true;
  let longestMs = 0;
  let calls = 0;
  const loop = (async () => {
    while (running) {
      const t0 = performance.now();
      await client.listWorkers({ deadlineMs: 30_000 });
      longestMs = Math.max(longestMs, performance.now() - t0);
      calls++;
      await sleep(20);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { longestMs: Math.round(longestMs), calls };
    },
  };
}
