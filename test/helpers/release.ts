/**
 * Earlier versions of Tessera, built from this repository's history: what a cluster being upgraded
 * really runs. Each is built once into the OS temp folder and reused by later runs.
 */
import { execFile, spawn } from 'node:child_process';
import { access, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** A release built from a commit: its CLI, and the commit it was built from. */
export interface Release {
  rev: string;
  commit: string;
  cli: string;
}

/**
 * The built CLI of commit `rev`: its tree exported with `git archive`, installed with `npm ci` (whose
 * `prepare` builds it). Needs the repository's history (not a shallow clone) and the npm registry.
 */
export async function buildRelease(rev: string): Promise<Release> {
  const commit = (await promisify(execFile)('git', ['-C', REPO, 'rev-parse', '--verify', `${rev}^{commit}`]).catch((err: Error) => {
    throw new Error(`release ${rev}: not in this clone's history (a shallow clone? fetch it with git fetch --unshallow): ${err.message}`);
  })).stdout.trim();
  const dir = path.join(os.tmpdir(), `tessera-release-${commit.slice(0, 12)}`);
  const cli = path.join(dir, 'dist', 'client', 'cli.js');
  const done = path.join(dir, '.tessera-release-built');
  if (await access(done).then(() => true, () => false)) return { rev, commit, cli };
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await run('sh', ['-c', `git -C "$0" archive --format=tar "$1" | tar -x -C "$2"`, REPO, commit, dir], REPO);
  await run('npm', ['ci', '--no-audit', '--no-fund', '--prefer-offline'], dir);
  // npm skips dependencies' install scripts it was not allowed to run: the natives must be there.
  for (const native of ['node_modules/better-sqlite3/build/Release/better_sqlite3.node', 'dist/client/cli.js']) {
    await access(path.join(dir, native)).catch(() => {
      throw new Error(`release ${rev}: ${native} is missing after npm ci`);
    });
  }
  await writeFile(done, `${commit}\n`);
  return { rev, commit, cli };
}

function run(cmd: string, args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    // Not the settings of the npm that runs the tests (npm run sets npm_* for its script).
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('npm_')));
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'], env: { ...env, npm_config_loglevel: 'error' } });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} (in ${cwd}) exited with ${code}: ${stderr}`))));
  });
}
