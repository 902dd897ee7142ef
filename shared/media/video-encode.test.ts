/**
 * Each video encoder keeps to the threads its slot is given (slots x threads never exceed the
 * cores, README "Sizing slots"). ffmpeg 5.1's libsvtav1 wrapper takes no -threads: without its own
 * `lp`, SVT-AV1 sized itself to every core of the machine (about 90 threads, 1.7 of 2 cores for a
 * slot given one), as its log says.
 */
import { describe, expect, it } from 'vitest';
import { ffmpegInfo, runFfmpeg } from '../ffmpeg.js';
import { parseVideoParams } from '../kinds/video-params.js';
import { videoEncoderArgs } from './video-encode.js';

describe('video encoders keep to the threads of their slot', () => {
  it.runIf(ffmpegInfo().encoders.includes('libsvtav1'))('libsvtav1 (the first choice for av1) given one thread sizes itself to one core', async () => {
    const params = parseVideoParams({ codec: 'av1', preset: 'ultrafast', crf: 40 });
    const { stderr } = await runFfmpeg(['-v', 'verbose', '-threads', '1', '-f', 'lavfi', '-i', 'testsrc2=s=320x240:d=0.2:r=25', ...videoEncoderArgs(params, 'libsvtav1', 1), '-f', 'null', '-']);
    expect(stderr).toMatch(/Number of logical cores available: 1\n/);
  });
});
