/**
 * `tessera workers`: the NAME column is as wide as the longest name. A fixed 28 characters ran a
 * longer one (a Kubernetes pod name, `--name`, a long host-pid default) into the STATE column with
 * no space between them, so the table could not be read nor split by `awk`.
 */
import { describe, expect, it } from 'vitest';
import { printWorkersTable } from './output.js';
import type { WorkerInfo } from '../client.js';

function worker(name: string): WorkerInfo {
  return {
    id: 'id',
    name,
    state: 'active',
    address: '127.0.0.1:1',
    slots: 2,
    slots_used: 0,
    subtasks_done: '0',
    subtasks_failed: '0',
    load: 0.5,
    last_heartbeat_ms: '0',
    capabilities: { kinds: ['image'], encoders: [], labels: {}, features: [], cpu_count: 2, memory_bytes: '0', ffmpeg_version: '', sharp_version: '', libvips_version: '' },
  } as unknown as WorkerInfo;
}

describe('tessera workers (table)', () => {
  it('keeps a long worker name apart from its state', () => {
    let text = '';
    const out = { write: (s: string) => ((text += s), true) } as unknown as typeof process.stdout;
    const long = 'tessera-worker-7d9f8c6b5-x2x9q.prod';
    printWorkersTable([worker('short'), worker(long)], out);
    const rows = text.trimEnd().split('\n');
    // Every row splits into the same columns: name, state, slots, ...
    const fields = rows.map((r) => r.trim().split(/\s+/));
    expect(fields[2]![0]).toBe(long);
    expect(fields[2]![1]).toBe('active');
  });
});
