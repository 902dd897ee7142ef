/**
 * `--http` is the dashboard's plain HTTP listen address (HOST:PORT), but it is checked with the
 * gRPC address rule, which lets gRPC target schemes through (`unix:`, `ipv4:`, `dns:`): Node's HTTP
 * server takes none of them. `--print-config` said the configuration starts (exit 0), and the start
 * then failed with exit 1 and `getaddrinfo ENOTFOUND ipv4:127.0.0.1`. README "Configuration": a
 * configuration it prints is one whose settings start, and a setting that cannot work exits 2
 * naming it (review CFG). The real CLI from dist/.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type CliResult } from './helpers/cluster.js';
import { cleanEnv } from './helpers/process-logs.js';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-http-scheme-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const cli = (args: string[]): Promise<CliResult> => runCli(args, { env: cleanEnv(), timeoutMs: 20_000, cwd: dir });

const coordinator = (http: string, ...extra: string[]): string[] => ['coordinator', '--listen', '127.0.0.1:0', '--http', http, '--insecure', '--data-dir', path.join(dir, 'data'), '--log-format', 'json', ...extra];

describe('--http given a gRPC target scheme', () => {
  for (const http of ['ipv4:127.0.0.1:0', `unix:${path.join(os.tmpdir(), 'tessera-http-scheme.sock')}`]) {
    it(`--http ${http} is refused by --print-config (exit 2 naming --http), not printed as a configuration that starts`, async () => {
      const r = await cli(coordinator(http, '--print-config'));
      expect(r.code, r.stdout).toBe(2);
      expect(r.stderr).toMatch(/--http/);
    });
  }

  it('a start with --http ipv4:127.0.0.1:0 is a usage error (exit 2), not exit 1 with getaddrinfo ENOTFOUND', async () => {
    const r = await cli(coordinator('ipv4:127.0.0.1:0'));
    expect(r.stderr).not.toMatch(/ENOTFOUND/);
    expect(r.code).toBe(2);
  });
});
