import { describe, expect, it } from 'vitest';
import { outputName } from './media/audio-pieces.js';
import { foldedName, NameSet } from './names.js';

describe('NameSet', () => {
  it('holds one name per case and Unicode form, and says which name holds it', () => {
    const names = new NameSet(['Photo.JPG', 'caf\u00e9.png']);
    expect(names.has('photo.jpg')).toBe(true);
    expect(names.get('PHOTO.jpg')).toBe('Photo.JPG');
    // e + combining acute is é as macOS writes it.
    expect(names.get('cafe\u0301.PNG')).toBe('caf\u00e9.png');
    expect(names.has('photo.jpeg')).toBe(false);
    names.add('photo.jpg');
    expect(names.size).toBe(2);
    expect(names.get('photo.jpg'), 'the first name stays').toBe('Photo.JPG');
    expect(foldedName('Ä.WAV')).toBe(foldedName('a\u0308.wav'));
  });

  it("gives the audio kind's outputs distinct names under case", () => {
    const taken = new NameSet(['audio-report.json']);
    expect(['Song.flac', 'song.wav', 'SONG.ogg', 'Audio-Report.x'].map((input) => outputName(input, 'json', taken))).toEqual([
      'Song.json',
      'song-2.json',
      'SONG-3.json',
      'Audio-Report-2.json',
    ]);
  });
});
