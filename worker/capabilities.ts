/** What this worker can do, as advertised at registration. */
import sharp from 'sharp';
import { ffmpegAtLeast, ffmpegBinaries, ffmpegInfo } from '../shared/ffmpeg.js';
import { WORKER_FEATURES } from '../shared/job-kind.js';
import { availableCores, availableMemoryBytes } from '../shared/machine.js';
import type { Capabilities } from '../shared/proto/generated/tessera/v1/Capabilities.js';
import type { Logger } from '../shared/logger.js';

/** Whether this process has said that its ffmpeg is older than the one Tessera is tested with. */
let warnedOld = false;

export function detectCapabilities(kinds: string[], labels: Record<string, string>, log: Logger): Capabilities {
  let encoders: string[] = [];
  let ffmpegVersion = '';
  try {
    const info = ffmpegInfo();
    encoders = info.encoders;
    ffmpegVersion = info.version;
    if (!ffmpegAtLeast(5, 1) && !warnedOld) {
      warnedOld = true;
      // The npm package's ffmpeg (a build of 2018) is taken where no other is found.
      log.warn(
        { ffmpeg: ffmpegBinaries().ffmpeg, version: info.version, release: `${info.major}.${info.minor}` },
        'ffmpeg is older than 5.1, the release Tessera is tested with: common video, audio and thumbnail jobs work, but some sources and options may fail; install ffmpeg 5.1 or later (Debian 12: apt-get install ffmpeg) or set FFMPEG_PATH and FFPROBE_PATH',
      );
    }
  } catch (err) {
    // A worker without ffmpeg can still process images; it just never gets video or audio work.
    log.warn({ err: (err as Error).message }, 'ffmpeg not available: video and audio kinds disabled');
  }
  const mediaKinds = new Set(['video', 'thumbnails', 'audio']);
  return {
    kinds: ffmpegVersion ? kinds : kinds.filter((k) => !mediaKinds.has(k)),
    encoders,
    cpu_count: availableCores(),
    ffmpeg_version: ffmpegVersion,
    sharp_version: sharp.versions.sharp ?? '',
    libvips_version: sharp.versions.vips,
    labels,
    memory_bytes: String(availableMemoryBytes()),
    features: [...WORKER_FEATURES],
  };
}
