import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { element, firstNumber, firstString, personNameString, stripInternal } from '../../src/dicom/json.js';
import type { DicomJsonDataset } from '../../src/dicom/types.js';

describe('DICOM JSON helpers', () => {
  const ds: DicomJsonDataset = {
    '00100010': { vr: 'PN', Value: [{ Alphabetic: 'Yamada^Tarou', Ideographic: '山田^太郎' }] },
    '00200013': { vr: 'IS', Value: [7] },
    '00180050': { vr: 'DS', Value: ['2.5'] },
    '00080060': { vr: 'CS', Value: ['CT'] },
    '00081140': { vr: 'SQ', Value: [{ '00091010': { vr: 'OB', _bulk: { offset: 10, length: 4000 } } }] },
    '00091011': { vr: 'OB', _bulk: { offset: 5000, length: 4000 } },
  };
  it('reads the first value as a string', () => {
    assert.equal(firstString(ds, '00080060'), 'CT');
    assert.equal(firstString(ds, '00100010'), 'Yamada^Tarou=山田^太郎');
    assert.equal(firstString(ds, '00200013'), '7');
    assert.equal(firstString(ds, '00100020'), undefined);
    assert.equal(firstString(undefined, '00100020'), undefined);
  });
  it('reads the first value as a number', () => {
    assert.equal(firstNumber(ds, '00200013'), 7);
    assert.equal(firstNumber(ds, '00180050'), 2.5);
    assert.equal(firstNumber(ds, '00080060'), undefined);
  });
  it('renders person names with trailing empty groups removed', () => {
    assert.equal(personNameString({ Alphabetic: 'Doe^John' }), 'Doe^John');
    assert.equal(personNameString({ Ideographic: '山田' }), '=山田');
    assert.equal(personNameString({ Alphabetic: 'A', Phonetic: 'P' }), 'A==P');
    assert.equal(personNameString({}), '');
  });
  it('strips _bulk deeply without touching the original', () => {
    const s = stripInternal(ds);
    assert.deepEqual(s['00091011'], { vr: 'OB' });
    const item = (s['00081140']?.Value?.[0] ?? {}) as DicomJsonDataset;
    assert.deepEqual(item['00091010'], { vr: 'OB' });
    assert.deepEqual(ds['00091011']?._bulk, { offset: 5000, length: 4000 });
    assert.deepEqual(s['00100010'], ds['00100010']);
  });
  it('builds elements, empty ones without Value', () => {
    assert.deepEqual(element('CS', ['A', 'B']), { vr: 'CS', Value: ['A', 'B'] });
    assert.deepEqual(element('LO', []), { vr: 'LO' });
    assert.deepEqual(element('LO'), { vr: 'LO' });
  });
});
