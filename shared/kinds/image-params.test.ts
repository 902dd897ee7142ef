import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { validateImageParams } from './image-params.js';

describe('image params', () => {
  it('say what quality takes, 0 included', () => {
    expect(validateImageParams({ quality: 0 }).quality).toBe(0);
    expect(validateImageParams({ quality: 100 }).quality).toBe(100);
    expect(() => validateImageParams({ quality: 101 })).toThrow(
      expect.objectContaining({ code: status.INVALID_ARGUMENT, message: "image.quality: 101 is out of range (1..100, or 0 for the encoder's default)" }),
    );
  });
});
