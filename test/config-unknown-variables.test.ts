/**
 * A TESSERA_ variable nothing reads (a misspelt one) is said so in the log of the coordinator or
 * worker it was set for: TESSERA_CLIENT_TOKEN (for TESSERA_CLIENT_TOKENS) left the client API open
 * without a word, where an unknown key of a config file is refused (review OPS7). And the list of
 * variables read by code is complete: every one the sources name is known.
 */
import { execFile } from 'node:child_process';
import { readdir, readFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CLI_PATH } from '../client/local-cluster.js';
import { OTHER_VARIABLES } from '../client/commands/config.js';
import { LEVEL, cleanEnv, logLinesUntil } from './helpers/process-logs.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-unknown-vars-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const warned = (name: string) => (l: { level: number; msg: string }): boolean => l.level === LEVEL.warn && l.msg.startsWith(`${name} is set, but no setting of Tessera's is read from it`);

it('a coordinator says which TESSERA_ variable nothing reads, and the one meant', async () => {
  const env = { TESSERA_CLIENT_TOKEN: 'alice:alice-token-0123456789abcdef', TESSERA_SLOTS: '4', TESSERA_DATA_DIR: path.join(dir, 'data') };
  const lines = await logLinesUntil(['coordinator', '--listen', '127.0.0.1:0', '--http', 'off'], (ls) => ls.some((l) => l.msg === 'coordinator listening'), { env });
  expect(lines.filter(warned('TESSERA_CLIENT_TOKEN')).map((l) => l.msg)).toEqual(["TESSERA_CLIENT_TOKEN is set, but no setting of Tessera's is read from it (did you mean TESSERA_CLIENT_TOKENS?): it is ignored"]);
  // A worker's setting in a coordinator's environment (compose sets one environment for all) is known.
  expect(lines.filter((l) => l.msg.includes('no setting of Tessera'))).toHaveLength(1);
});

it('a worker says so too', async () => {
  const lines = await logLinesUntil(['worker', '--coordinator', '127.0.0.1:1'], (ls) => ls.some(warned('TESSERA_SLOT')), { env: { TESSERA_SLOT: '4' } });
  expect(lines.find(warned('TESSERA_SLOT'))?.msg).toBe("TESSERA_SLOT is set, but no setting of Tessera's is read from it (did you mean TESSERA_SLOTS?): it is ignored");
});

it('knows every TESSERA_ variable the sources read', async () => {
  const named = new Set<string>();
  for (const folder of ['client', 'coordinator', 'worker', 'shared']) {
    for (const f of await readdir(path.join(import.meta.dirname, '..', folder), { recursive: true })) {
      if (!f.endsWith('.ts') || f.endsWith('.test.ts') || f.includes('generated')) continue;
      const text = await readFile(path.join(import.meta.dirname, '..', folder, f), 'utf8');
      for (const m of text.matchAll(/['"`](TESSERA_[A-Z0-9_]*[A-Z0-9])['"`]/g)) named.add(m[1]!);
    }
  }
  const help = async (command: string): Promise<string> => (await promisify(execFile)(process.execPath, [CLI_PATH, command, '--help'], { env: cleanEnv() })).stdout;
  const options = new Set([...(await help('coordinator')).matchAll(/TESSERA_[A-Z0-9_]+/g), ...(await help('worker')).matchAll(/TESSERA_[A-Z0-9_]+/g)].map((m) => m[0]));
  expect([...named].filter((n) => !OTHER_VARIABLES.has(n) && !options.has(n)).sort()).toEqual([]);
});
