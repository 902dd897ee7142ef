import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { jobServiceDefinition } from '../coordinator/job-service.js';
import { workerServiceDefinition } from '../coordinator/worker-service.js';
import { compileDecoder, compileEncoder } from './proto-encoder.js';
import { jobServiceClientDefinition, loadTesseraProto, loadTesseraRoot, workerServiceClientConstructor } from './proto.js';

const { packageDefinition } = loadTesseraProto();
const root = loadTesseraRoot();
const watchJob = (packageDefinition['tessera.v1.JobService'] as unknown as Record<string, unknown>).WatchJob as { responseSerialize: (m: object) => Buffer; responseDeserialize: (b: Buffer) => unknown };
const encode = compileEncoder(root, 'tessera.v1.JobEvent');
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
    expect(() => encode({ job_id: 5 })).toThrow(/JobEvent\.job_id: 5 is not a string/);
    expect(() => encode({ output_data: 'AAEC' })).toThrow(/JobEvent\.output_data: a string is not bytes/);
  });

  it('as WatchJob serves it, falls back to protobufjs for a value the compiled encoder refuses, rather than fail the watch', () => {
    const serialize = (jobServiceDefinition().WatchJob as unknown as { responseSerialize: (m: object) => Buffer }).responseSerialize;
    // A duration from a clock stepped back, an out-of-range number from a worker: protobufjs wraps
    // them. Bytes given as base64, which protobufjs reads.
    for (const odd of [{ subtask: { id: 's', duration_ms: '-5' } }, { subtask: { id: 's', duration_ms: '18446744073709552000' } }, { seq: 2.5 }, { output_data: 'AAEC' }]) {
      expect(() => encode(odd)).toThrow();
      expect(decode(serialize(odd))).toEqual(decode(watchJob.responseSerialize(odd)));
    }
    // Everything else goes through the compiled encoder: the same bytes as calling it directly.
    const event = subtaskEvent(7);
    expect(serialize(event).equals(encode(event))).toBe(true);
  });

  it('refuses to compile a message with fields it does not cover, rather than encode them wrongly', () => {
    const odd = protobuf.parse(
      `syntax = "proto3"; package t;
       message Big { int64 a = 1; } message Float { float a = 1; } message Packed { repeated uint32 a = 1; }
       message Opt { optional string a = 1; } message IntMap { map<string, int32> a = 1; } message Holds { string ok = 1; Big big = 2; }`,
      { keepCase: true },
    ).root;
    expect(() => compileEncoder(odd, 't.Big')).toThrow(/t\.Big\.a: int64 is not supported by the compiled codecs/);
    expect(() => compileDecoder(odd, 't.Float')).toThrow(/t\.Float\.a: float is not supported/);
    expect(() => compileEncoder(odd, 't.Packed')).toThrow(/t\.Packed\.a: repeated uint32 fields are not supported/);
    expect(() => compileEncoder(odd, 't.Opt')).toThrow(/t\.Opt\.a: optional fields are not supported/);
    expect(() => compileDecoder(odd, 't.IntMap')).toThrow(/t\.IntMap\.a: map<string, int32> fields are not supported/);
    expect(() => compileEncoder(odd, 't.Holds')).toThrow(/t\.Big\.a: int64 is not supported/);
    expect(() => compileEncoder(root, 'tessera.v1.NoSuchMessage')).toThrow(/tessera\.v1\.NoSuchMessage: not a message of this package definition/);
  });
});

describe('compiled protobuf decoder (JobEvent)', () => {
  const fast = compileDecoder(root, 'tessera.v1.JobEvent');
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

describe('compiled codecs on every message of the protocol', () => {
  type Generic = { serialize: (m: object) => Buffer; deserialize: (b: Buffer) => unknown };
  const generic = (name: string): Generic => packageDefinition[name] as unknown as Generic;
  const messages: protobuf.Type[] = [];
  const collect = (ns: protobuf.NamespaceBase): void => {
    for (const o of ns.nestedArray) {
      if (o instanceof protobuf.Type) messages.push(o);
      if (o instanceof protobuf.Namespace) collect(o);
    }
  };
  collect(root);

  let seed = 11;
  const rnd = (n: number): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
  const pick = <T>(xs: readonly T[]): T => xs[rnd(xs.length)]!;
  const str = (): string => pick(['', 'a', 'worker-2', 'ünï 🎞️ 片段', 'z'.repeat(rnd(300))]);
  const SCALAR: Record<string, () => unknown> = {
    string: str,
    bytes: () => Buffer.from(str()),
    bool: () => rnd(2) === 1,
    double: () => pick([0, -0, 0.5, -1e300, 1 / 3, 2 ** 53 + 2]),
    int32: () => pick([0, 1, -1, 300, 2147483647, -2147483648]),
    uint32: () => pick([0, 1, 127, 128, 4294967295]),
    uint64: () => pick(['0', '1', '127', '4294967296', '9007199254740993', '18446744073709551615']),
  };
  /** A random message of `type`, as a caller hands it to grpc-js: some fields left out, at most one member of each oneof. */
  const random = (type: protobuf.Type, depth: number): object => {
    const m: Record<string, unknown> = {};
    const chosen = new Map(type.oneofsArray.map((o) => [o.name, rnd(o.fieldsArray.length + 1)]));
    for (const f of type.fieldsArray) {
      if (f.partOf ? f.partOf.fieldsArray.indexOf(f) !== chosen.get(f.partOf.name) : rnd(3) === 0) continue;
      const one = (): unknown => {
        if (f.resolvedType instanceof protobuf.Type) return depth > 0 ? random(f.resolvedType, depth - 1) : {};
        if (f.resolvedType instanceof protobuf.Enum) return rnd(4) === 0 ? 42 : pick(Object.keys(f.resolvedType.values));
        return SCALAR[f.type]!();
      };
      if (f.map) m[f.name] = Object.fromEntries(Array.from({ length: rnd(4) }, () => [str(), str()]));
      else m[f.name] = f.repeated ? Array.from({ length: rnd(4) }, one) : one();
    }
    return m;
  };

  it('covers every message Tessera sends, and reads and writes them as proto-loader does', () => {
    expect(messages.length).toBeGreaterThan(40);
    for (const type of messages) {
      const name = type.fullName.slice(1);
      const { serialize, deserialize } = generic(name);
      const encode = compileEncoder(root, name);
      const decode = compileDecoder(root, name);
      for (let i = 0; i < 40; i++) {
        const message = random(type, 2);
        const bytes = serialize(message);
        // What the compiled encoder writes reads the same as protobufjs's bytes...
        expect(deserialize(encode(message)), name).toEqual(deserialize(bytes));
        // ...and the compiled decoder gives proto-loader's object, key order included.
        const want = deserialize(bytes);
        const got = decode(bytes);
        expect(got, name).toEqual(want);
        expect(JSON.stringify(got), name).toBe(JSON.stringify(want));
      }
    }
  });

  it('writes a oneof member even at its default, and reads which one was sent', () => {
    const encode = compileEncoder(root, 'tessera.v1.CoordinatorMessage');
    const decode = compileDecoder(root, 'tessera.v1.CoordinatorMessage');
    const drain = { drain: { reason: '' } };
    expect(encode(drain).length).toBe(2);
    expect(decode(encode(drain))).toEqual({ drain: { reason: '' }, msg: 'drain' });
    expect(decode(Buffer.alloc(0))).toEqual({});
    const spec = compileDecoder(root, 'tessera.v1.JobSpec');
    expect(spec(compileEncoder(root, 'tessera.v1.JobSpec')({ priority: -5, passthrough: {} }))).toMatchObject({ priority: -5, passthrough: { subtasks: 0 }, params: 'passthrough' });
  });

  it('refuses values of the wrong shape, which protobufjs refuses or converts, so that the fallback decides', () => {
    const encode = compileEncoder(root, 'tessera.v1.WorkerMessage');
    const capabilities = (c: object): object => ({ register: { name: 'w', capabilities: c } });
    expect(() => encode(capabilities({ kinds: 'image' }))).toThrow(/Capabilities\.kinds: an array is expected, not string/);
    expect(() => encode(capabilities({ labels: ['a'] }))).toThrow(/Capabilities\.labels: an object is expected, not an array/);
    expect(() => encode(capabilities({ labels: { a: 1 } }))).toThrow(/Capabilities\.labels\[a\]: 1 is not a string/);
    expect(() => encode({ register: 'w' })).toThrow(/WorkerMessage\.register: an object is expected, not string/);
    expect(() => encode({ results: { results: [5] } })).toThrow(/SubtaskResultBatch\.results: an object is expected, not number/);
    expect(() => encode('w' as unknown as object)).toThrow(/tessera\.v1\.WorkerMessage: an object is expected, not string/);
  });

  it('keeps a map key named __proto__, and writes two members of one oneof as protobufjs does', () => {
    const { serialize, deserialize } = generic('tessera.v1.WorkerMessage');
    const decode = compileDecoder(root, 'tessera.v1.WorkerMessage');
    const encode = compileEncoder(root, 'tessera.v1.WorkerMessage');
    const labels = JSON.parse('{"__proto__": "x", "zone": "a"}') as Record<string, string>;
    const register = { register: { name: 'w', capabilities: { labels } } };
    const read = decode(encode(register)) as { register: { capabilities: { labels: Record<string, string> } } };
    expect(Object.entries(read.register.capabilities.labels)).toEqual([['__proto__', 'x'], ['zone', 'a']]);
    expect(read).toEqual(deserialize(serialize(register)));
    // A caller setting two members: both are written, in field-number order, and the last one read wins.
    const both = { drain: { reason: 'stop' }, heartbeat: { slots_used: 1 } };
    expect(deserialize(encode(both))).toEqual(deserialize(serialize(both)));
  });

  it('carries the control stream both ways, and an assignment the compiled encoder refuses goes out through protobufjs', () => {
    const server = workerServiceDefinition().Connect as unknown as { requestDeserialize: (b: Buffer) => unknown; responseSerialize: (m: object) => Buffer };
    const client = (workerServiceClientConstructor() as unknown as { service: typeof server & { Connect: { requestSerialize: (m: object) => Buffer; responseDeserialize: (b: Buffer) => unknown } } }).service.Connect;
    const plain = generic('tessera.v1.CoordinatorMessage');
    const assignment = { subtask_id: 'j_1-s0', job_id: 'j_1', attempt: 1, kind: 'image', spec: { label: 'x', priority: -1, image: { width: 800, format: 'webp', hue: -30, rotate: -90 } }, plan_json: '{}', inputs: [{ name: 'a.jpg', size: '12345', sha256: 'ab'.repeat(32), mtime_ms: 1764600000000.5, ino: '9007199254740993' }], timeout_ms: 600000, phase: 0 };
    for (const message of [{ assign: assignment }, { assign_batch: { assignments: [assignment, { ...assignment, attempt: 2 }] } }, { registered: { worker_id: 'w', heartbeat_ms: 1000, ttl_ms: 5000 } }]) {
      const bytes = server.responseSerialize(message);
      expect(bytes.equals(compileEncoder(root, 'tessera.v1.CoordinatorMessage')(message))).toBe(true);
      expect(client.responseDeserialize(bytes)).toEqual(plain.deserialize(plain.serialize(message)));
    }
    // A fraction where a whole number goes: protobufjs truncates it, as before.
    const odd = { assign: { ...assignment, attempt: 1.5 } };
    expect(() => compileEncoder(root, 'tessera.v1.CoordinatorMessage')(odd)).toThrow(/Assignment\.attempt: 1\.5 is not an unsigned 32-bit integer/);
    expect(client.responseDeserialize(server.responseSerialize(odd))).toEqual(plain.deserialize(plain.serialize(odd)));
    const register = { register: { name: 'w1', slots: 2, capabilities: { kinds: ['image', 'video'], encoders: ['libx264'], cpu_count: 2, labels: { zone: 'a', gpu: '' }, memory_bytes: '25000000000' } } };
    const fromWorker = generic('tessera.v1.WorkerMessage');
    expect(server.requestDeserialize(client.requestSerialize(register))).toEqual(fromWorker.deserialize(fromWorker.serialize(register)));
  });
});
