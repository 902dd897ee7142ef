/**
 * `--shared-root ""` and `--shared-output-root ""` (an unset variable in a unit file, a config key
 * left empty): README "Configuration" says a value given empty as a flag or a config key is never
 * taken for the default, and `--data-dir ""` is refused because "it would be the working folder".
 * An empty shared root is the working folder too: every file under the coordinator's working
 * directory became readable by any client (submit --shared), or writable (--shared-output-root):
 * refused now, as the data dir is (review CFG).
 * The real CLI from dist/.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startCluster, type CliResult, type TestCluster } from './helpers/cluster.js';
import { cleanEnv } from './helpers/process-logs.js';

let dir: string;
/** The working folder the coordinator runs in: beside its data dir, not above it. */
let cwd: string;
const clusters: TestCluster[] = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-shared-root-empty-'));
  cwd = path.join(dir, 'cwd');
  await mkdir(cwd);
});

afterAll(async () => {
  await Promise.all(clusters.map((c) => c.stop()));
  await rm(dir, { recursive: true, force: true });
});

/** Run in a working folder of its own (`cwd`), the data dir elsewhere: nothing overlaps it. */
const cli = (args: string[]): Promise<CliResult> => runCli(args, { env: cleanEnv(), timeoutMs: 20_000, cwd });

const coordinator = (...extra: string[]): string[] => ['coordinator', '--listen', '127.0.0.1:0', '--http', 'off', '--data-dir', path.join(dir, 'data'), ...extra];

describe('an empty --shared-root / --shared-output-root', () => {
  it('--shared-root "" is refused naming it (exit 2), not the working folder shared with every client', async () => {
    const r = await cli(coordinator('--shared-root', '', '--print-config'));
    // Today: exit 0, `"sharedRoot":[""]`, and the coordinator then shares its working folder.
    expect(r.code, r.stdout).toBe(2);
    expect(r.stderr).toMatch(/--shared-root/);
  });

  it('shared-output-root: "" in a config file is refused naming the key, not the working folder made writable by jobs', async () => {
    const file = path.join(dir, 'output-root-empty.yaml');
    await writeFile(file, 'shared-output-root: ""\n');
    const r = await cli(coordinator('--config', file, '--print-config'));
    expect(r.code, r.stdout).toBe(2);
    expect(r.stderr).toMatch(/config key "shared-output-root"/);
  });

  it('a coordinator started with --shared-root "" does not hand out the files of its working folder', async () => {
    // LocalCluster's coordinator runs in this process's working folder (the repository) with its
    // data dir under the temp folder, as a coordinator started from a unit file with an unset
    // variable would run in its WorkingDirectory.
    let cluster: TestCluster;
    try {
      cluster = await startCluster({ workers: 1, coordinatorArgs: ['--http', 'off', '--shared-root', ''] });
    } catch (err) {
      // Refused at start: what is asked for.
      expect(String(err)).toMatch(/exited with 2/);
      return;
    }
    clusters.push(cluster);
    const secret = path.resolve('package.json');
    const out = path.join(dir, 'out');
    const r = await cluster.runCli(['submit', 'passthrough', '--shared', secret, '-o', out, '--no-progress'], { env: cleanEnv(), timeoutMs: 30_000 });
    const leaked = r.code === 0 ? await readFile(path.join(out, 'package.json'), 'utf8').catch(() => '') : '';
    expect(leaked, `a file of the coordinator's working folder (${secret}) was served to a client by reference: ${r.stdout}`).toBe('');
    expect(r.code).not.toBe(0);
  });
});
