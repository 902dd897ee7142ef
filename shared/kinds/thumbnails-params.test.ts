import { describe, expect, it } from 'vitest';
import { TesseraError } from '../errors.js';
import { parseThumbnailParams } from './thumbnails-params.js';

describe('parseThumbnailParams', () => {
  it('applies defaults and parses the sprite grid', () => {
    expect(parseThumbnailParams({ every: 10 })).toEqual({ every: 10, count: 0, width: 320, format: 'jpeg', sprite: null });
    expect(parseThumbnailParams({ count: 20, width: 160, format: 'WEBP', sprite: '5x4' })).toEqual({ every: 0, count: 20, width: 160, format: 'webp', sprite: { cols: 5, rows: 4 } });
  });

  it.each([
    [{}, 'every or count: one of them is required'],
    [{ every: 2, count: 3 }, 'every and count: give one or the other, not both'],
    [{ every: 0.01 }, 'every: 0.01 is below 0.04 s'],
    [{ count: 20_000 }, 'count: 20000 is outside 1..10000'],
    [{ count: 1, width: 8 }, 'width: 8 is outside 16..4096'],
    [{ count: 1, format: 'png' }, 'format: "png" is not one of jpeg, webp'],
    [{ count: 1, sprite: '5by5' }, 'sprite: "5by5" is not COLSxROWS such as 5x5'],
    [{ count: 1, sprite: '0x3' }, 'sprite: 0x3 is outside 1x1..100x100'],
    [{ count: 40, width: 1000, sprite: '20x2' }, 'sprite: 20 columns of 1000 px exceed the 16383-pixel sheet limit'],
    [{ every: 2, width: 1000, sprite: '20x2' }, 'sprite: 20 columns of 1000 px exceed the 16383-pixel sheet limit'],
  ])('rejects %j naming the field', (raw, message) => {
    let err: unknown;
    try {
      parseThumbnailParams(raw);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TesseraError);
    expect((err as TesseraError).codeName).toBe('INVALID_ARGUMENT');
    expect((err as TesseraError).message).toContain(message);
  });
});

describe('a sprite of more columns than thumbnails', () => {
  it('is as wide as its thumbnails: --count 5 --sprite 60x1 is accepted (was refused as 60 columns)', () => {
    expect(parseThumbnailParams({ count: 5, sprite: '60x1' }).sprite).toEqual({ cols: 60, rows: 1 });
  });
});
