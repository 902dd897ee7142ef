import type { WorkerProcessor } from '../../shared/job-kind.js';
import { passthroughProcessor } from './passthrough.js';

/** Every job kind this worker can run. Adding a kind = one import + one entry. */
export const workerProcessors: ReadonlyMap<string, WorkerProcessor> = new Map<string, WorkerProcessor>(
  ([passthroughProcessor] as WorkerProcessor[]).map((k) => [k.name, k]),
);
