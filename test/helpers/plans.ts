/**
 * Reading a kind's `later` plan (PlanResult.later) in unit tests: each subtask's items as it comes.
 */
import { isPlanErrors, type PlanErrors, type SubtaskPlan } from '../../shared/job-kind.js';

export function planItems(later: AsyncIterable<SubtaskPlan | SubtaskPlan[] | PlanErrors>) {
  const plans = later[Symbol.asyncIterator]();
  // Subtasks that came together (an array), given one at a time.
  const ready: SubtaskPlan[] = [];
  /** The next subtask's items; ['(done)'] once the plan has ended; an error for per-input failures. */
  const next = async (): Promise<string[]> => {
    while (ready.length === 0) {
      const r = await plans.next();
      if (r.done) return ['(done)'];
      if (isPlanErrors(r.value)) throw new Error(`errors: ${JSON.stringify(r.value.errors)}`);
      ready.push(...(Array.isArray(r.value) ? r.value : [r.value]));
    }
    return ready.shift()!.items;
  };
  /** Every further subtask's items, to the end of the plan. */
  const rest = async (): Promise<string[][]> => {
    const out: string[][] = [];
    for (let items = await next(); items[0] !== '(done)'; items = await next()) out.push(items);
    return out;
  };
  return { plans, next, rest };
}
