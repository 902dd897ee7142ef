import { describe, expect, it } from 'vitest';
import { bool, num, record, str } from './param-checks.js';

describe('param readers', () => {
  it('name the field and what it got, NaN included', () => {
    expect(() => num('image.blur', Number.NaN)).toThrow('image.blur: expected a number, got NaN');
    expect(() => num('image.blur', 'abc')).toThrow('image.blur: expected a number, got string');
    expect(() => str('image.format', 3)).toThrow('image.format: expected a string, got number');
    expect(() => bool('image.strip', 'yes')).toThrow('image.strip: expected true or false, got string');
    expect(() => record('image', [])).toThrow('image: expected a message, got a list');
  });

  it('read absent fields as their proto defaults', () => {
    expect([num('a', undefined), str('b', null), bool('c', undefined), record('d', undefined)]).toEqual([0, '', false, {}]);
    expect(num('a', 2.5)).toBe(2.5);
  });
});
