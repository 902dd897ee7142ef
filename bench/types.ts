/**
 * Contract of a benchmark scenario. `npm run bench [-- NAME...]` runs each scenario, which measures
 * Tessera and its baseline side by side in the same run, and prints/records the figures.
 */

/** One measured side of a scenario. */
export interface BenchSide {
  /** What ran, e.g. "cluster (coordinator + 2 workers x 1 slot)" or "ffmpeg -threads 2". */
  label: string;
  /** Wall time in seconds. */
  seconds: number;
  /** Peak resident set size per process, in MiB (e.g. { coordinator: 120, worker: 200 }). */
  peakRssMiB?: Record<string, number>;
  /** Any other figure worth recording (frame counts, MiB/s, subtasks/s...). */
  figures?: Record<string, number | string>;
}

export interface BenchResult {
  scenario: string;
  /** Inputs and settings, e.g. "60 s 1280x720 30 fps testsrc2, x264 medium crf 23". */
  inputs: string;
  baseline: BenchSide;
  tessera: BenchSide;
  /** The headline ratio (usually tessera.seconds / baseline.seconds; say which in `ratioMeaning`). */
  ratio: number;
  ratioMeaning: string;
  /** Target for the ratio, and whether lower or higher is better. */
  target: { value: number; better: 'lower' | 'higher' };
  /** Extra checks (e.g. frame counts equal); a failing check fails the scenario. */
  checks?: Record<string, boolean>;
}

export interface BenchContext {
  /** Scratch folder for this scenario, removed afterwards. */
  workDir: string;
  /** Print a progress line. */
  log(message: string): void;
  /** True for a quick smoke run (used by `npm test`): tiny inputs, no targets enforced. */
  smoke: boolean;
}

export interface BenchScenario {
  name: string;
  description: string;
  /** The command that reproduces it, e.g. "npm run bench -- video". */
  command: string;
  run(ctx: BenchContext): Promise<BenchResult>;
}
