/**
 * What this process may use of the machine: the cores and memory the OS reports, bounded by the
 * limits of the container (cgroup) it runs in. A worker in a container limited to 2 cores and
 * 4 GiB on a 64-core host sizes its slots, threads and memory ceilings from 2 and 4, not 64.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';

/** Cores: the available parallelism, at most the cgroup's CPU quota (cgroup v2 cpu.max, v1 cfs), rounded up. */
export function availableCores(): number {
  const cores = os.availableParallelism();
  const quota = cgroupCpuQuota();
  return quota ? Math.max(1, Math.min(cores, Math.ceil(quota))) : cores;
}

/** Bytes of memory: the machine's, at most the process's constraint (a container's memory limit). */
export function availableMemoryBytes(): number {
  const total = os.totalmem();
  const constrained = (process as { constrainedMemory?: () => number | undefined }).constrainedMemory?.();
  // Unconstrained reads as undefined, 0 or a huge number, depending on the Node version.
  return constrained && constrained > 0 && constrained < total ? constrained : total;
}

/** The cgroup's CPU quota in cores, or undefined where none is set or readable. */
function cgroupCpuQuota(): number | undefined {
  try {
    const [quota, period] = readFileSync('/sys/fs/cgroup/cpu.max', 'utf8').trim().split(/\s+/);
    if (quota && quota !== 'max' && Number(period) > 0) return Number(quota) / Number(period);
    return undefined;
  } catch {
    // cgroup v1, or not Linux.
  }
  try {
    const quota = Number(readFileSync('/sys/fs/cgroup/cpu/cpu.cfs_quota_us', 'utf8'));
    const period = Number(readFileSync('/sys/fs/cgroup/cpu/cpu.cfs_period_us', 'utf8'));
    return quota > 0 && period > 0 ? quota / period : undefined;
  } catch {
    return undefined;
  }
}

/** Whether process `pid` on this machine is running (one of another user's counts: EPERM). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
