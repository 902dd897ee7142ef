/**
 * Protobuf encoders and decoders generated from a message's descriptor, for the messages sent by
 * the thousand each second (the events of watched jobs: encoded by the coordinator, decoded by
 * the clients watching them).
 *
 * grpc-js serialises through @grpc/proto-loader, which runs protobufjs's `fromObject` (a copy of
 * the whole message: decimal strings parsed into Long objects, enum names looked up) and then
 * `encode` (a list of write operations, replayed into a buffer by `finish`). With 20,000 no-op
 * subtasks watched in 200 jobs that came to 18-20 us of the coordinator's CPU per event, two events
 * per subtask. An encoder made here measures the message once and writes it straight into one
 * buffer, with a function per message type (as protobufjs generates its own).
 *
 * The wire format is the same: a decoder cannot tell them apart, and the tests decode both.
 * Fields at their default value are left out, as proto3 encoders do. It covers the field types the
 * messages it is used for have (string, bytes, bool, double, uint32, uint64, enums, messages, and
 * repeated messages); `compileEncoder` refuses a message holding anything else (other scalars,
 * repeated scalars, maps, oneofs, optional fields) rather than encode it wrongly.
 */
import type { PackageDefinition } from '@grpc/proto-loader';

/** The parts of a google.protobuf.FieldDescriptorProto that proto-loader hands out. */
interface FieldDescriptor {
  name: string;
  number: number;
  label: string;
  type: string;
  typeName: string;
  proto3Optional?: boolean;
}

interface MessageDescriptor {
  field: FieldDescriptor[];
  oneofDecl?: unknown[];
  options?: { mapEntry?: boolean } | null;
}

type Kind = 'string' | 'bytes' | 'bool' | 'double' | 'uint32' | 'uint64' | 'enum' | 'message';

const KINDS: Record<string, Kind> = {
  TYPE_STRING: 'string',
  TYPE_BYTES: 'bytes',
  TYPE_BOOL: 'bool',
  TYPE_DOUBLE: 'double',
  TYPE_UINT32: 'uint32',
  TYPE_UINT64: 'uint64',
  TYPE_ENUM: 'enum',
  TYPE_MESSAGE: 'message',
};

/** Wire types: 0 varint, 1 fixed 64-bit, 2 length-delimited. */
const WIRE_TYPE: Record<Kind, number> = { string: 2, bytes: 2, bool: 0, double: 1, uint32: 0, uint64: 0, enum: 0, message: 2 };

interface FieldPlan {
  name: string;
  /** Where it is, for error messages: `tessera.v1.JobEvent.seq`. */
  where: string;
  kind: Kind;
  repeated: boolean;
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
 * An encoder for message `typeName` (e.g. `tessera.v1.JobEvent`) of a loaded package definition,
 * taking the plain objects proto-loader's serialiser takes: 64-bit integers as decimal strings,
 * numbers, BigInts or Longs, enums as names or numbers, bytes as Buffers. Throws if the message (or
 * one it holds) has a field this encoder does not cover, and, when encoding, on a value that does
 * not fit its field.
 */
export function compileEncoder(definition: PackageDefinition, typeName: string): Encoder {
  const g: Generated = { types: [], fields: [], enums: [], enumNames: [] };
  plan(definition, typeName, g);
  const source = g.fields.map((fields, i) => measureSource(i, fields) + writeSource(i, fields)).join('\n');
  // Field names are checked to be identifiers (see `plan`): nothing else is spliced into the source.
  const make = new Function('h', `'use strict';\nconst { uint64Of, enumOf, utf8Size, varintSize, bigVarintSize, writeVarint, writeBigVarint, writeString, enums } = h;\n${source}\nreturn { measure: measure0, write: write0 };`) as (
    h: typeof helpers & { enums: Generated['enums'] },
  ) => { measure: (m: object, sizes: number[]) => number; write: (m: object, w: Cursor) => void };
  const { measure, write } = make({ ...helpers, enums: g.enums.map((values, i) => Object.assign(values, { enumName: g.enumNames[i] })) });
  return (message) => {
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
 * A decoder for message `typeName` of a loaded package definition, giving the plain objects
 * proto-loader's deserialiser gives with Tessera's options (`keepCase`, `longs: String`,
 * `enums: String`, `defaults: true`, `oneofs: true`): every field present, at its default when not
 * sent (`''`, `0`, `false`, `'0'`, the enum's zero name, an empty Buffer, `null` for a message,
 * `[]` for a repeated one), 64-bit integers as decimal strings, enums by name (an unknown number
 * stays a number), bytes as a view of `buf`, repeated fields first in key order as protobufjs puts
 * them. Unknown fields are skipped. It covers the same field types as {@link compileEncoder} and
 * refuses the same messages; a truncated or malformed message throws.
 */
export function compileDecoder(definition: PackageDefinition, typeName: string): Decoder {
  const g: Generated = { types: [], fields: [], enums: [], enumNames: [] };
  plan(definition, typeName, g);
  const source = g.fields.map((fields, i) => decodeSource(i, fields, g)).join('\n');
  // Field names are checked to be identifiers (see `plan`): nothing else is spliced into the source.
  const make = new Function('h', `'use strict';\nconst { varint32, varint64, skip, truncated, enumNames, EMPTY } = h;\n${source}\nreturn decode0;`) as (
    h: typeof decodeHelpers & { enumNames: Record<number, string>[] },
  ) => (b: Buffer, c: ReadCursor, end: number) => object;
  const decode = make({ ...decodeHelpers, enumNames: g.enums.map(namesOf) });
  return (buf) => decode(buf, { pos: 0 }, buf.length);
}

/** An enum's names by number; of two names for one number, the later (as protobufjs's `valuesById`). */
function namesOf(values: Map<string, number>): Record<number, string> {
  return Object.fromEntries([...values].map(([name, n]) => [n, name]));
}

/** The source of `decodeN(b, c, end)`: message N from `c.pos` up to `end`. */
function decodeSource(index: number, fields: FieldPlan[], g: Generated): string {
  // Defaults as protobufjs's toObject sets them: repeated fields first, then the others, in field order.
  const defaults = [...fields.filter((f) => f.repeated), ...fields.filter((f) => !f.repeated)].map((f) => {
    if (f.repeated) return `${f.name}: []`;
    switch (f.kind) {
      case 'string':
        return `${f.name}: ''`;
      case 'bytes':
        return `${f.name}: EMPTY`;
      case 'bool':
        return `${f.name}: false`;
      case 'double':
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
  const cases = fields.map((f) => {
    const to = `m.${f.name}`;
    const length = `l = varint32(b, c); s = c.pos; c.pos = s + l; if (c.pos > end) truncated();`;
    switch (f.kind) {
      case 'string':
        return `case ${f.tag}: ${length} ${to} = b.utf8Slice(s, c.pos); break;`;
      case 'bytes':
        return `case ${f.tag}: ${length} ${to} = b.subarray(s, c.pos); break;`;
      case 'bool':
        return `case ${f.tag}: ${to} = varint32(b, c) !== 0; break;`;
      case 'double':
        return `case ${f.tag}: if (c.pos + 8 > end) truncated(); ${to} = b.readDoubleLE(c.pos); c.pos += 8; break;`;
      case 'uint32':
        return `case ${f.tag}: ${to} = varint32(b, c); break;`;
      case 'uint64':
        return `case ${f.tag}: ${to} = varint64(b, c); break;`;
      case 'enum':
        return `case ${f.tag}: { const v = varint32(b, c) | 0; const name = enumNames[${f.enumIndex}][v]; ${to} = name === undefined ? v : name; } break;`;
      case 'message': {
        const nested = `l = varint32(b, c); s = c.pos + l; if (s > end) truncated(); v = decode${f.typeIndex}(b, c, s);`;
        return f.repeated ? `case ${f.tag}: ${nested} ${to}.push(v); break;` : `case ${f.tag}: ${nested} ${to} = v; break;`;
      }
    }
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
function plan(definition: PackageDefinition, typeName: string, g: Generated): number {
  const known = g.types.indexOf(typeName);
  if (known >= 0) return known;
  const entry = definition[typeName] as { format?: string; type?: MessageDescriptor } | undefined;
  if (!entry || entry.format !== 'Protocol Buffer 3 DescriptorProto' || !entry.type) throw new Error(`${typeName}: not a message of this package definition`);
  const desc = entry.type;
  if (desc.oneofDecl && desc.oneofDecl.length > 0) throw new Error(`${typeName}: oneofs are not supported by the compiled codecs`);
  if (desc.options?.mapEntry) throw new Error(`${typeName}: map fields are not supported by the compiled codecs`);
  const index = g.types.length;
  const fields: FieldPlan[] = [];
  g.types.push(typeName);
  g.fields.push(fields);
  for (const f of desc.field) {
    const kind = KINDS[f.type];
    const where = `${typeName}.${f.name}`;
    if (!kind) throw new Error(`${where}: ${f.type} is not supported by the compiled codecs`);
    if (!IDENTIFIER.test(f.name)) throw new Error(`${where}: the field name is not an identifier`);
    if (f.proto3Optional) throw new Error(`${where}: optional fields are not supported by the compiled codecs`);
    const repeated = f.label === 'LABEL_REPEATED';
    if (repeated && kind !== 'message') throw new Error(`${where}: repeated ${kind} fields are not supported by the compiled codecs`);
    const tag = f.number * 8 + WIRE_TYPE[kind];
    const field: FieldPlan = { name: f.name, where, kind, repeated, key: varintBytes(tag), tag };
    if (kind === 'enum') {
      const name = resolve(definition, typeName, f.typeName, where);
      const at = g.enumNames.indexOf(name);
      field.enumIndex = at >= 0 ? at : g.enums.push(enumValues(definition, name, where)) - 1;
      if (at < 0) g.enumNames.push(name);
    }
    fields.push(field);
    if (kind === 'message') field.typeIndex = plan(definition, resolve(definition, typeName, f.typeName, where), g);
  }
  return index;
}

/** A type name as a field gives it (relative to the message's scope, or from the root with a leading dot), fully qualified. */
function resolve(definition: PackageDefinition, scope: string, name: string, where: string): string {
  if (name.startsWith('.')) return name.slice(1);
  for (let parts = scope.split('.'); ; parts.pop()) {
    const candidate = [...parts, name].join('.');
    if (definition[candidate]) return candidate;
    if (parts.length === 0) throw new Error(`${where}: type ${name} is not in this package definition`);
  }
}

function enumValues(definition: PackageDefinition, typeName: string, where: string): Map<string, number> {
  const entry = definition[typeName] as { format?: string; type?: { value: { name: string; number: number }[] } } | undefined;
  if (!entry || entry.format !== 'Protocol Buffer 3 EnumDescriptorProto' || !entry.type) throw new Error(`${where}: ${typeName} is not an enum of this package definition`);
  return new Map(entry.type.value.map((v) => [v.name, v.number]));
}

function varintBytes(n: number): number[] {
  const out: number[] = [];
  for (; n >= 0x80; n = Math.floor(n / 0x80)) out.push((n % 0x80) | 0x80);
  out.push(n);
  return out;
}

/**
 * The source of `measureN(m, sizes)`: message N's encoded size. Each nested message's own size is
 * pushed to `sizes` in the order met, which is the order `writeN` meets them in.
 */
function measureSource(index: number, fields: FieldPlan[]): string {
  const lines = fields.map((f) => {
    const v = `m.${f.name}`;
    const where = JSON.stringify(f.where);
    const k = f.key.length;
    switch (f.kind) {
      case 'string':
        return `v = ${v}; if (v != null && v !== '') { l = utf8Size(v); n += ${k} + varintSize(l) + l; }`;
      case 'bytes':
        return `v = ${v}; if (v != null && v.length > 0) n += ${k} + varintSize(v.length) + v.length;`;
      case 'bool':
        return `if (${v}) n += ${k + 1};`;
      case 'double':
        return `v = ${v}; if (v != null && (v !== 0 || Object.is(v, -0))) n += ${k + 8};`;
      case 'uint32':
        return `v = ${v}; if (v != null && v !== 0) { if (!(v >>> 0 === v)) throw new Error(${where} + ': ' + v + ' is not an unsigned 32-bit integer'); n += ${k} + varintSize(v); }`;
      case 'uint64':
        return `v = ${v}; if (v != null && (l = uint64Of(v, ${where})) !== 0) n += ${k} + (typeof l === 'bigint' ? bigVarintSize(l) : varintSize(l));`;
      case 'enum':
        return `v = ${v}; if (v != null && (l = enumOf(enums[${f.enumIndex}], v, ${where})) !== 0) n += ${k} + (l < 0 ? 10 : varintSize(l));`;
      case 'message': {
        const nested = `{ const at = sizes.length; sizes.push(0); l = measure${f.typeIndex}(x, sizes); sizes[at] = l; n += ${k} + varintSize(l) + l; }`;
        return f.repeated ? `v = ${v}; if (v != null) for (const x of v) ${nested}` : `v = ${v}; if (v != null) { const x = v; ${nested} }`;
      }
    }
  });
  return `function measure${index}(m, sizes) {\n  let n = 0, v, l;\n  ${lines.join('\n  ')}\n  return n;\n}\n`;
}

/** The source of `writeN(m, w)`, which writes message N where `w.pos` is and moves it on. */
function writeSource(index: number, fields: FieldPlan[]): string {
  const lines = fields.map((f) => {
    const v = `m.${f.name}`;
    const where = JSON.stringify(f.where);
    const key = f.key.map((b) => `b[w.pos++] = ${b};`).join(' ');
    switch (f.kind) {
      case 'string':
        return `v = ${v}; if (v != null && v !== '') { ${key} writeString(w, v); }`;
      case 'bytes':
        return `v = ${v}; if (v != null && v.length > 0) { ${key} writeVarint(w, v.length); b.set(v, w.pos); w.pos += v.length; }`;
      case 'bool':
        return `if (${v}) { ${key} b[w.pos++] = 1; }`;
      case 'double':
        return `v = ${v}; if (v != null && (v !== 0 || Object.is(v, -0))) { ${key} w.pos = b.writeDoubleLE(v, w.pos); }`;
      case 'uint32':
        return `v = ${v}; if (v != null && v !== 0) { ${key} writeVarint(w, v); }`;
      case 'uint64':
        return `v = ${v}; if (v != null && (l = uint64Of(v, ${where})) !== 0) { ${key} if (typeof l === 'bigint') writeBigVarint(w, l); else writeVarint(w, l); }`;
      case 'enum':
        // A negative enum value is sign-extended to ten bytes, as int32 is.
        return `v = ${v}; if (v != null && (l = enumOf(enums[${f.enumIndex}], v, ${where})) !== 0) { ${key} if (l < 0) writeBigVarint(w, BigInt.asUintN(64, BigInt(l))); else writeVarint(w, l); }`;
      case 'message': {
        const nested = `{ ${key} writeVarint(w, w.sizes[w.next++]); write${f.typeIndex}(x, w); }`;
        return f.repeated ? `v = ${v}; if (v != null) for (const x of v) ${nested}` : `v = ${v}; if (v != null) { const x = v; ${nested} }`;
      }
    }
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

const helpers = { uint64Of, enumOf, utf8Size, varintSize, bigVarintSize, writeVarint, writeBigVarint, writeString };
