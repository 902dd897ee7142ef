/** What this worker can do, as advertised at registration. */
import sharp from 'sharp';
import { ffmpegInfo } from '../shared/ffmpeg.js';
import { WORKER_FEATURES } from '../shared/job-kind.js';
import { availableCores, availableMemoryBytes } from '../shared/machine.js';
import type { Capabilities } from '../shared/proto/generated/tessera/v1/Capabilities.js';
import type { Logger } from '../shared/logger.js';

export function detectCapabilities(kinds: string[], labels: Record<string, string>, log: Logger): Capabilities {
  let encoders: string[] = [];
  let ffmpegVersion = '';
  try {
    const info = ffmpegInfo();
    encoders = info.encoders;
    ffmpegVersion = info.version;
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
