/**
 * Worker and coordinator settings given empty as a flag, a config key or a blank variable: README
 * "Configuration" says such a value "is never taken for the default" and that a setting that
 * cannot work exits 2 naming it. `--memory-limit-mb ""` became 0 (processors in-process: no memory
 * ceiling, no crash isolation); `--name ""`, `--label ""` and `--http-host ""` were taken as unset
 * (review CFG).
 * The real CLI from dist/ (`--print-config` runs the same checks as a start).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type CliResult } from '../helpers/cluster.js';
import { cleanEnv } from '../helpers/process-logs.js';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-worker-empty-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const cli = (args: string[], env: Record<string, string> = {}): Promise<CliResult> => runCli(args, { env: { ...cleanEnv(), ...env }, timeoutMs: 20_000, cwd: dir });

const worker = (...extra: string[]): string[] => ['worker', '--coordinator', '127.0.0.1:1', ...extra, '--print-config'];

describe('an empty --memory-limit-mb', () => {
  it('as a flag is refused naming it (exit 2), not 0 = processors in-process without a memory ceiling', async () => {
    const r = await cli(worker('--memory-limit-mb', ''));
    // Today: exit 0 with "memoryLimitMb":0.
    expect(r.code, r.stdout).toBe(2);
    expect(r.stderr).toMatch(/--memory-limit-mb/);
  });

  it('as a config key likewise', async () => {
    const file = path.join(dir, 'memory-empty.yaml');
    await writeFile(file, 'memory-limit-mb: ""\n');
    const r = await cli(worker('--config', file));
    expect(r.code, r.stdout).toBe(2);
    expect(r.stderr).toMatch(/key "memory-limit-mb"/);
  });

  it('TESSERA_MEMORY_LIMIT_MB of blanks is not 0 either (unset, or refused)', async () => {
    const r = await cli(worker(), { TESSERA_MEMORY_LIMIT_MB: ' ' });
    if (r.code === 0) expect((JSON.parse(r.stdout) as { options: Record<string, unknown> }).options['memoryLimitMb']).toBeUndefined();
    else expect(r.stderr).toMatch(/TESSERA_MEMORY_LIMIT_MB/);
  });
});

describe('other settings given empty are not taken for their default', () => {
  it('worker --name "" is refused (the worker would register as host-pid)', async () => {
    const r = await cli(worker('--name', ''));
    expect(r.code, r.stdout).toBe(2);
    expect(r.stderr).toMatch(/--name/);
  });

  it('worker --label "" is refused (the worker would have no labels)', async () => {
    const r = await cli(worker('--label', ''));
    expect(r.code, r.stdout).toBe(2);
    expect(r.stderr).toMatch(/--label/);
  });

  it('coordinator --http-host "" is refused (the dashboard would answer no extra name)', async () => {
    const r = await cli(['coordinator', '--listen', '127.0.0.1:0', '--data-dir', path.join(dir, 'data'), '--http-host', '', '--print-config']);
    expect(r.code, r.stdout).toBe(2);
    expect(r.stderr).toMatch(/--http-host/);
  });

  it.each([
    ['coord.example:7780', 'coord.example'],
    ['http://coord.example/', 'coord.example'],
    ['a.example,coord.example:80', 'coord.example'],
  ])('coordinator --http-host %s is refused, naming the bare name (with a port or scheme it matched no request, each refused 403)', async (value, bare) => {
    const r = await cli(['coordinator', '--listen', '127.0.0.1:0', '--data-dir', path.join(dir, 'data'), '--http-host', value, '--print-config']);
    expect(r.code, r.stdout).toBe(2);
    expect(r.stderr).toContain(`: a host name only, without a port or scheme (the dashboard takes its name on any port): give ${bare}`);
  });

  it.each(['[::1]', 'fe80::1', '192.0.2.7'])('coordinator --http-host %s (an IP address, IPv6 too) is taken as it is, not cut at its first colon', async (value) => {
    const r = await cli(['coordinator', '--listen', '127.0.0.1:0', '--data-dir', path.join(dir, 'data'), '--http-host', value, '--print-config']);
    expect(r.code, r.stderr).toBe(0);
  });
});
