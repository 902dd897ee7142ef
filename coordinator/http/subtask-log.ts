/**
 * One structured log line per job and subtask transition, carrying `job`, `subtask`, `attempt`
 * and `worker`, so that `jq 'select(.job == "...")'` over the coordinator's log tells a job's whole
 * story (which worker ran which attempt, why it was retried) without reading the job's event log.
 * Fed by the same event stream as the dashboard and metrics.
 */
import type { Logger } from '../../shared/logger.js';
import type { JobEvent } from '../../shared/proto/generated/tessera/v1/JobEvent.js';
import { TAKEN_BACK, type JobManager } from '../job-manager.js';
import { stateName } from './metrics.js';

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
        // The end is the job manager's "job finished" line, with the message and the counts.
        log.info({ job, state: stateName(e.job_state, 'JOB_STATE_'), final: e.final || undefined }, e.message || 'job state');
      }
    });
  }

  close(): void {
    this.unsubscribe();
  }
}
