/**
 * Process figures the benchmarks record, read from /proc (Linux): peak RSS (VmHWM) and CPU time
 * (utime + stime). Elsewhere they read as NaN and the scenarios print "n/a".
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import os from 'node:os';

const CLOCK_TICKS = 100; // USER_HZ: 100 on every Linux Node supports.

/** Peak resident set (VmHWM) of a live process, in MiB. */
export async function peakRssMiB(pid: number | undefined): Promise<number> {
  if (!pid) return NaN;
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : NaN;
  } catch {
    return NaN;
  }
}

/**
 * Peak RSS of this process in MiB since {@link resetSelfPeakRss} (VmHWM), else since it started
 * (getrusage maxrss, where /proc does not tell).
 */
export function selfPeakRssMiB(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Math.round(Number(m[1]) / 1024);
  } catch {
    // Not Linux.
  }
  return Math.round(process.resourceUsage().maxRSS / 1024);
}

/**
 * Starts this process's peak RSS afresh (Linux: `5` to /proc/self/clear_refs), so that a row's
 * client figure is its own: `npm run bench` runs every scenario in one process, and the figure
 * was whatever an earlier row, or making the inputs (the photos, 634 MiB), had peaked at.
 */
export function resetSelfPeakRss(): void {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
  } catch {
    // Not Linux, or not allowed: the figure is the process's lifetime peak.
  }
}

/**
 * CPU seconds (user + system) a live process has used so far. Summed from every thread's
 * scheduler statistics (nanoseconds) where the kernel has them: /proc/PID/stat counts in clock ticks
 * of 10 ms, which rounds a second of light work (20 heartbeats a second) down to nothing.
 */
export async function cpuSeconds(pid: number | undefined): Promise<number> {
  if (!pid) return NaN;
  try {
    const tasks = await readdir(`/proc/${pid}/task`);
    let ns = 0;
    for (const t of tasks) {
      // A thread that ended since the listing has nothing more to add.
      const stat = await readFile(`/proc/${pid}/task/${t}/schedstat`, 'utf8').catch(() => '0');
      ns += Number(stat.split(' ')[0]);
    }
    if (Number.isFinite(ns) && ns > 0) return ns / 1e9;
  } catch {
    // No schedstat (kernel without it, or the process is gone): the tick counts below.
  }
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

/**
 * The whole machine's CPU time so far (/proc/stat, every process): busy and idle seconds summed
 * over the cores. Between two readings it tells the CPU a run used, and how much it left idle.
 */
export async function machineCpu(): Promise<{ busy: number; idle: number }> {
  try {
    const fields = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal ...: idle and iowait are the idle time.
    const idle = fields[3]! + fields[4]!;
    return { busy: (fields.reduce((a, b) => a + b, 0) - idle) / CLOCK_TICKS, idle: idle / CLOCK_TICKS };
  } catch {
    return { busy: NaN, idle: NaN };
  }
}

/** Percentile (0..100) of a list of numbers, nearest-rank; NaN for an empty list. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** The machine, for every result: CPU model and count, memory, OS, Node. */
export function hardware(): Record<string, string | number> {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
  };
}

/** Rounds to `digits` significant decimals for printing and JSON. */
export function round(n: number, digits = 2): number {
  if (!Number.isFinite(n)) return n;
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
