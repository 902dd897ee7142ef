import { describe, expect, it } from 'vitest';
import { validateImageParams } from '../kinds/image-params.js';
import { checkSampleFormat, intermediateSpace, splitForTiles } from './tile-pipeline.js';

const prefix = (grayscale: boolean) => splitForTiles(validateImageParams({ blur: 2, grayscale })).prefix;

describe('intermediateSpace', () => {
  it('keeps 16-bit RGB and grey sources 16-bit; 8-bit ones take sharp default', () => {
    expect(intermediateSpace({ depth: 'ushort', channels: 3, space: 'rgb16' }, prefix(false))).toBe('rgb16');
    expect(intermediateSpace({ depth: 'ushort', channels: 4, space: 'rgb16' }, prefix(false))).toBe('rgb16');
    expect(intermediateSpace({ depth: 'ushort', channels: 1, space: 'grey16' }, prefix(false))).toBe('grey16');
    expect(intermediateSpace({ depth: 'ushort', channels: 2, space: 'grey16' }, prefix(false))).toBe('grey16');
    expect(intermediateSpace({ depth: 'uchar', channels: 3, space: 'srgb' }, prefix(false))).toBeUndefined();
  });

  it('greyscale in the prefix is 8-bit b-w, as in the whole-image pipeline', () => {
    expect(intermediateSpace({ depth: 'ushort', channels: 3, space: 'rgb16' }, prefix(true))).toBeUndefined();
  });
});

describe('checkSampleFormat', () => {
  it.each([
    ['uchar', 'srgb'],
    ['uchar', 'cmyk'],
    ['ushort', 'rgb16'],
    ['ushort', 'grey16'],
    ['float', 'scrgb'],
  ])('accepts %s %s', (depth, space) => {
    expect(() => checkSampleFormat({ depth, space }, 'a.tif')).not.toThrow();
  });

  it.each([
    ['ushort', 'cmyk'],
    ['ushort', 'multiband'],
    ['short', 'labs'],
    ['float', 'multiband'],
  ])('refuses %s %s with INVALID_ARGUMENT naming the input', (depth, space) => {
    expect(() => checkSampleFormat({ depth, space }, 'a.tif')).toThrow(
      expect.objectContaining({ codeName: 'INVALID_ARGUMENT', input: 'a.tif', message: expect.stringContaining(`a.tif: tiled processing is pixel-exact`) }),
    );
  });
});
