/**
 * `passthrough` — a DIAGNOSTIC kind: each input comes back byte for byte, and `subtasks` extra
 * no-op subtasks (with optional simulated work) exercise the scheduler and transport without any
 * media work. Used by benchmarks and fault tests.
 */
import type { CoordinatorKind } from '../../shared/job-kind.js';
import { validatePassthroughParams, type PassthroughParams } from '../../shared/kinds/passthrough-params.js';

export interface PassthroughPlan {
  /** Index of the input this subtask copies, or -1 for a no-op subtask. */
  input: number;
  workMs: number;
  failFirstAttempts: number;
}

export const passthroughKind: CoordinatorKind<PassthroughParams> = {
  name: 'passthrough',
  validate: (params) => validatePassthroughParams(params),
  async plan({ params, inputs }) {
    const count = Math.max(params.subtasks, inputs.length, 1);
    const subtasks = Array.from({ length: count }, (_, i) => {
      const input = inputs[i];
      const plan: PassthroughPlan = { input: input ? i : -1, workMs: params.workMs, failFirstAttempts: params.failFirstAttempts };
      return { label: input ? `copy ${input.name}` : `no-op ${i}`, inputs: input ? [input] : [], plan, weight: input?.size ?? 0, items: input ? [input.name] : [] };
    });
    return { subtasks };
  },
  // Simulated work is what a no-op subtask costs; copies are measured as they finish.
  expectedRunMs: (params) => (params.subtasks > 0 ? params.workMs : undefined),
  // Each copy is final as it arrives: published at once, nothing to stitch. Only under its input's name.
  finalOutputs: (r) => r.outputs.filter((o) => r.items.includes(o.name)).map((o) => ({ name: o.name, path: o.path, source: o.name })),
  outputsAreFinal: () => true,
  writesFiles: false,
  mergeReadsInputs: () => false,
  async merge({ results, params }) {
    return { outputs: results.flatMap((r) => passthroughKind.finalOutputs!(r, params)) };
  },
};
