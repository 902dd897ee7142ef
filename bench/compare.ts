/**
 * `npm run bench -- --compare BEFORE.json [AFTER.json] [NAME...]`: two recorded runs side by side,
 * row by row: each ratio before and after, the change in the direction that is better for that row,
 * whether the target was met, and each baseline's time. A baseline measures the machine as much as
 * anything (the same `ffmpeg` or `cat` in both runs), so a ratio that moved together with its
 * baseline says more about the host than about the code; the table shows both.
 */
import { readFile } from 'node:fs/promises';
import { fmt, fmtRatio, isNamed, type BenchReport, type ScenarioOutcome } from './harness.js';

/** One row of a comparison: the outcome of that name in each run (undefined where the run lacks it). */
export interface ComparedRow {
  name: string;
  before?: ScenarioOutcome | undefined;
  after?: ScenarioOutcome | undefined;
  /** Relative change of the ratio, positive when better for this row's target (lower or higher); undefined unless both runs have a ratio. */
  change?: number | undefined;
  /** Relative change of the baseline's time (after / before - 1). */
  baselineChange?: number | undefined;
}

/** Reads a results file written by `npm run bench`; errors name the file and what is wrong with it. */
export async function readReport(file: string): Promise<BenchReport> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new Error(`${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file}: not JSON (${(err as Error).message})`);
  }
  const r = data as Partial<BenchReport> | null;
  const valid = r !== null && typeof r === 'object' && Array.isArray(r.outcomes) && r.outcomes.every((o) => typeof o?.name === 'string') && typeof r.startedAt === 'string';
  if (!valid) throw new Error(`${file}: not a results file of \`npm run bench\` (it has no startedAt and outcomes)`);
  return r as BenchReport;
}

/** Pairs the rows of two runs by name, in the order of `after` then what only `before` has; `names` (and `NAME-...`) selects some. */
export function compareReports(before: BenchReport, after: BenchReport, names: readonly string[] = []): ComparedRow[] {
  const wanted = (n: string): boolean => names.length === 0 || names.some((w) => isNamed(n, w));
  const order = [...after.outcomes.map((o) => o.name), ...before.outcomes.map((o) => o.name)].filter((n, i, all) => all.indexOf(n) === i && wanted(n));
  if (names.length > 0) {
    const unknown = names.filter((w) => !order.some((n) => isNamed(n, w)));
    if (unknown.length > 0) throw new Error(`no row named ${unknown.join(', ')} in either run`);
  }
  return order.map((name) => {
    const b = before.outcomes.find((o) => o.name === name);
    const a = after.outcomes.find((o) => o.name === name);
    const row: ComparedRow = { name, before: b, after: a };
    const rb = b?.result;
    const ra = a?.result;
    if (rb && ra && rb.ratio > 0 && Number.isFinite(rb.ratio) && Number.isFinite(ra.ratio)) {
      const rel = ra.ratio / rb.ratio - 1;
      row.change = ra.target.better === 'lower' ? -rel : rel;
    }
    if (rb && ra && rb.baseline.seconds > 0) row.baselineChange = ra.baseline.seconds / rb.baseline.seconds - 1;
    return row;
  });
}

const pct = (x: number): string => (Math.abs(x) < 0.0005 ? '0.0%' : `${x > 0 ? '+' : '-'}${Math.abs(x * 100).toFixed(1)}%`);

function ratioCell(o: ScenarioOutcome | undefined): string {
  if (!o) return '(not run)';
  if (!o.result) return 'ERROR';
  const met = o.targetMet === undefined ? '' : o.targetMet ? ' (met)' : ' (missed)';
  return `${fmtRatio(o.result)}${met}`;
}

/** One line on what a run was: when, which code, what command, which machine. */
function describeRun(label: string, file: string, r: BenchReport): string {
  const hw = r.hardware ?? {};
  const code = r.commit ? `commit ${r.commit.slice(0, 10)}${r.dirty ? ' with uncommitted changes' : ''}` : 'commit not recorded';
  return `${label}: ${file}: ${r.startedAt}, ${code}, \`${r.command || 'npm run bench'}\`${r.smoke ? ' (smoke)' : ''}; ${hw['cpu']} x ${hw['cores']}, ${hw['memoryGiB']} GiB, Node ${hw['node']}`;
}

/** The comparison as a markdown table with a few lines on the runs, and warnings where the two do not compare well. */
export function formatComparison(before: { file: string; report: BenchReport }, after: { file: string; report: BenchReport }, rows: readonly ComparedRow[]): string {
  const head = ['scenario', 'ratio before', 'ratio after', 'change', 'target', 'baseline before', 'baseline after'];
  const body = rows.map((r) => {
    const res = r.after?.result ?? r.before?.result;
    const target = res ? `${res.target.better === 'lower' ? '<=' : '>='} ${res.target.value}` : '-';
    const change = r.change === undefined ? '-' : Math.abs(r.change) < 0.0005 ? 'same' : `${pct(r.change)} ${r.change > 0 ? 'better' : 'worse'}`;
    const base = (o: ScenarioOutcome | undefined): string => (o?.result ? `${fmt(o.result.baseline.seconds)} s` : '-');
    const baseAfter = r.baselineChange === undefined ? base(r.after) : `${base(r.after)} (${pct(r.baselineChange)})`;
    return [r.name, ratioCell(r.before), ratioCell(r.after), change, target, base(r.before), baseAfter];
  });
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  const notes: string[] = [];
  const hwKey = (r: BenchReport): string => JSON.stringify([r.hardware?.['cpu'], r.hardware?.['cores'], r.hardware?.['memoryGiB']]);
  if (hwKey(before.report) !== hwKey(after.report)) notes.push('The two runs were on different machines: their ratios compare only roughly.');
  if (before.report.smoke || after.report.smoke) notes.push('A smoke run is among them: its tiny inputs make ratios that say nothing of performance.');
  notes.push('"change" is of the ratio, in the direction its target calls better. Each ratio is against a baseline measured in its own run; a baseline that moved says the machine ran at another speed.');
  return [describeRun('before', before.file, before.report), describeRun('after', after.file, after.report), '', line(head), line(head.map(() => '---')), ...body.map(line), '', ...notes].join('\n');
}
