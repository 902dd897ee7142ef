/**
 * `npm run bench [-- NAME... ] [--smoke] [--out PATH]`: runs the benchmark scenarios (each
 * measures Tessera and its baseline side by side in the same run), prints a table of ratios and
 * writes every figure as JSON (bench/results.json by default) so runs can be compared:
 * `npm run bench -- --compare BEFORE.json [AFTER.json] [NAME...]` prints two runs side by side
 * (AFTER defaults to bench/results.json) and runs nothing.
 */
import { mkdir, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { useBulkHeapGrowth } from '../shared/malloc.js';
import { compareReports, formatComparison, readReport } from './compare.js';
import { formatFigures, formatTable, runScenarios, selectScenarios } from './harness.js';
import { scenarios } from './scenarios/index.js';

// This process is the scenarios' client (it uploads and downloads, as `tessera submit` does): it
// runs with the `tessera` command's memory settings, the malloc ones from `npm run bench`'s
// environment and this one. Without it, a 1 GiB upload cost the client 6 ms of CPU per MiB
// instead of 3-4, most of the difference in full collections started by the 1 MiB blocks.
useBulkHeapGrowth();

// dist/bench/run.js -> <repo>/bench/results.json (next to the sources, not in dist).
const DEFAULT_OUT = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './results.json' : '../../bench/results.json', import.meta.url));

const USAGE = 'usage: npm run bench -- [NAME...] [--smoke] [--out PATH] [--list]\n       npm run bench -- --compare BEFORE.json [AFTER.json] [NAME...]   (AFTER: bench/results.json)';

/** The folder `npm run` was started in (npm runs scripts in the package's): paths given are taken from it, and shown relative to it. */
const USER_CWD = process.env['INIT_CWD'] ?? process.cwd();
const userPath = (p: string): string => path.resolve(USER_CWD, p);
const shown = (p: string): string => path.relative(USER_CWD, p) || p;

/** A command line that cannot work: the usage follows the message, exit 2. */
class UsageError extends Error {}

async function main(argv: string[]): Promise<number> {
  const names: string[] = [];
  let out = DEFAULT_OUT;
  let smoke = false;
  let compare: string[] | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--compare') {
      // One or two results files: the arguments after it that name .json files.
      compare = [];
      while (compare.length < 2 && argv[i + 1]?.endsWith('.json')) compare.push(userPath(argv[++i]!));
      if (compare.length === 0) throw new UsageError('--compare needs the results file of an earlier run (BEFORE.json)');
    } else if (a === '--smoke') smoke = true;
    else if (a === '--out' || a.startsWith('--out=')) {
      const given = a === '--out' ? argv[++i] : a.slice(6);
      if (!given || given.startsWith('-')) throw new UsageError('--out needs the path of the results file (e.g. --out results.json)');
      out = userPath(given);
    }
    else if (a === '--list') {
      for (const s of scenarios) console.log(`${s.name.padEnd(18)} ${s.description}`);
      return 0;
    } else if (a === '--help' || a === '-h') {
      console.log(USAGE);
      return 0;
    } else if (a.startsWith('-')) throw new UsageError(`unknown option ${a}`);
    else names.push(a);
  }
  if (compare) {
    const [beforeFile, afterFile = DEFAULT_OUT] = compare;
    // One after the other: a problem with the first file is the one reported.
    const before = await readReport(beforeFile!);
    const after = await readReport(afterFile);
    console.log(formatComparison({ file: beforeFile!, report: before }, { file: afterFile, report: after }, compareReports(before, after, names)));
    return 0;
  }
  const selected = selectScenarios(scenarios, names);
  // A folder there would be renamed away at the end, as a previous results file is.
  if (await stat(out).then((st) => st.isDirectory(), () => false)) throw new UsageError(`--out ${out} is a folder: give the path of the results file in it (e.g. ${path.join(out, 'results.json')})`);
  // Before the run: a folder that cannot be made fails now, not after a quarter of an hour of measuring.
  await mkdir(path.dirname(out), { recursive: true });
  const report = await runScenarios(selected, { smoke, command: `npm run bench --${argv.length ? ' ' + argv.join(' ') : ''}` });
  // The run before stays beside it, for `--compare`.
  const previous = out.replace(/(\.json)?$/, '.previous.json');
  const kept = await rename(out, previous).then(
    () => true,
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return false;
      throw err;
    },
  );
  await writeFile(out, `${JSON.stringify(report, null, 2)}\n`);
  console.log(formatTable(report));
  console.log('');
  console.log(formatFigures(report));
  console.log(`\nresults written to ${out}`);
  if (kept) console.log(`the run before is in ${previous}; to compare: npm run bench -- --compare ${shown(previous)}${out === DEFAULT_OUT ? '' : ` ${shown(out)}`}`);
  const bad = report.outcomes.filter((o) => o.error || o.failedChecks.length > 0);
  return bad.length > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    if (err instanceof UsageError) console.error(USAGE);
    process.exit(2);
  },
);
