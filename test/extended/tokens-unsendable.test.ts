/**
 * Tokens that no client or worker could ever send. README ("Tokens"): a token with white space in
 * it, or a character a gRPC header cannot carry, is refused at start (exit 2) naming the setting;
 * a token is never printed. Before: the worker token was not checked for white space (every worker
 * was then refused for ever); a token outside printable ASCII (an accented letter, or the line
 * break of a token file with a second line) was accepted by the coordinator, the CLI printed it in
 * clear (grpc-js's "Metadata string value ... contains illegal characters") and a worker died of
 * an uncaught exception that printed it.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cluster.js';

let dir: string;
const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TESSERA_')));
const cli = (args: string[], env: Record<string, string> = {}) => runCli(args, { env: { ...clean, ...env }, timeoutMs: 30_000 });

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-review-a-tokens-'));
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const coordinatorArgs = (extra: string[]): string[] => ['coordinator', '--listen', '127.0.0.1:0', '--http', 'off', '--data-dir', path.join(dir, 'data'), '--print-config', ...extra];

describe('tokens no one can send are refused at start', () => {
  it('a worker token with white space in it (exit 2, as a client token with white space is)', async () => {
    await writeFile(path.join(dir, 'worker.token'), 'worker-token-part-one two-0123456789\n');
    const r = await cli(coordinatorArgs(['--worker-token-file', path.join(dir, 'worker.token')]));
    expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 2, stderr: expect.stringMatching(/white space/) });
  });

  it('a client token with a character gRPC metadata cannot carry (exit 2)', async () => {
    await writeFile(path.join(dir, 'worker2.token'), 'worker-token-0123456789abcdef\n');
    await writeFile(path.join(dir, 'clients.txt'), 'alice:pässwort-pässwort-0123456789\n');
    const r = await cli(coordinatorArgs(['--worker-token-file', path.join(dir, 'worker2.token'), '--client-tokens-file', path.join(dir, 'clients.txt')]));
    expect(r.code, r.stdout + r.stderr).toBe(2);
  });
});

describe('a token the transport cannot carry is a usage error, and never printed', () => {
  const SECRET = 'pässwort-geheim-0123456789';

  it('the CLI: exit 2 naming the setting, without the token', async () => {
    const r = await cli(['jobs', '--coordinator', '127.0.0.1:1', '--token', SECRET]);
    expect(r.stderr).not.toContain(SECRET);
    expect(r.code, r.stderr).toBe(2);
  });

  it('the CLI with a token file of two lines: the token is not printed', async () => {
    const file = path.join(dir, 'two-lines.token');
    await writeFile(file, 'first-line-token-0123456789\n# rotated 2026-12-01\n');
    const r = await cli(['jobs', '--coordinator', '127.0.0.1:1', '--token-file', file]);
    expect(r.stderr).not.toContain('first-line-token-0123456789');
  });

  it('a worker: refused at start (exit 2), not an uncaught exception printing its token', async () => {
    const file = path.join(dir, 'worker3.token');
    await writeFile(file, `${SECRET}\n`);
    const r = await cli(['worker', '--coordinator', '127.0.0.1:1', '--worker-token-file', file, '--log-format', 'json']);
    expect(r.stderr).not.toContain(SECRET);
    expect(r.stderr).not.toMatch(/Node\.js v\d+|^\s+at /m);
    expect(r.code, r.stderr).toBe(2);
  });
});
