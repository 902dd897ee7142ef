import type { CoordinatorKind } from '../../shared/job-kind.js';
import { passthroughKind } from './passthrough.js';

/** Every job kind the coordinator can plan and merge. Adding a kind = one import + one entry. */
export const coordinatorKinds: ReadonlyMap<string, CoordinatorKind> = new Map<string, CoordinatorKind>(
  ([passthroughKind] as CoordinatorKind[]).map((k) => [k.name, k]),
);
