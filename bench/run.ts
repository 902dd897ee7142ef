/**
 * `npm run bench [-- NAME... ] [--smoke] [--out PATH]`: runs the benchmark scenarios (each
 * measures Tessera and its baseline side by side in the same run), prints a table of ratios and
 * writes every figure as JSON (bench/results.json by default) so runs can be compared.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { useBulkHeapGrowth } from '../shared/malloc.js';
import { formatFigures, formatTable, runScenarios, selectScenarios } from './harness.js';
import { scenarios } from './scenarios/index.js';

// This process is the scenarios' client (it uploads and downloads, as `tessera submit` does): it
// runs with the `tessera` command's memory settings, the malloc ones from `npm run bench`'s
// environment and this one. Without it, a 1 GiB upload cost the client 6 ms of CPU per MiB
// instead of 3-4, most of the difference in full collections started by the 1 MiB blocks.
useBulkHeapGrowth();

// dist/bench/run.js -> <repo>/bench/results.json (next to the sources, not in dist).
const DEFAULT_OUT = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './results.json' : '../../bench/results.json', import.meta.url));

async function main(argv: string[]): Promise<number> {
  const names: string[] = [];
  let out = DEFAULT_OUT;
  let smoke = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--smoke') smoke = true;
    else if (a === '--out') out = path.resolve(argv[++i] ?? '');
    else if (a.startsWith('--out=')) out = path.resolve(a.slice(6));
    else if (a === '--list') {
      for (const s of scenarios) console.log(`${s.name.padEnd(18)} ${s.description}`);
      return 0;
    } else if (a === '--help' || a === '-h') {
      console.log('usage: npm run bench -- [NAME...] [--smoke] [--out PATH] [--list]');
      return 0;
    } else names.push(a);
  }
  const selected = selectScenarios(scenarios, names);
  const report = await runScenarios(selected, { smoke, command: `npm run bench --${argv.length ? ' ' + argv.join(' ') : ''}` });
  await writeFile(out, `${JSON.stringify(report, null, 2)}\n`);
  console.log(formatTable(report));
  console.log('');
  console.log(formatFigures(report));
  console.log(`\nresults written to ${out}`);
  const bad = report.outcomes.filter((o) => o.error || o.failedChecks.length > 0);
  return bad.length > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(2);
  },
);
