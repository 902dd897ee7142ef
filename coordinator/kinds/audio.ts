/**
 * Coordinator side of the `audio` kind: batches spread over the workers (small files grouped per
 * subtask), long files cut into sample-exact segments processed in parallel, loudness gated over the
 * whole file from per-segment 100 ms sub-block energies, and one final encode per file.
 * Planning lives in audio-plan.ts, merging in audio-merge.ts.
 */
import type { CoordinatorKind } from '../../shared/job-kind.js';
import { validateAudioParams, type AudioJobParams } from '../../shared/kinds/audio-params.js';
import { mergeAudio } from './audio-merge.js';
import { planAudio } from './audio-plan.js';

export const audioKind: CoordinatorKind<AudioJobParams> = {
  name: 'audio',
  validate: (params) => validateAudioParams(params),
  plan: planAudio,
  merge: mergeAudio,
};
