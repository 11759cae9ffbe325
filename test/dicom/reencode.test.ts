// Streaming transfer-syntax re-encoding, checked byte for byte against DCMTK's dcmconv (written
// with undefined lengths and no group lengths, which is the form reencodeDataSet produces), by
// dcmdump (DCMTK must parse our output without a word, and dump it as it dumps dcmconv's), and by
// round trips, chunking invariance and malformed input.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { deflateRawSync } from 'node:zlib';
import { readPart10HeaderFromBuffer } from '../../src/dicom/header-reader.js';
import { canReencode, ReencodeError, reencodeDataSet } from '../../src/dicom/reencode.js';
import {
  DEFLATED_EXPLICIT_VR_LE, ENCAPSULATED_UNCOMPRESSED_EXPLICIT_VR_LE, EXPLICIT_VR_BE, EXPLICIT_VR_LE, IMPLICIT_VR_LE, JPEG_BASELINE, RLE_LOSSLESS,
} from '../../src/dicom/transfer-syntax.js';
import { encapsulatedPixelData, encodeDataset, encodeElement, encodeFileMeta, writePart10, type WriteElement } from '../../src/dicom/writer.js';
import { patternBytes } from '../helpers/corpus.js';

const run = promisify(execFile);

const SOP_CLASS = '1.2.840.10008.5.1.4.1.1.7.3';
const SOP_INSTANCE = '1.2.826.0.1.3680043.10.1.77';
const SOURCES = [IMPLICIT_VR_LE, EXPLICIT_VR_LE, EXPLICIT_VR_BE, DEFLATED_EXPLICIT_VR_LE] as const;
const TARGETS = [IMPLICIT_VR_LE, EXPLICIT_VR_LE] as const;
const DCMCONV_OUT: Record<string, string> = { [IMPLICIT_VR_LE]: '+ti', [EXPLICIT_VR_LE]: '+te', [EXPLICIT_VR_BE]: '+tb', [DEFLATED_EXPLICIT_VR_LE]: '+td' };
const NAME: Record<string, string> = { [IMPLICIT_VR_LE]: 'implicit', [EXPLICIT_VR_LE]: 'explicit', [EXPLICIT_VR_BE]: 'big endian', [DEFLATED_EXPLICIT_VR_LE]: 'deflated' };

let dir = '';
let fileNo = 0;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'pacsnode-reencode-'));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// helpers

/** The bytes in chunks of `size` (views, no copies). A bare iterator: 1-byte chunks of a megabyte are a million steps. */
function chunks(buf: Uint8Array, size: number): AsyncIterable<Uint8Array> {
  const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
  return {
    [Symbol.asyncIterator]: () => {
      let at = 0;
      return {
        next: async (): Promise<IteratorResult<Uint8Array>> => {
          if (at >= bytes.length) return { value: undefined, done: true };
          const value = bytes.subarray(at, (at += size));
          return { value, done: false };
        },
      };
    },
  };
}

async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const out: Uint8Array[] = [];
  for await (const c of it) out.push(c);
  return Buffer.concat(out);
}

function reencode(dataSet: Uint8Array, from: string, to: string, chunkSize = 4099): Promise<Buffer> {
  return collect(reencodeDataSet(chunks(dataSet, chunkSize), from, to));
}

function part10(dataset: readonly WriteElement[], transferSyntaxUid: string): Buffer {
  return writePart10({ dataset, transferSyntaxUid, sopClassUid: SOP_CLASS, sopInstanceUid: SOP_INSTANCE });
}

/** A data set in a Part-10 file with the given transfer syntax in its File Meta. */
function wrap(dataSet: Uint8Array, transferSyntaxUid: string): Buffer {
  return Buffer.concat([encodeFileMeta({ transferSyntaxUid, sopClassUid: SOP_CLASS, sopInstanceUid: SOP_INSTANCE }), dataSet]);
}

/** The bytes after File Meta (which always has its group length: ours and DCMTK's). */
function dataSetOf(file: Buffer): Buffer {
  assert.equal(file.readUInt32LE(132), 0x00000002, 'File Meta starts with its group length');
  return file.subarray(132 + 12 + file.readUInt32LE(140));
}

async function tempFile(bytes: Uint8Array): Promise<string> {
  const p = path.join(dir, `f${fileNo++}.dcm`);
  await writeFile(p, bytes);
  return p;
}

/** dcmconv with the given options; returns the output file's bytes. */
async function dcmconv(input: Buffer, ...options: string[]): Promise<Buffer> {
  const src = await tempFile(input);
  const dst = path.join(dir, `f${fileNo++}.dcm`);
  await run('dcmconv', [...options, src, dst]);
  return readFile(dst);
}

/** What dcmconv writes for `to` in the form we write: data set only, undefined lengths, no group lengths. */
async function dcmtkDataSet(input: Buffer, to: string): Promise<Buffer> {
  return dcmconv(input, '-F', '-e', '-g', DCMCONV_OUT[to] as string);
}

async function dcmdump(file: Buffer): Promise<{ stdout: string; stderr: string }> {
  return run('dcmdump', ['+L', await tempFile(file)], { maxBuffer: 256 * 1024 * 1024 });
}

/**
 * dcmdump's data set lines with what legitimately differs between explicit-length and
 * undefined-length encodings taken out: lengths, the "explicit/undefined length" wording, the
 * delimiters DCMTK invents "for re-encoding", group lengths, the padding column.
 */
function normalisedDump(stdout: string): string[] {
  return stdout
    .split('\n')
    .filter((l) => /^\s*\(/.test(l) && !/^\s*\((0002,|[0-9a-f]{4},0000\))/.test(l))
    .map((l) => l
      .replace(/ for re-encod[a-z.]*/, '')
      .replace(/with (explicit|undefined) length /, '')
      .replace(/#\s*(\d+|u\/l),/, '#')
      .replace(/\s+/g, ' ')
      .trim());
}

/**
 * DCMTK's note on reading a private sequence in Implicit VR (its VR is unknown, so it is read as
 * UN of undefined length, PS3.5 6.2.2): what any undefined-length private sequence in Implicit VR
 * gets, dcmconv's own output included. Nothing else may be printed.
 */
const CP246_NOTE = /^W: Found element \([0-9a-f]{3}[13579bdf],[0-9a-f]{4}\) with VR UN and undefined length, reading a sequence with transfer syntax LittleEndianImplicit \(CP-246\)$/;

/** Our output must parse in DCMTK (exit 0) with no warning or error. */
async function assertDcmtkReadsCleanly(file: Buffer): Promise<string> {
  const { stdout, stderr } = await dcmdump(file);
  assert.deepEqual(stderr.split('\n').filter((l) => l !== '' && !CP246_NOTE.test(l)), [], 'dcmdump printed warnings');
  assert.doesNotMatch(stdout, /error|warning/i);
  return stdout;
}

/**
 * Pixel Data of 8 bits read from Implicit VR (where it is OW by definition) is written OB by us
 * and OW by dcmconv: both are valid for Bits Allocated <= 8 (PS3.5 A.2) and the bytes are the same.
 * Makes dcmconv's (7FE0,0010) of these lengths OB.
 */
function dcmtkEightBitPixelDataAsOb(theirs: Buffer, lengths: number[]): Buffer {
  const out = Buffer.from(theirs);
  for (const length of lengths) {
    const header = Buffer.from([0xe0, 0x7f, 0x10, 0x00, 0x4f, 0x57, 0, 0, 0, 0, 0, 0]);
    header.writeUInt32LE(length, 8);
    for (let at = out.indexOf(header); at >= 0; at = out.indexOf(header, at + 1)) out[at + 5] = 0x42;
  }
  return out;
}

/** The same, in dcmdump's rendering: OW words "0b6b" -> OB bytes "6b\0b". */
function owLineAsOb(line: string): string {
  return line.replace(/^\(7fe0,0010\) OW ([0-9a-f\\]+)/, (_, words: string) => `(7fe0,0010) OB ${words.split('\\').map((w) => `${w.slice(2)}\\${w.slice(0, 2)}`).join('\\')}`);
}

/** Dumps hold 100 kB lines: assert's diff of the whole would take minutes; report the first difference. */
function assertSameLines(actual: string[], expected: string[]): void {
  const n = Math.max(actual.length, expected.length);
  for (let i = 0; i < n; i++) {
    if (actual[i] !== expected[i]) assert.fail(`dump line ${i} differs:\n  ours:   ${actual[i]?.slice(0, 300)}\n  DCMTK:  ${expected[i]?.slice(0, 300)}`);
  }
}

function rejectsWithReencodeError(p: Promise<unknown>, message?: RegExp): Promise<void> {
  return assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ReencodeError, `expected ReencodeError, got ${String(err)}`);
    if (message) assert.match(err.message, message);
    return true;
  });
}

function words(n: number, seed: number): number[] {
  return Array.from({ length: n }, (_, i) => ((i * 2654435761 + seed * 40503) >>> 7) & 0xffff);
}

// ---------------------------------------------------------------------------------------------
// data sets

/** The Image Pixel module attributes that say how Pixel Data is laid out (not Pixel Data itself). */
function imagePixelModule(rows: number, columns: number, bitsAllocated: 8 | 16, frames?: number): WriteElement[] {
  return [
    { tag: '00280002', vr: 'US', value: [1] },
    { tag: '00280004', vr: 'CS', value: 'MONOCHROME2' },
    ...(frames === undefined ? [] : [{ tag: '00280008', vr: 'IS' as const, value: String(frames) }]),
    { tag: '00280010', vr: 'US', value: [rows] },
    { tag: '00280011', vr: 'US', value: [columns] },
    { tag: '00280100', vr: 'US', value: [bitsAllocated] },
    { tag: '00280101', vr: 'US', value: [bitsAllocated === 16 ? 12 : 8] },
    { tag: '00280102', vr: 'US', value: [bitsAllocated === 16 ? 11 : 7] },
    { tag: '00280103', vr: 'US', value: [0] },
  ];
}

/**
 * Every kind of element the transcoder distinguishes. Numbers are given as numbers so the writer
 * encodes them in each transfer syntax's byte order (Buffers are written verbatim: only OB/UN).
 */
function richDataSet(): WriteElement[] {
  const frames = 3;
  return [
    { tag: '00080000', vr: 'UL', value: [1234] }, // group length: wrong on purpose, must be dropped
    { tag: '00080005', vr: 'CS', value: 'ISO_IR 100' },
    { tag: '00080008', vr: 'CS', value: ['ORIGINAL', 'PRIMARY'] },
    { tag: '00080016', vr: 'UI', value: SOP_CLASS },
    { tag: '00080018', vr: 'UI', value: SOP_INSTANCE },
    { tag: '00080050', vr: 'SH', value: '' }, // empty
    { tag: '00080081', vr: 'ST', value: 'Street 1' },
    { tag: '0008010E', vr: 'UR', value: 'http://example.com/scheme' },
    { tag: '00080119', vr: 'UC', value: 'LONG CODE VALUE' },
    { tag: '00081140', vr: 'SQ', value: [ // defined length, nested defined and undefined, an empty item
      [
        { tag: '00081150', vr: 'UI', value: '1.2.840.10008.5.1.4.1.1.2' },
        { tag: '00081155', vr: 'UI', value: '1.2.3.4' },
        { tag: '00081160', vr: 'IS', value: ['1', '2', '3'] },
        { tag: '0040A170', vr: 'SQ', value: [[
          { tag: '00080100', vr: 'SH', value: 'CODE1' },
          { tag: '00080102', vr: 'SH', value: 'DCM' },
          { tag: '00080104', vr: 'LO', value: 'deepest' },
          { tag: '0040A043', vr: 'SQ', undefinedLength: true, value: [[{ tag: '00080100', vr: 'SH', value: 'L3' }], []] },
        ]] },
      ],
      [],
    ] },
    { tag: '00089459', vr: 'FL', value: [25, -0.5] },
    { tag: '00090010', vr: 'LO', value: 'PACSNODE TEST' }, // private creator
    { tag: '00091001', vr: 'OB', value: patternBytes(3000, 3) },
    { tag: '00091002', vr: 'LO', value: 'private text' },
    { tag: '00091003', vr: 'SQ', value: [[{ tag: '00100020', vr: 'LO', value: 'in a private sequence' }]] }, // private SQ, defined length
    { tag: '00091004', vr: 'SQ', undefinedLength: true, value: [[{ tag: '00100020', vr: 'LO', value: 'undefined' }], []] },
    { tag: '00100010', vr: 'PN', value: 'Doe^John' },
    { tag: '00100020', vr: 'LO', value: 'PID-1' },
    { tag: '00104000', vr: 'LT', value: 'L'.repeat(10240) }, // long LT (max VR length)
    { tag: '00111010', vr: 'LO', value: 'private, no creator' },
    { tag: '00111011', vr: 'UN', value: Buffer.from([1, 2, 3, 4, 5, 6]) },
    { tag: '00181310', vr: 'US', value: [512, 0, 0, 512] },
    { tag: '00186020', vr: 'SL', value: [-70000, 70000] },
    { tag: '00189219', vr: 'SS', value: [-3, 4] },
    { tag: '00181638', vr: 'OF', value: [1.5, -2.25, 3] },
    { tag: '00189087', vr: 'FD', value: [1000.25, -1e-300, 7] },
    { tag: '0018A001', vr: 'SQ', value: [] }, // empty sequence
    { tag: '00209165', vr: 'AT', value: ['00100010', '7FE00010', 'FFFEE000'] },
    ...imagePixelModule(16, 24, 16, frames),
    { tag: '0066002F', vr: 'SQ', undefinedLength: true, value: [[ // undefined length outside, defined inside
      { tag: '00660129', vr: 'OL', value: [1, 2, 0xfffffffe] },
      { tag: '00660022', vr: 'OD', value: [Math.PI, -0.125] },
      { tag: '00720081', vr: 'OV', value: [3, 2 ** 50] },
      { tag: '00720082', vr: 'SV', value: [-5, 2 ** 45] },
      { tag: '00720083', vr: 'UV', value: [1, 2 ** 40] },
    ]] },
    { tag: '00880200', vr: 'SQ', value: [[ // icon image: 8-bit pixel data in an item of a 16-bit data set
      ...imagePixelModule(8, 8, 8),
      { tag: '7FE00010', vr: 'OB', value: patternBytes(64, 9) },
    ]] },
    { tag: '0040A160', vr: 'UT', value: 'T'.repeat(100_001) }, // long UT, odd text length (padded)
    { tag: '7FE00010', vr: 'OW', value: words(16 * 24 * frames, 1) }, // 16-bit multi-frame
  ];
}

/** A multi-frame 8-bit data set: Pixel Data is OB, which implicit VR must learn from Bits Allocated. */
function eightBitDataSet(): WriteElement[] {
  return [
    { tag: '00080016', vr: 'UI', value: '1.2.840.10008.5.1.4.1.1.7.2' },
    { tag: '00080018', vr: 'UI', value: SOP_INSTANCE },
    ...imagePixelModule(10, 12, 8, 4),
    { tag: '7FE00010', vr: 'OB', value: patternBytes(10 * 12 * 4, 11) },
  ];
}

/** Two 512x520 16-bit frames: 1.02 MiB of Pixel Data. */
const LARGE_PIXELS = 512 * 520 * 2 * 2;

function largeDataSet(): WriteElement[] {
  return [
    { tag: '00080016', vr: 'UI', value: SOP_CLASS },
    { tag: '00080018', vr: 'UI', value: SOP_INSTANCE },
    { tag: '00081140', vr: 'SQ', value: [[{ tag: '00081150', vr: 'UI', value: '1.2.3' }]] },
    ...imagePixelModule(520, 512, 16, 2),
    { tag: '7FE00010', vr: 'OW', value: words(LARGE_PIXELS / 2, 5) },
  ];
}

// ---------------------------------------------------------------------------------------------
// what is supported

test('canReencode: LE <-> LE, big endian and deflated to LE, identity; nothing encapsulated', () => {
  for (const from of SOURCES) {
    for (const to of TARGETS) assert.equal(canReencode(from, to), true, `${NAME[from]} -> ${NAME[to]}`);
    assert.equal(canReencode(from, from), true);
  }
  assert.equal(canReencode(EXPLICIT_VR_LE, EXPLICIT_VR_BE), false);
  assert.equal(canReencode(IMPLICIT_VR_LE, DEFLATED_EXPLICIT_VR_LE), false);
  assert.equal(canReencode(EXPLICIT_VR_LE, JPEG_BASELINE), false);
  assert.equal(canReencode(JPEG_BASELINE, EXPLICIT_VR_LE), false);
  assert.equal(canReencode(RLE_LOSSLESS, IMPLICIT_VR_LE), false);
  assert.equal(canReencode(ENCAPSULATED_UNCOMPRESSED_EXPLICIT_VR_LE, EXPLICIT_VR_LE), false);
  assert.equal(canReencode(`${IMPLICIT_VR_LE}\0`, EXPLICIT_VR_LE), true, 'a padded UID is the same syntax');
  assert.throws(() => reencodeDataSet(chunks(Buffer.alloc(0), 1), JPEG_BASELINE, EXPLICIT_VR_LE), ReencodeError);
});

test('identity passes the chunks through untouched', async () => {
  const ds = dataSetOf(part10(richDataSet(), EXPLICIT_VR_BE));
  const parts: Uint8Array[] = [];
  for await (const c of reencodeDataSet(chunks(ds, 1000), EXPLICIT_VR_BE, EXPLICIT_VR_BE)) parts.push(c);
  assert.equal(parts.length, Math.ceil(ds.length / 1000));
  assert.ok(Buffer.concat(parts).equals(ds));
  assert.ok(parts.every((p) => p.buffer === ds.buffer), 'no copies');
});

// ---------------------------------------------------------------------------------------------
// against DCMTK

/** Lengths of the 8-bit Pixel Data values of each data set (icon and top level). */
const EIGHT_BIT_PIXELS: Record<string, number[]> = { rich: [64], '8-bit multi-frame': [480] };

for (const [label, build] of [['rich', richDataSet], ['8-bit multi-frame', eightBitDataSet]] as const) {
  for (const from of SOURCES) {
    for (const to of TARGETS) {
      if (from === to) continue;
      test(`${label} data set, ${NAME[from]} -> ${NAME[to]}: the bytes dcmconv writes, and dcmdump reads them cleanly`, async () => {
        const input = part10(build(), from);
        const ours = await reencode(dataSetOf(input), from, to);
        let theirs = await dcmtkDataSet(input, to);
        if (from === IMPLICIT_VR_LE) theirs = dcmtkEightBitPixelDataAsOb(theirs, EIGHT_BIT_PIXELS[label] ?? []);
        assert.ok(ours.equals(theirs), `differs from dcmconv (${ours.length} vs ${theirs.length} bytes) at byte ${firstDifference(ours, theirs)}`);

        // and as DCMTK sees it: our Part-10 file dumps like dcmconv's own, which has group lengths
        // and (in explicit VR) explicit-length sequences; in implicit VR a private sequence of
        // explicit length reads as UN bytes, so there dcmconv writes undefined lengths too
        const ourDump = normalisedDump(await assertDcmtkReadsCleanly(wrap(ours, to)));
        const dcmtkFile = await dcmconv(input, ...(to === IMPLICIT_VR_LE ? ['-e'] : []), DCMCONV_OUT[to] as string);
        const dcmtkDump = normalisedDump((await dcmdump(dcmtkFile)).stdout);
        assertSameLines(ourDump, dcmtkDump.map((l, i) => (ourDump[i]?.startsWith('(7fe0,0010) OB') === true ? owLineAsOb(l) : l)));
        assert.ok(ourDump.some((l) => /^\(7fe0,0010\) O[BW] /.test(l)));
        assert.ok(ourDump.length > (label === 'rich' ? 80 : 10));
      });
    }
  }
}

test('inputs written by DCMTK (explicit-length sequences, group lengths): the bytes dcmconv writes', async () => {
  const original = part10(richDataSet(), EXPLICIT_VR_LE);
  for (const from of SOURCES) {
    // dcmconv's default: explicit lengths, group lengths recalculated where present
    const input = from === EXPLICIT_VR_LE ? await dcmconv(original, '+g') : await dcmconv(original, '+g', DCMCONV_OUT[from] as string);
    for (const to of TARGETS) {
      if (from === to) continue;
      const ours = await reencode(dataSetOf(input), from, to, 65536);
      let theirs = await dcmtkDataSet(input, to);
      if (from === IMPLICIT_VR_LE) theirs = dcmtkEightBitPixelDataAsOb(theirs, EIGHT_BIT_PIXELS.rich ?? []);
      assert.ok(ours.equals(theirs), `${NAME[from]} -> ${NAME[to]}: differs from dcmconv at byte ${firstDifference(ours, theirs)}`);
    }
  }
});

function firstDifference(a: Buffer, b: Buffer): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

// ---------------------------------------------------------------------------------------------
// round trips

test('implicit -> explicit -> implicit keeps every value; the canonical form is a fixed point', async () => {
  const original = part10(richDataSet(), IMPLICIT_VR_LE);
  const explicit = await reencode(dataSetOf(original), IMPLICIT_VR_LE, EXPLICIT_VR_LE);
  const back = await reencode(explicit, EXPLICIT_VR_LE, IMPLICIT_VR_LE, 333);
  const again = await reencode(back, IMPLICIT_VR_LE, EXPLICIT_VR_LE, 3);
  assert.ok(again.equals(explicit));
  assert.ok((await reencode(back, IMPLICIT_VR_LE, IMPLICIT_VR_LE)).equals(back));

  const opts = { bulkdataThreshold: 1 << 30 };
  const before = readPart10HeaderFromBuffer(original, opts);
  const afterRoundTrip = readPart10HeaderFromBuffer(wrap(back, IMPLICIT_VR_LE), opts);
  assert.deepEqual(afterRoundTrip.dataset, before.dataset);
  assert.ok(before.pixelData?.length !== undefined && afterRoundTrip.pixelData?.length === before.pixelData.length);
  const px = (file: Buffer, at: number): Buffer => file.subarray(at, at + (before.pixelData?.length ?? 0));
  assert.ok(px(wrap(back, IMPLICIT_VR_LE), afterRoundTrip.pixelData.offset).equals(px(original, before.pixelData.offset)));
  // group lengths are dropped, everything else is there
  assert.equal(before.dataset['00080000'], undefined, 'the header reader never reports group lengths');
  assert.equal(back.indexOf(Buffer.from([0x08, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00])), -1);
});

test('big endian -> LE: Pixel Data and every number equal the little endian original', async () => {
  const be = dataSetOf(part10(richDataSet(), EXPLICIT_VR_BE));
  const le = dataSetOf(part10(richDataSet(), EXPLICIT_VR_LE));
  for (const to of TARGETS) {
    const fromBe = await reencode(be, EXPLICIT_VR_BE, to, 101);
    const fromLe = to === EXPLICIT_VR_LE ? await reencode(le, EXPLICIT_VR_LE, IMPLICIT_VR_LE).then((x) => reencode(x, IMPLICIT_VR_LE, EXPLICIT_VR_LE)) : await reencode(le, EXPLICIT_VR_LE, to);
    if (to === IMPLICIT_VR_LE) assert.ok(fromBe.equals(fromLe), 'the same bytes as from explicit LE');
    const opts = { bulkdataThreshold: 1 << 30 };
    const a = readPart10HeaderFromBuffer(wrap(fromBe, to), opts);
    const b = readPart10HeaderFromBuffer(part10(richDataSet(), EXPLICIT_VR_LE), opts);
    assert.deepEqual(a.dataset['00181310'], b.dataset['00181310']);
    assert.deepEqual(a.dataset['00209165'], { vr: 'AT', Value: ['00100010', '7FE00010', 'FFFEE000'] });
    assert.deepEqual(a.dataset['0066002F'], b.dataset['0066002F']);
    assert.ok(a.pixelData?.length !== undefined && b.pixelData?.length === a.pixelData.length);
    const pixels = Buffer.from(new Uint16Array(words(16 * 24 * 3, 1)).buffer);
    const ours = wrap(fromBe, to).subarray(a.pixelData.offset, a.pixelData.offset + a.pixelData.length);
    assert.ok(ours.equals(pixels), 'pixel data swapped to little endian');
  }
});

// ---------------------------------------------------------------------------------------------
// streaming

test('large data set: the same output whatever the chunking (1, 7, 4096 bytes, whole)', async () => {
  // 1-byte chunks cost an async iteration a byte: once over the whole data set, on the swapping path
  for (const [from, to, sizes] of [
    [EXPLICIT_VR_BE, EXPLICIT_VR_LE, [1, 7, 4096]],
    [IMPLICIT_VR_LE, EXPLICIT_VR_LE, [7, 4096]],
    [EXPLICIT_VR_LE, IMPLICIT_VR_LE, [4096]],
    [DEFLATED_EXPLICIT_VR_LE, EXPLICIT_VR_LE, [4096]], // each compressed chunk is a zlib call
  ] as const) {
    const input = part10(largeDataSet(), from);
    const ds = dataSetOf(input);
    const whole = await reencode(ds, from, to, ds.length);
    assert.ok(whole.length > 1024 * 1024);
    for (const size of sizes) {
      assert.ok((await reencode(ds, from, to, size)).equals(whole), `${NAME[from]} -> ${NAME[to]} in ${size}-byte chunks`);
    }
    assert.ok(whole.equals(await dcmtkDataSet(input, to)), `${NAME[from]} -> ${NAME[to]}: as dcmconv writes it`);
  }
});

test('rich data set: the same output in 1-byte and 7-byte chunks, every pair', async () => {
  for (const from of SOURCES) {
    const ds = dataSetOf(part10(richDataSet(), from));
    for (const to of TARGETS) {
      if (from === to) continue;
      const whole = await reencode(ds, from, to, ds.length);
      const oneByte = (from === IMPLICIT_VR_LE && to === EXPLICIT_VR_LE) || (from === EXPLICIT_VR_BE && to === IMPLICIT_VR_LE);
      for (const size of oneByte ? [1, 7] : [7]) {
        assert.ok((await reencode(ds, from, to, size)).equals(whole), `${NAME[from]} -> ${NAME[to]} in ${size}-byte chunks`);
      }
    }
  }
});

test('large values pass through as slices of the input; swapped ones in pieces of at most 64 KiB', async () => {
  const le = dataSetOf(part10(largeDataSet(), EXPLICIT_VR_LE));
  let sliced = 0;
  for await (const c of reencodeDataSet(chunks(le, le.length), EXPLICIT_VR_LE, IMPLICIT_VR_LE)) {
    if (c.buffer === le.buffer) sliced += c.length;
  }
  assert.equal(sliced, LARGE_PIXELS, 'Pixel Data was not copied');

  const be = dataSetOf(part10(largeDataSet(), EXPLICIT_VR_BE));
  let total = 0;
  for await (const c of reencodeDataSet(chunks(be, be.length), EXPLICIT_VR_BE, EXPLICIT_VR_LE)) {
    assert.ok(c.length <= 64 * 1024, `an output chunk of ${c.length} bytes`);
    total += c.length;
  }
  assert.ok(total > LARGE_PIXELS);
});

test('a consumer that stops early ends the deflate stream and the source', async () => {
  const ds = dataSetOf(part10(largeDataSet(), DEFLATED_EXPLICIT_VR_LE));
  let finished = false;
  async function* source(): AsyncGenerator<Uint8Array> {
    try {
      for await (const c of chunks(ds, 512)) yield c;
    } finally {
      finished = true;
    }
  }
  for await (const c of reencodeDataSet(source(), DEFLATED_EXPLICIT_VR_LE, IMPLICIT_VR_LE)) {
    assert.ok(c.length > 0);
    break;
  }
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(finished, true);
});

// ---------------------------------------------------------------------------------------------
// particular rules

/** Explicit VR LE element bytes by hand (for what the writer will not write). */
function explicitElement(group: number, element: number, vr: string, length: number, value: Buffer = Buffer.alloc(0)): Buffer {
  const long = ['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV'].includes(vr);
  const h = Buffer.alloc(long ? 12 : 8);
  h.writeUInt16LE(group, 0);
  h.writeUInt16LE(element, 2);
  h.write(vr, 4, 'latin1');
  if (long) h.writeUInt32LE(length, 8);
  else h.writeUInt16LE(length, 6);
  return Buffer.concat([h, value]);
}

function implicitElement(group: number, element: number, length: number, value: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16LE(group, 0);
  h.writeUInt16LE(element, 2);
  h.writeUInt32LE(length, 4);
  return Buffer.concat([h, value]);
}

const ITEM = implicitElement(0xfffe, 0xe000, 0xffffffff);
const ITEM_END = implicitElement(0xfffe, 0xe00d, 0);
const SEQ_END = implicitElement(0xfffe, 0xe0dd, 0);

test('explicit UN of undefined length is a sequence in implicit VR LE (PS3.5 6.2.2): converted as one', async () => {
  const content = Buffer.concat([ITEM, implicitElement(0x0009, 0x1011, 2, Buffer.from('xy')), implicitElement(0x0010, 0x0020, 4, Buffer.from('ABCD')), ITEM_END, SEQ_END]);
  const explicit = Buffer.concat([
    explicitElement(0x0008, 0x0018, 'UI', 6, Buffer.from('1.2.3\0')),
    explicitElement(0x0009, 0x0010, 'LO', 4, Buffer.from('ACME')),
    explicitElement(0x0009, 0x1010, 'UN', 0xffffffff, content),
    explicitElement(0x0010, 0x0010, 'PN', 4, Buffer.from('Doe^')),
  ]);
  const implicit = await reencode(explicit, EXPLICIT_VR_LE, IMPLICIT_VR_LE, 5);
  assert.ok(implicit.equals(Buffer.concat([
    implicitElement(0x0008, 0x0018, 6, Buffer.from('1.2.3\0')),
    implicitElement(0x0009, 0x0010, 4, Buffer.from('ACME')),
    implicitElement(0x0009, 0x1010, 0xffffffff, content),
    implicitElement(0x0010, 0x0010, 4, Buffer.from('Doe^')),
  ])));
  assert.ok(implicit.equals(await dcmtkDataSet(wrap(explicit, EXPLICIT_VR_LE), IMPLICIT_VR_LE)));

  // in a big endian data set the UN content stays little endian; explicit output makes it an SQ
  const beHead = Buffer.from([0x00, 0x09, 0x10, 0x10, 0x55, 0x4e, 0, 0, 0xff, 0xff, 0xff, 0xff]);
  const be = Buffer.concat([beHead, content, Buffer.from([0x00, 0x10, 0x00, 0x10, 0x50, 0x4e, 0x00, 0x04]), Buffer.from('Doe^')]);
  const out = await reencode(be, EXPLICIT_VR_BE, EXPLICIT_VR_LE, 3);
  assert.ok(out.equals(Buffer.concat([
    explicitElement(0x0009, 0x1010, 'SQ', 0xffffffff),
    ITEM, explicitElement(0x0009, 0x1011, 'UN', 2, Buffer.from('xy')), explicitElement(0x0010, 0x0020, 'LO', 4, Buffer.from('ABCD')), ITEM_END, SEQ_END,
    explicitElement(0x0010, 0x0010, 'PN', 4, Buffer.from('Doe^')),
  ])));
  assert.ok(out.equals(await dcmtkDataSet(wrap(be, EXPLICIT_VR_BE), EXPLICIT_VR_LE)));
  await assertDcmtkReadsCleanly(wrap(out, EXPLICIT_VR_LE));
});

test('implicit -> explicit: a value too long for its VR\'s 16-bit length becomes UN; odd lengths are kept', async () => {
  const long = Buffer.alloc(70_000, 0x41);
  const implicit = Buffer.concat([
    implicitElement(0x0009, 0x0010, 4, Buffer.from('ACME')),
    implicitElement(0x0009, 0x1001, 3, Buffer.from([1, 2, 3])), // odd-length private
    implicitElement(0x0010, 0x4000, long.length, long), // LT
    implicitElement(0x0020, 0x4000, 0), // empty LT
  ]);
  const out = await reencode(implicit, IMPLICIT_VR_LE, EXPLICIT_VR_LE, 1000);
  assert.ok(out.equals(Buffer.concat([
    explicitElement(0x0009, 0x0010, 'LO', 4, Buffer.from('ACME')),
    explicitElement(0x0009, 0x1001, 'UN', 3, Buffer.from([1, 2, 3])),
    explicitElement(0x0010, 0x4000, 'UN', long.length, long),
    explicitElement(0x0020, 0x4000, 'LT', 0),
  ])));
  assert.ok((await reencode(out, EXPLICIT_VR_LE, IMPLICIT_VR_LE)).equals(implicit));
});

test('big endian: each value swapped by its VR, odd trailing bytes as they are, OB/UN/text untouched', async () => {
  const be = Buffer.concat([
    Buffer.from([0x00, 0x08, 0x00, 0x16, 0x55, 0x49, 0x00, 0x04]), Buffer.from('1.2\0'), // UI
    Buffer.from([0x00, 0x09, 0x00, 0x10, 0x4c, 0x4f, 0x00, 0x04]), Buffer.from('ACME'),
    Buffer.from([0x00, 0x09, 0x10, 0x01, 0x4f, 0x42, 0, 0, 0, 0, 0, 3, 1, 2, 3]), // OB, odd length
    Buffer.from([0x00, 0x09, 0x10, 0x02, 0x4f, 0x57, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4, 5]), // OW, odd length
    Buffer.from([0x00, 0x09, 0x10, 0x03, 0x55, 0x4e, 0, 0, 0, 0, 0, 2, 1, 2]), // UN
    Buffer.from([0x00, 0x18, 0x13, 0x10, 0x55, 0x53, 0x00, 0x04, 0x01, 0x02, 0x03, 0x04]), // US x2
    Buffer.from([0x00, 0x18, 0x60, 0x20, 0x53, 0x4c, 0x00, 0x04, 0x01, 0x02, 0x03, 0x04]), // SL
    Buffer.from([0x00, 0x18, 0x90, 0x87, 0x46, 0x44, 0x00, 0x08, 1, 2, 3, 4, 5, 6, 7, 8]), // FD
    Buffer.from([0x00, 0x20, 0x91, 0x65, 0x41, 0x54, 0x00, 0x04, 0x00, 0x10, 0x00, 0x20]), // AT (0010,0020)
  ]);
  for (const size of [1, 2, 3, 1000]) {
    const out = await reencode(be, EXPLICIT_VR_BE, IMPLICIT_VR_LE, size);
    assert.ok(out.equals(Buffer.concat([
      implicitElement(0x0008, 0x0016, 4, Buffer.from('1.2\0')),
      implicitElement(0x0009, 0x0010, 4, Buffer.from('ACME')),
      implicitElement(0x0009, 0x1001, 3, Buffer.from([1, 2, 3])),
      implicitElement(0x0009, 0x1002, 5, Buffer.from([2, 1, 4, 3, 5])),
      implicitElement(0x0009, 0x1003, 2, Buffer.from([1, 2])),
      implicitElement(0x0018, 0x1310, 4, Buffer.from([2, 1, 4, 3])),
      implicitElement(0x0018, 0x6020, 4, Buffer.from([4, 3, 2, 1])),
      implicitElement(0x0018, 0x9087, 8, Buffer.from([8, 7, 6, 5, 4, 3, 2, 1])),
      implicitElement(0x0020, 0x9165, 4, Buffer.from([0x10, 0x00, 0x20, 0x00])),
    ])), `${size}-byte chunks`);
  }
});

test('Pixel Data VR from implicit: OW, or OB after Bits Allocated <= 8 in the same data set or item', async () => {
  const px = Buffer.from([1, 2, 3, 4]);
  const bits = (n: number): Buffer => implicitElement(0x0028, 0x0100, 2, Buffer.from([n, 0]));
  const pixel = implicitElement(0x7fe0, 0x0010, 4, px);
  const cases: [Buffer, string][] = [
    [pixel, 'OW'],
    [Buffer.concat([bits(8), pixel]), 'OB'],
    [Buffer.concat([bits(1), pixel]), 'OB'],
    [Buffer.concat([bits(16), pixel]), 'OW'],
    [Buffer.concat([bits(8), implicitElement(0x0088, 0x0200, 0xffffffff), ITEM, bits(16), ITEM_END, SEQ_END, pixel]), 'OB'],
  ];
  for (const [input, vr] of cases) {
    const out = await reencode(input, IMPLICIT_VR_LE, EXPLICIT_VR_LE, 3);
    assert.ok(out.subarray(out.length - 16).equals(explicitElement(0x7fe0, 0x0010, vr, 4, px)), vr);
  }
  // 8 bits in an icon item: its Pixel Data is OB; the 16-bit data set's stays OW
  const nested = await reencode(dataSetOf(part10(richDataSet(), IMPLICIT_VR_LE)), IMPLICIT_VR_LE, EXPLICIT_VR_LE);
  const header = readPart10HeaderFromBuffer(wrap(nested, EXPLICIT_VR_LE), { bulkdataThreshold: 1 << 30 });
  assert.equal(header.pixelData?.vr, 'OW');
  const icon = header.dataset['00880200']?.Value?.[0] as Record<string, { vr: string }> | undefined;
  assert.equal(icon?.['7FE00010']?.vr, 'OB');
});

test('Data Set Trailing Padding (FFFC,FFFC) passes through', async () => {
  const ds = [...eightBitDataSet(), { tag: 'FFFCFFFC', vr: 'OB' as const, value: Buffer.alloc(10) }];
  const out = await reencode(dataSetOf(part10(ds, EXPLICIT_VR_LE)), EXPLICIT_VR_LE, IMPLICIT_VR_LE);
  assert.ok(out.subarray(out.length - 18).equals(implicitElement(0xfffc, 0xfffc, 10, Buffer.alloc(10))));
  const back = await reencode(out, IMPLICIT_VR_LE, EXPLICIT_VR_LE);
  assert.ok(back.equals(dataSetOf(part10(ds, EXPLICIT_VR_LE))));
  await assertDcmtkReadsCleanly(wrap(out, IMPLICIT_VR_LE));
});

// ---------------------------------------------------------------------------------------------
// malformed input

/** A small data set whose top-level element boundaries we know: every other cut is mid-element. */
function smallElements(): WriteElement[] {
  return [
    { tag: '00080018', vr: 'UI', value: '1.2.3' },
    { tag: '00081140', vr: 'SQ', value: [[{ tag: '00081150', vr: 'UI', value: '1.2' }, { tag: '0040A043', vr: 'SQ', undefinedLength: true, value: [[{ tag: '00080100', vr: 'SH', value: 'X' }]] }]] },
    { tag: '00100010', vr: 'PN', value: 'Doe' },
    { tag: '00209165', vr: 'AT', value: ['00100010'] },
    { tag: '0040A730', vr: 'SQ', undefinedLength: true, value: [[{ tag: '0040A010', vr: 'CS', value: 'CONTAINS' }], []] },
    { tag: '7FE00010', vr: 'OW', value: [1, 2, 3] },
  ];
}

test('truncated input: every cut inside an element, header or sequence rejects; cuts between elements do not', async () => {
  for (const from of [IMPLICIT_VR_LE, EXPLICIT_VR_LE, EXPLICIT_VR_BE]) {
    const explicitVr = from !== IMPLICIT_VR_LE;
    const littleEndian = from !== EXPLICIT_VR_BE;
    const elements = smallElements();
    const ds = encodeDataset(elements, { explicitVr, littleEndian });
    const boundaries = new Set<number>([0]);
    let at = 0;
    for (const el of elements) boundaries.add((at += encodeElement(el, { explicitVr, littleEndian }).length));
    assert.equal(at, ds.length);
    const to = from === IMPLICIT_VR_LE ? EXPLICIT_VR_LE : IMPLICIT_VR_LE;
    for (let cut = 1; cut < ds.length; cut++) {
      const p = reencode(ds.subarray(0, cut), from, to, 5);
      if (boundaries.has(cut)) await p;
      else await rejectsWithReencodeError(p, /ended/);
    }
  }
});

test('deflated input: inflated; corrupt or truncated deflate data rejects', async () => {
  const plain = dataSetOf(part10(eightBitDataSet(), EXPLICIT_VR_LE));
  const deflated = deflateRawSync(plain);
  assert.ok((await reencode(deflated, DEFLATED_EXPLICIT_VR_LE, IMPLICIT_VR_LE, 3)).equals(await reencode(plain, EXPLICIT_VR_LE, IMPLICIT_VR_LE)));
  await rejectsWithReencodeError(reencode(patternBytes(500, 1), DEFLATED_EXPLICIT_VR_LE, EXPLICIT_VR_LE), /deflate/);
  await rejectsWithReencodeError(reencode(deflated.subarray(0, deflated.length - 10), DEFLATED_EXPLICIT_VR_LE, EXPLICIT_VR_LE));
  // a source that fails keeps its own error
  async function* failing(): AsyncGenerator<Uint8Array> {
    yield deflated.subarray(0, 10);
    throw new Error('socket closed');
  }
  await assert.rejects(collect(reencodeDataSet(failing(), DEFLATED_EXPLICIT_VR_LE, EXPLICIT_VR_LE)), /socket closed/);
});

test('encapsulated Pixel Data rejects (it belongs to encapsulated transfer syntaxes)', async () => {
  const encapsulated = encapsulatedPixelData([Buffer.from([1, 2, 3, 4])]);
  for (const from of [EXPLICIT_VR_LE, IMPLICIT_VR_LE]) {
    const ds = encodeDataset([...eightBitDataSet().slice(0, -1), { tag: '7FE00010', vr: 'OB', undefinedLength: true, value: encapsulated }], { explicitVr: from === EXPLICIT_VR_LE });
    await rejectsWithReencodeError(reencode(ds, from, from === EXPLICIT_VR_LE ? IMPLICIT_VR_LE : EXPLICIT_VR_LE), /encapsulated/);
  }
});

test('structural errors reject: invalid VR, element overrunning its item, item outside a sequence, nesting too deep', async () => {
  await rejectsWithReencodeError(reencode(explicitElement(0x0010, 0x0010, 'ZZ', 2, Buffer.from('ab')), EXPLICIT_VR_LE, IMPLICIT_VR_LE), /VR/);
  const overrun = Buffer.concat([
    implicitElement(0x0008, 0x1140, 20),
    implicitElement(0xfffe, 0xe000, 12), implicitElement(0x0008, 0x1150, 6, Buffer.from('1.2.3\0')),
  ]);
  await rejectsWithReencodeError(reencode(overrun, IMPLICIT_VR_LE, EXPLICIT_VR_LE), /overruns/);
  await rejectsWithReencodeError(reencode(Buffer.concat([ITEM, ITEM_END]), IMPLICIT_VR_LE, EXPLICIT_VR_LE), /unexpected/);
  await rejectsWithReencodeError(reencode(Buffer.concat([implicitElement(0x0008, 0x1140, 0xffffffff), implicitElement(0x0008, 0x0018, 0)]), IMPLICIT_VR_LE, EXPLICIT_VR_LE), /expected an item/);
  const deep = Buffer.concat([
    ...Array.from({ length: 40 }, () => [implicitElement(0x0008, 0x1140, 0xffffffff), ITEM]).flat(),
    ...Array.from({ length: 40 }, () => [ITEM_END, SEQ_END]).flat(),
  ]);
  await rejectsWithReencodeError(reencode(deep, IMPLICIT_VR_LE, EXPLICIT_VR_LE), /nested/);
  const shallow = deep.subarray(16 * 30, deep.length - 16 * 30);
  assert.ok((await reencode(shallow, IMPLICIT_VR_LE, EXPLICIT_VR_LE)).length > 0);
});

test('implicit -> explicit: a "US or SS" pixel value is written SS when Pixel Representation is 1 (also in an item without its own), US when 0', async () => {
  const signed = (pr: number): Buffer =>
    encodeDataset(
      [
        { tag: '00280103', vr: 'US', value: [pr] },
        { tag: '00280106', vr: 'SS', value: [-100] },
        { tag: '00280120', vr: 'SS', value: [-2000] },
        { tag: '00880200', vr: 'SQ', value: [[{ tag: '00280106', vr: 'SS', value: [-5] }]] },
      ],
      { explicitVr: false },
    );
  for (const [pr, vr, values] of [
    [1, 'SS', [-100, -2000, -5]],
    [0, 'US', [65436, 63536, 65531]],
  ] as const) {
    const out = await reencode(signed(pr), IMPLICIT_VR_LE, EXPLICIT_VR_LE);
    const h = readPart10HeaderFromBuffer(Buffer.concat([encodeFileMeta({ sopClassUid: SOP_CLASS, sopInstanceUid: SOP_INSTANCE, transferSyntaxUid: EXPLICIT_VR_LE }), out]), { bulkdataThreshold: 1024 });
    assert.equal(h.dataset['00280106']?.vr, vr);
    assert.equal(h.dataset['00280120']?.vr, vr);
    const item = (h.dataset['00880200']?.Value?.[0] ?? {}) as Record<string, { vr?: string; Value?: unknown[] }>;
    assert.equal(item['00280106']?.vr, vr);
    assert.deepEqual([h.dataset['00280106']?.Value?.[0], h.dataset['00280120']?.Value?.[0], item['00280106']?.Value?.[0]], values);
  }
});
