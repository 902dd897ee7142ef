import type { CoordinatorKind } from '../../shared/job-kind.js';
import { audioKind } from './audio.js';
import { imageKind } from './image.js';
import { passthroughKind } from './passthrough.js';
import { thumbnailsKind } from './thumbnails.js';
import { videoKind } from './video.js';

/** Every job kind the coordinator can plan and merge. Adding a kind = one import + one entry. */
export const coordinatorKinds: ReadonlyMap<string, CoordinatorKind> = new Map<string, CoordinatorKind>(
  ([audioKind, imageKind, passthroughKind, videoKind, thumbnailsKind] as CoordinatorKind[]).map((k) => [k.name, k]),
);
