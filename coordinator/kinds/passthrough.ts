/**
 * `passthrough` — a DIAGNOSTIC kind: each input comes back byte for byte, and `subtasks` extra
 * no-op subtasks (with optional simulated work) exercise the scheduler and transport without any
 * media work. Used by benchmarks and fault tests. Like the media kinds, a job of several uploaded
 * inputs starts copying the first while the others arrive; its no-op subtasks follow the last.
 */
import type { CoordinatorKind, PlanContext, SpoolFile, SubtaskPlan } from '../../shared/job-kind.js';
import { validatePassthroughParams, type PassthroughParams } from '../../shared/kinds/passthrough-params.js';

export interface PassthroughPlan {
  /** Index of the input this subtask copies, or -1 for a no-op subtask. */
  input: number;
  workMs: number;
  failFirstAttempts: number;
}

/** Subtask `index` of a job: the copy of `input`, or a no-op one where there is none. */
function subtask(params: PassthroughParams, index: number, input: SpoolFile | undefined): SubtaskPlan {
  const plan: PassthroughPlan = { input: input ? index : -1, workMs: params.workMs, failFirstAttempts: params.failFirstAttempts };
  return { label: input ? `copy ${input.name}` : `no-op ${index}`, inputs: input ? [input] : [], plan, weight: input?.size ?? 0, items: input ? [input.name] : [] };
}

/**
 * The copies of the inputs as they pass their checks, then the no-op subtasks up to
 * `params.subtasks` at once (up to 100,000: one addition, not one each).
 */
async function* planArriving(params: PassthroughParams, arriving: NonNullable<PlanContext<unknown>['arriving']>): AsyncGenerator<SubtaskPlan[]> {
  let index = 0;
  for (let run = await arriving.take(Infinity); run !== undefined; run = await arriving.take(Infinity)) {
    yield run.map((input) => subtask(params, index++, input));
  }
  const from = index;
  if (from < params.subtasks) yield Array.from({ length: params.subtasks - from }, (_, k) => subtask(params, from + k, undefined));
}

export const passthroughKind: CoordinatorKind<PassthroughParams> = {
  name: 'passthrough',
  validate: (params) => validatePassthroughParams(params),
  plansWhileReceiving: () => true,
  async plan({ params, inputs, arriving }) {
    if (arriving) return { subtasks: [], later: planArriving(params, arriving) };
    const count = Math.max(params.subtasks, inputs.length, 1);
    return { subtasks: Array.from({ length: count }, (_, i) => subtask(params, i, inputs[i])) };
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
