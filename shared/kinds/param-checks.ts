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
  if (typeof v !== 'number' || Number.isNaN(v)) throw invalidArgument(`${field}: expected a number, got ${typeof v}`);
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
