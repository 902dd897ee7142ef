/**
 * `.ci/run` on a fresh Debian 12 machine without Node.js: it must say that Node.js is missing, not
 * that a version it could not read ("") is too old. Every other tool it looks for is a stub here
 * (apt-get and npm too), so nothing is installed and nothing else runs.
 */
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const SCRIPT = fileURLToPath(new URL('../.ci/run', import.meta.url));
let bin: string;

beforeAll(async () => {
  bin = await mkdtemp(path.join(os.tmpdir(), 'tessera-ci-nonode-'));
  for (const tool of ['ffmpeg', 'ip', 'setpriv', 'openssl', 'git', 'g++', 'make', 'apt-get']) {
    await writeFile(path.join(bin, tool), '#!/bin/sh\nexit 0\n');
    await chmod(path.join(bin, tool), 0o755);
  }
  // npm must not be reached: it says so if it is.
  await writeFile(path.join(bin, 'npm'), '#!/bin/sh\necho "npm $*" >&2\nexit 0\n');
  await chmod(path.join(bin, 'npm'), 0o755);
  for (const tool of ['dirname', 'sh']) await symlink(tool === 'sh' ? '/bin/sh' : '/usr/bin/dirname', path.join(bin, tool));
});

afterAll(async () => {
  await rm(bin, { recursive: true, force: true });
});

describe('.ci/run on a machine without Node.js', () => {
  it('stops with a message that says Node.js is not installed (not "Node.js  is too old")', async () => {
    const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile('/bin/bash', [SCRIPT], { env: { PATH: bin }, timeout: 20_000 }, (err, _stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr }));
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).not.toMatch(/^npm /m);
    const line = r.stderr.split('\n').find((l) => l.startsWith('CI:')) ?? '';
    expect(line, r.stderr).toMatch(/Node\.js/);
    // Observed: "CI: Node.js  is too old: the tests need 20.19 or later" (the version is empty).
    expect(line, r.stderr).not.toMatch(/Node\.js\s+is too old/);
    expect(line, r.stderr).toMatch(/not (installed|found)|no node/i);
  });
});
