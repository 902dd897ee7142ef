/**
 * README, "CLI": the client's own checks reject with `TesseraError`s "with `codeName` and `input`",
 * and `--json` prints an error as `{"error":{"code":...,"message":...,"input":"a.jpg"}}` with
 * "`input` where the error is about one"; "Security": names a Windows client could not download are
 * refused "with `INVALID_ARGUMENT` naming the input ... `tessera submit` and the client library
 * refuse such a file before sending anything".
 *
 * A folder, a missing file or two files with one name carry `input`; a file whose name breaks the
 * name rules (here `COM1.png`, `a:b.bin`) is refused without it. Nothing is sent, so no cluster is
 * needed: the library against an address where nothing listens, and the real CLI from dist/.
 */
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TesseraClient, TesseraError } from '../client/index.js';
import { deadAddress } from './helpers/addresses.js';
import { runCli } from './helpers/cluster.js';

let dir: string;
let device: string;
let colon: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-name-input-'));
  const plain = path.join(dir, 'plain.bin');
  await writeFile(plain, 'bytes');
  device = path.join(dir, 'COM1.png');
  colon = path.join(dir, 'a:b.bin');
  await copyFile(plain, device);
  await copyFile(plain, colon);
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('a file whose name breaks the name rules', () => {
  it('is refused by the library with a TesseraError whose input names it', async () => {
    const client = new TesseraClient({ address: await deadAddress() });
    try {
      for (const file of [device, colon]) {
        const err = await client.submit({ passthrough: {} }, [file]).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(TesseraError);
        expect((err as TesseraError).codeName).toBe('INVALID_ARGUMENT');
        expect((err as TesseraError).input, (err as Error).message).toBe(file);
      }
    } finally {
      client.close();
    }
  });

  it('is printed by tessera submit --json with "input"', async () => {
    const r = await runCli(['submit', 'passthrough', device, '-o', path.join(dir, 'out'), '--json', '--coordinator', await deadAddress()], { timeoutMs: 30_000 });
    expect(r.code, r.stderr).toBe(2);
    const printed = JSON.parse(r.stdout.trim()) as { error: { code: string; input?: string } };
    expect(printed.error.code).toBe('INVALID_ARGUMENT');
    expect(printed.error.input, r.stdout).toBe(device);
  });
});
