/**
 * What this process may use of the machine: the cores and memory the OS reports, bounded by the
 * limits of the container (cgroup) it runs in. A worker in a container limited to 2 cores and
 * 4 GiB on a 64-core host sizes its slots, threads and memory ceilings from 2 and 4, not 64.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Cores: the available parallelism, at most the CPU quota of this process's cgroups, rounded up. */
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

/** Default memory ceiling of one subtask: 80% of the memory this worker may use (its container's limit) shared by the slots, at least 1 GiB (or those 80% where they are less). */
export function defaultMemoryLimitMb(slots: number): number {
  const usable = Math.floor((availableMemoryBytes() / 2 ** 20) * 0.8);
  // The floor never past the memory itself: in a 512 MiB container a 1 GiB ceiling let a runaway
  // subtask meet the container's OOM killer (the worker's end) before its own.
  return Math.max(Math.min(1024, usable), Math.floor(usable / Math.max(1, slots)));
}

/** A worker's slots, libvips/ffmpeg threads per slot and memory ceiling per subtask, as given or by default from the machine. */
export function workerSizing(given: { slots?: number | undefined; threads?: number | undefined; memoryLimitMb?: number | undefined }): { slots: number; threads: number; memoryLimitMb: number } {
  const cores = availableCores();
  // The container's limits, not the host's: several workers may share a machine.
  const slots = Math.max(1, given.slots ?? cores);
  // Slots x libvips threads should not exceed the cores.
  const threads = Math.max(1, given.threads ?? Math.floor(cores / slots));
  return { slots, threads, memoryLimitMb: given.memoryLimitMb ?? defaultMemoryLimitMb(slots) };
}

/**
 * The CPU quota in cores of the cgroups this process is in (v2 `cpu.max`, v1 `cpu.cfs_quota_us`
 * over `cpu.cfs_period_us`), the tightest of its own and every ancestor's up to the mount, or
 * undefined where none is set or readable. `fsRoot` is a test knob: a folder standing for `/`.
 *
 * Read from the process's own cgroup, found through /proc/self/cgroup and /proc/self/mountinfo,
 * not the mount's top: there the quota of a systemd unit (`CPUQuota=`) or of a cgroup made by hand
 * is not, and on a cgroup v1 machine a worker limited to half a core sized itself by all of the
 * machine's. In a container with a cgroup namespace of its own the two are the same folder.
 */
export function cgroupCpuQuota(fsRoot = '/'): number | undefined {
  const read = (file: string): string | undefined => {
    try {
      return readFileSync(path.join(fsRoot, file), 'utf8');
    } catch {
      return undefined;
    }
  };
  const membership = read('/proc/self/cgroup');
  const mounts = (read('/proc/self/mountinfo') ?? '').split('\n').map(parseMountInfo).filter((m) => m !== undefined);
  let tightest: number | undefined;
  for (const line of (membership ?? '').split('\n')) {
    // hierarchy-ID:controllers:path (the path may hold colons).
    const first = line.indexOf(':');
    const second = line.indexOf(':', first + 1);
    if (first < 0 || second < 0) continue;
    const controllers = line.slice(first + 1, second);
    const cgroup = line.slice(second + 1);
    const v2 = line.slice(0, first) === '0' && controllers === '';
    if (!v2 && !controllers.split(',').includes('cpu')) continue;
    // The mounts of this hierarchy that hold the cgroup: their root (the top of the hierarchy, or a
    // container's own cgroup) is the cgroup or above it. Another mount's top is another cgroup's,
    // whose quota is not this process's. Where several hold it (the same hierarchy mounted twice, a
    // hybrid machine's `unified` beside the real one), each is read: the tightest quota counts.
    const under = (root: string): boolean => root === '/' || cgroup === root || cgroup.startsWith(`${root}/`);
    for (const mount of mounts.filter((m) => (v2 ? m.type === 'cgroup2' : m.type === 'cgroup' && m.superOptions.split(',').includes('cpu')) && under(m.root))) {
      const rel = mount.root === '/' ? cgroup : cgroup.slice(mount.root.length);
      for (let dir = path.posix.join(mount.point, rel).replace(/(.)\/+$/, '$1'); ; dir = path.posix.dirname(dir)) {
        const quota = v2 ? cpuMaxQuota(read(path.posix.join(dir, 'cpu.max'))) : cfsQuota(read(path.posix.join(dir, 'cpu.cfs_quota_us')), read(path.posix.join(dir, 'cpu.cfs_period_us')));
        if (quota !== undefined) tightest = Math.min(tightest ?? quota, quota);
        if (dir === mount.point || !dir.startsWith(`${mount.point}/`)) break;
      }
    }
  }
  return tightest;
}

/** `cpu.max` ("QUOTA PERIOD", QUOTA "max" for none) in cores. */
function cpuMaxQuota(text: string | undefined): number | undefined {
  const [quota, period] = (text ?? '').trim().split(/\s+/);
  return quota && quota !== 'max' && Number(quota) > 0 && Number(period) > 0 ? Number(quota) / Number(period) : undefined;
}

/** cgroup v1's quota (-1 for none) over its period, in cores. */
function cfsQuota(quota: string | undefined, period: string | undefined): number | undefined {
  const q = Number(quota?.trim());
  const p = Number(period?.trim());
  return quota !== undefined && q > 0 && p > 0 ? q / p : undefined;
}

interface MountInfo {
  /** The mounted file system's folder that is the mount's top (a container's own cgroup). */
  root: string;
  point: string;
  type: string;
  superOptions: string;
}

/** One line of /proc/self/mountinfo: `ID PARENT DEV ROOT POINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER`. */
function parseMountInfo(line: string): MountInfo | undefined {
  const fields = line.split(' ');
  const dash = fields.indexOf('-');
  if (dash < 6 || fields.length < dash + 4) return undefined;
  // Spaces and the like in paths are octal escapes (\040).
  const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return { root: unescape(fields[3]!), point: unescape(fields[4]!), type: fields[dash + 1]!, superOptions: fields[dash + 3]! };
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
