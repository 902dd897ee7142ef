/**
 * Settings of `tessera coordinator`, `tessera worker` and the client commands given empty or
 * garbled: each must be refused at start (exit 2, one line naming the setting as given), never
 * crash every command, never be taken for its default (or for "none"). The real CLI from dist/.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type CliResult } from '../helpers/cluster.js';
import { cleanEnv } from '../helpers/process-logs.js';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-settings-empty-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const cli = (args: string[], env: Record<string, string> = {}): Promise<CliResult> => runCli(args, { env: { ...cleanEnv(), ...env }, timeoutMs: 20_000, cwd: dir });

/** A coordinator on a free port, no dashboard, its own data dir, with `extra`. */
const coordinator = (...extra: string[]): string[] => ['coordinator', '--listen', '127.0.0.1:0', '--http', 'off', '--data-dir', path.join(dir, 'data'), ...extra];

describe('a switch variable spelt as the flag (TESSERA_NO_LOCAL_READS) that is no yes or no', () => {
  it('is a usage error of `tessera coordinator` (exit 2, one line), not a stack trace', async () => {
    const r = await cli(coordinator('--print-config'), { TESSERA_NO_LOCAL_READS: 'flase' });
    expect(r.stderr).toContain('TESSERA_NO_LOCAL_READS=flase: expected 1, true, yes or on; 0, false, no or off');
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(r.code).toBe(2);
  });

  it('does not break commands that have no such setting (worker, --version)', async () => {
    expect((await cli(['--version'], { TESSERA_NO_LOCAL_READS: 'flase' })).code).toBe(0);
    const w = await cli(['worker', '--coordinator', '127.0.0.1:1', '--print-config'], { TESSERA_NO_LOCAL_READS: 'flase' });
    expect(w.stderr).toBe('');
    expect(w.code).toBe(0);
  });
});

describe('an empty --listen', () => {
  it('is refused by the checks (--print-config too), naming the config key, not passed and then failing at start', async () => {
    const file = path.join(dir, 'listen-empty.yaml');
    await writeFile(file, 'listen: ""\ninsecure: true\nhttp: "off"\n');
    const printed = await cli(['coordinator', '--data-dir', path.join(dir, 'data'), '--config', file, '--print-config']);
    expect(printed.code, printed.stdout).toBe(2);
    expect(printed.stderr).toMatch(/config key "listen"/);
  });

  it('as a flag: exit 2 naming --listen, not exit 1 with grpc-js\'s "Could not parse port"', async () => {
    const r = await cli(['coordinator', '--listen', '', '--insecure', '--http', 'off', '--data-dir', path.join(dir, 'data')]);
    expect(r.stderr).toMatch(/--listen/);
    expect(r.code).toBe(2);
  });
});

describe('an empty --data-dir or --http', () => {
  it('--data-dir "" is refused, not the working folder as the data dir', async () => {
    const r = await cli(['coordinator', '--listen', '127.0.0.1:0', '--http', 'off', '--data-dir', '', '--print-config']);
    expect(r.code, r.stdout).toBe(2);
    expect(r.stderr).toMatch(/--data-dir/);
  });

  it('data-dir: "" in a config file is refused likewise', async () => {
    const file = path.join(dir, 'data-dir-empty.yaml');
    await writeFile(file, 'data-dir: ""\n');
    const r = await cli(['coordinator', '--listen', '127.0.0.1:0', '--http', 'off', '--config', file, '--print-config']);
    expect(r.code, r.stdout).toBe(2);
    expect(r.stderr).toMatch(/config key "data-dir"/);
  });

  it('--http "" is refused, not quietly no dashboard (that is --http off)', async () => {
    const r = await cli(['coordinator', '--listen', '127.0.0.1:0', '--http', '', '--data-dir', path.join(dir, 'data'), '--print-config']);
    expect(r.code, r.stdout).toBe(2);
    expect(r.stderr).toMatch(/--http/);
  });
});

describe('an empty token given as a flag or a config key', () => {
  it('--worker-token "" is a token shorter than 16 characters (exit 2), not a coordinator any worker may join', async () => {
    const r = await cli(coordinator('--worker-token', '', '--print-config'));
    expect(r.code, r.stdout).toBe(2);
    expect(r.stderr).toMatch(/--worker-token/);
  });

  it('worker-token: "" in a config file likewise', async () => {
    const file = path.join(dir, 'token-empty.yaml');
    await writeFile(file, 'worker-token: ""\n');
    const r = await cli(coordinator('--config', file, '--print-config'));
    expect(r.code, r.stdout).toBe(2);
    expect(r.stderr).toMatch(/config key "worker-token"/);
  });

  it('a client tokens file of comments only is refused, not a coordinator that takes every client', async () => {
    const file = path.join(dir, 'clients-empty.txt');
    await writeFile(file, '# nobody yet\n\n');
    const r = await cli(coordinator('--client-tokens-file', file, '--worker-token', 'w'.repeat(24), '--print-config'));
    expect(r.code, r.stdout).toBe(2);
    expect(r.stderr).toContain(`--client-tokens-file ${file}: holds no NAME:TOKEN entry: a coordinator given none would take every client`);
  });
});

describe('TESSERA_TILE_* variables (README "Huge images") and TESSERA_FULL_DISK_WAIT_MS that cannot be read', () => {
  for (const [name, value] of [
    ['TESSERA_FULL_DISK_WAIT_MS', '10m'],
    ['TESSERA_TILE_MAX_STRIP_PIXELS', '50M'],
    ['TESSERA_TILE_THRESHOLD_PIXELS', '-1'],
    ['TESSERA_TILE_LIMIT_INPUT_PIXELS', '2GiB'],
    ['TESSERA_TILE_STRIP_READ', 'intermedate'],
  ] as const) {
    it(`${name}=${value} is refused at start naming it, not silently the default`, async () => {
      const r = await cli(coordinator('--print-config'), { [name]: value });
      expect(r.code, r.stdout).toBe(2);
      expect(r.stderr).toContain(`${name}=${value}`);
    });
  }
});

describe('a Coordinator started by a program (the library, not the CLI) with a TESSERA_TILE_* it cannot read', () => {
  it('refuses to start, naming it, rather than failing every tiled job later', async () => {
    const { Coordinator } = await import('../../coordinator/coordinator.js');
    const { createLogger } = await import('../../shared/logger.js');
    const before = process.env['TESSERA_TILE_MAX_STRIP_PIXELS'];
    process.env['TESSERA_TILE_MAX_STRIP_PIXELS'] = '50M';
    try {
      const c = new Coordinator({ listen: '127.0.0.1:0', dataDir: path.join(dir, 'lib-data'), log: createLogger('test', 'silent', 'json'), http: '' });
      await expect(c.start()).rejects.toThrow('TESSERA_TILE_MAX_STRIP_PIXELS=50M: must be a whole number of pixels');
      await c.close();
    } finally {
      if (before === undefined) delete process.env['TESSERA_TILE_MAX_STRIP_PIXELS'];
      else process.env['TESSERA_TILE_MAX_STRIP_PIXELS'] = before;
    }
  });
});

describe('a client command given an empty --coordinator', () => {
  it('is refused (exit 2 naming --coordinator), not replaced by TESSERA_COORDINATOR or the default address', async () => {
    const r = await cli(['jobs', '--coordinator', ''], { TESSERA_COORDINATOR: '127.0.0.1:1' });
    expect(r.stderr).not.toMatch(/127\.0\.0\.1:1\b/);
    expect(r.stderr).toMatch(/--coordinator/);
    expect(r.code).toBe(2);
  });
});
