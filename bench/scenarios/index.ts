/**
 * Every benchmark scenario, in the order `npm run bench` runs them. Each module is imported
 * statically so the build compiles it; adding a scenario means adding it here.
 */
import type { MultiBenchScenario } from '../harness.js';
import { audioScenario } from './audio.js';
import { imagesScenario } from './images.js';
import { scaleScenario } from './scale.js';
import { schedulerScenario } from './scheduler.js';
import { thumbnailsScenario } from './thumbnails.js';
import { tilesScenario } from './tiles.js';
import { transportScenario } from './transport.js';
import { videoScenario } from './video.js';

export const scenarios: readonly MultiBenchScenario[] = [
  // Issue 8: the cluster's own overheads.
  schedulerScenario,
  transportScenario,
  imagesScenario,
  scaleScenario,
  // The media kinds' scenarios (their own issues).
  videoScenario,
  audioScenario,
  tilesScenario,
  thumbnailsScenario,
];
