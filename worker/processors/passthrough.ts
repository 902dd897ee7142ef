/** Worker side of the diagnostic `passthrough` kind: copy the input, optionally sleep or fail. */
import { setTimeout as sleep } from 'node:timers/promises';
import { status } from '../../shared/grpc-status.js';
import { TesseraError } from '../../shared/errors.js';
import type { WorkerProcessor } from '../../shared/job-kind.js';
import { validatePassthroughParams, type PassthroughParams } from '../../shared/kinds/passthrough-params.js';

interface Plan {
  input: number;
  workMs: number;
  failFirstAttempts: number;
}

export const passthroughProcessor: WorkerProcessor<PassthroughParams> = {
  name: 'passthrough',
  params: (spec) => validatePassthroughParams(spec.passthrough),
  async process(ctx) {
    const plan = ctx.plan as Plan;
    if (ctx.attempt <= plan.failFirstAttempts) {
      throw new TesseraError(status.UNAVAILABLE, `diagnostic failure of attempt ${ctx.attempt}`, { retryable: true });
    }
    // TESSERA_DIAG_DELAY_MS makes one worker slow on purpose (straggler tests and demos).
    const workMs = plan.workMs + Number(process.env['TESSERA_DIAG_DELAY_MS'] ?? 0);
    if (workMs > 0) await sleep(workMs, undefined, { signal: ctx.signal });
    // TESSERA_DIAG_FAIL=1 makes every passthrough subtask on this worker fail, retryably, after its
    // work time: a broken machine, for quarantine tests and demos.
    if (process.env['TESSERA_DIAG_FAIL'] === '1') {
      throw new TesseraError(status.UNAVAILABLE, 'diagnostic failure of this worker (TESSERA_DIAG_FAIL)', { retryable: true });
    }
    const input = ctx.inputs[0];
    // The fetched input file is handed back as the output: no copy needed.
    return { outputs: input ? [{ name: input.name, path: input.path, source: input.name }] : [] };
  },
};
