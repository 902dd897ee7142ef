import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { cropOption } from '../../client/commands/specs.js';
import { validateImageParams } from './image-params.js';

describe('image params', () => {
  it('say what quality takes, 0 included', () => {
    expect(validateImageParams({ quality: 0 }).quality).toBe(0);
    expect(validateImageParams({ quality: 100 }).quality).toBe(100);
    expect(() => validateImageParams({ quality: 101 })).toThrow(
      expect.objectContaining({ code: status.INVALID_ARGUMENT, message: "image.quality: 101 is out of range (1..100; unset for the encoder's default)" }),
    );
  });

  it('a crop given is a crop: one of zeros is refused, as one of zero width is (it was taken for none, and the whole image came back)', () => {
    expect(() => validateImageParams({ crop: { left: 0, top: 0, width: 0, height: 0 } })).toThrow(expect.objectContaining({ code: status.INVALID_ARGUMENT, message: 'image.crop: width and height must both be positive' }));
    expect(() => validateImageParams({ crop: {} })).toThrow(expect.objectContaining({ code: status.INVALID_ARGUMENT }));
    expect(validateImageParams({ crop: null }).crop).toBeUndefined();
    expect(validateImageParams({}).crop).toBeUndefined();
    expect(validateImageParams({ crop: { left: 0, top: 0, width: 5, height: 6 } }).crop).toEqual({ left: 0, top: 0, width: 5, height: 6 });
    expect(() => cropOption('0,0,0,0')).toThrow('--crop: the width and height must both be positive, got "0,0,0,0"');
  });
});
