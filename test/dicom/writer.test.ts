import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { inflateRawSync } from 'node:zlib';
import { DEFLATED_EXPLICIT_VR_LE, EXPLICIT_VR_LE } from '../../src/dicom/transfer-syntax.js';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from '../../src/dicom/uids.js';
import {
  encapsulatedPixelData, encodeDataset, encodeDicomJsonDataset, encodeElement, formatDecimalString, writePart10,
} from '../../src/dicom/writer.js';

const hex = (b: Buffer): string => b.toString('hex');

describe('encodeElement', () => {
  it('writes a short-length explicit VR LE element, text padded with a space', () => {
    assert.equal(hex(encodeElement({ tag: '00100020', vr: 'LO', value: 'ABC' }, { explicitVr: true })), '10002000' + '4c4f' + '0400' + '41424320');
  });
  it('pads UI with NUL', () => {
    assert.equal(hex(encodeElement({ tag: '00080018', vr: 'UI', value: '1.2.3' }, { explicitVr: true })), '08001800' + '5549' + '0600' + '312e322e3300');
  });
  it('writes long-length VRs with a reserved field and pads binary with NUL', () => {
    assert.equal(hex(encodeElement({ tag: '00091011', vr: 'OB', value: Buffer.from([1, 2, 3]) }, { explicitVr: true })), '09001110' + '4f42' + '0000' + '04000000' + '01020300');
  });
  it('writes implicit VR with a 32-bit length', () => {
    assert.equal(hex(encodeElement({ tag: '00100020', vr: 'LO', value: 'AB' }, { explicitVr: false })), '10002000' + '02000000' + '4142');
  });
  it('writes big endian tags, lengths and numbers', () => {
    assert.equal(hex(encodeElement({ tag: '00280010', vr: 'US', value: [512] }, { explicitVr: true, littleEndian: false })), '00280010' + '5553' + '0002' + '0200');
  });
  it('writes numbers as text for IS/DS and joins multiple values with a backslash', () => {
    assert.equal(encodeElement({ tag: '00280030', vr: 'DS', value: [0.5, 0.25] }, { explicitVr: true }).subarray(8).toString('latin1'), '0.5\\0.25');
    assert.equal(encodeElement({ tag: '00200013', vr: 'IS', value: [7] }, { explicitVr: true }).subarray(8).toString('latin1'), '7 ');
  });
  it('writes AT values as group/element pairs', () => {
    assert.equal(hex(encodeElement({ tag: '00209165', vr: 'AT', value: ['7FE00010'] }, { explicitVr: true })), '20006591' + '4154' + '0400' + 'e07f1000');
  });
  it('writes an empty element', () => {
    assert.equal(hex(encodeElement({ tag: '00080050', vr: 'SH' }, { explicitVr: true })), '08005000' + '5348' + '0000');
  });
  it('refuses a value too long for a 16-bit length', () => {
    assert.throws(() => encodeElement({ tag: '00104000', vr: 'LT', value: 'x'.repeat(70_000) }, { explicitVr: true }));
  });
  it('writes raw Buffer bytes verbatim with a custom text encoder ignored', () => {
    const raw = Buffer.from([0x1b, 0x24, 0x42, 0x3b, 0x33]);
    const el = encodeElement({ tag: '00100010', vr: 'PN', value: raw }, { explicitVr: true, encodeText: () => Buffer.from('nope') });
    assert.ok(el.subarray(8).equals(Buffer.concat([raw, Buffer.from(' ')])), 'raw bytes kept');
  });
});

describe('encodeDataset', () => {
  it('sorts elements by tag', () => {
    const b = encodeDataset([{ tag: '00100020', vr: 'LO', value: 'B' }, { tag: '00080060', vr: 'CS', value: 'CT' }], { explicitVr: true });
    assert.equal(b.readUInt16LE(0), 0x0008);
    assert.equal(b.readUInt16LE(10), 0x0010);
  });
  it('writes defined-length sequences and items', () => {
    const b = encodeDataset([{ tag: '00081115', vr: 'SQ', value: [[{ tag: '00081150', vr: 'UI', value: '12' }]] }], { explicitVr: true });
    // SQ header (12) + item header (8) + UI element (8 + 2)
    assert.equal(b.readUInt32LE(8), 18);
    assert.equal(b.readUInt16LE(12), 0xfffe);
    assert.equal(b.readUInt16LE(14), 0xe000);
    assert.equal(b.readUInt32LE(16), 10);
  });
  it('writes undefined-length sequences with item and sequence delimiters', () => {
    const b = encodeDataset([{ tag: '00081115', vr: 'SQ', undefinedLength: true, value: [[]] }], { explicitVr: true });
    assert.equal(hex(b), '08001511' + '5351' + '0000' + 'ffffffff' + 'feff00e0ffffffff' + 'feff0de000000000' + 'feffdde000000000');
  });
});

describe('writePart10', () => {
  const file = writePart10({
    dataset: [{ tag: '00100020', vr: 'LO', value: 'ID' }],
    transferSyntaxUid: EXPLICIT_VR_LE,
    sopClassUid: '1.2.840.10008.5.1.4.1.1.7',
    sopInstanceUid: '1.2.3',
    sourceAeTitle: 'MODALITY',
  });
  it('starts with a zero preamble and DICM', () => {
    assert.ok(file.subarray(0, 128).equals(Buffer.alloc(128)), 'zero preamble');
    assert.equal(file.subarray(128, 132).toString('latin1'), 'DICM');
  });
  it('gives (0002,0000) the length of the rest of File Meta', () => {
    assert.equal(hex(file.subarray(132, 140)), '02000000' + '554c' + '0400');
    const metaLength = file.readUInt32LE(140);
    const datasetStart = 144 + metaLength;
    assert.equal(file.readUInt16LE(datasetStart), 0x0010);
    assert.equal(file.length, datasetStart + 10);
  });
  it('writes our implementation class UID and version name and the source AE', () => {
    const text = file.toString('latin1');
    assert.ok(text.includes(IMPLEMENTATION_CLASS_UID), 'implementation class UID');
    assert.ok(text.includes(IMPLEMENTATION_VERSION_NAME), 'version name');
    assert.ok(text.includes('MODALITY'), 'source AE');
  });
  it('deflates the dataset of a deflated transfer syntax', () => {
    const ds = [{ tag: '00100020', vr: 'LO' as const, value: 'ID'.repeat(100) }];
    const deflated = writePart10({ dataset: ds, transferSyntaxUid: DEFLATED_EXPLICIT_VR_LE, sopClassUid: '1.2', sopInstanceUid: '1.3' });
    const metaEnd = 144 + deflated.readUInt32LE(140);
    assert.ok(inflateRawSync(deflated.subarray(metaEnd)).equals(encodeDataset(ds, { explicitVr: true })), 'inflates to the dataset');
  });
});

describe('encapsulatedPixelData', () => {
  it('writes an empty offset table, one even-length fragment per frame and a delimiter', () => {
    const v = encapsulatedPixelData([Buffer.from([1, 2, 3]), Buffer.from([4, 5])]);
    assert.equal(hex(v), 'feff00e000000000' + 'feff00e004000000' + '01020300' + 'feff00e002000000' + '0405' + 'feffdde000000000');
  });
  it('fills the basic offset table when asked', () => {
    const v = encapsulatedPixelData([Buffer.alloc(4), Buffer.alloc(6)], { basicOffsetTable: true });
    assert.equal(v.readUInt32LE(4), 8);
    assert.equal(v.readUInt32LE(8), 0);
    assert.equal(v.readUInt32LE(12), 12);
  });
});

describe('formatDecimalString', () => {
  it('keeps DS within 16 characters', () => {
    assert.equal(formatDecimalString(0.5), '0.5');
    assert.equal(formatDecimalString(0.30000000000000004), '0.3');
    assert.ok(formatDecimalString(-Math.PI * 1e-300).length <= 16, 'tiny');
    assert.ok(formatDecimalString(2 ** 70 + 0.5).length <= 16, 'huge');
    assert.equal(Number(formatDecimalString(Math.PI)).toFixed(10), Math.PI.toFixed(10));
  });
});

describe('encodeDicomJsonDataset', () => {
  it('encodes text as UTF-8 and labels it ISO_IR 192', () => {
    const b = encodeDicomJsonDataset({
      '00080005': { vr: 'CS', Value: ['ISO_IR 100'] },
      '00100010': { vr: 'PN', Value: [{ Alphabetic: 'Wang^XiaoDong', Ideographic: '王^小東' }] },
    }, { explicitVr: true });
    assert.equal(hex(b.subarray(0, 8)), '08000500' + '4353' + '0a00');
    assert.equal(b.subarray(8, 18).toString('latin1'), 'ISO_IR 192');
    const pn = b.subarray(26);
    assert.equal(pn.toString('utf8').trimEnd(), 'Wang^XiaoDong=王^小東');
  });
});
