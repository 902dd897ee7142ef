import type { WorkerProcessor } from '../../shared/job-kind.js';
import { audioProcessor } from './audio.js';
import { imageProcessor } from './image.js';
import { passthroughProcessor } from './passthrough.js';
import { thumbnailsProcessor } from './thumbnails.js';
import { videoProcessor } from './video.js';

/** Every job kind this worker can run. Adding a kind = one import + one entry. */
export const workerProcessors: ReadonlyMap<string, WorkerProcessor> = new Map<string, WorkerProcessor>(
  ([audioProcessor, imageProcessor, passthroughProcessor, videoProcessor, thumbnailsProcessor] as WorkerProcessor[]).map((k) => [k.name, k]),
);
