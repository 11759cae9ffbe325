import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { keywordForTag, parseTagOrKeyword, tagForKeyword, vrForTag } from '../../src/dicom/dictionary.js';

describe('dictionary', () => {
  it('maps keywords to tags and back', () => {
    assert.equal(tagForKeyword('PatientName'), '00100010');
    assert.equal(tagForKeyword('StudyInstanceUID'), '0020000D');
    assert.equal(tagForKeyword('SpecificCharacterSet'), '00080005');
    assert.equal(keywordForTag('00100010'), 'PatientName');
    assert.equal(keywordForTag('0020000d'), 'StudyInstanceUID');
    assert.equal(tagForKeyword('NoSuchKeyword'), undefined);
    assert.equal(keywordForTag('00091010'), undefined);
  });
  it('knows retired attributes under their plain keyword', () => {
    assert.equal(keywordForTag('00081000'), 'NetworkID');
    assert.equal(tagForKeyword('NetworkID'), '00081000');
    assert.equal(tagForKeyword('OverlayRows'), '60000010');
  });
  it('gives VRs, with defaults for ambiguous ones', () => {
    assert.equal(vrForTag('00100010'), 'PN');
    assert.equal(vrForTag('00280010'), 'US');
    assert.equal(vrForTag('7FE00010'), 'OW');
    assert.equal(vrForTag('00280106'), 'US'); // US or SS
    assert.equal(vrForTag('00540016'), 'SQ');
    assert.equal(vrForTag('00020010'), 'UI');
  });
  it('gives UL for group lengths, LO for private creators, UN for other private and unknown tags', () => {
    assert.equal(vrForTag('00080000'), 'UL');
    assert.equal(vrForTag('00290000'), 'UL');
    assert.equal(vrForTag('00290010'), 'LO');
    assert.equal(vrForTag('00291010'), 'UN');
    assert.equal(vrForTag('00089999'), 'UN');
  });
  it('resolves repeating groups (overlays, curves)', () => {
    assert.equal(vrForTag('60000010'), 'US');
    assert.equal(vrForTag('60020010'), 'US');
    assert.equal(keywordForTag('601E3000'), 'OverlayData');
    assert.equal(vrForTag('60013000'), 'UN'); // odd group: private, not an overlay
  });
  it('parses a query key given as tag or keyword', () => {
    assert.equal(parseTagOrKeyword('0020000d'), '0020000D');
    assert.equal(parseTagOrKeyword('00100010'), '00100010');
    assert.equal(parseTagOrKeyword('PatientID'), '00100020');
    assert.equal(parseTagOrKeyword('patientid'), undefined);
    assert.equal(parseTagOrKeyword('0010001'), undefined);
    assert.equal(parseTagOrKeyword(''), undefined);
  });
  it('rejects malformed tags', () => {
    assert.equal(vrForTag('xyz'), undefined);
    assert.equal(keywordForTag('0010001G'), undefined);
  });
});
