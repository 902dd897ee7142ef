/**
 * The benchmark harness: runs scenarios one after another (each with its own scratch folder),
 * collects their results, renders the ratio table and the JSON record. `bench/run.ts` is the CLI
 * over it; the smoke test calls it in-process.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { hardware, round } from './proc-stats.js';
import type { BenchContext, BenchResult, BenchScenario } from './types.js';

/**
 * A scenario that may record several results from one set-up (e.g. one cluster measured with 1
 * job and with 200 jobs), each its own row. Every `BenchScenario` is one of these.
 */
export interface MultiBenchScenario extends Omit<BenchScenario, 'run'> {
  run(ctx: BenchContext): Promise<BenchResult | BenchResult[]>;
}

/** One result row of a scenario, or the error that stopped the scenario. */
export interface ScenarioOutcome {
  /** The result's name (`scenario` of the BenchResult), else the scenario's. */
  name: string;
  command: string;
  /** Wall time of the whole scenario (shared by the rows of one scenario). */
  wallSeconds: number;
  result?: BenchResult;
  error?: string;
  /** Whether the ratio met its target (undefined in smoke runs or on error). */
  targetMet?: boolean;
  /** Names of checks that failed. */
  failedChecks: string[];
}

/** Everything one run records (written as JSON). */
export interface BenchReport {
  startedAt: string;
  smoke: boolean;
  hardware: Record<string, string | number>;
  command: string;
  /** The git commit of the code measured, when it ran from a git checkout. */
  commit?: string;
  /** True when tracked files differed from that commit. */
  dirty?: boolean;
  outcomes: ScenarioOutcome[];
}

/** The package's root (bench/ and dist/bench/ both lie under it). */
const ROOT = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? '..' : '../..', import.meta.url));

/** The commit of the checkout this code runs from, and whether tracked files were changed; nothing outside a git checkout. */
export function codeVersion(dir = ROOT): { commit: string; dirty: boolean } | undefined {
  try {
    const git = (...args: string[]): string => execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 }).trim();
    const commit = git('rev-parse', 'HEAD');
    if (!/^[0-9a-f]{40}$/.test(commit)) return undefined;
    return { commit, dirty: git('status', '--porcelain', '--untracked-files=no') !== '' };
  } catch {
    return undefined;
  }
}

/**
 * Scenarios matching `names`: a name selects the scenario of that name and every scenario named
 * `NAME-...` (so `scheduler` runs `scheduler-1job` and `scheduler-200jobs`). No names: all.
 */
export function selectScenarios<S extends MultiBenchScenario>(all: readonly S[], names: readonly string[]): S[] {
  if (names.length === 0) return [...all];
  const unknown = names.filter((n) => !all.some((s) => isNamed(s.name, n)));
  if (unknown.length > 0) throw new Error(`unknown scenario(s): ${unknown.join(', ')} (known: ${all.map((s) => s.name).join(', ')})`);
  return all.filter((s) => names.some((n) => isNamed(s.name, n)));
}

/** Whether `name` (a scenario's or a row's) is the one asked for, or one of its `asked-...` group. */
export function isNamed(name: string, asked: string): boolean {
  return name === asked || name.startsWith(`${asked}-`);
}

export function targetMet(r: BenchResult): boolean {
  return r.target.better === 'lower' ? r.ratio <= r.target.value : r.ratio >= r.target.value;
}

/** Runs the scenarios in order; a scenario that throws is recorded and the next one still runs. */
export async function runScenarios(
  scenarios: readonly MultiBenchScenario[],
  opts: { smoke: boolean; log?: (line: string) => void; command?: string },
): Promise<BenchReport> {
  const log = opts.log ?? ((line: string) => console.error(line));
  const report: BenchReport = { startedAt: new Date().toISOString(), smoke: opts.smoke, hardware: hardware(), command: opts.command ?? '', ...codeVersion(), outcomes: [] };
  for (const scenario of scenarios) {
    const workDir = await mkdtemp(path.join(os.tmpdir(), `tessera-bench-${scenario.name}-`));
    const t0 = performance.now();
    const rows: ScenarioOutcome[] = [];
    log(`== ${scenario.name}: ${scenario.description}`);
    try {
      const got = await scenario.run({ workDir, smoke: opts.smoke, log: (m) => log(`   [${scenario.name}] ${m}`) });
      for (const result of Array.isArray(got) ? got : [got]) {
        rows.push({
          name: result.scenario,
          // A smoke run is reproduced as one.
          command: opts.smoke ? `${scenario.command} --smoke` : scenario.command,
          wallSeconds: 0,
          result,
          failedChecks: Object.entries(result.checks ?? {})
            .filter(([, ok]) => !ok)
            .map(([name]) => name),
          ...(opts.smoke ? {} : { targetMet: targetMet(result) }),
        });
      }
    } catch (err) {
      const error = err instanceof Error ? (err.stack ?? err.message) : String(err);
      rows.push({ name: scenario.name, command: scenario.command, wallSeconds: 0, error, failedChecks: [] });
      log(`   [${scenario.name}] FAILED: ${error}`);
    } finally {
      await rm(workDir, { recursive: true, force: true }).catch(() => undefined);
    }
    const wall = round((performance.now() - t0) / 1000, 1);
    for (const r of rows) r.wallSeconds = wall;
    report.outcomes.push(...rows);
  }
  return report;
}

/** A figure with two or three significant digits, for tables. */
export function fmt(n: number): string {
  if (!Number.isFinite(n)) return 'n/a';
  return Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(2);
}

/**
 * A ratio as the table shows it: {@link fmt}, or as many more digits as it takes for the figure
 * shown to fall on the same side of the target as the ratio (0.8996 against >= 0.9 is "0.8996",
 * not a "0.90" beside "NO").
 */
export function fmtRatio(r: Pick<BenchResult, 'ratio' | 'target'>): string {
  const met = targetMet(r as BenchResult);
  let shown = fmt(r.ratio);
  for (let digits = 3; digits <= 8 && targetMet({ ...r, ratio: Number(shown) } as BenchResult) !== met; digits++) shown = r.ratio.toFixed(digits);
  return shown;
}

/** A markdown table of every outcome (also readable on a terminal). */
export function formatTable(report: BenchReport): string {
  const rows = [
    ['scenario', 'baseline', 'tessera', 'ratio', 'target', 'met', 'checks'],
    ...report.outcomes.map((o) => {
      const r = o.result;
      if (!r) return [o.name, '-', '-', '-', '-', 'ERROR', (o.error ?? '').split('\n')[0]!.slice(0, 60)];
      const side = (s: BenchResult['baseline']): string => `${s.label}: ${fmt(s.seconds)} s`;
      const met = o.targetMet === undefined ? '(smoke)' : o.targetMet ? 'yes' : 'NO';
      const checks = o.failedChecks.length === 0 ? 'ok' : `FAILED ${o.failedChecks.join(', ')}`;
      return [o.name, side(r.baseline), side(r.tessera), fmtRatio(r), `${r.target.better === 'lower' ? '<=' : '>='} ${r.target.value}`, met, checks];
    }),
  ];
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  const out = [line(rows[0]!), line(rows[0]!.map(() => '---')), ...rows.slice(1).map(line)];
  const details = report.outcomes
    .filter((o) => o.result)
    .map((o) => `- ${o.name}: ${o.result!.ratioMeaning}; inputs: ${o.result!.inputs}; reproduce: \`${o.command}\``);
  const hw = report.hardware;
  const code = report.commit ? `; commit ${report.commit.slice(0, 10)}${report.dirty ? ' with uncommitted changes' : ''}` : '';
  return [...out, '', `Hardware: ${hw['cpu']} x ${hw['cores']}, ${hw['memoryGiB']} GiB, ${hw['os']}, Node ${hw['node']}${code}`, ...details].join('\n');
}

/** The figures of each side, one line per scenario (for the console). */
export function formatFigures(report: BenchReport): string {
  const lines: string[] = [];
  for (const o of report.outcomes) {
    const r = o.result;
    if (!r) continue;
    for (const [which, s] of [['baseline', r.baseline], ['tessera', r.tessera]] as const) {
      const figs = { ...(s.figures ?? {}), ...(s.peakRssMiB ? Object.fromEntries(Object.entries(s.peakRssMiB).map(([k, v]) => [`rssMiB.${k}`, v])) : {}) };
      lines.push(`${o.name} ${which}: ${Object.entries(figs).map(([k, v]) => `${k}=${typeof v === 'number' ? fmt(v) : v}`).join(' ')}`);
    }
  }
  return lines.join('\n');
}
