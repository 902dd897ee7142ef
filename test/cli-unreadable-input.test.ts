/**
 * An input file the user cannot read (mode 000, as a user other than root sees it): `tessera submit`
 * must say it cannot be read, not that it "changed while it was submitted" (it never changed: it
 * was unreadable from the start). The CLI runs under setpriv without CAP_DAC_OVERRIDE /
 * CAP_DAC_READ_SEARCH so that file modes hold for it as for any user (the tests run as root).
 */
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Coordinator } from '../coordinator/coordinator.js';
import { createLogger } from '../shared/logger.js';
import { runCli } from './helpers/cluster.js';

const log = createLogger('test', 'silent', 'json');
let dir: string;
let coordinator: Coordinator;
let address: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-cli-unreadable-'));
  coordinator = new Coordinator({ listen: '127.0.0.1:0', dataDir: path.join(dir, 'data'), log, http: '' });
  address = await coordinator.start();
});

afterAll(async () => {
  await coordinator?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});


describe('tessera submit of a file the user may not read', () => {
  it('says the file cannot be read (permission), not that it changed while it was submitted', async () => {
    const file = path.join(dir, 'secret.bin');
    await writeFile(file, 'bytes nobody may read\n');
    await chmod(file, 0o000);
    const r = await runCli(['submit', 'passthrough', file, '--no-wait', '--no-progress', '--coordinator', address], { unprivileged: true });
    const what = `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
    // INVALID_ARGUMENT naming the file: exit 2 (README, "CLI").
    expect(r.code, what).toBe(2);
    expect(r.stderr, what).toContain('secret.bin');
    expect(r.stderr, what).toContain('secret.bin: cannot be read (permission denied): check its permissions');
    // It was: "tessera: INVALID_ARGUMENT: .../secret.bin: cannot be read (EACCES): it changed while it was submitted"
    expect(r.stderr, what).not.toMatch(/changed while it was submitted/);
  });
});
