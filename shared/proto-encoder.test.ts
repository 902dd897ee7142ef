import { describe, expect, it } from 'vitest';
import { jobServiceDefinition } from '../coordinator/job-service.js';
import { compileDecoder, compileEncoder } from './proto-encoder.js';
import { jobServiceClientDefinition, loadTesseraProto } from './proto.js';

const { packageDefinition } = loadTesseraProto();
const watchJob = (packageDefinition['tessera.v1.JobService'] as unknown as Record<string, unknown>).WatchJob as { responseSerialize: (m: object) => Buffer; responseDeserialize: (b: Buffer) => unknown };
const encode = compileEncoder(packageDefinition, 'tessera.v1.JobEvent');
/** What any client reads from bytes: proto-loader's decoder, with the options the generated types assume. */
const decode = (bytes: Buffer): unknown => watchJob.responseDeserialize(bytes);

function subtaskEvent(seq: number, extra: object = {}): object {
  return {
    seq: String(seq),
    time_ms: String(1_764_600_000_000 + seq),
    job_id: 'j_0123456789abcdef',
    job_state: 'JOB_STATE_RUNNING',
    type: 'subtask_state',
    message: '',
    progress: 0,
    subtask: { id: `j_0123456789abcdef-s${seq}`, index: seq, phase: 1, state: 'SUBTASK_STATE_SUCCEEDED', worker: 'worker-1', attempt: 2, label: `images ${seq}-${seq + 7}`, progress: 1, duration_ms: '1234', speculative: true, error: '' },
    ...extra,
  };
}

describe('compiled protobuf encoder (JobEvent)', () => {
  it('writes what protobufjs writes, as any decoder reads it, for every field of an event and a batch of them', () => {
    const long = 'x'.repeat(300) + ' ünïcödé 🎞️ ' + 'y'.repeat(100);
    const events: object[] = [
      subtaskEvent(1),
      subtaskEvent(2, { message: 'DEADLINE_EXCEEDED: subtask 2 ran past 600 s — 片段', progress: 0.375, subtask: { id: 's', state: 'SUBTASK_STATE_FAILED', error: long, duration_ms: 0 } }),
      { seq: 3, time_ms: 1_764_600_000_003, job_id: 'j_1', type: 'output', job_state: 2, output: { name: 'a.webp', size: '9007199254740993', sha256: 'ab'.repeat(32), source: 'a.jpg', content_type: 'image/webp', shared_path: '' }, output_data: Buffer.from([0, 1, 2, 255]) },
      { seq: 4n, time_ms: { low: -1, high: 0x7fffffff, unsigned: true }, job_id: 'j_1', type: 'job_state', job_state: 'JOB_STATE_SUCCEEDED', final: true, progress: -0, message: long },
      { seq: '18446744073709551615', job_id: 'j_1', type: 'log', message: '' },
    ];
    for (const e of events) expect(decode(encode(e))).toEqual(decode(watchJob.responseSerialize(e)));
    const batch = { type: 'batch', seq: '5', job_id: 'j_1', final: true, batch: events };
    const bytes = encode(batch);
    expect(decode(bytes)).toEqual(decode(watchJob.responseSerialize(batch)));
    // Spot checks against the values themselves, not only against the other encoder.
    const read = decode(bytes) as { batch: { seq: string; time_ms: string; output: { size: string }; output_data: Buffer; subtask: { error: string } | null; message: string; progress: number }[] };
    expect(read.batch.map((e) => e.seq)).toEqual(['1', '2', '3', '4', '18446744073709551615']);
    expect(read.batch[3]!.time_ms).toBe(String((0x7fffffffn << 32n) | 0xffffffffn));
    expect(read.batch[2]!.output.size).toBe('9007199254740993');
    expect([...read.batch[2]!.output_data]).toEqual([0, 1, 2, 255]);
    expect(read.batch[1]!.subtask!.error).toBe(long);
    expect(read.batch[3]!.message).toBe(long);
    expect(read.batch[1]!.progress).toBe(0.375);
  });

  it('leaves out fields at their default value, as proto3 encoders do', () => {
    const empty = { seq: '0', time_ms: 0, job_id: '', type: '', job_state: 'JOB_STATE_UNSPECIFIED', progress: 0, message: '', final: false, batch: [], output_data: Buffer.alloc(0) };
    expect(encode(empty).length).toBe(0);
    expect(encode({}).length).toBe(0);
    // A message field that is present is written, even empty: its presence is what it says.
    expect(decode(encode({ subtask: {} }))).toMatchObject({ subtask: { id: '', state: 'SUBTASK_STATE_UNSPECIFIED' } });
    expect(decode(encode({}))).toMatchObject({ subtask: null });
  });

  it('refuses a value that does not fit its field, naming the field and the value', () => {
    expect(() => encode({ job_state: 'JOB_STATE_BOGUS' })).toThrow(/tessera\.v1\.JobEvent\.job_state: JOB_STATE_BOGUS is not a value of tessera\.v1\.JobState/);
    expect(() => encode({ seq: '-1' })).toThrow(/tessera\.v1\.JobEvent\.seq: -1 is not an unsigned 64-bit integer/);
    expect(() => encode({ seq: '12a' })).toThrow(/JobEvent\.seq: 12a is not/);
    expect(() => encode({ seq: '18446744073709551616' })).toThrow(/JobEvent\.seq: 18446744073709551616 is not/);
    expect(() => encode({ time_ms: 1.5 })).toThrow(/JobEvent\.time_ms: 1\.5 is not/);
    expect(() => encode({ subtask: { index: -1 } })).toThrow(/tessera\.v1\.SubtaskInfo\.index: -1 is not an unsigned 32-bit integer/);
    expect(() => encode({ batch: [{ subtask: { state: 'RUNNING' } }] })).toThrow(/SubtaskInfo\.state: RUNNING is not a value of tessera\.v1\.SubtaskState/);
  });

  it('as WatchJob serves it, falls back to protobufjs for a value the compiled encoder refuses, rather than fail the watch', () => {
    const serialize = (jobServiceDefinition().WatchJob as unknown as { responseSerialize: (m: object) => Buffer }).responseSerialize;
    // A duration from a clock stepped back, an out-of-range number from a worker: protobufjs wraps them.
    for (const odd of [{ subtask: { id: 's', duration_ms: '-5' } }, { subtask: { id: 's', duration_ms: '18446744073709552000' } }, { seq: 2.5 }]) {
      expect(() => encode(odd)).toThrow();
      expect(decode(serialize(odd))).toEqual(decode(watchJob.responseSerialize(odd)));
    }
    // Everything else goes through the compiled encoder: the same bytes as calling it directly.
    const event = subtaskEvent(7);
    expect(serialize(event).equals(encode(event))).toBe(true);
  });

  it('refuses to compile a message with fields it does not cover, rather than encode them wrongly', () => {
    expect(() => compileEncoder(packageDefinition, 'tessera.v1.CoordinatorMessage')).toThrow(/CoordinatorMessage: oneofs are not supported/);
    expect(() => compileEncoder(packageDefinition, 'tessera.v1.Capabilities')).toThrow(/Capabilities\.kinds: repeated string fields are not supported/);
    expect(() => compileEncoder(packageDefinition, 'tessera.v1.NoSuchMessage')).toThrow(/tessera\.v1\.NoSuchMessage: not a message of this package definition/);
  });
});

describe('compiled protobuf decoder (JobEvent)', () => {
  const fast = compileDecoder(packageDefinition, 'tessera.v1.JobEvent');
  /** The same object as proto-loader's deserialiser gives, key order included (it shows in JSON). */
  const same = (bytes: Buffer): void => {
    const want = decode(bytes);
    const got = fast(bytes);
    expect(got).toEqual(want);
    expect(JSON.stringify(got)).toBe(JSON.stringify(want));
  };

  it('reads what proto-loader reads, defaults and key order included, for every field of an event and a batch of them', () => {
    const events = [
      subtaskEvent(1),
      subtaskEvent(2, { message: 'DEADLINE_EXCEEDED — 片段 🎞️', progress: -0.375, subtask: { id: 's', state: 'SUBTASK_STATE_FAILED', error: 'x'.repeat(500), duration_ms: '0' } }),
      { seq: 3, time_ms: '9007199254740993', job_id: 'j_1', type: 'output', job_state: 2, output: { name: 'a.webp', size: '18446744073709551615', sha256: 'ab'.repeat(32), source: 'a.jpg', content_type: 'image/webp', shared_path: '/srv/out/a.webp' }, output_data: Buffer.from([0, 1, 2, 255]) },
      { seq: '4294967296', job_id: 'j_1', type: 'job_state', job_state: 'JOB_STATE_SUCCEEDED', final: true },
      {},
    ];
    for (const e of events) same(watchJob.responseSerialize(e));
    same(watchJob.responseSerialize({ type: 'batch', seq: '5', job_id: 'j_1', final: true, batch: events }));
    const read = fast(encode({ batch: events })) as { batch: { seq: string; time_ms: string; output: { size: string } | null; output_data: Buffer; subtask: unknown }[] };
    expect(read.batch.map((e) => e.seq)).toEqual(['1', '2', '3', '4294967296', '0']);
    expect(read.batch[2]!.time_ms).toBe('9007199254740993');
    expect(read.batch[2]!.output!.size).toBe('18446744073709551615');
    expect([...read.batch[2]!.output_data]).toEqual([0, 1, 2, 255]);
    expect(read.batch[4]).toMatchObject({ subtask: null, output: null, output_data: Buffer.alloc(0), job_state: 'JOB_STATE_UNSPECIFIED', batch: [] });
  });

  it('matches proto-loader on random events, an enum number it does not know included', () => {
    let seed = 7;
    const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
    const str = (): string => ['', 'a', 'worker-2', 'ünï 🎞️', 'z'.repeat(rnd(300))][rnd(5)]!;
    const u64 = (): string => ['0', '1', '127', '128', '4294967295', '4294967296', '9007199254740991', '9007199254740993', '18446744073709551615'][rnd(9)]!;
    const maybe = <T>(v: () => T): T | undefined => (rnd(3) === 0 ? undefined : v());
    const event = (depth: number): object => ({
      seq: maybe(u64),
      time_ms: maybe(u64),
      job_id: maybe(str),
      type: maybe(str),
      job_state: maybe(() => [0, 1, 3, 6, 42][rnd(5)]),
      subtask: maybe(() => ({ id: str(), index: rnd(2 ** 31) * 2, phase: rnd(3), state: rnd(9), worker: str(), attempt: rnd(5), label: str(), progress: rnd(100) / 7, duration_ms: u64(), speculative: rnd(2) === 1, error: str() })),
      progress: maybe(() => rnd(1000) / 3 - 100),
      message: maybe(str),
      final: maybe(() => rnd(2) === 1),
      batch: depth > 0 && rnd(2) === 0 ? Array.from({ length: rnd(4) }, () => event(depth - 1)) : undefined,
      output: maybe(() => ({ name: str(), size: u64(), sha256: str(), source: str(), content_type: str(), shared_path: str() })),
      output_data: maybe(() => Buffer.from(str())),
    });
    for (let i = 0; i < 300; i++) same(watchJob.responseSerialize(event(2)));
  });

  it('skips fields it does not know, of every wire type, and refuses a message cut short', () => {
    const bytes = watchJob.responseSerialize(subtaskEvent(9));
    // Field 99: a varint, a 64-bit value, bytes and a 32-bit value, as a newer coordinator might add.
    const unknown = Buffer.from([0x98, 0x06, 0xff, 0x01, 0x99, 0x06, 1, 2, 3, 4, 5, 6, 7, 8, 0x9a, 0x06, 3, 1, 2, 3, 0x9d, 0x06, 1, 2, 3, 4]);
    const withUnknown = Buffer.concat([unknown, bytes, unknown]);
    expect(fast(withUnknown)).toEqual(fast(bytes));
    same(withUnknown);
    // Every prefix either is a whole message (cut between fields) or is refused.
    for (let n = 0; n < bytes.length; n++) {
      const cut = bytes.subarray(0, n);
      let got: unknown;
      try {
        got = fast(cut);
      } catch (err) {
        expect(err).toBeInstanceOf(RangeError);
        continue;
      }
      expect(got).toEqual(decode(cut));
    }
  });

  it('is what TesseraClient decodes watched events with', () => {
    const deserialize = (jobServiceClientDefinition().WatchJob as unknown as { responseDeserialize: (b: Buffer) => unknown }).responseDeserialize;
    const bytes = encode({ batch: [subtaskEvent(1), subtaskEvent(2)] });
    expect(deserialize(bytes)).toEqual(decode(bytes));
    expect(JSON.stringify(deserialize(bytes))).toBe(JSON.stringify(fast(bytes)));
  });
});
