/**
 * Planning for kinds whose inputs are planned each on its own (a video's segments, its thumbnails):
 * a failure that is the input's fault becomes that input's error, and a job still receiving its
 * inputs (PlanContext.arriving) has each one planned, and its subtasks sent out, as soon as it has
 * passed its check, while the others upload.
 */
import type { ItemFailure, PlanContext, PlanErrors, SpoolFile, SubtaskPlan } from '../../shared/job-kind.js';
import { TesseraError } from '../../shared/errors.js';

/**
 * How long small inputs still arriving wait for more before they are planned as they are (ms): a
 * slow upload must not leave the slots idle while a group fills. Image batches and audio jobs use it.
 */
export const ARRIVAL_PAUSE_MS = 200;

/** One input's plan; throws a non-retryable TesseraError for a failure that is the input's. */
export type PlanOne<R> = (input: SpoolFile, index: number) => Promise<{ subtasks: SubtaskPlan[] } & R>;

/** The per-input failure of an error (bad input), or rethrows what is not about the input (the coordinator's own trouble). */
export function itemFailure(err: unknown, input: string): ItemFailure {
  if (err instanceof TesseraError && !err.retryable) return { input, code: err.codeName, message: err.message };
  throw err;
}

/** Plans `input`, or gives the input's failure; anything else is thrown. */
async function planOrFail<R>(planOne: PlanOne<R>, input: SpoolFile, index: number): Promise<({ subtasks: SubtaskPlan[] } & R) | ItemFailure> {
  try {
    return await planOne(input, index);
  } catch (err) {
    return itemFailure(err, input.name);
  }
}

const isItemFailure = (x: object): x is ItemFailure => 'code' in x && 'message' in x && !('subtasks' in x);

/** Plans every input (all in), in order: the subtasks, the inputs' failures, and every plan made. */
export async function planEach<R>(inputs: SpoolFile[], planOne: PlanOne<R>): Promise<{ subtasks: SubtaskPlan[]; errors: ItemFailure[]; planned: Array<{ subtasks: SubtaskPlan[] } & R> }> {
  const subtasks: SubtaskPlan[] = [];
  const errors: ItemFailure[] = [];
  const planned: Array<{ subtasks: SubtaskPlan[] } & R> = [];
  for (const [i, input] of inputs.entries()) {
    const r = await planOrFail(planOne, input, i);
    if (isItemFailure(r)) {
      errors.push(r);
      continue;
    }
    subtasks.push(...r.subtasks);
    planned.push(r);
  }
  return { subtasks, errors, planned };
}

/**
 * Plans the inputs in submission order as they arrive, yielding each one's subtasks (or its
 * failure) at once; `done` is given every plan made, in that order, once the upload has ended.
 */
export async function* planEachArriving<R>(
  arriving: NonNullable<PlanContext<unknown>['arriving']>,
  planOne: PlanOne<R>,
  done?: (planned: Array<{ subtasks: SubtaskPlan[] } & R>) => Promise<void>,
): AsyncGenerator<SubtaskPlan | PlanErrors> {
  const planned: Array<{ subtasks: SubtaskPlan[] } & R> = [];
  let index = 0;
  for (let run = await arriving.take(Infinity); run !== undefined; run = await arriving.take(Infinity)) {
    for (const input of run) {
      const r = await planOrFail(planOne, input, index++);
      if (isItemFailure(r)) {
        yield { errors: [r] };
        continue;
      }
      planned.push(r);
      yield* r.subtasks;
    }
  }
  await done?.(planned);
}
