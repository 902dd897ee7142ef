/**
 * Every benchmark scenario, in the order `npm run bench` runs them. Each module is imported
 * statically so the build compiles it; adding a scenario means adding it here.
 */
import type { BenchScenario } from '../types.js';
import { imagesScenario } from './images.js';
import { scaleHeartbeats, scaleSlots } from './scale.js';
import { schedulerManyJobs, schedulerOneJob } from './scheduler.js';
import { transportScenario } from './transport.js';

export const scenarios: readonly BenchScenario[] = [schedulerOneJob, schedulerManyJobs, transportScenario, imagesScenario, scaleHeartbeats, scaleSlots];
