/**
 * The memory ceiling's count of a processor's resident memory (treeRss) on a kernel whose pages are
 * not 4 KiB: /proc as a 64 KiB-page arm64 kernel shows it, statm counting pages and status in kB.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';

afterEach(() => {
  vi.doUnmock('node:fs');
  vi.resetModules();
});

describe('treeRss', () => {
  it('counts bytes whatever the page size: a process of 1,000 resident 64 KiB pages holds 62.5 MiB, not 3.9', async () => {
    const PAGE = 65536;
    const [parent, child] = [4_000_000, 4_000_001];
    const proc: Record<string, string> = {
      [`/proc/${parent}/statm`]: '30000 1000 500 10 0 2000 0\n',
      [`/proc/${parent}/status`]: `Name:\tnode\nVmRSS:\t   ${(1000 * PAGE) / 1024} kB\nRssAnon:\t   ${(500 * PAGE) / 1024} kB\n`,
      [`/proc/${parent}/task/${parent}/children`]: `${child} `,
      [`/proc/${child}/statm`]: '9000 200 100 10 0 500 0\n',
      [`/proc/${child}/status`]: `Name:\tffmpeg\nVmRSS:\t   ${(200 * PAGE) / 1024} kB\n`,
      [`/proc/${child}/task/${child}/children`]: '',
    };
    vi.resetModules();
    vi.doMock('node:fs', async (real) => {
      const fs = await real<typeof import('node:fs')>();
      const readFileSync = ((file: unknown, opts?: unknown) => (typeof file === 'string' && file in proc ? proc[file] : (fs.readFileSync as (f: unknown, o?: unknown) => unknown)(file, opts))) as typeof fs.readFileSync;
      return { ...fs, readFileSync, default: { ...fs, readFileSync } };
    });
    const { treeRss } = await import('./isolation.js');
    expect(treeRss(parent)).toBe(1200 * PAGE);
  });
});
