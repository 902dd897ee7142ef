/**
 * Protobuf encoders and decoders generated from a message's descriptor, for the messages sent by
 * the thousand each second: the events of watched jobs (encoded by the coordinator, decoded by
 * the clients watching them) and the worker protocol's control stream (assignments one way,
 * results the other).
 *
 * grpc-js serialises through @grpc/proto-loader, which runs protobufjs's `fromObject` (a copy of
 * the whole message: decimal strings parsed into Long objects, enum names looked up) and then
 * `encode` (a list of write operations, replayed into a buffer by `finish`). With 20,000 no-op
 * subtasks watched in 200 jobs that came to 18-20 us of the coordinator's CPU per event, two events
 * per subtask. An encoder made here measures the message once and writes it straight into one
 * buffer, with a function per message type (as protobufjs generates its own).
 *
 * The wire format is the same: a decoder cannot tell them apart, and the tests decode both.
 * Fields at their default value are left out, as proto3 encoders do; a member of a oneof is
 * written whenever it is set, even at its default, since which member is set is what it says. It
 * covers the field types the messages it is used for have (string, bytes, bool, double, int32,
 * uint32, uint64, enums, messages, oneofs, map<string, string>, and repeated strings, bytes and
 * messages); it refuses to compile a message holding anything else (other scalars, repeated
 * numbers, other maps, proto3 `optional` fields) rather than encode it wrongly.
 *
 * The messages are read from a protobufjs Root loaded from the same files with the same options
 * as proto-loader's (see `loadTesseraRoot` in shared/proto.ts): proto-loader's own descriptors do
 * not say which fields belong to a oneof, and lose map fields.
 */
import protobuf from 'protobufjs';

type Kind = 'string' | 'bytes' | 'bool' | 'double' | 'int32' | 'uint32' | 'uint64' | 'enum' | 'message' | 'map';

const SCALARS: Record<string, Kind> = {
  string: 'string',
  bytes: 'bytes',
  bool: 'bool',
  double: 'double',
  int32: 'int32',
  uint32: 'uint32',
  uint64: 'uint64',
};

/** Wire types: 0 varint, 1 fixed 64-bit, 2 length-delimited. */
const WIRE_TYPE: Record<Kind, number> = { string: 2, bytes: 2, bool: 0, double: 1, int32: 0, uint32: 0, uint64: 0, enum: 0, message: 2, map: 2 };

interface FieldPlan {
  name: string;
  /** Where it is, for error messages: `tessera.v1.JobEvent.seq`. */
  where: string;
  kind: Kind;
  /** A repeated field (a map is not: it has its own kind). */
  repeated: boolean;
  /** The oneof the field is a member of. */
  oneof?: string;
  /** The field's key (number and wire type) as varint bytes, and as a number. */
  key: number[];
  tag: number;
  /** Enum fields: the enum's index in `Generated.enums`. */
  enumIndex?: number;
  /** Message fields: the nested message's index in `Generated.types`. */
  typeIndex?: number;
}

interface Generated {
  /** Fully qualified names; a message's index here names its functions. */
  types: string[];
  fields: FieldPlan[][];
  enums: Map<string, number>[];
  enumNames: string[];
}

export type Encoder = (message: object) => Buffer;

/**
 * An encoder for message `typeName` (e.g. `tessera.v1.JobEvent`) of a loaded Root, taking the
 * plain objects proto-loader's serialiser takes: 64-bit integers as decimal strings, numbers,
 * BigInts or Longs, enums as names or numbers, bytes as Buffers, maps as plain objects. Throws if
 * the message (or one it holds) has a field this encoder does not cover, and, when encoding, on a
 * value that does not fit its field.
 */
export function compileEncoder(root: protobuf.Root, typeName: string): Encoder {
  const g: Generated = { types: [], fields: [], enums: [], enumNames: [] };
  plan(root, typeName, g);
  const source = g.fields.map((fields, i) => measureSource(i, fields) + writeSource(i, fields)).join('\n');
  // Field names are checked to be identifiers (see `plan`): nothing else is spliced into the source.
  const make = new Function('h', `'use strict';\nconst { uint64Of, enumOf, utf8Size, varintSize, bigVarintSize, writeVarint, writeBigVarint, writeString, notString, notBytes, notA, enums } = h;\n${source}\nreturn { measure: measure0, write: write0 };`) as (
    h: typeof helpers & { enums: Generated['enums'] },
  ) => { measure: (m: object, sizes: number[]) => number; write: (m: object, w: Cursor) => void };
  const { measure, write } = make({ ...helpers, enums: g.enums.map((values, i) => Object.assign(values, { enumName: g.enumNames[i] })) });
  return (message) => {
    if (message === null || typeof message !== 'object') notA('an object', typeName, message);
    const sizes: number[] = [];
    const size = measure(message, sizes);
    const w: Cursor = { buf: Buffer.allocUnsafe(size), pos: 0, sizes, next: 0 };
    write(message, w);
    if (w.pos !== size) throw new Error(`${typeName}: encoded ${w.pos} bytes where ${size} were measured`);
    return w.buf;
  };
}

export type Decoder = (buf: Buffer) => object;

/**
 * A decoder for message `typeName` of a loaded Root, giving the plain objects proto-loader's
 * deserialiser gives with Tessera's options (`keepCase`, `longs: String`, `enums: String`,
 * `defaults: true`, `oneofs: true`): every field present, at its default when not sent (`''`,
 * `0`, `false`, `'0'`, the enum's zero name, an empty Buffer, `null` for a message, `[]` for a
 * repeated field, `{}` for a map), except a oneof's members, of which only the one sent is there,
 * with the oneof's own property naming it; 64-bit integers as decimal strings, enums by name (an
 * unknown number stays a number), bytes as a view of `buf`, and keys in protobufjs's order
 * (repeated fields, maps, the other fields, each by field number, then the oneof members sent).
 * Unknown fields are skipped. It covers the same field types as {@link compileEncoder} and refuses
 * the same messages; a truncated or malformed message throws. On malformed input it is stricter
 * than protobufjs, which reads a string running past the end as what is there and skips groups;
 * a known field sent with another wire type is skipped as unknown. A message nested deeper than
 * the stack allows (`JobEvent.batch` holds events) throws a RangeError, which grpc-js turns into
 * an error status for that call.
 */
export function compileDecoder(root: protobuf.Root, typeName: string): Decoder {
  const g: Generated = { types: [], fields: [], enums: [], enumNames: [] };
  plan(root, typeName, g);
  const source = g.fields.map((fields, i) => decodeSource(i, fields, g)).join('\n');
  // Field names are checked to be identifiers (see `plan`): nothing else is spliced into the source.
  const make = new Function('h', `'use strict';\nconst { varint32, varint64, skip, truncated, enumNames, EMPTY } = h;\n${source}\nreturn decode0;`) as (
    h: typeof decodeHelpers & { enumNames: Record<number, string>[] },
  ) => (b: Buffer, c: ReadCursor, end: number) => object;
  const decode = make({ ...decodeHelpers, enumNames: g.enums.map(namesOf) });
  return (buf) => decode(buf, { pos: 0 }, buf.length);
}

/**
 * A serialiser that encodes with the compiled encoder and, for a value it refuses (one protobufjs
 * converts: a negative number in an unsigned field, a fraction in an integer one), with `generic`,
 * rather than fail the call or stream that sends it.
 */
export function withFallback(compiled: Encoder, generic: (message: object) => Buffer): (message: object) => Buffer {
  return (message) => {
    try {
      return compiled(message);
    } catch {
      return generic(message);
    }
  };
}

/** An enum's names by number; of two names for one number, the later (as protobufjs's `valuesById`). */
function namesOf(values: Map<string, number>): Record<number, string> {
  return Object.fromEntries([...values].map(([name, n]) => [n, name]));
}

/** The source of `decodeN(b, c, end)`: message N from `c.pos` up to `end`. */
function decodeSource(index: number, fields: FieldPlan[], g: Generated): string {
  // Defaults as protobufjs's toObject sets them: repeated fields, then maps, then the others, each
  // by field number (the order `plan` lists them in); members of a oneof get none.
  const byNumber = fields.filter((f) => !f.oneof);
  const ordered = [...byNumber.filter((f) => f.repeated), ...byNumber.filter((f) => f.kind === 'map'), ...byNumber.filter((f) => !f.repeated && f.kind !== 'map')];
  const defaults = ordered.map((f) => {
    if (f.repeated) return `${f.name}: []`;
    switch (f.kind) {
      case 'map':
        return `${f.name}: {}`;
      case 'string':
        return `${f.name}: ''`;
      case 'bytes':
        return `${f.name}: EMPTY`;
      case 'bool':
        return `${f.name}: false`;
      case 'double':
      case 'int32':
      case 'uint32':
        return `${f.name}: 0`;
      case 'uint64':
        return `${f.name}: '0'`;
      case 'enum': {
        // The name of the first value declared (0 in proto3), looked up by number as protobufjs does.
        const first = [...g.enums[f.enumIndex!]!.values()][0]!;
        return `${f.name}: ${JSON.stringify(namesOf(g.enums[f.enumIndex!]!)[first])}`;
      }
      case 'message':
        return `${f.name}: null`;
    }
  });
  const length = `l = varint32(b, c); s = c.pos; c.pos = s + l; if (c.pos > end) truncated();`;
  const cases = fields.map((f) => {
    // The value read, as an expression (after `length` for length-delimited ones).
    let value: string;
    switch (f.kind) {
      case 'string':
        value = `${length} v = b.utf8Slice(s, c.pos);`;
        break;
      case 'bytes':
        value = `${length} v = b.subarray(s, c.pos);`;
        break;
      case 'bool':
        value = `v = varint32(b, c) !== 0;`;
        break;
      case 'double':
        value = `if (c.pos + 8 > end) truncated(); v = b.readDoubleLE(c.pos); c.pos += 8;`;
        break;
      case 'int32':
        value = `v = varint32(b, c) | 0;`;
        break;
      case 'uint32':
        value = `v = varint32(b, c);`;
        break;
      case 'uint64':
        value = `v = varint64(b, c);`;
        break;
      case 'enum':
        value = `v = varint32(b, c) | 0; l = enumNames[${f.enumIndex}][v]; if (l !== undefined) v = l;`;
        break;
      case 'message':
        value = `l = varint32(b, c); s = c.pos + l; if (s > end) truncated(); v = decode${f.typeIndex}(b, c, s);`;
        break;
      case 'map':
        // An entry: key 1 and value 2, both strings, each '' when left out.
        return `case ${f.tag}: { l = varint32(b, c); const e = c.pos + l; if (e > end) truncated(); let k = '', x = ''; while (c.pos < e) { t = varint32(b, c); if (t === 10) { ${length.replace('end', 'e')} k = b.utf8Slice(s, c.pos); } else if (t === 18) { ${length.replace('end', 'e')} x = b.utf8Slice(s, c.pos); } else skip(b, c, t, e); } if (c.pos !== e) truncated(); if (k === '__proto__') Object.defineProperty(m.${f.name}, k, { value: x, enumerable: true, writable: true, configurable: true }); else m.${f.name}[k] = x; } break;`;
    }
    const store = f.repeated ? `m.${f.name}.push(v);` : f.oneof ? `m.${f.name} = v; m.${f.oneof} = ${JSON.stringify(f.name)};` : `m.${f.name} = v;`;
    return `case ${f.tag}: ${value} ${store} break;`;
  });
  return `function decode${index}(b, c, end) {
  const m = { ${defaults.join(', ')} };
  let t, l, s, v;
  while (c.pos < end) {
    t = b[c.pos];
    if (t < 0x80) c.pos++; else t = varint32(b, c);
    switch (t) {
      ${cases.join('\n      ')}
      default: skip(b, c, t, end);
    }
  }
  if (c.pos !== end) truncated();
  return m;
}
`;
}

interface ReadCursor {
  pos: number;
}

function truncated(): never {
  throw new RangeError('protobuf message truncated or malformed');
}

/** A varint's low 32 bits, unsigned (what protobufjs's uint32 reads; `| 0` makes an int32). */
function varint32(b: Buffer, c: ReadCursor): number {
  let n = 0;
  for (let shift = 0; shift < 70; shift += 7) {
    if (c.pos >= b.length) truncated();
    const byte = b[c.pos++]!;
    if (shift < 32) n |= (byte & 0x7f) << shift;
    if (byte < 0x80) return n >>> 0;
  }
  return truncated();
}

/** An unsigned 64-bit varint as a decimal string. */
function varint64(b: Buffer, c: ReadCursor): string {
  let lo = 0;
  let hi = 0;
  for (let i = 0; i < 10; i++) {
    if (c.pos >= b.length) truncated();
    const byte = b[c.pos++]!;
    const bits = byte & 0x7f;
    if (i < 4) lo |= bits << (7 * i);
    else if (i === 4) {
      lo |= bits << 28;
      hi |= bits >>> 4;
    } else hi |= bits << (7 * i - 32);
    if (byte < 0x80) {
      lo >>>= 0;
      hi >>>= 0;
      if (hi === 0) return String(lo);
      if (hi < 0x200000) return String(hi * 0x100000000 + lo);
      return ((BigInt(hi) << 32n) | BigInt(lo)).toString();
    }
  }
  return truncated();
}

/** Skips a field this decoder does not know (another version of the message). */
function skip(b: Buffer, c: ReadCursor, tag: number, end: number): void {
  switch (tag & 7) {
    case 0:
      varint64(b, c);
      break;
    case 1:
      c.pos += 8;
      break;
    case 2: {
      // Read first: `c.pos += varint32(...)` would add to the position from before the length.
      const length = varint32(b, c);
      c.pos += length;
      break;
    }
    case 5:
      c.pos += 4;
      break;
    default:
      // Groups (3, 4) are proto2; 6 and 7 are not wire types.
      truncated();
  }
  if (c.pos > end) truncated();
}

const decodeHelpers = { varint32, varint64, skip, truncated, EMPTY: Buffer.alloc(0) };

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Plans `typeName` and every message it holds; returns its index. */
function plan(root: protobuf.Root, typeName: string, g: Generated): number {
  const known = g.types.indexOf(typeName);
  if (known >= 0) return known;
  let type: protobuf.ReflectionObject | null;
  try {
    type = root.lookup(typeName);
  } catch {
    type = null;
  }
  if (!(type instanceof protobuf.Type)) throw new Error(`${typeName}: not a message of this package definition`);
  const index = g.types.length;
  const fields: FieldPlan[] = [];
  g.types.push(typeName);
  g.fields.push(fields);
  // By field number, the order protobufjs writes them in (which member of a oneof set twice wins).
  for (const f of [...type.fieldsArray].sort((a, b) => a.id - b.id)) {
    f.resolve();
    const where = `${typeName}.${f.name}`;
    if (!IDENTIFIER.test(f.name)) throw new Error(`${where}: the field name is not an identifier`);
    if (f.options?.['proto3_optional']) throw new Error(`${where}: optional fields are not supported by the compiled codecs`);
    let kind: Kind | undefined;
    if (f instanceof protobuf.MapField) {
      if (f.keyType !== 'string' || f.type !== 'string') throw new Error(`${where}: map<${f.keyType}, ${f.type}> fields are not supported by the compiled codecs`);
      kind = 'map';
    } else if (f.resolvedType instanceof protobuf.Type) kind = 'message';
    else if (f.resolvedType instanceof protobuf.Enum) kind = 'enum';
    else kind = SCALARS[f.type];
    if (!kind) throw new Error(`${where}: ${f.type} is not supported by the compiled codecs`);
    const repeated = f.repeated && kind !== 'map';
    if (repeated && kind !== 'message' && kind !== 'string' && kind !== 'bytes') throw new Error(`${where}: repeated ${kind} fields are not supported by the compiled codecs`);
    const oneof = f.partOf?.name;
    if (oneof !== undefined && !IDENTIFIER.test(oneof)) throw new Error(`${where}: the oneof's name is not an identifier`);
    const tag = f.id * 8 + WIRE_TYPE[kind];
    const field: FieldPlan = { name: f.name, where, kind, repeated, key: varintBytes(tag), tag, ...(oneof !== undefined ? { oneof } : {}) };
    if (f.resolvedType instanceof protobuf.Enum) {
      const name = f.resolvedType.fullName.slice(1);
      const at = g.enumNames.indexOf(name);
      field.enumIndex = at >= 0 ? at : g.enums.push(new Map(Object.entries(f.resolvedType.values))) - 1;
      if (at < 0) g.enumNames.push(name);
    }
    fields.push(field);
    if (kind === 'message') field.typeIndex = plan(root, (f.resolvedType as protobuf.Type).fullName.slice(1), g);
  }
  return index;
}

function varintBytes(n: number): number[] {
  const out: number[] = [];
  for (; n >= 0x80; n = Math.floor(n / 0x80)) out.push((n % 0x80) | 0x80);
  out.push(n);
  return out;
}

/**
 * How a single (not repeated) field of each kind is measured and written, as source: `pre` reads
 * the value `v` into `l` where it needs converting, `set` is whether it differs from the default
 * (left out otherwise, unless the field is a member of a oneof), `check` refuses a value that does
 * not fit, `size` is its encoded size after the key, and `write` writes it after the key.
 */
function single(f: FieldPlan): { pre: string; set: string; check: string; size: string; write: string } {
  const where = JSON.stringify(f.where);
  switch (f.kind) {
    case 'string':
      return { pre: '', set: `v !== ''`, check: `if (typeof v !== 'string') notString(${where}, v);`, size: `(l = utf8Size(v), varintSize(l) + l)`, write: `writeString(w, v);` };
    case 'bytes':
      return { pre: '', set: 'v.length > 0', check: `if (!(v instanceof Uint8Array)) notBytes(${where}, v);`, size: 'varintSize(v.length) + v.length', write: 'writeVarint(w, v.length); b.set(v, w.pos); w.pos += v.length;' };
    case 'bool':
      return { pre: '', set: 'v', check: '', size: '1', write: 'b[w.pos++] = v ? 1 : 0;' };
    case 'double':
      return { pre: '', set: '(v !== 0 || Object.is(v, -0))', check: '', size: '8', write: 'w.pos = b.writeDoubleLE(v, w.pos);' };
    case 'int32':
      return {
        pre: '',
        set: 'v !== 0',
        check: `if (!((v | 0) === v)) throw new Error(${where} + ': ' + v + ' is not a signed 32-bit integer');`,
        size: '(v < 0 ? 10 : varintSize(v))',
        // A negative int32 is sign-extended to ten bytes.
        write: 'if (v < 0) writeBigVarint(w, BigInt.asUintN(64, BigInt(v))); else writeVarint(w, v);',
      };
    case 'uint32':
      return { pre: '', set: 'v !== 0', check: `if (!(v >>> 0 === v)) throw new Error(${where} + ': ' + v + ' is not an unsigned 32-bit integer');`, size: 'varintSize(v)', write: 'writeVarint(w, v);' };
    case 'uint64':
      return { pre: `l = uint64Of(v, ${where});`, set: 'l !== 0', check: '', size: `(typeof l === 'bigint' ? bigVarintSize(l) : varintSize(l))`, write: `if (typeof l === 'bigint') writeBigVarint(w, l); else writeVarint(w, l);` };
    case 'enum':
      // A negative enum value is sign-extended to ten bytes, as int32 is.
      return { pre: `l = enumOf(enums[${f.enumIndex}], v, ${where});`, set: 'l !== 0', check: '', size: '(l < 0 ? 10 : varintSize(l))', write: 'if (l < 0) writeBigVarint(w, BigInt.asUintN(64, BigInt(l))); else writeVarint(w, l);' };
    case 'message':
      return { pre: '', set: 'true', check: `if (typeof v !== 'object') notA('an object', ${where}, v);`, size: `(l = measure${f.typeIndex}(v, sizes), sizes[at] = l, varintSize(l) + l)`, write: `writeVarint(w, w.sizes[w.next++]); write${f.typeIndex}(v, w);` };
    case 'map':
      throw new Error(`${f.where}: a map is not a single value`);
  }
}

/**
 * The source of `measureN(m, sizes)`: message N's encoded size. Each nested message's own size (and
 * each map entry's) is pushed to `sizes` in the order met, which is the order `writeN` meets them in.
 */
function measureSource(index: number, fields: FieldPlan[]): string {
  const lines = fields.map((f) => {
    const v = `m.${f.name}`;
    const k = f.key.length;
    const where = JSON.stringify(f.where);
    if (f.kind === 'map') {
      return `v = ${v}; if (v != null) { if (typeof v !== 'object' || Array.isArray(v)) notA('an object', ${where}, v); for (const key of Object.keys(v)) { const x = v[key]; if (typeof x !== 'string') notString(${where} + '[' + key + ']', x); l = utf8Size(key); s = utf8Size(x); s = 2 + varintSize(l) + l + varintSize(s) + s; sizes.push(s); n += ${k} + varintSize(s) + s; } }`;
    }
    if (f.repeated) {
      const array = `if (v != null && !Array.isArray(v)) notA('an array', ${where}, v);`;
      switch (f.kind) {
        case 'string':
          return `v = ${v}; ${array} if (v != null) for (const x of v) { if (typeof x !== 'string') notString(${where}, x); l = utf8Size(x); n += ${k} + varintSize(l) + l; }`;
        case 'bytes':
          return `v = ${v}; ${array} if (v != null) for (const x of v) { if (!(x instanceof Uint8Array)) notBytes(${where}, x); n += ${k} + varintSize(x.length) + x.length; }`;
        default:
          return `v = ${v}; ${array} if (v != null) for (const x of v) { if (x === null || typeof x !== 'object') notA('an object', ${where}, x); const at = sizes.length; sizes.push(0); l = measure${f.typeIndex}(x, sizes); sizes[at] = l; n += ${k} + varintSize(l) + l; }`;
      }
    }
    const { pre, set, check, size } = single(f);
    const at = f.kind === 'message' ? 'const at = sizes.length; sizes.push(0); ' : '';
    return `v = ${v}; if (v != null) { ${pre} if (${f.oneof ? 'true' : set}) { ${check} ${at}n += ${k} + ${size}; } }`;
  });
  return `function measure${index}(m, sizes) {\n  let n = 0, v, l, s;\n  ${lines.join('\n  ')}\n  return n;\n}\n`;
}

/** The source of `writeN(m, w)`, which writes message N where `w.pos` is and moves it on. */
function writeSource(index: number, fields: FieldPlan[]): string {
  const lines = fields.map((f) => {
    const v = `m.${f.name}`;
    const key = f.key.map((b) => `b[w.pos++] = ${b};`).join(' ');
    if (f.kind === 'map') return `v = ${v}; if (v != null) for (const x of Object.keys(v)) { ${key} writeVarint(w, w.sizes[w.next++]); b[w.pos++] = 10; writeString(w, x); b[w.pos++] = 18; writeString(w, v[x]); }`;
    if (f.repeated) {
      switch (f.kind) {
        case 'string':
          return `v = ${v}; if (v != null) for (const x of v) { ${key} writeString(w, x); }`;
        case 'bytes':
          return `v = ${v}; if (v != null) for (const x of v) { ${key} writeVarint(w, x.length); b.set(x, w.pos); w.pos += x.length; }`;
        default:
          return `v = ${v}; if (v != null) for (const x of v) { ${key} writeVarint(w, w.sizes[w.next++]); write${f.typeIndex}(x, w); }`;
      }
    }
    const { pre, set, write } = single(f);
    return `v = ${v}; if (v != null) { ${pre} if (${f.oneof ? 'true' : set}) { ${key} ${write} } }`;
  });
  return `function write${index}(m, w) {\n  const b = w.buf;\n  let v, l;\n  ${lines.join('\n  ')}\n}\n`;
}

interface Cursor {
  buf: Buffer;
  pos: number;
  /** Nested messages' sizes in the order `measure` met them, which is the order `write` meets them. */
  sizes: number[];
  next: number;
}

function varintSize(n: number): number {
  if (n < 0x80) return 1;
  if (n < 0x4000) return 2;
  if (n < 0x200000) return 3;
  if (n < 0x10000000) return 4;
  let size = 4;
  for (n = Math.floor(n / 0x10000000); n > 0; n = Math.floor(n / 0x80)) size++;
  return size;
}

function bigVarintSize(n: bigint): number {
  let size = 1;
  for (n >>= 7n; n > 0n; n >>= 7n) size++;
  return size;
}

const UINT64_END = 1n << 64n;
const DECIMAL = /^\d+$/;

/** An unsigned 64-bit value as a number, or as a BigInt past 2^53. */
function uint64Of(value: unknown, where: string): number | bigint {
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value) && value >= 0) return value;
  } else if (typeof value === 'string') {
    // Up to 15 digits it is a safe integer: parsed here, with no regular expression or Number().
    if (value.length > 0 && value.length <= 15) {
      let n = 0;
      for (let i = 0; i < value.length; i++) {
        const digit = value.charCodeAt(i) - 48;
        if (digit < 0 || digit > 9) throw new Error(`${where}: ${value} is not an unsigned 64-bit integer`);
        n = n * 10 + digit;
      }
      return n;
    }
    if (DECIMAL.test(value)) {
      const n = Number(value);
      if (Number.isSafeInteger(n)) return n;
      const big = BigInt(value);
      if (big < UINT64_END) return big;
    }
  } else if (typeof value === 'bigint') {
    if (value >= 0n && value < UINT64_END) return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
  } else if (value !== null && typeof value === 'object' && 'low' in value && 'high' in value) {
    // A Long, as protobufjs hands them out.
    const { low, high } = value as { low: number; high: number };
    const big = (BigInt(high >>> 0) << 32n) | BigInt(low >>> 0);
    return big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
  }
  throw new Error(`${where}: ${String(value)} is not an unsigned 64-bit integer`);
}

function enumOf(values: Map<string, number> & { enumName?: string }, value: unknown, where: string): number {
  const n = typeof value === 'number' ? value : values.get(value as string);
  if (n === undefined || !Number.isInteger(n) || n < -0x80000000 || n > 0x7fffffff) throw new Error(`${where}: ${String(value)} is not a value of ${values.enumName}`);
  return n;
}

/** Strings up to this length are measured and written here: for them a loop costs less than a call into C++. */
const SHORT_STRING = 64;

function utf8Size(s: string): number {
  if (s.length > SHORT_STRING) return Buffer.byteLength(s);
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return Buffer.byteLength(s);
  return s.length;
}

function writeVarint(w: Cursor, n: number): void {
  const buf = w.buf;
  for (; n >= 0x80; n = Math.floor(n / 0x80)) buf[w.pos++] = (n % 0x80) | 0x80;
  buf[w.pos++] = n;
}

function writeBigVarint(w: Cursor, n: bigint): void {
  for (; n >= 0x80n; n >>= 7n) w.buf[w.pos++] = Number(n & 0x7fn) | 0x80;
  w.buf[w.pos++] = Number(n);
}

function writeString(w: Cursor, s: string): void {
  const n = utf8Size(s);
  writeVarint(w, n);
  if (n === s.length && n <= SHORT_STRING) {
    const buf = w.buf;
    for (let i = 0; i < n; i++) buf[w.pos++] = s.charCodeAt(i);
  } else {
    w.pos += w.buf.write(s, w.pos, n, 'utf8');
  }
}

function notString(where: string, value: unknown): never {
  throw new Error(`${where}: ${String(value)} is not a string`);
}

function notA(what: string, where: string, value: unknown): never {
  throw new Error(`${where}: ${what} is expected, not ${Array.isArray(value) ? 'an array' : typeof value}`);
}

/** Bytes are Buffers or Uint8Arrays here; protobufjs also takes base64 strings, which the fallback encodes. */
function notBytes(where: string, value: unknown): never {
  throw new Error(`${where}: a ${typeof value} is not bytes`);
}

const helpers = { uint64Of, enumOf, utf8Size, varintSize, bigVarintSize, writeVarint, writeBigVarint, writeString, notString, notBytes, notA };
