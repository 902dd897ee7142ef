/**
 * `npm run bench -- --compare`: two recorded runs side by side. The runs here are results files as
 * `npm run bench` writes them (made up for the test: the comparison reads recorded figures, it
 * measures nothing), compared in-process and through the real command (`dist/bench/run.js`).
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareReports, formatComparison } from '../../bench/compare.js';
import { codeVersion, type BenchReport, type ScenarioOutcome } from '../../bench/harness.js';

const RUN = fileURLToPath(new URL('../../dist/bench/run.js', import.meta.url));
const REPO = fileURLToPath(new URL('../..', import.meta.url));
const HW = { cpu: 'AMD EPYC', cores: 2, memoryGiB: 23.5, os: 'Linux x64', node: 'v20.20.2' };

/** A recorded row: `ratio` against `target` (`better`), the baseline taking `baseSeconds`. */
function row(name: string, ratio: number, target: number, better: 'lower' | 'higher', baseSeconds: number): ScenarioOutcome {
  const met = better === 'lower' ? ratio <= target : ratio >= target;
  return {
    name,
    command: `npm run bench -- ${name.split('-')[0]}`,
    wallSeconds: 30,
    result: {
      scenario: name,
      inputs: 'recorded for the test',
      baseline: { label: 'baseline', seconds: baseSeconds },
      tessera: { label: 'cluster', seconds: better === 'lower' ? baseSeconds * ratio : baseSeconds / ratio },
      ratio,
      ratioMeaning: 'test',
      target: { value: target, better },
      checks: { ok: true },
    },
    failedChecks: [],
    targetMet: met,
  };
}

function report(outcomes: ScenarioOutcome[], extra: Partial<BenchReport> = {}): BenchReport {
  return { startedAt: '2026-12-02T10:00:00.000Z', smoke: false, hardware: HW, command: 'npm run bench', commit: 'a'.repeat(40), dirty: false, outcomes, ...extra };
}

const BEFORE = report([row('images', 0.86, 0.9, 'higher', 23.1), row('images-upload', 0.66, 0.9, 'higher', 23.1), row('video', 1.1, 0.95, 'lower', 26.5), row('audio', 0.5, 0.8, 'lower', 122)]);
const AFTER = report(
  [row('images', 0.946, 0.9, 'higher', 21.0), row('images-upload', 0.6, 0.9, 'higher', 21.0), row('video', 0.99, 0.95, 'lower', 28.9), { name: 'tiles', command: 'npm run bench -- tiles', wallSeconds: 3, error: 'Error: tiles blew up\n    at x', failedChecks: [] }],
  { startedAt: '2026-12-02T12:00:00.000Z', commit: 'b'.repeat(40), dirty: true },
);

describe('bench --compare', () => {
  it('pairs the rows of two runs by name and measures each change in the direction its target calls better', () => {
    const rows = compareReports(BEFORE, AFTER);
    expect(rows.map((r) => r.name)).toEqual(['images', 'images-upload', 'video', 'tiles', 'audio']);
    const by = Object.fromEntries(rows.map((r) => [r.name, r]));
    // Higher is better: 0.86 -> 0.946 is 10% better; 0.66 -> 0.6 is 9.1% worse.
    expect(by['images']!.change).toBeCloseTo(0.1, 6);
    expect(by['images-upload']!.change).toBeCloseTo(0.6 / 0.66 - 1, 6);
    // Lower is better: 1.1 -> 0.99 is 10% better.
    expect(by['video']!.change).toBeCloseTo(0.1, 6);
    expect(by['video']!.baselineChange).toBeCloseTo(28.9 / 26.5 - 1, 6);
    // Only in one run, or failed in one: no change to tell.
    expect(by['tiles']!.before).toBeUndefined();
    expect(by['tiles']!.change).toBeUndefined();
    expect(by['audio']!.after).toBeUndefined();
    expect(by['audio']!.change).toBeUndefined();
  });

  it('selects rows by name or group prefix, and refuses a name neither run has', () => {
    expect(compareReports(BEFORE, AFTER, ['images']).map((r) => r.name)).toEqual(['images', 'images-upload']);
    expect(compareReports(BEFORE, AFTER, ['video', 'audio']).map((r) => r.name)).toEqual(['video', 'audio']);
    expect(() => compareReports(BEFORE, AFTER, ['scheduler'])).toThrow('no row named scheduler in either run');
  });

  it('prints a table with both ratios, the change, the targets met and the baselines, and says what each run was', () => {
    const text = formatComparison({ file: 'before.json', report: BEFORE }, { file: 'after.json', report: AFTER }, compareReports(BEFORE, AFTER));
    expect(text).toContain('before: before.json: 2026-12-02T10:00:00.000Z, commit aaaaaaaaaa, `npm run bench`');
    expect(text).toContain('after: after.json: 2026-12-02T12:00:00.000Z, commit bbbbbbbbbb with uncommitted changes');
    expect(text).toContain('| images | 0.86 (missed) | 0.95 (met) | +10.0% better | >= 0.9 | 23.1 s | 21.0 s (-9.1%) |');
    expect(text).toContain('| images-upload | 0.66 (missed) | 0.60 (missed) | -9.1% worse | >= 0.9 |');
    expect(text).toContain('| video | 1.10 (missed) | 0.99 (missed) | +10.0% better | <= 0.95 | 26.5 s | 28.9 s (+9.1%) |');
    expect(text).toContain('| tiles | (not run) | ERROR | - |');
    expect(text).toContain('| audio | 0.50 (met) | (not run) | - | <= 0.8 | 122 s | - |');
    expect(text).not.toContain('different machines');
  });

  it('warns when the runs were on different machines or one was a smoke run', () => {
    const other = report([row('images', 0.9, 0.9, 'higher', 10)], { hardware: { ...HW, cores: 8 }, smoke: true });
    const text = formatComparison({ file: 'a.json', report: BEFORE }, { file: 'b.json', report: other }, compareReports(BEFORE, other));
    expect(text).toContain('The two runs were on different machines');
    expect(text).toContain('A smoke run is among them');
  });

  describe('the command', () => {
    let dir = '';
    const run = async (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
      try {
        // INIT_CWD: the folder `npm run bench` was started in (npm's; set under `npm test` too).
        const { stdout, stderr } = await promisify(execFile)(process.execPath, [RUN, ...args], { cwd: REPO, env: { ...process.env, INIT_CWD: dir }, timeout: 60_000 });
        return { code: 0, stdout, stderr };
      } catch (err) {
        const e = err as { code: number; stdout: string; stderr: string };
        return { code: e.code, stdout: e.stdout, stderr: e.stderr };
      }
    };
    beforeAll(async () => {
      dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-bench-compare-'));
      await writeFile(path.join(dir, 'before.json'), JSON.stringify(BEFORE));
      await writeFile(path.join(dir, 'after.json'), JSON.stringify(AFTER));
      await writeFile(path.join(dir, 'broken.json'), '{"startedAt": "x", "outc');
      await writeFile(path.join(dir, 'other.json'), JSON.stringify({ name: 'tessera', version: '1.0.0' }));
      await mkdir(path.join(dir, 'runs'));
    });
    afterAll(() => rm(dir, { recursive: true, force: true }));

    it('compares two results files and runs nothing', async () => {
      const r = await run('--compare', 'before.json', 'after.json', 'video');
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`before: ${path.join(dir, 'before.json')}`);
      expect(r.stdout).toContain('| video | 1.10 (missed) | 0.99 (missed) | +10.0% better |');
      expect(r.stdout).not.toContain('| images |');
      // Nothing ran: no scenario's progress lines, no results file written.
      expect(r.stderr).toBe('');
    });

    it('refuses a missing file, a file that is not JSON, and JSON that is not a results file, naming each (exit 2)', async () => {
      const missing = await run('--compare', 'nope.json', 'after.json');
      expect(missing.code).toBe(2);
      expect(missing.stderr).toContain(`${path.join(dir, 'nope.json')}: cannot be read (ENOENT)`);
      const broken = await run('--compare', 'before.json', 'broken.json');
      expect(broken.code).toBe(2);
      expect(broken.stderr).toContain(`${path.join(dir, 'broken.json')}: not JSON`);
      const other = await run('--compare', 'other.json', 'after.json');
      expect(other.code).toBe(2);
      expect(other.stderr).toContain(`${path.join(dir, 'other.json')}: not a results file of \`npm run bench\``);
    });

    it('answers a command line it cannot use with the usage (exit 2)', async () => {
      const bare = await run('--compare');
      expect(bare.code).toBe(2);
      expect(bare.stderr).toContain('--compare needs the results file of an earlier run');
      expect(bare.stderr).toContain('usage: npm run bench');
      const unknown = await run('--fast');
      expect(unknown.code).toBe(2);
      expect(unknown.stderr).toContain('unknown option --fast');
      // Before, a bare --out or a folder was taken, and after the whole run renamed away as "the run before".
      const bareOut = await run('scale', '--out');
      expect([bareOut.code, bareOut.stderr]).toEqual([2, expect.stringContaining('--out needs the path of the results file')]);
      const folder = await run('scale', '--out', 'runs');
      expect([folder.code, folder.stderr]).toEqual([2, expect.stringContaining(`--out ${path.join(dir, 'runs')} is a folder`)]);
      expect((await stat(path.join(dir, 'runs'))).isDirectory()).toBe(true);
    });

    it('keeps the run before beside the new results, and says how to compare the two', async () => {
      const first = await run('scale', '--smoke', '--out', 'runs/r.json');
      expect(first.code).toBe(0);
      expect(first.stdout).toContain(`results written to ${path.join(dir, 'runs/r.json')}`);
      expect(first.stdout).not.toContain('the run before');
      const second = await run('scale', '--smoke', '--out', 'runs/r.json');
      expect(second.code).toBe(0);
      expect(second.stdout).toContain(`the run before is in ${path.join(dir, 'runs/r.previous.json')}; to compare: npm run bench -- --compare runs/r.previous.json runs/r.json`);
      const [before, after] = await Promise.all(['r.previous.json', 'r.json'].map(async (f) => JSON.parse(await readFile(path.join(dir, 'runs', f), 'utf8')) as BenchReport));
      expect(Date.parse(before!.startedAt)).toBeLessThan(Date.parse(after!.startedAt));
      expect(after!.commit).toBe(codeVersion()?.commit);
      const compared = await run('--compare', 'runs/r.previous.json', 'runs/r.json');
      expect(compared.code).toBe(0);
      expect(compared.stdout).toMatch(/\| scale-heartbeats \| [\d.]+ \| [\d.]+ \| /);
      expect(compared.stdout).toMatch(/\| scale-slots \| [\d.]+ \| [\d.]+ \| /);
      expect(compared.stdout).toContain('A smoke run is among them');
    }, 60_000);
  });
});

describe('the code version a run records', () => {
  it('is the commit of the checkout, marked dirty when tracked files changed; nothing outside git', async () => {
    const git = (dir: string, ...args: string[]): string => execFileSync('git', ['-C', dir, '-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], { encoding: 'utf8' }).trim();
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tessera-code-version-'));
    try {
      expect(codeVersion(dir)).toBeUndefined();
      git(dir, 'init', '-q');
      await writeFile(path.join(dir, 'a.txt'), 'one');
      git(dir, 'add', 'a.txt');
      git(dir, 'commit', '-q', '-m', 'one');
      const head = git(dir, 'rev-parse', 'HEAD');
      expect(codeVersion(dir)).toEqual({ commit: head, dirty: false });
      // An untracked file is not a change to the code measured; an edited tracked one is.
      await writeFile(path.join(dir, 'b.txt'), 'new');
      expect(codeVersion(dir)).toEqual({ commit: head, dirty: false });
      await writeFile(path.join(dir, 'a.txt'), 'two');
      expect(codeVersion(dir)).toEqual({ commit: head, dirty: true });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    // By default, this package's own checkout (CI and the bench run from a git clone).
    expect(codeVersion()?.commit).toBe(git(REPO, 'rev-parse', 'HEAD'));
  });
});
