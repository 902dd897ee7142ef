/**
 * A worker checks the colour description of a segment's plan before it reaches ffmpeg's filter
 * graph (a buggy or impersonated coordinator may send anything): only the fields and names
 * `videoColour` can give, in any order.
 */
import { describe, expect, it } from 'vitest';
import { colourFilter, colourProblem, videoColour } from './video-plan.js';

describe('colourProblem', () => {
  it('takes what videoColour gives, in any key order', () => {
    const c = videoColour({ colorRange: 'pc', colorPrimaries: 'bt2020', colorTransfer: 'smpte2084', colorSpace: 'bt2020nc' });
    expect(c).toBeDefined();
    expect(colourProblem(c)).toBeUndefined();
    expect(colourProblem({ space: 'bt709', range: 'tv' })).toBeUndefined();
    expect(colourFilter({ space: 'bt709', range: 'tv' })).toBe('setparams=range=tv:colorspace=bt709');
  });

  it('names an unknown field or name, and refuses what is not a description', () => {
    expect(colourProblem({ range: 'pc:x=1' })).toBe('colour.range "pc:x=1" is not a name ffmpeg knows');
    expect(colourProblem({ transfer: 7 })).toBe('colour.transfer 7 is not a name ffmpeg knows');
    expect(colourProblem({ range: 'tv', matrix: 'bt709' })).toBe('colour has a field "matrix" ffmpeg does not know');
    expect(colourProblem({ toString: 'tv' })).toBe('colour has a field "toString" ffmpeg does not know');
    expect(colourProblem({})).toBe('colour is empty');
    expect(colourProblem('bt709')).toBe('colour is not an object');
    expect(colourProblem(null)).toBe('colour is not an object');
    expect(colourProblem(['tv'])).toBe('colour is not an object');
  });
});
