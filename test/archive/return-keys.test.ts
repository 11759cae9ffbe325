// C-FIND's "only the requested return keys" builder (archive/query/return-keys.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { returnKeysOf, selectReturnKeys } from '../../src/archive/query/return-keys.js';
import type { DicomJsonDataset } from '../../src/dicom/types.js';

const MATCH: DicomJsonDataset = {
  '00080020': { vr: 'DA', Value: ['20200101'] },
  '00080050': { vr: 'SH', Value: ['ACC1'] },
  '00100010': { vr: 'PN', Value: [{ Alphabetic: 'Doe^John' }] },
  '00400275': {
    vr: 'SQ',
    Value: [
      { '00401001': { vr: 'SH', Value: ['RP1'] }, '0032000A': { vr: 'CS', Value: ['X'] } },
      { '00401001': { vr: 'SH', Value: ['RP2'] } },
    ],
  },
};

describe('selectReturnKeys', () => {
  it('returns exactly the requested keys, empty where the match has no value', () => {
    const keys = returnKeysOf({ '00100010': { vr: 'PN' }, '00081030': { vr: 'LO' }, '00080052': { vr: 'CS', Value: ['STUDY'] } }, new Set(['00080052']));
    assert.deepEqual(selectReturnKeys(MATCH, keys), { '00081030': { vr: 'LO' }, '00100010': MATCH['00100010'] });
  });

  it('a sequence key with an empty item returns the stored items whole; with keys, only those keys', () => {
    const whole = returnKeysOf({ '00400275': { vr: 'SQ', Value: [] } });
    assert.deepEqual(selectReturnKeys(MATCH, whole)['00400275'], MATCH['00400275']);
    const some = returnKeysOf({ '00400275': { vr: 'SQ', Value: [{ '00401001': { vr: 'SH' } }] } });
    assert.deepEqual(selectReturnKeys(MATCH, some)['00400275'], { vr: 'SQ', Value: [{ '00401001': { vr: 'SH', Value: ['RP1'] } }, { '00401001': { vr: 'SH', Value: ['RP2'] } }] });
    assert.deepEqual(selectReturnKeys({}, some)['00400275'], { vr: 'SQ', Value: [] });
  });

  it('skips group lengths and the keys asked to skip', () => {
    const keys = returnKeysOf({ '00080000': { vr: 'UL', Value: [4] }, '00080005': { vr: 'CS' }, '00080020': { vr: 'DA' } }, new Set(['00080005']));
    assert.deepEqual(keys.map((k) => k.tag), ['00080020']);
  });
});
