/**
 * Measures how long the coordinator leaves a cheap RPC (ListWorkers) unanswered: a loop of calls,
 * one every 20 ms, from the moment `start` is called until `stop`; `stop` gives the longest wait.
 * A stall of the coordinator's event loop shows as one long call. The test process must stay idle
 * meanwhile (light calls only), or its own stalls count too.
 *
 * `pid` (the coordinator's): `stop` also gives `longestStallMs`, the longest wait less the time the
 * coordinator's main thread (its event loop) spent ready to run but kept off every CPU by other
 * processes (/proc/PID/schedstat, its run-queue wait). A loaded machine (the suite runs two files
 * at a time on 2 cores, each with its processes) stretched a turn of 0.3 s of CPU to 1.5-2.5 s of
 * waiting, nearly all of it in the run queue; a stall stays whole, whether its thread computes (a
 * turn of 3 s of CPU) or is blocked (a synchronous write to a slow disk, a wait on another thread),
 * which counting only its CPU time missed (review K). Where Linux does not say, it is the wait.
 */
import { readFileSync } from 'node:fs';
import type { TesseraClient } from '../../client/client.js';
import { setTimeout as sleep } from 'node:timers/promises';

/** How long a main thread has waited in the run queue so far, in ms, or undefined where Linux does not say. */
function queuedMs(pid: number): number | undefined {
  try {
    const waited = Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]);
    return Number.isFinite(waited) ? waited / 1e6 : undefined;
  } catch {
    return undefined;
  }
}

export function stallProbe(client: TesseraClient, pid?: number): { stop(): Promise<{ longestMs: number; longestStallMs: number; calls: number }> } {
  let running = true;
  let longestMs = 0;
  let longestStallMs = 0;
  let calls = 0;
  const loop = (async () => {
    while (running) {
      const q0 = pid === undefined ? undefined : queuedMs(pid);
      const t0 = performance.now();
      await client.listWorkers({ deadlineMs: 30_000 });
      const waited = performance.now() - t0;
      const q1 = pid === undefined ? undefined : queuedMs(pid);
      longestMs = Math.max(longestMs, waited);
      longestStallMs = Math.max(longestStallMs, q0 !== undefined && q1 !== undefined ? waited - Math.min(waited, q1 - q0) : waited);
      calls++;
      await sleep(20);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { longestMs: Math.round(longestMs), longestStallMs: Math.round(longestStallMs), calls };
    },
  };
}
