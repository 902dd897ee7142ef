/**
 * Placement in a cluster whose workers differ in what they can run (review FS): work any worker can
 * run should not take the only worker that can run another job's work while a worker that cannot
 * run that other job sits idle. One dispatch pass, two idle workers of one slot each: `full` runs
 * audio and passthrough, `imgonly` (no ffmpeg) only passthrough; a passthrough job (the older) and
 * an audio job wait. Both can start at once (passthrough on `imgonly`, audio on `full`).
 */
import { describe, expect, it } from 'vitest';
import type { SubtaskRecord } from './model.js';
import { Scheduler } from './scheduler.js';
import type { WorkerSession } from './worker-registry.js';

const worker = (name: string, slots: number, kinds: string[]): WorkerSession =>
  ({ id: name, name, slots, prefetch: 0, leases: new Map(), kinds: new Set(kinds), encoders: new Set(), features: new Set(), state: 'active' }) as unknown as WorkerSession;
const subtask = (jobId: string, index: number): SubtaskRecord => ({ id: `${jobId}-${index}`, jobId, index, weight: 1, notBefore: 0, state: 'pending' }) as SubtaskRecord;
const canRun = (w: WorkerSession, _s: SubtaskRecord, kind: string): boolean => w.kinds.has(kind);

describe('Scheduler placement with workers of different kinds', () => {
  it('starts both jobs when one worker can run both kinds and the other only one of them', () => {
    const s = new Scheduler();
    s.addJob('generic', 'passthrough', 0, 1);
    s.addJob('audio', 'audio', 0, 2);
    s.enqueue([subtask('generic', 0), subtask('audio', 0)]);
    // `full` registered first (the order the registry lists them in).
    const full = worker('full', 1, ['audio', 'passthrough']);
    const imgonly = worker('imgonly', 1, ['passthrough']);
    const out = s.dispatch([full, imgonly], Date.now(), canRun);
    // Observed: [['generic', 'full']]: the passthrough subtask took the only audio-capable worker,
    // the audio job waits for it to finish while `imgonly` stays idle.
    expect(out.map((a) => [a.subtask.jobId, a.worker.name]).sort()).toEqual([
      ['audio', 'full'],
      ['generic', 'imgonly'],
    ]);
  });
});
