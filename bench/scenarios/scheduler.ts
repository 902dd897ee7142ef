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
import { cpuSeconds, peakRssMiB, round, selfPeakRssMiB } from '../proc-stats.js';
import type { BenchContext, BenchResult } from '../types.js';

/** Dask distributed, 2 workers x 1 thread, no-op tasks on this 2-core machine (issue 8). */
export const DASK_REFERENCE_TASKS_PER_S = 500;
const TARGET_TASKS_PER_S = 5000;
const WORKERS = 2;
/** Slots per worker: no-op subtasks cost no CPU, so slots only bound the pipeline depth. */
const SLOTS = 32;

/** The same number of no-op async tasks through p-limit in this process, same total concurrency. */
async function inProcessBaseline(total: number, concurrency: number): Promise<number> {
  const limit = pLimit(concurrency);
  const t0 = performance.now();
  await Promise.all(Array.from({ length: total }, () => limit(() => new Promise<void>((resolve) => setImmediate(resolve)))));
  return (performance.now() - t0) / 1000;
}

/** Runs `jobs` job(s) totalling `total` no-op subtasks on a started cluster; one result row. */
async function measure(ctx: BenchContext, cluster: LocalCluster, name: string, jobs: number, total: number): Promise<BenchResult> {
  const jobCount = ctx.smoke ? Math.min(jobs, 5) : jobs;
  const perJob = Math.floor(total / jobCount);
  ctx.log(`in-process baseline: ${total} no-op tasks through p-limit(${WORKERS * SLOTS})`);
  const baseSeconds = await inProcessBaseline(total, WORKERS * SLOTS);
  ctx.log(`cluster: ${jobCount} job(s) x ${perJob} no-op subtasks`);
  const cpu0 = await cpuSeconds(cluster.coordinator?.child.pid);
  const run = await runNoopJobs(cluster.client, { jobs: jobCount, perJob, slotsPerWorker: SLOTS });
  const coordinatorCpu = (await cpuSeconds(cluster.coordinator?.child.pid)) - cpu0;
  const rate = run.subtasks / run.seconds;
  const lat = latencySummary(run.dispatchMs);
  const rss: Record<string, number> = { coordinator: await peakRssMiB(cluster.coordinator?.child.pid), client: selfPeakRssMiB() };
  for (const w of cluster.workers) rss[w.name] = await peakRssMiB(w.child.pid);
  ctx.log(`${round(rate, 0)} subtasks/s (${run.seconds.toFixed(2)} s), dispatch p50 ${lat.p50} ms p99 ${lat.p99} ms; in-process ${round(total / baseSeconds, 0)}/s`);
  return {
    scenario: name,
    inputs: `${jobCount} passthrough job(s) x ${perJob} no-op subtasks, submitted 16 at a time and watched; ${WORKERS} workers x ${SLOTS} slots`,
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
      allSubtasksSucceeded: run.succeeded === run.subtasks,
      allJobsSucceeded: run.jobsSucceeded === jobCount,
      bothWorkersUsed: Object.keys(run.perWorker).length === WORKERS,
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
