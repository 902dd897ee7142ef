/**
 * `npm run bench -- scheduler`: 20,000 no-op subtasks (diagnostic `passthrough` kind) through a real
 * cluster — coordinator + 2 workers as separate processes on loopback — in one job and in 200 jobs,
 * with every job watched by the client. Figures: end-to-end subtasks/s and p50/p99 dispatch latency.
 *
 * Baselines: the same 20,000 no-op tasks through p-limit in this one process with the same total
 * concurrency (measured in the same run: the floor any task engine sits on), and the documented
 * reference of Dask distributed with two 1-thread worker processes on this machine (~500 tasks/s,
 * issue 8). The headline ratio is Tessera's rate over Dask's; the target, 10x, is 5,000 subtasks/s.
 */
import pLimit from 'p-limit';
import { LocalCluster } from '../../client/local-cluster.js';
import { latencySummary, runNoopJobs } from '../job-timeline.js';
import type { MultiBenchScenario } from '../harness.js';
import { cpuSeconds, peakRssMiB, resetSelfPeakRss, round, selfPeakRssMiB } from '../proc-stats.js';
import type { BenchContext, BenchResult } from '../types.js';

/** Dask distributed, 2 workers x 1 thread, no-op tasks on this 2-core machine (issue 8). */
export const DASK_REFERENCE_TASKS_PER_S = 500;
const TARGET_TASKS_PER_S = 5000;
const WORKERS = 2;
/** Slots per worker: no-op subtasks cost no CPU, so slots only bound the pipeline depth. */
const SLOTS = 32;
/** Rounds of (baseline, cluster) per row; the row reports the median round. */
const ROUNDS = 3;

/** The same number of no-op async tasks through p-limit in this process, same total concurrency. */
async function inProcessBaseline(total: number, concurrency: number): Promise<number> {
  const limit = pLimit(concurrency);
  const t0 = performance.now();
  await Promise.all(Array.from({ length: total }, () => limit(() => new Promise<void>((resolve) => setImmediate(resolve)))));
  return (performance.now() - t0) / 1000;
}

/**
 * Runs `jobs` job(s) totalling `total` no-op subtasks on a started cluster, in rounds of (baseline,
 * cluster); one result row from the median round. A round takes seconds, and on a shared machine a
 * single one measures the host's slow stretches as much as the code.
 */
async function measure(ctx: BenchContext, cluster: LocalCluster, name: string, jobs: number, total: number): Promise<BenchResult> {
  const jobCount = ctx.smoke ? Math.min(jobs, 5) : jobs;
  const perJob = Math.floor(total / jobCount);
  const rounds: { baseSeconds: number; run: Awaited<ReturnType<typeof runNoopJobs>>; coordinatorCpu: number; rate: number }[] = [];
  // The client's peak is this row's (the servers' are their lifetime's: one cluster serves both rows).
  resetSelfPeakRss();
  for (let i = 0; i < (ctx.smoke ? 1 : ROUNDS); i++) {
    ctx.log(`round ${i + 1}: in-process baseline, ${total} no-op tasks through p-limit(${WORKERS * SLOTS})`);
    const baseSeconds = await inProcessBaseline(total, WORKERS * SLOTS);
    ctx.log(`round ${i + 1}: cluster, ${jobCount} job(s) x ${perJob} no-op subtasks`);
    const cpu0 = await cpuSeconds(cluster.coordinator?.child.pid);
    const run = await runNoopJobs(cluster.client, { jobs: jobCount, perJob, slotsPerWorker: SLOTS });
    const coordinatorCpu = (await cpuSeconds(cluster.coordinator?.child.pid)) - cpu0;
    rounds.push({ baseSeconds, run, coordinatorCpu, rate: run.subtasks / run.seconds });
    ctx.log(`round ${i + 1}: ${round(run.subtasks / run.seconds, 0)} subtasks/s`);
  }
  const byRate = [...rounds].sort((a, b) => a.rate - b.rate);
  const { baseSeconds, run, coordinatorCpu, rate } = byRate[Math.floor(byRate.length / 2)]!;
  const lat = latencySummary(run.dispatchMs);
  const rss: Record<string, number> = { coordinator: await peakRssMiB(cluster.coordinator?.child.pid), client: selfPeakRssMiB() };
  for (const w of cluster.workers) rss[w.name] = await peakRssMiB(w.child.pid);
  ctx.log(`median round: ${round(rate, 0)} subtasks/s (${run.seconds.toFixed(2)} s), dispatch p50 ${lat.p50} ms p99 ${lat.p99} ms; in-process ${round(total / baseSeconds, 0)}/s`);
  return {
    scenario: name,
    inputs: `${jobCount} passthrough job(s) x ${perJob} no-op subtasks, submitted 16 at a time and watched; ${WORKERS} workers x ${SLOTS} slots; the median of ${rounds.length} round(s), each after its baseline`,
    baseline: {
      label: `in-process p-limit(${WORKERS * SLOTS}) no-op tasks; Dask reference ${DASK_REFERENCE_TASKS_PER_S}/s`,
      seconds: baseSeconds,
      figures: { tasksPerS: round(total / baseSeconds, 0), daskReferenceTasksPerS: DASK_REFERENCE_TASKS_PER_S },
    },
    tessera: {
      label: `cluster (coordinator + ${WORKERS} workers x ${SLOTS} slots)`,
      seconds: run.seconds,
      peakRssMiB: rss,
      figures: {
        subtasksPerS: round(rate, 0),
        ...Object.fromEntries(rounds.map((r, i) => [`round${i + 1}SubtasksPerS`, round(r.rate, 0)])),
        dispatchP50Ms: lat.p50,
        dispatchP99Ms: lat.p99,
        dispatchMaxMs: lat.max,
        // CPU per subtask is what a shared machine cannot blur: wall time can be.
        coordinatorCpuMsPerSubtask: round((coordinatorCpu * 1000) / run.subtasks, 3),
        vsInProcess: round(rate / (total / baseSeconds), 4),
        ...Object.fromEntries(Object.entries(run.perWorker).map(([w, n]) => [`ran.${w}`, n])),
      },
    },
    ratio: rate / DASK_REFERENCE_TASKS_PER_S,
    ratioMeaning: `Tessera subtasks/s / Dask's ${DASK_REFERENCE_TASKS_PER_S} tasks/s (higher is better; ${TARGET_TASKS_PER_S / DASK_REFERENCE_TASKS_PER_S} = ${TARGET_TASKS_PER_S}/s)`,
    target: { value: TARGET_TASKS_PER_S / DASK_REFERENCE_TASKS_PER_S, better: 'higher' },
    checks: {
      allSubtasksSucceeded: rounds.every((r) => r.run.succeeded === r.run.subtasks),
      allJobsSucceeded: rounds.every((r) => r.run.jobsSucceeded === jobCount),
      bothWorkersUsed: rounds.every((r) => Object.keys(r.run.perWorker).length === WORKERS),
    },
  };
}

/** One cluster, two rows: `scheduler-1job` and `scheduler-200jobs`. */
export const schedulerScenario: MultiBenchScenario = {
  name: 'scheduler',
  description: `20,000 no-op subtasks in 1 job and in 200 jobs on coordinator + ${WORKERS} workers x ${SLOTS} slots`,
  command: 'npm run bench -- scheduler',
  async run(ctx: BenchContext): Promise<BenchResult[]> {
    const total = ctx.smoke ? 200 : 20_000;
    const cluster = await new LocalCluster({ workers: WORKERS, slots: SLOTS }).start();
    try {
      return [await measure(ctx, cluster, 'scheduler-1job', 1, total), await measure(ctx, cluster, 'scheduler-200jobs', 200, total)];
    } finally {
      await cluster.stop();
    }
  },
};
