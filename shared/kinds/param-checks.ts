/**
 * Typed readers for param fields. Over gRPC the proto decoder fixes the types, but the validators
 * also run on values from other paths (config files, tests, future transports): a value of the
 * wrong type is rejected with INVALID_ARGUMENT naming the field, never a TypeError.
 */
import { invalidArgument } from '../errors.js';

export function str(field: string, v: unknown): string {
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw invalidArgument(`${field}: expected a string, got ${typeof v}`);
  return v;
}

export function num(field: string, v: unknown): number {
  if (v === undefined || v === null) return 0;
  if (typeof v !== 'number') throw invalidArgument(`${field}: expected a number, got ${typeof v}`);
  if (Number.isNaN(v)) throw invalidArgument(`${field}: expected a number, got NaN`);
  return v;
}

export function bool(field: string, v: unknown): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') throw invalidArgument(`${field}: expected true or false, got ${typeof v}`);
  return v;
}

/** The params message itself: an object or nothing. */
export function record(field: string, v: unknown): Record<string, unknown> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw invalidArgument(`${field}: expected a message, got ${Array.isArray(v) ? 'a list' : typeof v}`);
  return v as Record<string, unknown>;
}

export type FieldType = 'string' | 'number' | 'boolean' | 'object';

/**
 * Checks the type of every field present in `raw` against `schema` (unknown fields are ignored:
 * the proto decoder never produces them). Returns `raw` as a record.
 */
export function checkFieldTypes(prefix: string, raw: unknown, schema: Record<string, FieldType>): Record<string, unknown> {
  const p = record(prefix, raw);
  for (const [field, type] of Object.entries(schema)) {
    const v = p[field];
    if (v === undefined || v === null) continue;
    const actual = Array.isArray(v) ? 'list' : typeof v;
    if (actual !== type || (type === 'number' && Number.isNaN(v))) throw invalidArgument(`${prefix}.${field}: expected a ${type === 'object' ? 'message' : type}, got ${Number.isNaN(v) ? 'NaN' : actual}`);
  }
  return p;
}
