/**
 * Installs that went part of the way, as real install trees (this checkout's packages linked, the
 * built CLI copied beside them, the package in question copied and changed as such an install
 * leaves it):
 * - better-sqlite3's native module never built (npm 11 skips install scripts it was not told to
 *   allow; `npm install --ignore-scripts`): the coordinator, and the demo that starts one, say in one
 *   line what is wrong and what to run, instead of better-sqlite3's list of a dozen paths tried (the
 *   demo showed only the end of that list).
 * - The package as `npm pack` makes it (its `files`), installed into an app: the demo runs from it
 *   (so everything a coordinator and its workers read at run time is in it, and nothing of the
 *   tests is), and `require('tessera')` works from CommonJS as `import` does.
 * - The npm-bundled ffprobe left `rwxr--r--` by its own postinstall in a global install made by root,
 *   run by a service user: the worker said "ffprobe not found ... or run npm install", which would
 *   not fix it; it says whose file it is and what to run.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { chmod, cp, mkdir, mkdtemp, readdir, rm, symlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = path.resolve(import.meta.dirname, '..');
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-no-native-'));
  const modules = path.join(dir, 'node_modules');
  await mkdir(modules);
  for (const name of await readdir(path.join(repo, 'node_modules'))) {
    if (name !== 'better-sqlite3' && name !== '@ffprobe-installer') await symlink(path.join(repo, 'node_modules', name), path.join(modules, name));
  }
  const sqlite = path.join(repo, 'node_modules', 'better-sqlite3');
  await cp(path.join(sqlite, 'package.json'), path.join(modules, 'better-sqlite3', 'package.json'));
  await cp(path.join(sqlite, 'lib'), path.join(modules, 'better-sqlite3', 'lib'), { recursive: true });
  // The ffprobe package as root's global install leaves it: its binary executable by its owner only.
  await cp(path.join(repo, 'node_modules', '@ffprobe-installer'), path.join(modules, '@ffprobe-installer'), { recursive: true });
  await chmod(path.join(modules, '@ffprobe-installer', 'linux-x64', 'ffprobe'), 0o744);
  for (const part of ['package.json', 'dist', 'proto']) await cp(path.join(repo, part), path.join(dir, part), { recursive: true });
  // Readable by the service user the worker runs as below.
  await chmod(dir, 0o755);
  await mkdir(path.join(dir, 'bin'));
  await symlink(process.execPath, path.join(dir, 'bin', 'node'));
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const cli = (args: string[]): { code: number | null; stdout: string; stderr: string } => {
  const r = spawnSync(process.execPath, [path.join(dir, 'dist', 'client', 'cli.js'), ...args], { cwd: dir, encoding: 'utf8', timeout: 60_000, env: { ...process.env, TESSERA_LOG_LEVEL: 'error' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};

/** setpriv (util-linux) from this process's PATH: the command's own PATH may not have it. */
const setpriv = (): string => {
  const found = (process.env['PATH'] ?? '').split(path.delimiter).map((d) => path.join(d, 'setpriv')).find((f) => existsSync(f));
  if (!found) throw new Error('setpriv (util-linux) is not on the PATH');
  return found;
};

const ADVICE = 'run `npm rebuild better-sqlite3` where Tessera is installed';

describe('an install without better-sqlite3 built', () => {
  it('tessera coordinator says what is missing and what to run, in one line', () => {
    const r = cli(['coordinator', '--listen', '127.0.0.1:0', '--http', 'off', '--data-dir', path.join(dir, 'data')]);
    expect(r.code, r.stderr).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toContain("the coordinator's job store needs better-sqlite3's native module, and it was never built");
    expect(lines[0]).toContain(ADVICE);
    expect(r.stderr).not.toContain('Could not locate the bindings file');
  });

  it('tessera demo passes that line on', () => {
    const r = cli(['demo', '--images', '1', '-o', path.join(dir, 'out')]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(ADVICE);
  });

  it('a client command needs no native module at all', () => {
    const r = cli(['jobs', '--coordinator', '127.0.0.1:1']);
    // Nothing listens there: exit 4, not a crash on loading.
    expect(r.code, r.stderr).toBe(4);
  });
});

describe('an npm-bundled ffprobe its user may not run', () => {
  it('tessera worker says whose file it is and what to run, not "not found ... run npm install"', async () => {
    const ffprobe = path.join(dir, 'node_modules', '@ffprobe-installer', 'linux-x64', 'ffprobe');
    const want = `ffprobe: the binary npm installed, ${ffprobe}, is not executable by this user (mode 0744, owner uid 0) and cannot be made so (EPERM): run \`chmod a+x ${ffprobe}\` as its owner, install ffprobe on the PATH, or set FFPROBE_PATH`;
    // No ffmpeg on the PATH: the bundled binaries are the ones to use. Nothing listens at the
    // coordinator's address; the worker says what it can run before it connects. As nobody (65534,
    // the tests run as root: the file's owner), stopped once it has said it (or after 60 s).
    const worker = spawn(setpriv(), ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, path.join(dir, 'dist', 'client', 'cli.js'), 'worker', '--coordinator', '127.0.0.1:1', '--slots', '1'], {
      cwd: dir,
      env: { ...process.env, PATH: path.join(dir, 'bin'), HOME: dir, TMPDIR: os.tmpdir(), TESSERA_LOG_LEVEL: 'warn', TESSERA_LOG_FORMAT: 'json' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let said = '';
    const exited = new Promise<void>((resolve) => worker.once('close', () => resolve()));
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 60_000);
      const take = (d: Buffer): void => {
        said += d.toString();
        if (said.includes(want) || said.includes('ffprobe not found')) {
          clearTimeout(timer);
          resolve();
        }
      };
      worker.stdout.on('data', take);
      worker.stderr.on('data', take);
      worker.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    worker.kill('SIGKILL');
    await exited;
    expect(said).toContain(want);
    expect(said).not.toContain('ffprobe not found');
  });
});

describe('the package npm pack makes, installed into an app', () => {
  let app: string;
  beforeAll(async () => {
    app = path.join(dir, 'app');
    const modules = path.join(app, 'node_modules');
    await mkdir(path.join(modules, 'tessera'), { recursive: true });
    // Its dependencies as an install puts them beside it (this checkout's).
    for (const name of await readdir(path.join(repo, 'node_modules'))) {
      if (!name.startsWith('.')) await symlink(path.join(repo, 'node_modules', name), path.join(modules, name));
    }
    const packed = spawnSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: repo, encoding: 'utf8', timeout: 60_000 });
    expect(packed.status, packed.stderr).toBe(0);
    const tarball = path.join(dir, (JSON.parse(packed.stdout) as { filename: string }[])[0]!.filename);
    const untar = spawnSync('tar', ['xzf', tarball, '-C', path.join(modules, 'tessera'), '--strip-components=1'], { encoding: 'utf8' });
    expect(untar.status, untar.stderr).toBe(0);
  });

  it('holds what runs and nothing of the tests', async () => {
    const files = (await readdir(path.join(app, 'node_modules', 'tessera'), { recursive: true })).map(String);
    for (const needed of ['LICENSE', 'README.md', 'dist/client/cli.js', 'dist/client/index.d.ts', 'dist/coordinator/store-writer.js', 'dist/worker/isolation.js', 'proto/tessera/v1/jobs.proto', 'coordinator/http/assets/dashboard.js']) {
      expect(files, needed).toContain(needed);
    }
    expect(files.filter((f) => /(^|\/)test\/|\.test\.|^bench\/|^dist\/bench\/|^\.ci\//.test(f))).toEqual([]);
  });

  it('runs the demo from it, and its library loads by import and by require', async () => {
    const bin = path.join(app, 'node_modules', 'tessera', 'dist', 'client', 'cli.js');
    const demo = spawnSync(process.execPath, [bin, 'demo', '--images', '2', '-o', path.join(app, 'out')], { cwd: app, encoding: 'utf8', timeout: 90_000 });
    expect(demo.status, demo.stderr).toBe(0);
    expect(demo.stdout).toMatch(/images: 2 in, 2 out/);
    const load = (code: string, ext: string): string => {
      const file = path.join(app, `load.${ext}`);
      writeFileSync(file, code);
      const r = spawnSync(process.execPath, [file], { cwd: app, encoding: 'utf8', timeout: 30_000 });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toBe('');
      return r.stdout.trim();
    };
    expect(load("const { TesseraClient } = require('tessera'); console.log(typeof TesseraClient);", 'cjs')).toBe('function');
    expect(load("import { TesseraClient } from 'tessera'; console.log(typeof TesseraClient);", 'mjs')).toBe('function');
    expect(load("console.log(require.resolve('tessera/proto/tessera/v1/jobs.proto').endsWith('jobs.proto'));", 'cjs')).toBe('true');
  });
});
