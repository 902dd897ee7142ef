import { describe, expect, it } from 'vitest';
import { outputName } from './media/audio-pieces.js';
import { foldedName, NameSet, safeFileName, safeOutputName, withExtension } from './names.js';

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

describe('safeFileName: names Windows cannot hold as files', () => {
  const refusal = (name: string): string => {
    try {
      safeFileName(name, 'input name');
    } catch (err) {
      expect((err as { code?: number }).code, name).toBe(3); // INVALID_ARGUMENT
      return (err as Error).message;
    }
    return 'accepted';
  };

  it('refuses device names, with any extension, any case, and spaces before the extension', () => {
    for (const name of ['CON', 'con', 'nul.txt', 'NUL.tar.gz', 'COM1.png', 'com9', 'LPT1.jpg', 'lpt0', 'aux.mp4', 'prn', 'nul .txt', 'COM\u00b9.jpg', 'CONIN$', 'conout$.log']) {
      expect(refusal(name), name).toMatch(new RegExp(`^input name ".*" is the device [A-Z0-9$\u00b9]+ on Windows \\(CON, PRN, AUX, NUL, COM0-9, LPT0-9, with any extension\\): rename it$`));
    }
    expect(refusal('nul.txt')).toBe('input name "nul.txt" is the device NUL on Windows (CON, PRN, AUX, NUL, COM0-9, LPT0-9, with any extension): rename it');
  });

  it('refuses the characters Windows does not allow, naming the one found', () => {
    for (const c of ['<', '>', ':', '"', '|', '?', '*']) {
      expect(refusal(`a${c}b.txt`), c).toBe(`input name "a${c}b.txt" contains "${c}", which Windows does not allow in file names (none of < > : " | ? *)`);
    }
  });

  it('refuses a name ending with a dot or a space, and control characters as before', () => {
    expect(refusal('photo.')).toBe('input name "photo." ends with a dot, which Windows drops from file names: rename it');
    expect(refusal('photo.jpg ')).toBe('input name "photo.jpg " ends with a space, which Windows drops from file names: rename it');
    expect(refusal('...')).toMatch(/ends with a dot/);
    expect(refusal('a\u0001b.png')).toMatch(/must not contain slashes or control characters/);
    expect(refusal('a\tb.png')).toMatch(/must not contain slashes or control characters/);
  });

  it('takes names that only look like those', () => {
    for (const name of ['console.png', 'CONFIG.txt', 'com10.jpg', 'lpt.png', 'nul-1.txt', 'x.nul', 'a.con.txt', ' nul.txt', '.con', 'com1x.png', 'auxiliary.wav', 'photo .jpg', '.hidden', 'a..b', 'caf\u00e9.png', '100%.png', "it's.png"]) {
      expect(refusal(name), name).toBe('accepted');
    }
  });

  it('holds outputs to the same rules', () => {
    expect(() => safeOutputName('COM1.png')).toThrow(/output name "COM1\.png" is the device COM1 on Windows/);
    expect(() => safeOutputName('a:b.png')).toThrow(/output name "a:b\.png" contains ":"/);
  });
});

describe('names derived from accepted inputs', () => {
  // Accepted input names that come close to a rule: a device name's letters, dots and spaces where
  // a new extension or a stem would end, no extension at all.
  const inputs = ['photo..jpg', 'photo .jpg', 'a. .png', 'nul-x.jpg', 'con2.png', '.jpg', '.con.png', 'COM', 'lpt', 'x', 'a.b.c.tiff', 'clip. .mov'];

  it('are accepted too, and a new extension leaves no stem ending with a dot or a space (a pyramid zip holds a folder of that stem)', () => {
    for (const input of inputs) {
      expect(safeFileName(input, 'input name'), input).toBe(input);
      for (const ext of ['png', 'webp', 'zip', 'mp4']) {
        const out = withExtension(input, ext);
        expect(safeOutputName(out), `${input} -> ${out}`).toBe(out);
        expect(out.slice(0, -(ext.length + 1)), `${input} -> ${out}`).not.toMatch(/[. ]$/);
        // A name that stood for a device on Windows may not come out of one that did not.
        expect(() => safeFileName(out.slice(0, -(ext.length + 1)) || 'output'), `${input} -> ${out}`).not.toThrow();
      }
    }
    expect(withExtension('photo..jpg', 'zip')).toBe('photo.zip');
    expect(withExtension('photo .jpg', 'png')).toBe('photo.png');
    expect(withExtension('.jpg', 'png')).toBe('output.png');
  });

  it("are accepted for audio outputs and their waveforms", () => {
    const taken = new NameSet(['audio-report.json']);
    for (const input of inputs) {
      const out = outputName(input, 'm4a', taken);
      taken.add(out);
      expect(safeOutputName(out), `${input} -> ${out}`).toBe(out);
      const stem = out.slice(0, out.lastIndexOf('.'));
      expect(safeOutputName(`${stem}.waveform.json`)).toBe(`${stem}.waveform.json`);
    }
  });
});
