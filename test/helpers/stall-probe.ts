/**
 * Measures how long the coordinator leaves a cheap RPC (ListWorkers) unanswered: a loop of calls,
 * one every 20 ms, from the moment `start` is called until `stop`; `stop` gives the longest wait.
 * A stall of the coordinator's event loop shows as one long call. The test process must stay idle
 * meanwhile (light calls only), or its own stalls count too.
 *
 * `pid` (the coordinator's): `stop` also gives `longestCpuMs`, the most CPU time that process's main
 * thread (its event loop) spent while one call waited (/proc/PID/schedstat). That is the length
 * of the turns the call waited behind whatever the machine's load: a loaded machine (the suite
 * runs two files at a time on 2 cores, each with its processes) stretches a turn of 0.3 s of CPU to
 * 1.5-2 s of waiting, while a turn of 3 s of CPU stays 3 s of it. Where Linux does not say, it is the
 * longest wait.
 */
import { readFileSync } from 'node:fs';
import type { TesseraClient } from '../../client/client.js';
import { setTimeout as sleep } from 'node:timers/promises';

/** A main thread's time on a CPU so far, in ms, or undefined where Linux does not say. */
function cpuMs(pid: number): number | undefined {
  try {
    const ran = Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);
    return Number.isFinite(ran) ? ran / 1e6 : undefined;
  } catch {
    return undefined;
  }
}

export function stallProbe(client: TesseraClient, pid?: number): { stop(): Promise<{ longestMs: number; longestCpuMs: number; calls: number }> } {
  let running = true;
  let longestMs = 0;
  let longestCpuMs = 0;
  let calls = 0;
  const loop = (async () => {
    while (running) {
      const c0 = pid === undefined ? undefined : cpuMs(pid);
      const t0 = performance.now();
      await client.listWorkers({ deadlineMs: 30_000 });
      const waited = performance.now() - t0;
      const c1 = pid === undefined ? undefined : cpuMs(pid);
      longestMs = Math.max(longestMs, waited);
      longestCpuMs = Math.max(longestCpuMs, c0 !== undefined && c1 !== undefined ? Math.min(waited, c1 - c0) : waited);
      calls++;
      await sleep(20);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { longestMs: Math.round(longestMs), longestCpuMs: Math.round(longestCpuMs), calls };
    },
  };
}
