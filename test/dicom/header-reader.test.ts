import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Writable } from 'node:stream';
import { createInflateRaw, inflateRawSync } from 'node:zlib';
import { HeaderError, readPart10Header, readPart10HeaderFromBuffer, type HeaderReadOptions, type ParsedHeader } from '../../src/dicom/header-reader.js';
import {
  DEFLATED_EXPLICIT_VR_LE, EXPLICIT_VR_BE, EXPLICIT_VR_LE, IMPLICIT_VR_LE, JPEG_BASELINE,
} from '../../src/dicom/transfer-syntax.js';
import type { DicomJsonDataset } from '../../src/dicom/types.js';
import { encapsulatedPixelData, encodeDataset, encodeDicomJsonDataset, writePart10, type WriteElement } from '../../src/dicom/writer.js';

const SOP_CLASS = '1.2.840.10008.5.1.4.1.1.7';
const SOP_INSTANCE = '1.2.3.4.5.6.7';
const OPTS: HeaderReadOptions = { bulkdataThreshold: 1024 };

function part10(dataset: WriteElement[], transferSyntaxUid = EXPLICIT_VR_LE, extra: { omitGroupLength?: boolean } = {}): Buffer {
  return writePart10({ dataset, transferSyntaxUid, sopClassUid: SOP_CLASS, sopInstanceUid: SOP_INSTANCE, ...extra });
}

async function* chunksOf(buf: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, Math.min(buf.length, i + size));
}

async function* split(buf: Uint8Array, at: number): AsyncGenerator<Uint8Array> {
  yield buf.subarray(0, at);
  yield buf.subarray(at);
}

function headerError(code: string): (err: unknown) => boolean {
  return (err: unknown) => err instanceof HeaderError && err.code === code;
}

/** A dataset exercising every kind of value the reader converts. */
function sampleDataset(): WriteElement[] {
  return [
    { tag: '00080005', vr: 'CS', value: 'ISO_IR 100' },
    { tag: '00080008', vr: 'CS', value: ['ORIGINAL', 'PRIMARY', '', 'AXIAL'] },
    { tag: '00080016', vr: 'UI', value: SOP_CLASS },
    { tag: '00080018', vr: 'UI', value: SOP_INSTANCE },
    { tag: '00080020', vr: 'DA', value: '20240131' },
    { tag: '00080050', vr: 'SH', value: '' },
    { tag: '00080090', vr: 'PN', value: Buffer.from('Buc^J\xe9r\xf4me', 'latin1') },
    { tag: '00081030', vr: 'LO', value: '  Head  ' },
    { tag: '00090010', vr: 'LO', value: 'ACME 1.0' }, // private creator
    { tag: '00091011', vr: 'OB', value: Buffer.from([1, 2, 3, 4]) }, // private, short: inline
    { tag: '00100010', vr: 'PN', value: ['Doe^John', 'Roe^Jane'] },
    { tag: '00104000', vr: 'LT', value: '  line one\\still one  ' },
    { tag: '00181310', vr: 'US', value: [512, 0, 0, 512] },
    { tag: '00200013', vr: 'IS', value: '12' },
    { tag: '00200032', vr: 'DS', value: ['-125.5', '1e2', '.25'] },
    { tag: '00209165', vr: 'AT', value: ['00100010', '7FE00010'] },
    { tag: '00280030', vr: 'DS', value: ['0.5', '0.5'] },
    { tag: '00280010', vr: 'US', value: [2] },
    { tag: '00280011', vr: 'US', value: [2] },
    { tag: '00280106', vr: 'US', value: [7] },
    { tag: '00281050', vr: 'DS', value: '40' },
    { tag: '00189219', vr: 'SS', value: [-3] },
    { tag: '00189074', vr: 'DT', value: '20240131120000' },
    { tag: '00186020', vr: 'SL', value: [-70000] },
    { tag: '00189087', vr: 'FD', value: [1000.25] },
    { tag: '00181320', vr: 'FL', value: [1.5] },
    { tag: '00281201', vr: 'OW', value: [1, 2] },
    {
      tag: '00081115', vr: 'SQ', undefinedLength: true, value: [
        [
          { tag: '0020000E', vr: 'UI', value: '1.2.3.4' },
          {
            tag: '00081140', vr: 'SQ', value: [
              [{ tag: '00081155', vr: 'UI', value: '1.2.3.4.1' }],
              [{ tag: '00081155', vr: 'UI', value: '1.2.3.4.2' }],
            ],
          },
        ],
        [],
      ],
    },
    { tag: '00400275', vr: 'SQ', value: [] },
    { tag: '7FE00010', vr: 'OW', value: Buffer.alloc(2 * 2 * 2, 0xab) },
  ];
}

function expectedDataset(implicit: boolean): DicomJsonDataset {
  return {
    '00080005': { vr: 'CS', Value: ['ISO_IR 100'] },
    '00080008': { vr: 'CS', Value: ['ORIGINAL', 'PRIMARY', null, 'AXIAL'] },
    '00080016': { vr: 'UI', Value: [SOP_CLASS] },
    '00080018': { vr: 'UI', Value: [SOP_INSTANCE] },
    '00080020': { vr: 'DA', Value: ['20240131'] },
    '00080050': { vr: 'SH' },
    '00080090': { vr: 'PN', Value: [{ Alphabetic: 'Buc^Jérôme' }] },
    '00081030': { vr: 'LO', Value: ['Head'] },
    '00081115': {
      vr: 'SQ', Value: [
        {
          '0020000E': { vr: 'UI', Value: ['1.2.3.4'] },
          '00081140': {
            vr: 'SQ', Value: [
              { '00081155': { vr: 'UI', Value: ['1.2.3.4.1'] } },
              { '00081155': { vr: 'UI', Value: ['1.2.3.4.2'] } },
            ],
          },
        },
        {},
      ],
    },
    '00090010': { vr: 'LO', Value: ['ACME 1.0'] },
    '00091011': { vr: implicit ? 'UN' : 'OB', InlineBinary: 'AQIDBA==' },
    '00100010': { vr: 'PN', Value: [{ Alphabetic: 'Doe^John' }, { Alphabetic: 'Roe^Jane' }] },
    '00104000': { vr: 'LT', Value: ['  line one\\still one'] },
    '00181310': { vr: 'US', Value: [512, 0, 0, 512] },
    '00186020': { vr: 'SL', Value: [-70000] },
    '00189074': { vr: 'DT', Value: ['20240131120000'] },
    '00189087': { vr: 'FD', Value: [1000.25] },
    '00189219': { vr: 'SS', Value: [-3] },
    '00181320': { vr: 'FL', Value: [1.5] },
    '00200013': { vr: 'IS', Value: [12] },
    '00200032': { vr: 'DS', Value: [-125.5, 100, 0.25] },
    '00209165': { vr: 'AT', Value: ['00100010', '7FE00010'] },
    '00280010': { vr: 'US', Value: [2] },
    '00280011': { vr: 'US', Value: [2] },
    '00280030': { vr: 'DS', Value: [0.5, 0.5] },
    '00280106': { vr: 'US', Value: [7] },
    '00281050': { vr: 'DS', Value: [40] },
    '00281201': { vr: 'OW', InlineBinary: 'AQACAA==' },
    '00400275': { vr: 'SQ' },
  };
}

describe('implicit VR: "US or SS" pixel values follow Pixel Representation (PS3.5 A.1)', () => {
  it('are SS when Pixel Representation is 1 (items without their own take the top level\'s), US when 0', () => {
    for (const [pr, vr, values] of [
      [1, 'SS', [-100, -2000, -5]],
      [0, 'US', [65436, 63536, 65531]],
    ] as const) {
      const ds: WriteElement[] = [
        { tag: '00080016', vr: 'UI', value: '1.2.840.10008.5.1.4.1.1.2' },
        { tag: '00080018', vr: 'UI', value: '1.2.3.4' },
        { tag: '00280103', vr: 'US', value: [pr] },
        { tag: '00280106', vr: 'SS', value: [-100] },
        { tag: '00280120', vr: 'SS', value: [-2000] },
        { tag: '00880200', vr: 'SQ', value: [[{ tag: '00280106', vr: 'SS', value: [-5] }]] },
      ];
      const h = readPart10HeaderFromBuffer(writePart10({ dataset: ds, transferSyntaxUid: '1.2.840.10008.1.2', sopClassUid: '1.2.840.10008.5.1.4.1.1.2', sopInstanceUid: '1.2.3.4' }), { bulkdataThreshold: 1024 });
      const item = (h.dataset['00880200']?.Value?.[0] ?? {}) as DicomJsonDataset;
      assert.deepEqual([h.dataset['00280106']?.vr, h.dataset['00280120']?.vr, item['00280106']?.vr], [vr, vr, vr]);
      assert.deepEqual([h.dataset['00280106']?.Value?.[0], h.dataset['00280120']?.Value?.[0], item['00280106']?.Value?.[0]], values);
    }
  });
});

describe('implicit VR: Pixel Representation of the nearest enclosing data set', () => {
  it('an item inside an item with Pixel Representation 1 reads its pixel values SS, whatever the top level says (as re-encoding does)', () => {
    const ds: WriteElement[] = [
      { tag: '00080016', vr: 'UI', value: '1.2.840.10008.5.1.4.1.1.2' },
      { tag: '00080018', vr: 'UI', value: '1.2.3.4' },
      { tag: '00280103', vr: 'US', value: [0] },
      { tag: '00880200', vr: 'SQ', value: [[{ tag: '00280103', vr: 'US', value: [1] }, { tag: '00880200', vr: 'SQ', value: [[{ tag: '00280106', vr: 'SS', value: [-7] }]] }]] },
    ];
    const h = readPart10HeaderFromBuffer(writePart10({ dataset: ds, transferSyntaxUid: '1.2.840.10008.1.2', sopClassUid: '1.2.840.10008.5.1.4.1.1.2', sopInstanceUid: '1.2.3.4' }), { bulkdataThreshold: 1024 });
    const outer = (h.dataset['00880200']?.Value?.[0] ?? {}) as DicomJsonDataset;
    const inner = (outer['00880200']?.Value?.[0] ?? {}) as DicomJsonDataset;
    assert.equal(inner['00280106']?.vr, 'SS');
    assert.equal(inner['00280106']?.Value?.[0], -7);
  });
});

describe('readPart10HeaderFromBuffer: round trips through writer.ts', () => {
  for (const [name, ts] of [
    ['Explicit VR Little Endian', EXPLICIT_VR_LE],
    ['Implicit VR Little Endian', IMPLICIT_VR_LE],
    ['Explicit VR Big Endian', EXPLICIT_VR_BE],
    ['Deflated Explicit VR Little Endian', DEFLATED_EXPLICIT_VR_LE],
  ] as const) {
    it(`reads ${name}`, async () => {
      const file = part10(sampleDataset(), ts);
      const h = readPart10HeaderFromBuffer(file, OPTS);
      assert.equal(h.transferSyntaxUid, ts);
      assert.deepEqual(h.dataset, expectedDataset(ts === IMPLICIT_VR_LE));
      assert.equal(h.deflated, ts === DEFLATED_EXPLICIT_VR_LE);
      assert.equal(h.characterSetUnknown, false);
      assert.deepEqual(h.droppedValues, []);
      assert.equal(h.meta['00020010']?.Value?.[0], ts);
      assert.equal(h.meta['00020002']?.Value?.[0], SOP_CLASS);
      assert.equal(h.meta['00020001']?.InlineBinary, 'AAE=');
      assert.equal(h.meta['00020000'], undefined);
      assert.equal(h.pixelData?.tag, '7FE00010');
      assert.equal(h.pixelData?.vr, 'OW');
      assert.equal(h.pixelData?.length, 8);
      assert.equal(h.bytesConsumed, h.pixelData?.offset);
      if (ts !== DEFLATED_EXPLICIT_VR_LE) {
        const pd = h.pixelData;
        assert.ok(pd?.length !== undefined, 'native pixel data has a length');
        assert.deepEqual(file.subarray(pd.offset, pd.offset + pd.length), Buffer.alloc(8, 0xab));
        assert.equal(pd.offset + pd.length, file.length);
      }
      // the streaming reader gives the same result
      assert.deepEqual(await readPart10Header(chunksOf(file, 7), OPTS), h);
    });
  }

  it('swaps big-endian words to little endian in InlineBinary', () => {
    const ds: WriteElement[] = [{ tag: '00281201', vr: 'OW', value: Buffer.from([0x01, 0x02, 0x03, 0x04]) }];
    const h = readPart10HeaderFromBuffer(part10(ds, EXPLICIT_VR_BE), OPTS);
    assert.equal(h.dataset['00281201']?.InlineBinary, Buffer.from([0x02, 0x01, 0x04, 0x03]).toString('base64'));
  });

  it('reads File Meta without a group length', () => {
    const h = readPart10HeaderFromBuffer(part10(sampleDataset(), EXPLICIT_VR_LE, { omitGroupLength: true }), OPTS);
    assert.deepEqual(h.dataset, expectedDataset(false));
  });

  it('reads to the end of input when there is no pixel data', () => {
    const file = part10([{ tag: '00100020', vr: 'LO', value: 'ID1' }]);
    const h = readPart10HeaderFromBuffer(file, OPTS);
    assert.equal(h.pixelData, undefined);
    assert.equal(h.bytesConsumed, file.length);
    assert.deepEqual(h.dataset, { '00100020': { vr: 'LO', Value: ['ID1'] } });
  });

  it('with an exact File Meta length (a data set received over DIMSE), refuses group 0002 elements in the data set', () => {
    const file = part10(sampleDataset(), IMPLICIT_VR_LE);
    // as DIMSE builds it: our File Meta, then the data set as received (here starting with a
    // (0002,0010) that would switch the reader to Explicit VR)
    const plain = readPart10HeaderFromBuffer(file, { ...OPTS, exactFileMetaLength: true });
    assert.deepEqual(plain.dataset, expectedDataset(true));
    const intruder = encodeDataset([{ tag: '00020010', vr: 'UI', value: EXPLICIT_VR_LE }], { explicitVr: true });
    const spliced = Buffer.concat([file.subarray(0, plain.datasetOffset), intruder, file.subarray(plain.datasetOffset)]);
    assert.throws(() => readPart10HeaderFromBuffer(spliced, { ...OPTS, exactFileMetaLength: true }), headerError('MALFORMED'));
  });

  it('reports the dataset offset after File Meta', () => {
    const file = part10([{ tag: '00100020', vr: 'LO', value: 'ID1' }]);
    const h = readPart10HeaderFromBuffer(file, OPTS);
    assert.equal(file.readUInt16LE(h.datasetOffset), 0x0010);
    assert.equal(h.datasetOffset, file.length - 12);
  });
});

describe('readPart10Header: sequences', () => {
  it('reads nested undefined-length sequences and items', () => {
    const inner: WriteElement = { tag: '00081199', vr: 'SQ', undefinedLength: true, value: [[{ tag: '00081150', vr: 'UI', value: '1.2' }]] };
    const ds: WriteElement[] = [
      { tag: '00540016', vr: 'SQ', undefinedLength: true, value: [[inner, { tag: '00181072', vr: 'TM', value: '120000' }], [inner]] },
    ];
    for (const ts of [EXPLICIT_VR_LE, IMPLICIT_VR_LE, EXPLICIT_VR_BE]) {
      const h = readPart10HeaderFromBuffer(part10(ds, ts), OPTS);
      const innerJson = { vr: 'SQ', Value: [{ '00081150': { vr: 'UI', Value: ['1.2'] } }] };
      assert.deepEqual(h.dataset, {
        '00540016': { vr: 'SQ', Value: [{ '00081199': innerJson, '00181072': { vr: 'TM', Value: ['120000'] } }, { '00081199': innerJson }] },
      }, ts);
    }
  });

  it('reads a UN of undefined length as an implicit VR LE sequence (CP-246)', () => {
    const items = Buffer.concat([
      Buffer.from([0xfe, 0xff, 0x00, 0xe0, 0xff, 0xff, 0xff, 0xff]),
      // (0008,1150) UI implicit: tag, 4-byte length, value
      Buffer.from([0x08, 0x00, 0x50, 0x11, 0x04, 0x00, 0x00, 0x00]), Buffer.from('1.2\0', 'latin1'),
      Buffer.from([0xfe, 0xff, 0x0d, 0xe0, 0, 0, 0, 0]),
      Buffer.from([0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0]),
    ]);
    const h = readPart10HeaderFromBuffer(part10([{ tag: '00091020', vr: 'UN', undefinedLength: true, value: items }]), OPTS);
    assert.deepEqual(h.dataset['00091020'], { vr: 'SQ', Value: [{ '00081150': { vr: 'UI', Value: ['1.2'] } }] });
  });

  it('records an encapsulated value inside a sequence (icon image) by offset', () => {
    const frag = encapsulatedPixelData([Buffer.alloc(10, 1)]);
    const ds: WriteElement[] = [
      { tag: '00880200', vr: 'SQ', value: [[{ tag: '7FE00010', vr: 'OB', undefinedLength: true, value: frag }]] },
      { tag: '00100020', vr: 'LO', value: 'after' },
    ];
    const file = part10(ds, JPEG_BASELINE);
    const h = readPart10HeaderFromBuffer(file, OPTS);
    const icon = (h.dataset['00880200']?.Value?.[0] as DicomJsonDataset)['7FE00010'];
    assert.equal(icon?.vr, 'OB');
    const offset = icon?._bulk?.offset ?? -1;
    assert.deepEqual(file.subarray(offset, offset + frag.length), frag);
    assert.equal(h.pixelData, undefined);
    assert.deepEqual(h.dataset['00100020'], { vr: 'LO', Value: ['after'] });
  });
});

describe('readPart10Header: bulk data and pixel data', () => {
  it('skips a 2 MB private OB value and records where it lies', async () => {
    const big = Buffer.alloc(2 * 1024 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
    const ds: WriteElement[] = [
      { tag: '00090010', vr: 'LO', value: 'ACME' },
      { tag: '00091011', vr: 'OB', value: big },
      { tag: '00100020', vr: 'LO', value: 'after' },
      { tag: '00281201', vr: 'OW', value: Buffer.alloc(1024, 1) }, // exactly the threshold: inline
      { tag: '00281202', vr: 'OW', value: Buffer.alloc(1026, 2) },
    ];
    const file = part10(ds);
    for (const h of [readPart10HeaderFromBuffer(file, OPTS), await readPart10Header(chunksOf(file, 65536), OPTS)]) {
      const bulk = h.dataset['00091011']?._bulk;
      assert.ok(bulk?.length !== undefined, 'bulk reference has a length');
      assert.equal(bulk.length, big.length);
      assert.ok(file.subarray(bulk.offset, bulk.offset + bulk.length).equals(big), 'bulk bytes at the recorded offset');
      assert.deepEqual(h.dataset['00091011'], { vr: 'OB', _bulk: bulk });
      assert.equal(h.dataset['00281201']?.InlineBinary, Buffer.alloc(1024, 1).toString('base64'));
      const b2 = h.dataset['00281202']?._bulk;
      assert.ok(b2?.length === 1026 && file.subarray(b2.offset, b2.offset + 1026).equals(Buffer.alloc(1026, 2)), 'second bulk value at its offset');
      assert.deepEqual(h.dataset['00100020'], { vr: 'LO', Value: ['after'] });
    }
  });

  it('does not count skipped bulk values against maxHeaderBytes', () => {
    const ds: WriteElement[] = [{ tag: '00091011', vr: 'OB', value: Buffer.alloc(100_000) }];
    assert.ok(readPart10HeaderFromBuffer(part10(ds), { bulkdataThreshold: 1024, maxHeaderBytes: 4096 }).dataset['00091011']?._bulk, 'bulk value recorded');
  });

  it('records bulk values in the inflated stream of a deflated file', () => {
    const big = Buffer.alloc(5000, 9);
    const ds: WriteElement[] = [{ tag: '00091011', vr: 'OB', value: big }, { tag: '00100020', vr: 'LO', value: 'x' }];
    const file = part10(ds, DEFLATED_EXPLICIT_VR_LE);
    const h = readPart10HeaderFromBuffer(file, OPTS);
    const inflatedInPlace = Buffer.concat([file.subarray(0, h.datasetOffset), inflateRawSync(file.subarray(h.datasetOffset))]);
    const b = h.dataset['00091011']?._bulk;
    assert.ok(b?.length === 5000, 'bulk length');
    assert.ok(inflatedInPlace.subarray(b.offset, b.offset + b.length).equals(big), 'bulk bytes at the recorded offset');
  });

  it('stops at encapsulated pixel data with an undefined length', () => {
    const frames = [Buffer.from('frame-one'), Buffer.from('frame-2')];
    const value = encapsulatedPixelData(frames, { basicOffsetTable: true });
    const file = part10([
      { tag: '00280008', vr: 'IS', value: '2' },
      { tag: '7FE00010', vr: 'OB', undefinedLength: true, value },
    ], JPEG_BASELINE);
    const h = readPart10HeaderFromBuffer(file, OPTS);
    assert.deepEqual(h.pixelData, { tag: '7FE00010', vr: 'OB', offset: file.length - value.length });
    assert.ok(file.subarray(h.pixelData?.offset).equals(value), 'pixel data value at the recorded offset');
    assert.deepEqual(h.dataset, { '00280008': { vr: 'IS', Value: [2] } });
  });

  it('stops at float and double float pixel data too', () => {
    for (const [tag, vr] of [['7FE00008', 'OF'], ['7FE00009', 'OD']] as const) {
      const file = part10([{ tag, vr, value: Buffer.alloc(16) }]);
      const h = readPart10HeaderFromBuffer(file, OPTS);
      assert.deepEqual(h.pixelData, { tag, vr, offset: file.length - 16, length: 16 });
    }
  });

  it('does not pull the source past pixel data, and leaves it usable', async () => {
    const file = part10([{ tag: '00100020', vr: 'LO', value: 'ID' }, { tag: '7FE00010', vr: 'OW', value: Buffer.alloc(100_000, 3) }]);
    const chunkSize = 64;
    let pulled = 0;
    let returned = false;
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < file.length; i += chunkSize) chunks.push(file.subarray(i, i + chunkSize));
    const iterator: AsyncIterator<Uint8Array> = {
      next: async () => (pulled < chunks.length ? { done: false, value: chunks[pulled++] as Uint8Array } : { done: true, value: undefined }),
      return: async () => {
        returned = true;
        return { done: true, value: undefined };
      },
    };
    const source: AsyncIterable<Uint8Array> = { [Symbol.asyncIterator]: () => iterator };
    const h = await readPart10Header(source, OPTS);
    const pd = h.pixelData;
    assert.ok(pd !== undefined, 'pixel data found');
    assert.equal(pulled, Math.ceil(pd.offset / chunkSize));
    assert.equal(returned, false);
    // the caller can go on reading the same source
    const pulledByReader = pulled;
    const rest: Uint8Array[] = [];
    for (let r = await iterator.next(); r.done !== true; r = await iterator.next()) rest.push(r.value);
    assert.equal(rest.length, chunks.length - pulledByReader);
  });

  it('does not pull past pixel data of a deflated file either', async () => {
    const file = part10([{ tag: '00100020', vr: 'LO', value: 'ID' }, { tag: '7FE00010', vr: 'OW', value: Buffer.alloc(2_000_000, 3) }], DEFLATED_EXPLICIT_VR_LE);
    let pulled = 0;
    async function* counted(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < file.length; i += 16) {
        pulled++;
        yield file.subarray(i, i + 16);
      }
    }
    const h = await readPart10Header(counted(), OPTS);
    assert.equal(h.pixelData?.length, 2_000_000);
    assert.ok(pulled < Math.ceil(file.length / 16), `pulled ${pulled} of ${Math.ceil(file.length / 16)}`);
  });
});

describe('readPart10Header: deflated input inflates in bounded steps', () => {
  it('feeds a highly compressed data set to the inflater ~1 KiB at a time, so that one step inflates to ~1 MiB (deflate expands up to ~1032×)', async () => {
    const file = part10(
      [
        { tag: '00090010', vr: 'LO', value: 'BOMB' },
        { tag: '00091010', vr: 'OB', value: Buffer.alloc(64 * 1024 * 1024) },
        { tag: '00100020', vr: 'LO', value: 'ID' },
        { tag: '7FE00010', vr: 'OW', value: Buffer.alloc(16, 1) },
      ],
      DEFLATED_EXPLICIT_VR_LE,
    );
    assert.ok(file.length < 1024 * 1024, `the file is ${file.length} bytes`);
    // Every compressed write the streaming reader makes (InflateRaw is what it creates).
    const proto = Object.getPrototypeOf(createInflateRaw()) as { write: (...a: unknown[]) => boolean };
    const largest = { bytes: 0 };
    proto.write = function (this: unknown, ...a: unknown[]): boolean {
      largest.bytes = Math.max(largest.bytes, (a[0] as Uint8Array).length);
      return Writable.prototype.write.apply(this, a as Parameters<Writable['write']>);
    };
    try {
      const h = await readPart10Header(chunksOf(file, 64 * 1024), OPTS);
      assert.equal(h.pixelData?.length, 16);
      assert.equal(h.bytesConsumed > 64 * 1024 * 1024, true);
    } finally {
      delete (proto as { write?: unknown }).write;
    }
    assert.ok(largest.bytes > 0 && largest.bytes <= 2048, `a write of ${largest.bytes} compressed bytes`);
  });
});

describe('readPart10Header: chunk boundaries', () => {
  function smallFile(ts: string): Buffer {
    return part10([
      { tag: '00080005', vr: 'CS', value: 'ISO_IR 192' },
      { tag: '00100010', vr: 'PN', value: Buffer.from('Wang^XiaoDong=王^小東=', 'utf8') },
      { tag: '00540016', vr: 'SQ', undefinedLength: true, value: [[{ tag: '00181072', vr: 'TM', value: '120000' }]] },
      { tag: '00091011', vr: 'OB', value: Buffer.alloc(40, 5) },
      { tag: '7FE00010', vr: 'OW', value: Buffer.alloc(32, 1) },
    ], ts);
  }
  for (const ts of [EXPLICIT_VR_LE, IMPLICIT_VR_LE, DEFLATED_EXPLICIT_VR_LE]) {
    it(`gives the same result for a split at every byte offset (${ts})`, async () => {
      const file = smallFile(ts);
      const opts = { bulkdataThreshold: 16 };
      const whole = readPart10HeaderFromBuffer(file, opts);
      assert.deepEqual(whole.dataset['00100010'], { vr: 'PN', Value: [{ Alphabetic: 'Wang^XiaoDong', Ideographic: '王^小東' }] });
      for (let at = 0; at <= file.length; at++) {
        assert.deepEqual(await readPart10Header(split(file, at), opts), whole, `split at ${at}`);
      }
      assert.deepEqual(await readPart10Header(chunksOf(file, 1), opts), whole);
    });
  }
});

describe('readPart10Header: errors', () => {
  it('refuses input without DICM as NOT_PART10', async () => {
    assert.throws(() => readPart10HeaderFromBuffer(Buffer.alloc(300), OPTS), headerError('NOT_PART10'));
    assert.throws(() => readPart10HeaderFromBuffer(Buffer.from('DICM'), OPTS), headerError('NOT_PART10'));
    await assert.rejects(readPart10Header(chunksOf(Buffer.alloc(0), 1), OPTS), headerError('NOT_PART10'));
    const noPreamble = part10(sampleDataset()).subarray(128);
    await assert.rejects(readPart10Header(chunksOf(noPreamble, 10), OPTS), headerError('NOT_PART10'));
  });

  it('reports input ending inside an element as TRUNCATED', async () => {
    const file = part10(sampleDataset());
    const h = readPart10HeaderFromBuffer(file, OPTS);
    // every cut inside the header that is not an element boundary at top level
    const boundaries = new Set<number>([h.datasetOffset]);
    let truncatedCount = 0;
    for (let cut = 132 + 1; cut < (h.pixelData?.offset ?? 0); cut += 3) {
      try {
        readPart10HeaderFromBuffer(file.subarray(0, cut), OPTS);
        boundaries.add(cut);
      } catch (err) {
        assert.ok(err instanceof HeaderError && (err.code === 'TRUNCATED' || err.code === 'MALFORMED'), String(err));
        if (err.code === 'TRUNCATED') truncatedCount++;
      }
    }
    assert.ok(truncatedCount > 50, 'most cuts are truncations');
    const mid = Math.floor((h.pixelData?.offset ?? 0) - 12);
    await assert.rejects(readPart10Header(chunksOf(file.subarray(0, mid + 1), 5), OPTS), headerError('TRUNCATED'));
  });

  it('reports a truncated bulk value as TRUNCATED', async () => {
    const file = part10([{ tag: '00091011', vr: 'OB', value: Buffer.alloc(10_000) }]);
    await assert.rejects(readPart10Header(chunksOf(file.subarray(0, file.length - 100), 1000), OPTS), headerError('TRUNCATED'));
  });

  it('reports a truncated deflated dataset as TRUNCATED', async () => {
    const file = part10(sampleDataset(), DEFLATED_EXPLICIT_VR_LE);
    const { datasetOffset } = readPart10HeaderFromBuffer(file, OPTS);
    const cut = file.subarray(0, datasetOffset + Math.floor((file.length - datasetOffset) / 2));
    assert.throws(() => readPart10HeaderFromBuffer(cut, OPTS), headerError('TRUNCATED'));
    await assert.rejects(readPart10Header(chunksOf(cut, 50), OPTS), headerError('TRUNCATED'));
  });

  it('refuses a header larger than maxHeaderBytes as HEADER_TOO_LARGE', async () => {
    const ds: WriteElement[] = [];
    for (let i = 0; i < 50; i++) ds.push({ tag: `0011${(0x1000 + i).toString(16)}`, vr: 'LO', value: 'x'.repeat(60) });
    const file = part10(ds);
    const opts = { bulkdataThreshold: 1024, maxHeaderBytes: 1000 };
    assert.throws(() => readPart10HeaderFromBuffer(file, opts), headerError('HEADER_TOO_LARGE'));
    await assert.rejects(readPart10Header(chunksOf(file, 100), opts), headerError('HEADER_TOO_LARGE'));
    assert.ok(readPart10HeaderFromBuffer(file, { bulkdataThreshold: 1024 }).dataset['00111031'], 'last element read without a limit');
  });

  it('refuses a single text value larger than maxHeaderBytes before reading it', async () => {
    const file = part10([{ tag: '00104000', vr: 'LT', value: 'y'.repeat(50_000) }]);
    let pulled = 0;
    async function* counted(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < file.length; i += 100) {
        pulled++;
        yield file.subarray(i, i + 100);
      }
    }
    await assert.rejects(readPart10Header(counted(), { bulkdataThreshold: 1024, maxHeaderBytes: 2000 }), headerError('HEADER_TOO_LARGE'));
    assert.ok(pulled < 10, 'refused before pulling the value');
  });

  it('refuses File Meta without a transfer syntax as MALFORMED', () => {
    const file = Buffer.concat([Buffer.alloc(128), Buffer.from('DICM'), Buffer.from([0x02, 0x00, 0x02, 0x00, 0x55, 0x49, 0x04, 0x00]), Buffer.from('1.2\0')]);
    assert.throws(() => readPart10HeaderFromBuffer(file, OPTS), headerError('MALFORMED'));
  });
});

describe('readPart10Header: character sets and values', () => {
  it('decodes PS3.5 H.3.1 from a file declaring \\ISO 2022 IR 87', () => {
    const name = Buffer.from([
      ...Buffer.from('Yamada^Tarou='), 0x1b, 0x24, 0x42, 0x3b, 0x33, 0x45, 0x44, 0x1b, 0x28, 0x42, 0x5e, 0x1b, 0x24, 0x42, 0x42, 0x40, 0x4f, 0x3a, 0x1b, 0x28, 0x42, 0x3d,
      0x1b, 0x24, 0x42, 0x24, 0x64, 0x24, 0x5e, 0x24, 0x40, 0x1b, 0x28, 0x42, 0x5e, 0x1b, 0x24, 0x42, 0x24, 0x3f, 0x24, 0x6d, 0x24, 0x26, 0x1b, 0x28, 0x42,
    ]);
    const h = readPart10HeaderFromBuffer(part10([
      { tag: '00080005', vr: 'CS', value: '\\ISO 2022 IR 87' },
      { tag: '00100010', vr: 'PN', value: name },
    ]), OPTS);
    assert.deepEqual(h.dataset['00080005'], { vr: 'CS', Value: [null, 'ISO 2022 IR 87'] });
    assert.deepEqual(h.dataset['00100010'], { vr: 'PN', Value: [{ Alphabetic: 'Yamada^Tarou', Ideographic: '山田^太郎', Phonetic: 'やまだ^たろう' }] });
  });

  it('lets a sequence item declare its own character set, inherited below it', () => {
    const h = readPart10HeaderFromBuffer(part10([
      { tag: '00080005', vr: 'CS', value: 'ISO_IR 100' },
      { tag: '00100010', vr: 'PN', value: Buffer.from('J\xe9r\xf4me', 'latin1') },
      {
        tag: '0040A730', vr: 'SQ', value: [[
          { tag: '00080005', vr: 'CS', value: 'ISO_IR 192' },
          { tag: '0040A160', vr: 'UT', value: Buffer.from('Jérôme', 'utf8') },
          { tag: '0040A730', vr: 'SQ', value: [[{ tag: '0040A160', vr: 'UT', value: Buffer.from('王', 'utf8') }]] },
        ], [
          { tag: '0040A160', vr: 'UT', value: Buffer.from('J\xe9', 'latin1') },
        ]],
      },
    ]), OPTS);
    const items = h.dataset['0040A730']?.Value as DicomJsonDataset[];
    assert.deepEqual(h.dataset['00100010']?.Value, [{ Alphabetic: 'Jérôme' }]);
    assert.deepEqual(items[0]?.['0040A160']?.Value, ['Jérôme']);
    assert.deepEqual((items[0]?.['0040A730']?.Value?.[0] as DicomJsonDataset)['0040A160']?.Value, ['王']);
    assert.deepEqual(items[1]?.['0040A160']?.Value, ['Jé']);
  });

  it('falls back to the default character set for an unknown term and says so', () => {
    const file = part10([
      { tag: '00080005', vr: 'CS', value: 'ISO_IR 999' },
      { tag: '00100010', vr: 'PN', value: Buffer.from([0xbb, 0xee]) },
    ]);
    const h = readPart10HeaderFromBuffer(file, { bulkdataThreshold: 1024, defaultCharacterSet: 'ISO_IR 144' });
    assert.equal(h.characterSetUnknown, true);
    assert.deepEqual(h.dataset['00100010']?.Value, [{ Alphabetic: 'Лю' }]);
  });

  it('decodes with the default character set when (0008,0005) is absent', () => {
    const h = readPart10HeaderFromBuffer(part10([{ tag: '00100010', vr: 'PN', value: Buffer.from('Buc^J\xe9r\xf4me', 'latin1') }]), OPTS);
    assert.deepEqual(h.dataset['00100010']?.Value, [{ Alphabetic: 'Buc^Jérôme' }]);
    assert.equal(h.characterSetUnknown, false);
  });

  it('drops IS/DS values that are not numbers and lists them', () => {
    const h = readPart10HeaderFromBuffer(part10([
      { tag: '00200013', vr: 'IS', value: '1.5' },
      { tag: '00540016', vr: 'SQ', value: [[{ tag: '00181074', vr: 'DS', value: 'abc' }]] },
      { tag: '00280030', vr: 'DS', value: ' 0.5 \\0.5' },
    ]), OPTS);
    assert.deepEqual(h.dataset['00200013'], { vr: 'IS' });
    assert.deepEqual((h.dataset['00540016']?.Value?.[0] as DicomJsonDataset)['00181074'], { vr: 'DS' });
    assert.deepEqual(h.dataset['00280030'], { vr: 'DS', Value: [0.5, 0.5] });
    assert.deepEqual(h.droppedValues, ['00200013', '00540016/0/00181074']);
  });

  it('keeps 64-bit integers beyond 2^53 as strings', () => {
    const v = Buffer.alloc(16);
    v.writeBigUInt64LE(2n ** 60n, 0);
    v.writeBigUInt64LE(5n, 8);
    const h = readPart10HeaderFromBuffer(part10([{ tag: '0072007F', vr: 'UV', value: v }]), OPTS);
    assert.deepEqual(h.dataset['0072007F'], { vr: 'UV', Value: [(2n ** 60n).toString(), 5] });
  });

  it('reads what encodeDicomJsonDataset wrote (UTF-8, ISO_IR 192)', () => {
    const json: DicomJsonDataset = {
      '00100010': { vr: 'PN', Value: [{ Alphabetic: 'Wang^XiaoDong', Ideographic: '王^小東' }] },
      '00100020': { vr: 'LO', Value: ['ID-1'] },
      '00080061': { vr: 'CS', Value: ['CT', 'MR'] },
      '00201208': { vr: 'IS', Value: [42] },
      '00280030': { vr: 'DS', Value: [0.30000000000000004, 2] },
      '00280010': { vr: 'US', Value: [512] },
      '00209165': { vr: 'AT', Value: ['00100010'] },
      '00081199': { vr: 'SQ', Value: [{ '00081150': { vr: 'UI', Value: ['1.2.3'] } }] },
      '00091011': { vr: 'OB', InlineBinary: 'AQIDBA==' },
      '00091012': { vr: 'OB', BulkDataURI: 'http://x/bulk' },
      '00080050': { vr: 'SH' },
    };
    for (const explicitVr of [true, false]) {
      const body = encodeDicomJsonDataset(json, { explicitVr });
      const file = Buffer.concat([part10([], explicitVr ? EXPLICIT_VR_LE : IMPLICIT_VR_LE), body]);
      const h: ParsedHeader = readPart10HeaderFromBuffer(file, OPTS);
      const expected: DicomJsonDataset = { ...json, '00080005': { vr: 'CS', Value: ['ISO_IR 192'] }, '00280030': { vr: 'DS', Value: [0.3, 2] } };
      delete expected['00091012'];
      if (!explicitVr) expected['00091011'] = { vr: 'UN', InlineBinary: 'AQIDBA==' };
      assert.deepEqual(h.dataset, expected);
    }
  });
});
