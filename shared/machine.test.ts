import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, rmdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { availableCores, availableMemoryBytes, cgroupCpuQuota, defaultMemoryLimitMb } from './machine.js';

const run = promisify(execFile);
const roots: string[] = [];
afterAll(async () => {
  for (const r of roots) await rm(r, { recursive: true, force: true });
});

/** A folder standing for `/`, with the given files. */
async function fakeRoot(files: Record<string, string>): Promise<string> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'tessera-cgroup-'));
  roots.push(root);
  for (const [file, text] of Object.entries(files)) {
    await mkdir(path.join(root, path.dirname(file)), { recursive: true });
    await writeFile(path.join(root, file), text);
  }
  return root;
}

const V1_MOUNTS = [
  '31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
  '32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct',
  '35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory',
  '41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw',
].join('\n');

describe('what this process may use of the machine', () => {
  it('is at least one core and some memory, never more than the machine has', () => {
    expect(availableCores()).toBeGreaterThanOrEqual(1);
    expect(availableCores()).toBeLessThanOrEqual(os.availableParallelism());
    expect(availableMemoryBytes()).toBeGreaterThan(0);
    expect(availableMemoryBytes()).toBeLessThanOrEqual(os.totalmem());
  });

  it("reads a cgroup v1 quota from the process's own cgroup, not the mount's top, and a tighter parent's", async () => {
    const root = await fakeRoot({
      '/proc/self/cgroup': '5:memory:/jobs/render\n4:cpu,cpuacct:/jobs/render\n0::/\n',
      '/proc/self/mountinfo': V1_MOUNTS,
      '/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us': '-1\n',
      '/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us': '100000\n',
      '/sys/fs/cgroup/cpu,cpuacct/jobs/cpu.cfs_quota_us': '300000\n',
      '/sys/fs/cgroup/cpu,cpuacct/jobs/cpu.cfs_period_us': '100000\n',
      '/sys/fs/cgroup/cpu,cpuacct/jobs/render/cpu.cfs_quota_us': '-1\n',
      '/sys/fs/cgroup/cpu,cpuacct/jobs/render/cpu.cfs_period_us': '100000\n',
    });
    expect(cgroupCpuQuota(root)).toBe(3);
    await writeFile(path.join(root, '/sys/fs/cgroup/cpu,cpuacct/jobs/render/cpu.cfs_quota_us'), '150000\n');
    expect(cgroupCpuQuota(root)).toBe(1.5);
  });

  it("reads a cgroup v2 cpu.max of a systemd unit and of a container's own namespace", async () => {
    const unit = await fakeRoot({
      '/proc/self/cgroup': '0::/system.slice/tessera-worker.service\n',
      '/proc/self/mountinfo': '30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate',
      '/sys/fs/cgroup/system.slice/tessera-worker.service/cpu.max': '250000 100000\n',
      '/sys/fs/cgroup/system.slice/cpu.max': 'max 100000\n',
    });
    expect(cgroupCpuQuota(unit)).toBe(2.5);
    // docker --cpus 2 with a cgroup namespace: the container's cgroup is the mount's top.
    const container = await fakeRoot({
      '/proc/self/cgroup': '0::/\n',
      '/proc/self/mountinfo': '600 590 0:26 / /sys/fs/cgroup ro,nosuid - cgroup2 cgroup rw,nsdelegate',
      '/sys/fs/cgroup/cpu.max': '200000 100000\n',
    });
    expect(cgroupCpuQuota(container)).toBe(2);
  });

  it("reads a cgroup v1 container's quota where its mount's top is the container's cgroup", async () => {
    // docker on a cgroup v1 host: /proc/self/cgroup names the host's path, the mount shows only the container's folder.
    const root = await fakeRoot({
      '/proc/self/cgroup': '4:cpu,cpuacct:/docker/0123abcd\n',
      '/proc/self/mountinfo': '700 690 0:29 /docker/0123abcd /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup rw,cpu,cpuacct',
      '/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us': '50000\n',
      '/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us': '100000\n',
    });
    expect(cgroupCpuQuota(root)).toBe(0.5);
  });

  it("reads no other cgroup's quota: only mounts whose root holds the process's cgroup, every one of them", async () => {
    // The same v1 hierarchy mounted twice: another container's cgroup first (8 cores), this one's after.
    const twice = await fakeRoot({
      '/proc/self/cgroup': '4:cpu,cpuacct:/docker/abc\n',
      '/proc/self/mountinfo': [
        '700 690 0:29 /docker/other /mnt/other rw - cgroup cgroup rw,cpu,cpuacct',
        '701 690 0:29 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro - cgroup cgroup rw,cpu,cpuacct',
      ].join('\n'),
      '/mnt/other/cpu.cfs_quota_us': '800000\n',
      '/mnt/other/cpu.cfs_period_us': '100000\n',
      '/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us': '50000\n',
      '/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us': '100000\n',
    });
    expect(cgroupCpuQuota(twice)).toBe(0.5);
    // A second cgroup2 mount (a hybrid machine's `unified`) listed before the one with the controller.
    const hybrid = await fakeRoot({
      '/proc/self/cgroup': '0::/app\n',
      '/proc/self/mountinfo': ['41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw', '30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw'].join('\n'),
      '/sys/fs/cgroup/app/cpu.max': '100000 100000\n',
    });
    expect(cgroupCpuQuota(hybrid)).toBe(1);
  });

  it('a memory ceiling per subtask of 80% of the memory over the slots, at least 1 GiB unless the memory is less', () => {
    const usable = Math.floor((availableMemoryBytes() / 2 ** 20) * 0.8);
    expect(defaultMemoryLimitMb(1)).toBe(Math.max(Math.min(1024, usable), usable));
    expect(defaultMemoryLimitMb(10_000)).toBe(Math.min(1024, usable));
    expect(defaultMemoryLimitMb(10_000)).toBeLessThanOrEqual(usable);
  });

  it('has no quota where none is set or nothing can be read', async () => {
    const root = await fakeRoot({
      '/proc/self/cgroup': '4:cpu,cpuacct:/\n0::/\n',
      '/proc/self/mountinfo': V1_MOUNTS,
      '/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us': '-1\n',
      '/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us': '100000\n',
    });
    expect(cgroupCpuQuota(root)).toBeUndefined();
    expect(cgroupCpuQuota(await fakeRoot({}))).toBeUndefined();
  });

  // A real cgroup where this machine lets the test make one (root, cgroup v1 cpu controller mounted).
  const v1cpu = '/sys/fs/cgroup/cpu';
  const canMake = process.getuid?.() === 0 && existsSync(path.join(v1cpu, 'cpu.cfs_quota_us'));
  it.runIf(canMake)('sizes a process in a real cgroup limited to half a core as one core', async () => {
    const dir = path.join(v1cpu, `tessera-test-${process.pid}`);
    await mkdir(dir);
    try {
      await writeFile(path.join(dir, 'cpu.cfs_period_us'), '100000');
      await writeFile(path.join(dir, 'cpu.cfs_quota_us'), '50000');
      const script = `echo $$ > ${dir}/cgroup.procs && exec ${process.execPath} --input-type=module -e "import { availableCores } from '${new URL('../dist/shared/machine.js', import.meta.url).pathname}'; console.log(availableCores())"`;
      const { stdout } = await run('sh', ['-c', script]);
      expect(stdout.trim()).toBe('1');
    } finally {
      await rmdir(dir);
    }
  });
});
