import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { informationLevel, levelHeaders } from '../../src/dicom/levels.js';
import type { DicomJsonDataset } from '../../src/dicom/types.js';

const header: DicomJsonDataset = {
  '00080005': { vr: 'CS', Value: ['ISO_IR 192'] },
  '00080016': { vr: 'UI', Value: ['1.2.840.10008.5.1.4.1.1.2'] },
  '00080018': { vr: 'UI', Value: ['1.2.3.4.5'] },
  '00080020': { vr: 'DA', Value: ['20260101'] },
  '00080060': { vr: 'CS', Value: ['CT'] },
  '00080070': { vr: 'LO', Value: ['ACME'] },
  '00081030': { vr: 'LO', Value: ['HEAD'] },
  '00100010': { vr: 'PN', Value: [{ Alphabetic: 'Doe^John' }] },
  '00100020': { vr: 'LO', Value: ['P1'] },
  '00101010': { vr: 'AS', Value: ['042Y'] },
  '00120010': { vr: 'LO', Value: ['SPONSOR'] },
  '00180015': { vr: 'CS', Value: ['HEAD'] },
  '00180050': { vr: 'DS', Value: [1.25] },
  '0020000D': { vr: 'UI', Value: ['1.2.3'] },
  '0020000E': { vr: 'UI', Value: ['1.2.3.4'] },
  '00200013': { vr: 'IS', Value: [7] },
  '00280010': { vr: 'US', Value: [512] },
  '00291010': { vr: 'OB', _bulk: { offset: 1000, length: 5000 } },
  '00090010': { vr: 'LO', Value: ['PRIVATE CREATOR'] },
  '52009230': { vr: 'SQ', Value: [{ '00209111': { vr: 'SQ', Value: [] } }] },
};

describe('information levels (dicom/levels.ts)', () => {
  it('classifies attributes by the PS3.3 module they belong to', () => {
    assert.equal(informationLevel('00100010'), 'patient');
    assert.equal(informationLevel('00120010'), 'patient');
    assert.equal(informationLevel('00101010'), 'study', 'Patient Study module (PatientAge) is study level');
    assert.equal(informationLevel('00080020'), 'study');
    assert.equal(informationLevel('00080050'), 'study');
    assert.equal(informationLevel('00080060'), 'series');
    assert.equal(informationLevel('00080070'), 'series', 'General Equipment is series level');
    assert.equal(informationLevel('00180015'), 'series');
    assert.equal(informationLevel('00200013'), 'instance');
    assert.equal(informationLevel('00280010'), 'instance');
    assert.equal(informationLevel('00090010'), 'instance', 'private attributes stay with the instance');
  });

  it('cuts patient, study and series headers from an instance header; bulk references and instance attributes stay out', () => {
    const { patient, study, series } = levelHeaders(header);
    assert.deepEqual(Object.keys(patient).sort(), ['00080005', '00100010', '00100020', '00120010']);
    assert.deepEqual(Object.keys(study).sort(), ['00080005', '00080020', '00081030', '00100010', '00100020', '00101010', '00120010', '0020000D']);
    assert.deepEqual(Object.keys(series).sort(), ['00080005', '00080060', '00080070', '00180015', '0020000E']);
    for (const part of [patient, study, series]) {
      assert.equal(part['00280010'], undefined);
      assert.equal(part['00291010'], undefined);
      assert.equal(part['52009230'], undefined);
    }
    assert.equal(study['00100010'], header['00100010'], 'values are shared, not copied');
  });
});
