/**
 * One structured log line per job and subtask transition, carrying `job`, `subtask`, `attempt`
 * and `worker` (and at a job's end, one per input that failed), so that `jq 'select(.job == "...")'` over the coordinator's log tells a job's whole
 * story (which worker ran which attempt, why it was retried) without reading the job's event log.
 * Fed by the same event stream as the dashboard and metrics.
 */
import type { Logger } from '../../shared/logger.js';
import type { JobEvent } from '../../shared/proto/generated/tessera/v1/JobEvent.js';
import { TAKEN_BACK, type JobManager } from '../job-manager.js';
import { stateName } from './metrics.js';

/** How many of a finished job's errors its log lines name, one each. */
const LOGGED_ERRORS_PER_JOB = 50;

export class SubtaskLogger {
  private readonly unsubscribe: () => void;

  constructor(manager: JobManager, log: Logger) {
    this.unsubscribe = manager.events.subscribeAll((e: JobEvent) => {
      const job = e.job_id ?? '';
      if (e.type === 'subtask_state' && e.subtask) {
        const s = e.subtask;
        const state = stateName(s.state, 'SUBTASK_STATE_');
        // Back in `pending` after an attempt that failed; not one taken back unstarted from a draining worker's queue.
        const trouble = state === 'failed' || (state === 'pending' && (s.attempt ?? 0) > 0 && !e.message?.startsWith(TAKEN_BACK));
        // Routine transitions are debug: a 20,000-subtask job would otherwise write 40,000 info lines.
        if (!trouble && !log.isLevelEnabled('debug')) return;
        const fields = { job, subtask: s.id, attempt: s.attempt, worker: s.worker || undefined, state, label: s.label || undefined, phase: s.phase };
        if (trouble) log.warn({ ...fields, error: s.error }, e.message || `subtask ${state}`);
        else if (state === 'succeeded') log.debug({ ...fields, durationMs: Number(s.duration_ms) }, 'subtask succeeded');
        else log.debug(fields, e.message || `subtask ${state}`);
      } else if (e.type === 'job_state' && !e.final) {
        log.info({ job, state: stateName(e.job_state, 'JOB_STATE_') }, e.message || 'job state');
      } else if (e.type === 'job_state') {
        const record = manager.find(job);
        const errors = record?.errors ?? [];
        log.info({ job, state: stateName(e.job_state, 'JOB_STATE_'), outputs: record?.outputs.length, errors: errors.length, message: e.message }, 'job finished');
        // Each input that failed, with why: the job's client alone was told (review OPS2). A batch
        // of thousands that all fail is not thousands of lines: the first ones, then a count.
        for (const x of errors.slice(0, LOGGED_ERRORS_PER_JOB)) log.warn({ job, input: x.input || undefined, code: x.code, reason: x.message }, 'job input failed');
        if (errors.length > LOGGED_ERRORS_PER_JOB) log.warn({ job, more: errors.length - LOGGED_ERRORS_PER_JOB }, `and ${errors.length - LOGGED_ERRORS_PER_JOB} more failed input(s): tessera job ${job} lists them`);
      }
    });
  }

  close(): void {
    this.unsubscribe();
  }
}
