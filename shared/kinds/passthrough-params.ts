import { invalidArgument } from '../errors.js';
import { checkFieldTypes } from './param-checks.js';
import type { PassthroughParams__Output } from '../proto/generated/tessera/v1/PassthroughParams.js';

/** Normalised params of the diagnostic `passthrough` kind. */
export interface PassthroughParams {
  /** Number of subtasks; 0 = one per input. */
  subtasks: number;
  workMs: number;
  failFirstAttempts: number;
}

export const MAX_PASSTHROUGH_SUBTASKS = 100_000;

export function validatePassthroughParams(raw: unknown): PassthroughParams {
  const p = checkFieldTypes('passthrough', raw, { subtasks: 'number', work_ms: 'number', fail_first_attempts: 'number' }) as Partial<PassthroughParams__Output>;
  const subtasks = p.subtasks ?? 0;
  const workMs = p.work_ms ?? 0;
  const failFirstAttempts = p.fail_first_attempts ?? 0;
  if (subtasks > MAX_PASSTHROUGH_SUBTASKS) throw invalidArgument(`passthrough.subtasks: ${subtasks} is over the limit of ${MAX_PASSTHROUGH_SUBTASKS}`);
  if (workMs > 600_000) throw invalidArgument(`passthrough.work_ms: ${workMs} is over the limit of 600000`);
  if (failFirstAttempts > 10) throw invalidArgument(`passthrough.fail_first_attempts: ${failFirstAttempts} is over the limit of 10`);
  return { subtasks, workMs, failFirstAttempts };
}
