import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeString, parseSpecificCharacterSet, resolveCharacterSet } from '../../src/dicom/charset.js';

const ESC = 0x1b;
/** Bytes from a mix of ASCII strings and byte values, as the PS3.5 annexes list them. */
function bytes(...parts: (string | number[])[]): Uint8Array {
  const out: number[] = [];
  for (const p of parts) {
    if (typeof p === 'string') for (const c of p) out.push(c.charCodeAt(0));
    else out.push(...p);
  }
  return Uint8Array.from(out);
}
const ESC_$B = [ESC, 0x24, 0x42]; // JIS X 0208 to G0
const ESC_B = [ESC, 0x28, 0x42]; // ASCII to G0
const ESC_J = [ESC, 0x28, 0x4a]; // JIS X 0201 Roman to G0
const ESC_$_C = [ESC, 0x24, 0x29, 0x43]; // KS X 1001 to G1

describe('parseSpecificCharacterSet', () => {
  it('keeps an empty first value, which stands for the default repertoire', () => {
    assert.deepEqual(parseSpecificCharacterSet('\\ISO 2022 IR 87'), ['', 'ISO 2022 IR 87']);
  });
  it('trims padding and accepts DICOM JSON values with nulls', () => {
    assert.deepEqual(parseSpecificCharacterSet('ISO_IR 100 '), ['ISO_IR 100']);
    assert.deepEqual(parseSpecificCharacterSet([null, 'ISO 2022 IR 149']), ['', 'ISO 2022 IR 149']);
    assert.deepEqual(parseSpecificCharacterSet(undefined), []);
    assert.deepEqual(parseSpecificCharacterSet(''), []);
  });
  it('canonicalises common misspellings', () => {
    assert.deepEqual(parseSpecificCharacterSet('ISO_IR100'), ['ISO_IR 100']);
    assert.deepEqual(parseSpecificCharacterSet('iso-ir 192'), ['ISO_IR 192']);
  });
});

describe('decodeString: PS3.5 Annex H (Japanese)', () => {
  it('decodes H.3.1, ISO 2022 IR 87 with ASCII as the initial set', () => {
    const b = bytes(
      'Yamada^Tarou=',
      ESC_$B, [0x3b, 0x33, 0x45, 0x44], ESC_B, '^', ESC_$B, [0x42, 0x40, 0x4f, 0x3a], ESC_B, '=',
      ESC_$B, [0x24, 0x64, 0x24, 0x5e, 0x24, 0x40], ESC_B, '^', ESC_$B, [0x24, 0x3f, 0x24, 0x6d, 0x24, 0x26], ESC_B,
    );
    assert.equal(decodeString(b, ['', 'ISO 2022 IR 87'], { isPersonName: true }), 'Yamada^Tarou=山田^太郎=やまだ^たろう');
  });

  it('decodes H.3.2, ISO 2022 IR 13 (half-width katakana in G1) with ISO 2022 IR 87', () => {
    const b = bytes(
      [0xd4, 0xcf, 0xc0, 0xde], '^', [0xc0, 0xdb, 0xb3], '=',
      ESC_$B, [0x3b, 0x33, 0x45, 0x44], ESC_J, '^', ESC_$B, [0x42, 0x40, 0x4f, 0x3a], ESC_J, '=',
      ESC_$B, [0x24, 0x64, 0x24, 0x5e, 0x24, 0x40], ESC_J, '^', ESC_$B, [0x24, 0x3f, 0x24, 0x6d, 0x24, 0x26], ESC_J,
    );
    assert.equal(
      decodeString(b, ['ISO 2022 IR 13', 'ISO 2022 IR 87'], { isPersonName: true }),
      'ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう',
    );
  });

  it('returns to the initial set at a component delimiter even without an escape back', () => {
    // a writer that forgot ESC ( B before '^': the delimiter is still ASCII-encoded by rule
    const b = bytes(ESC_$B, [0x3b, 0x33, 0x45, 0x44], ESC_B, '^Tarou');
    assert.equal(decodeString(b, ['', 'ISO 2022 IR 87'], { isPersonName: true }), '山田^Tarou');
  });

  it('decodes single-byte ISO_IR 13 katakana', () => {
    assert.equal(decodeString(bytes([0xd4, 0xcf, 0xc0, 0xde]), ['ISO_IR 13']), 'ﾔﾏﾀﾞ');
  });

  it('decodes JIS X 0212 (ISO 2022 IR 159)', () => {
    // 0x3021 in JIS X 0212 is 丂 (U+4E02)
    const b = bytes([ESC, 0x24, 0x28, 0x44, 0x30, 0x21], ESC_B);
    assert.equal(decodeString(b, ['', 'ISO 2022 IR 159']), '丂');
  });
});

describe('decodeString: PS3.5 Annex I (Korean)', () => {
  it('decodes I.2, ISO 2022 IR 149 with an escape before each Hangul/Hanja run', () => {
    const b = bytes(
      'Hong^Gildong=',
      ESC_$_C, [0xfb, 0xf3], '^', ESC_$_C, [0xd1, 0xce, 0xd4, 0xd7], '=',
      ESC_$_C, [0xc8, 0xab], '^', ESC_$_C, [0xb1, 0xe6, 0xb5, 0xbf],
    );
    assert.equal(decodeString(b, ['', 'ISO 2022 IR 149'], { isPersonName: true }), 'Hong^Gildong=洪^吉洞=홍^길동');
  });

  it('decodes multi-line Korean text where G1 stays designated within a line', () => {
    const b = bytes(ESC_$_C, [0xc7, 0xd1, 0xb1, 0xdb], '\r\n', ESC_$_C, [0xc7, 0xd1]);
    assert.equal(decodeString(b, ['', 'ISO 2022 IR 149']), '한글\r\n한');
  });
});

describe('decodeString: PS3.5 Annex J (Chinese)', () => {
  it('decodes J.1, UTF-8 (ISO_IR 192)', () => {
    const b = bytes('Wang^XiaoDong=', [0xe7, 0x8e, 0x8b], '^', [0xe5, 0xb0, 0x8f, 0xe6, 0x9d, 0xb1], '=');
    assert.equal(decodeString(b, ['ISO_IR 192'], { isPersonName: true }), 'Wang^XiaoDong=王^小東=');
  });

  it('decodes J.3, GB18030', () => {
    const b = bytes('Wang^XiaoDong=', [0xcd, 0xf5], '^', [0xd0, 0xa1, 0xb6, 0xab], '=');
    assert.equal(decodeString(b, ['GB18030'], { isPersonName: true }), 'Wang^XiaoDong=王^小东=');
  });

  it('decodes GBK the same way', () => {
    assert.equal(decodeString(bytes([0xcd, 0xf5]), ['GBK']), '王');
  });

  it('decodes ISO 2022 IR 58 (GB 2312 in G1)', () => {
    const b = bytes('Zhang^XiaoDong=', [ESC, 0x24, 0x29, 0x41, 0xd5, 0xc5], '^', [ESC, 0x24, 0x29, 0x41, 0xd0, 0xa1, 0xb6, 0xab], '=');
    assert.equal(decodeString(b, ['', 'ISO 2022 IR 58'], { isPersonName: true }), 'Zhang^XiaoDong=张^小东=');
  });
});

describe('decodeString: single-byte character sets', () => {
  it('decodes latin1 (ISO_IR 100)', () => {
    assert.equal(decodeString(bytes('Buc^J', [0xe9], 'r', [0xf4], 'me'), ['ISO_IR 100']), 'Buc^Jérôme');
  });
  it('decodes cyrillic (ISO_IR 144)', () => {
    // Люкceмбypг as in the DICOM chrRuss sample: mixed Cyrillic and Latin letters
    const b = bytes([0xbb, 0xee, 0xda], 'ce', [0xdc, 0xd1], 'yp', [0xd3]);
    assert.equal(decodeString(b, ['ISO_IR 144']), 'Люкceмбypг');
  });
  it('decodes greek (ISO_IR 126)', () => {
    const b = bytes([0xc4, 0xe9, 0xef, 0xed, 0xf5, 0xf3, 0xe9, 0xef, 0xf2]);
    assert.equal(decodeString(b, ['ISO_IR 126']), 'Διονυσιος');
  });
  it('decodes arabic (ISO_IR 127)', () => {
    const b = bytes([0xe2, 0xc8, 0xc7, 0xe6, 0xea], '^', [0xe4, 0xe6, 0xd2, 0xc7, 0xd1]);
    assert.equal(decodeString(b, ['ISO_IR 127']), 'قباني^لنزار');
  });
  it('decodes hebrew (ISO_IR 138)', () => {
    const b = bytes([0xf9, 0xf8, 0xe5, 0xef], '^', [0xe3, 0xe1, 0xe5, 0xf8, 0xe4]);
    assert.equal(decodeString(b, ['ISO_IR 138']), 'שרון^דבורה');
  });
  it('decodes latin2 (ISO_IR 101), latin5 (ISO_IR 148) and thai (ISO_IR 166)', () => {
    assert.equal(decodeString(bytes([0xa9]), ['ISO_IR 101']), 'Š');
    assert.equal(decodeString(bytes([0xdd]), ['ISO_IR 148']), 'İ');
    assert.equal(decodeString(bytes([0xa1]), ['ISO_IR 166']), 'ก');
  });
  it('switches single-byte G1 sets by escape (ISO 2022 IR 100 and IR 126)', () => {
    const b = bytes('J', [0xe9], ' ', [ESC, 0x2d, 0x46, 0xc4], '\\', [0xe9]);
    // after '\' the initial set (IR 100 in G1) is active again
    assert.equal(decodeString(b, ['ISO 2022 IR 100', 'ISO 2022 IR 126']), 'Jé Δ\\é');
  });
});

describe('decodeString: defaults and unknown terms', () => {
  it('decodes non-ASCII bytes with the default character set when (0008,0005) is absent', () => {
    assert.equal(decodeString(bytes([0xe9]), []), 'é');
    assert.equal(decodeString(bytes([0xe9]), [], { defaultCharacterSet: 'ISO_IR 144' }), 'щ');
  });
  it('falls back to the default for an unknown term and reports it', () => {
    const d = resolveCharacterSet(['ISO_IR 999'], 'ISO_IR 100');
    assert.equal(d.unknown, true);
    assert.equal(d.decode(bytes([0xe9])), 'é');
    assert.equal(resolveCharacterSet(['ISO_IR 100']).unknown, false);
    assert.equal(resolveCharacterSet(['', 'ISO 2022 IR 87']).unknown, false);
  });
  it('leaves plain ASCII untouched whatever the declaration', () => {
    assert.equal(decodeString(bytes('DOE^JOHN'), ['', 'ISO 2022 IR 87'], { isPersonName: true }), 'DOE^JOHN');
  });
});
