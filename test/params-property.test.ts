/**
 * Property-based test of every kind's param validator: any params message (fields from the proto's
 * own descriptors, values anywhere in their types' ranges, sent through the real protobuf
 * serialiser and deserialiser as the server sees them) is either accepted or rejected with
 * INVALID_ARGUMENT, never a crash; and so is any JavaScript value at all, of any type, in any field.
 */
import fc from 'fast-check';
import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { coordinatorKinds } from '../coordinator/kinds/index.js';
import { TesseraError } from '../shared/errors.js';
import { loadTesseraProto } from '../shared/proto.js';
import type { JobSpec__Output } from '../shared/proto/generated/tessera/v1/JobSpec.js';

interface FieldDescriptor {
  name: string;
  type: string;
  label: string;
  typeName: string;
  oneofIndex?: number;
}

const { packageDefinition } = loadTesseraProto();
/** Descriptors name types relative to the package ("ImageParams") or absolutely (".tessera.v1.ImageParams"). */
const fullName = (t: string): string => (t.startsWith('.') ? t.slice(1) : packageDefinition[t] ? t : `tessera.v1.${t}`);
const fieldsOf = (typeName: string): FieldDescriptor[] => (packageDefinition[fullName(typeName)] as unknown as { type: { field: FieldDescriptor[] } }).type.field;
const enumValues = (typeName: string): string[] => (packageDefinition[fullName(typeName)] as unknown as { type: { value: { name: string }[] } }).type.value.map((v) => v.name);
const submit = (packageDefinition['tessera.v1.JobService'] as unknown as Record<string, { requestSerialize(v: unknown): Buffer; requestDeserialize(b: Buffer): { spec: JobSpec__Output } }>)['SubmitJob']!;

/** Values anywhere in a scalar type's range, with the edges and the strange ones likelier. */
function scalar(f: FieldDescriptor, depth: number): fc.Arbitrary<unknown> {
  switch (f.type) {
    case 'TYPE_INT32':
    case 'TYPE_SINT32':
      return fc.oneof(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), fc.integer({ min: -5, max: 5000 }));
    case 'TYPE_UINT32':
      return fc.oneof(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 0, max: 5000 }));
    case 'TYPE_INT64':
    case 'TYPE_UINT64':
      return fc.bigInt({ min: f.type === 'TYPE_UINT64' ? 0n : -(2n ** 63n), max: 2n ** 63n - 1n }).map(String);
    case 'TYPE_DOUBLE':
    case 'TYPE_FLOAT':
      return fc.oneof(fc.double(), fc.double({ min: -10, max: 1000, noNaN: true }));
    case 'TYPE_BOOL':
      return fc.boolean();
    case 'TYPE_STRING':
      return fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom('', 'h264', 'aac', 'webp', 'cover', '2M', '128k', '10x10', '0,0,10,10', '-1', '1e309', 'NaN'));
    case 'TYPE_BYTES':
      return fc.uint8Array({ maxLength: 16 }).map((a) => Buffer.from(a));
    case 'TYPE_ENUM':
      return fc.constantFrom(...enumValues(f.typeName));
    case 'TYPE_MESSAGE':
      return depth > 2 ? fc.constant(undefined) : message(f.typeName, depth + 1);
    default:
      return fc.constant(undefined);
  }
}

/** Any message of `typeName`: each field present or not, repeated fields as short arrays. */
function message(typeName: string, depth = 0): fc.Arbitrary<Record<string, unknown>> {
  const parts: Record<string, fc.Arbitrary<unknown>> = {};
  for (const f of fieldsOf(typeName)) {
    const v = scalar(f, depth);
    parts[f.name] = f.label === 'LABEL_REPEATED' ? fc.array(v, { maxLength: 3 }) : v;
  }
  return fc.record(parts, { requiredKeys: [] });
}

function expectAcceptedOrInvalid(run: () => unknown): void {
  try {
    expect(run()).toBeTypeOf('object');
  } catch (err) {
    expect(err, String(err)).toBeInstanceOf(TesseraError);
    expect((err as TesseraError).code).toBe(status.INVALID_ARGUMENT);
  }
}

const kindFields = fieldsOf('tessera.v1.JobSpec').filter((f) => f.type === 'TYPE_MESSAGE' && coordinatorKinds.has(f.name));

describe('param validators', () => {
  it('cover every kind the coordinator registers', () => {
    expect(kindFields.map((f) => f.name).sort()).toEqual([...coordinatorKinds.keys()].sort());
  });

  for (const field of kindFields) {
    it(`${field.name}: any params message off the wire is accepted or INVALID_ARGUMENT`, () => {
      const kind = coordinatorKinds.get(field.name)!;
      fc.assert(
        fc.property(message(field.typeName), (params) => {
          // Through the real serialiser and deserialiser, as the coordinator receives it.
          const spec = submit.requestDeserialize(submit.requestSerialize({ spec: { [field.name]: params } })).spec;
          expectAcceptedOrInvalid(() => kind.validate((spec as unknown as Record<string, unknown>)[field.name], spec));
        }),
        { numRuns: 300 },
      );
    });

    it(`${field.name}: any JavaScript value in any field (not only what the wire can carry) is accepted or INVALID_ARGUMENT`, () => {
      const kind = coordinatorKinds.get(field.name)!;
      const names = fieldsOf(field.typeName).map((f) => f.name);
      const spec = { [field.name]: {} } as unknown as JobSpec__Output;
      fc.assert(
        fc.property(fc.oneof(fc.anything(), fc.dictionary(fc.constantFrom(...names), fc.anything())), (params) => {
          expectAcceptedOrInvalid(() => kind.validate(params, spec));
        }),
        { numRuns: 300 },
      );
    });
  }
});
