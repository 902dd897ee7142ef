/**
 * Coordinator side of the `audio` kind. Planning lives in audio-plan.ts, merging in audio-merge.ts.
 *
 * How a job is cut:
 *  - Files up to `segment_seconds` (default 180 s) are rendered whole on a worker, grouped up to 60 s /
 *    16 files per subtask, so a batch spreads over the workers with one round trip per group.
 *  - A longer file is cut into whole-second segments (sample-exact at both the source and the output
 *    rate, and on the 100 ms loudness grid) with 1 s of pre/post-roll. A PCM WAV is cut by byte range;
 *    anything else is first decoded once to a WAV in the decoder's own sample format.
 *
 * Why lossy outputs have no seams: workers never encode a segment. They run the sample-local filters
 * (resample, down-mix, fades placed on the global timeline) and return PCM; the coordinator joins the
 * PCM with the concat demuxer and encodes once, so encoder priming and padding occur only at the file's
 * two ends. Measured (test/audio-kind.test.ts): decoded AAC, MP3 and Opus outputs equal a single-process
 * encode to within 1e-4 over +-4096 samples around every join; lossless outputs are bit-identical.
 * The cost is one serial encode per long file (MP3 128k: about 30 s per hour of stereo here).
 *
 * Loudness: each segment returns K-weighted energies per 100 ms sub-block (shared/media/loudness.ts);
 * the merge forms the 400 ms blocks over the joined sub-blocks and gates them once (-70 LUFS absolute,
 * -10 LU relative), so blocks that span a join are exact. One gain is applied in the final encode,
 * followed by a lookahead limiter only when the gain would push the true peak over the ceiling.
 */
import type { CoordinatorKind } from '../../shared/job-kind.js';
import { checkNewAudioParams, refuseNewAudioParams, validateAudioParams, type AudioJobParams } from '../../shared/kinds/audio-params.js';
import { mergeAudio } from './audio-merge.js';
import { planAudio, splitWholeFiles } from './audio-plan.js';

export const audioKind: CoordinatorKind<AudioJobParams> = {
  name: 'audio',
  validate: (params) => validateAudioParams(params),
  checkNew: (p) => checkNewAudioParams(p),
  refuseNew: (p) => refuseNewAudioParams(p),
  plansWhileReceiving: () => true,
  plan: planAudio,
  // A group of small files that fails without naming one runs again a file at a time; a file one
  // worker called bad is given to another (see CoordinatorKind.split).
  split: splitWholeFiles,
  merge: mergeAudio,
};
