// A generated test corpus of Part-10 files (fresh UIDs on every call, deterministic content):
// several patients and studies, names in ISO_IR 100 / ISO_IR 192 / ISO 2022 IR 87 / ISO 2022 IR 149 /
// GB18030 (the PS3.5 Annex H, I and J examples, byte for byte), native single- and multi-frame
// pixel data, JPEG baseline (made by DCMTK's dcmcjpeg) single- and multi-frame with and without a
// Basic Offset Table, RLE (dcmcrle), a sequence, private tags, Implicit VR LE and Explicit VR BE.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { VR } from '../../src/dicom/types.js';
import { generateUid } from '../../src/dicom/uids.js';
import { encapsulatedPixelData, writePart10, type WriteElement } from '../../src/dicom/writer.js';

const run = promisify(execFile);

export const TS = {
  IMPLICIT_LE: '1.2.840.10008.1.2',
  EXPLICIT_LE: '1.2.840.10008.1.2.1',
  EXPLICIT_BE: '1.2.840.10008.1.2.2',
  JPEG_BASELINE: '1.2.840.10008.1.2.4.50',
  RLE: '1.2.840.10008.1.2.5',
} as const;

export const SOP_CLASS = {
  CT: '1.2.840.10008.5.1.4.1.1.2',
  MR: '1.2.840.10008.5.1.4.1.1.4',
  CR: '1.2.840.10008.5.1.4.1.1.1',
  SC: '1.2.840.10008.5.1.4.1.1.7',
  MF_BYTE_SC: '1.2.840.10008.5.1.4.1.1.7.2',
  MF_WORD_SC: '1.2.840.10008.5.1.4.1.1.7.3',
} as const;

const ESC = 0x1b;
const ESC_$B = [ESC, 0x24, 0x42]; // JIS X 0208 into G0
const ESC_B = [ESC, 0x28, 0x42]; // ASCII into G0
const ESC_$_C = [ESC, 0x24, 0x29, 0x43]; // KS X 1001 into G1

/** Concatenates ASCII strings and raw byte lists. */
export function bytes(...pieces: (string | number[])[]): Buffer {
  return Buffer.concat(pieces.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));
}

/** The person names of the corpus: exact value bytes, their charset and the decoded groups. */
export interface CorpusPatient {
  key: string;
  patientId: string;
  /** (0008,0005) value as written, or undefined for none. */
  charset?: string;
  nameBytes: Buffer;
  /** The decoded value `Alphabetic=Ideographic=Phonetic` (trailing empty groups kept as written). */
  name: string;
  alphabetic: string;
  ideographic?: string;
  phonetic?: string;
  birthDate: string;
  sex: string;
}

export const PATIENTS = {
  mueller: {
    key: 'mueller',
    patientId: 'PID-123-MUE',
    charset: 'ISO_IR 100',
    nameBytes: Buffer.from('Müller^Jürgen', 'latin1'),
    name: 'Müller^Jürgen',
    alphabetic: 'Müller^Jürgen',
    birthDate: '19600412',
    sex: 'M',
  },
  // PS3.5 H.3.1
  yamada: {
    key: 'yamada',
    patientId: 'JP-0087',
    charset: '\\ISO 2022 IR 87',
    nameBytes: bytes(
      'Yamada^Tarou=',
      ESC_$B, [0x3b, 0x33, 0x45, 0x44], ESC_B, '^', ESC_$B, [0x42, 0x40, 0x4f, 0x3a], ESC_B, '=',
      ESC_$B, [0x24, 0x64, 0x24, 0x5e, 0x24, 0x40], ESC_B, '^', ESC_$B, [0x24, 0x3f, 0x24, 0x6d, 0x24, 0x26], ESC_B,
    ),
    name: 'Yamada^Tarou=山田^太郎=やまだ^たろう',
    alphabetic: 'Yamada^Tarou',
    ideographic: '山田^太郎',
    phonetic: 'やまだ^たろう',
    birthDate: '19700101',
    sex: 'M',
  },
  // PS3.5 I.2
  hong: {
    key: 'hong',
    patientId: 'KR-0149',
    charset: '\\ISO 2022 IR 149',
    nameBytes: bytes(
      'Hong^Gildong=',
      ESC_$_C, [0xfb, 0xf3], '^', ESC_$_C, [0xd1, 0xce, 0xd4, 0xd7], '=',
      ESC_$_C, [0xc8, 0xab], '^', ESC_$_C, [0xb1, 0xe6, 0xb5, 0xbf],
    ),
    name: 'Hong^Gildong=洪^吉洞=홍^길동',
    alphabetic: 'Hong^Gildong',
    ideographic: '洪^吉洞',
    phonetic: '홍^길동',
    birthDate: '19800808',
    sex: 'M',
  },
  // PS3.5 J.1 (UTF-8)
  wangUtf8: {
    key: 'wangUtf8',
    patientId: 'CN-0192',
    charset: 'ISO_IR 192',
    nameBytes: bytes('Wang^XiaoDong=', [0xe7, 0x8e, 0x8b], '^', [0xe5, 0xb0, 0x8f, 0xe6, 0x9d, 0xb1], '='),
    name: 'Wang^XiaoDong=王^小東=',
    alphabetic: 'Wang^XiaoDong',
    ideographic: '王^小東',
    birthDate: '19900202',
    sex: 'M',
  },
  // PS3.5 J.3 (GB18030)
  wangGb: {
    key: 'wangGb',
    patientId: 'CN-18030',
    charset: 'GB18030',
    nameBytes: bytes('Wang^XiaoDong=', [0xcd, 0xf5], '^', [0xd0, 0xa1, 0xb6, 0xab], '='),
    name: 'Wang^XiaoDong=王^小东=',
    alphabetic: 'Wang^XiaoDong',
    ideographic: '王^小东',
    birthDate: '19910303',
    sex: 'M',
  },
  doe: {
    key: 'doe',
    patientId: '123456',
    nameBytes: Buffer.from('DOE^JOHN', 'latin1'),
    name: 'DOE^JOHN',
    alphabetic: 'DOE^JOHN',
    birthDate: '19751231',
    sex: 'M',
  },
} satisfies Record<string, CorpusPatient>;

export type PatientKey = keyof typeof PATIENTS;

export interface CorpusFile {
  /** A stable label, e.g. 'ct512', 'jpegMultiBot'. */
  label: string;
  path: string;
  bytes: Buffer;
  sopUid: string;
  seriesUid: string;
  studyUid: string;
  sopClassUid: string;
  transferSyntax: string;
  patient: CorpusPatient;
  modality: string;
  studyDate: string;
  accessionNumber: string;
  studyDescription: string;
  numberOfFrames: number;
  /**
   * The frames as WADO-RS must answer them: native = little-endian pixel bytes of each frame (big
   * endian data already swapped); encapsulated = the stored fragment bytes of each frame.
   */
  frames?: Buffer[];
  /** Binary values longer than the bulk data threshold: tag path (as in BulkDataURI) -> exact value bytes. */
  bulk: Record<string, Buffer>;
  /** Short binary values expected as InlineBinary: tag path -> exact value bytes. */
  inline: Record<string, Buffer>;
}

export interface CorpusStudy {
  key: string;
  studyUid: string;
  patient: CorpusPatient;
  modality: string;
  studyDate: string;
  accessionNumber: string;
  description: string;
}

export interface Corpus {
  dir: string;
  files: CorpusFile[];
  studies: CorpusStudy[];
  file(label: string): CorpusFile;
  study(key: string): CorpusStudy;
  cleanup(): Promise<void>;
}

// ---- pixel data ----

function pixels16(rows: number, cols: number, frame: number, le = true): Buffer {
  const b = Buffer.alloc(rows * cols * 2);
  for (let y = 0; y < rows; y++) {
    for (let x = 0; x < cols; x++) {
      const v = ((x * 7 + y * 13 + frame * 101) ^ (x * y)) & 0x0fff;
      const o = (y * cols + x) * 2;
      if (le) b.writeUInt16LE(v, o);
      else b.writeUInt16BE(v, o);
    }
  }
  return b;
}

function pixels8(rows: number, cols: number, frame: number): Buffer {
  const b = Buffer.alloc(rows * cols);
  // smooth gradients with a moving square: compresses to a small but real JPEG
  for (let y = 0; y < rows; y++) {
    for (let x = 0; x < cols; x++) {
      const inSquare = x >= frame * 8 && x < frame * 8 + 16 && y >= 16 && y < 32;
      b[y * cols + x] = inSquare ? 250 : (x * 2 + y + frame * 20) & 0xff;
    }
  }
  return b;
}

/** Deterministic "random-looking" bytes. */
export function patternBytes(length: number, seed: number): Buffer {
  const b = Buffer.alloc(length);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    b[i] = s & 0xff;
  }
  return b;
}

// ---- datasets ----

export interface InstanceSpec {
  patient: CorpusPatient;
  studyUid: string;
  seriesUid: string;
  sopUid: string;
  sopClassUid: string;
  modality: string;
  studyDate: string;
  accessionNumber: string;
  studyDescription: string;
  seriesNumber: number;
  instanceNumber: number;
  seriesDescription?: string;
  referringPhysician?: string;
  /** Image pixel module, when the instance has pixels (PixelData itself goes in `extra`). */
  image?: { rows: number; cols: number; bits: number; frames?: number; photometric?: string; pixelRepresentation?: number };
  extra?: WriteElement[];
}

/** The elements of one instance (without File Meta). */
export function datasetElements(spec: InstanceSpec): WriteElement[] {
  const p = spec.patient;
  const els: WriteElement[] = [
    { tag: '00080016', vr: 'UI', value: spec.sopClassUid },
    { tag: '00080018', vr: 'UI', value: spec.sopUid },
    { tag: '00080020', vr: 'DA', value: spec.studyDate },
    { tag: '00080021', vr: 'DA', value: spec.studyDate },
    { tag: '00080030', vr: 'TM', value: '101500' },
    { tag: '00080031', vr: 'TM', value: '101600' },
    { tag: '00080050', vr: 'SH', value: spec.accessionNumber },
    { tag: '00080060', vr: 'CS', value: spec.modality },
    { tag: '00080090', vr: 'PN', value: spec.referringPhysician ?? 'House^Gregory' },
    { tag: '00081030', vr: 'LO', value: spec.studyDescription },
    { tag: '0008103E', vr: 'LO', value: spec.seriesDescription ?? `Series ${spec.seriesNumber}` },
    { tag: '00100010', vr: 'PN', value: p.nameBytes },
    { tag: '00100020', vr: 'LO', value: p.patientId },
    { tag: '00100030', vr: 'DA', value: p.birthDate },
    { tag: '00100040', vr: 'CS', value: p.sex },
    { tag: '0020000D', vr: 'UI', value: spec.studyUid },
    { tag: '0020000E', vr: 'UI', value: spec.seriesUid },
    { tag: '00200010', vr: 'SH', value: 'S1' },
    { tag: '00200011', vr: 'IS', value: String(spec.seriesNumber) },
    { tag: '00200013', vr: 'IS', value: String(spec.instanceNumber) },
  ];
  if (p.charset !== undefined) els.push({ tag: '00080005', vr: 'CS', value: p.charset });
  if (spec.image) {
    const im = spec.image;
    els.push(
      { tag: '00280002', vr: 'US', value: [1] },
      { tag: '00280004', vr: 'CS', value: im.photometric ?? 'MONOCHROME2' },
      { tag: '00280010', vr: 'US', value: [im.rows] },
      { tag: '00280011', vr: 'US', value: [im.cols] },
      { tag: '00280100', vr: 'US', value: [im.bits] },
      { tag: '00280101', vr: 'US', value: [im.bits === 16 ? 12 : 8] },
      { tag: '00280102', vr: 'US', value: [im.bits === 16 ? 11 : 7] },
      { tag: '00280103', vr: 'US', value: [im.pixelRepresentation ?? 0] },
    );
    if (im.frames !== undefined) els.push({ tag: '00280008', vr: 'IS', value: String(im.frames) });
  }
  return [...els, ...(spec.extra ?? [])];
}

/** A small valid instance (Explicit VR LE, 8x8 8-bit pixels) with the given identity: for STOW status tests. */
export function simpleInstance(opts: {
  studyUid?: string;
  seriesUid?: string;
  sopUid?: string;
  sopClassUid?: string;
  patient?: CorpusPatient;
  /** Leave SOP Instance UID (0008,0018) out of the dataset (File Meta keeps it). */
  omitSopUid?: boolean;
  studyDescription?: string;
  fill?: number;
}): { bytes: Buffer; studyUid: string; seriesUid: string; sopUid: string; sopClassUid: string } {
  const studyUid = opts.studyUid ?? generateUid();
  const seriesUid = opts.seriesUid ?? generateUid();
  const sopUid = opts.sopUid ?? generateUid();
  const sopClassUid = opts.sopClassUid ?? SOP_CLASS.SC;
  let dataset = datasetElements({
    patient: opts.patient ?? PATIENTS.doe,
    studyUid,
    seriesUid,
    sopUid,
    sopClassUid,
    modality: 'OT',
    studyDate: '20230101',
    accessionNumber: 'SIMPLE',
    studyDescription: opts.studyDescription ?? 'simple',
    seriesNumber: 1,
    instanceNumber: 1,
    image: { rows: 8, cols: 8, bits: 8 },
    extra: [{ tag: '7FE00010', vr: 'OB', value: Buffer.alloc(64, opts.fill ?? 7) }],
  });
  if (opts.omitSopUid === true) dataset = dataset.filter((e) => e.tag !== '00080018');
  const bytes = writePart10({ dataset, transferSyntaxUid: TS.EXPLICIT_LE, sopClassUid, sopInstanceUid: sopUid });
  return { bytes, studyUid, seriesUid, sopUid, sopClassUid };
}

// ---- encapsulated pixel data of a file written by DCMTK ----

/** The fragments of the (top-level, last) encapsulated Pixel Data element: BOT first, then the fragments. */
export function readEncapsulatedItems(file: Buffer): { bot: Buffer; fragments: Buffer[] } {
  // (7FE0,0010) OB, reserved, undefined length — Explicit VR LE, as every encapsulated syntax is
  const marker = Buffer.from([0xe0, 0x7f, 0x10, 0x00, 0x4f, 0x42, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff]);
  const at = file.lastIndexOf(marker);
  if (at < 0) throw new Error('no encapsulated pixel data');
  let p = at + marker.length;
  const items: Buffer[] = [];
  for (;;) {
    const group = file.readUInt16LE(p);
    const element = file.readUInt16LE(p + 2);
    const length = file.readUInt32LE(p + 4);
    p += 8;
    if (group !== 0xfffe) throw new Error('bad item tag in encapsulated pixel data');
    if (element === 0xe0dd) break;
    items.push(file.subarray(p, p + length));
    p += length;
  }
  const [bot, ...fragments] = items;
  if (bot === undefined) throw new Error('no Basic Offset Table item');
  return { bot, fragments };
}

// ---- building ----

interface Builder {
  dir: string;
  files: CorpusFile[];
}

async function addFile(b: Builder, label: string, bytesOf: Buffer, meta: Omit<CorpusFile, 'label' | 'path' | 'bytes' | 'bulk' | 'inline'> & Partial<Pick<CorpusFile, 'bulk' | 'inline'>>): Promise<CorpusFile> {
  const file = path.join(b.dir, `${label}.dcm`);
  await writeFile(file, bytesOf);
  const f: CorpusFile = { label, path: file, bytes: bytesOf, bulk: {}, inline: {}, ...meta };
  b.files.push(f);
  return f;
}

/**
 * Generates the corpus into a fresh temporary directory. Needs DCMTK's dcmcjpeg and dcmcrle on PATH.
 */
export async function generateCorpus(): Promise<Corpus> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pacsnode-corpus-'));
  const b: Builder = { dir, files: [] };
  const studies: CorpusStudy[] = [
    { key: 'mueller', studyUid: generateUid(), patient: PATIENTS.mueller, modality: 'CT', studyDate: '20200315', accessionNumber: 'ACC-MUE-0001', description: 'CT THORAX Mueller' },
    { key: 'yamada', studyUid: generateUid(), patient: PATIENTS.yamada, modality: 'MR', studyDate: '20191120', accessionNumber: 'ACC-JP-0002', description: 'MR BRAIN' },
    { key: 'hong', studyUid: generateUid(), patient: PATIENTS.hong, modality: 'CR', studyDate: '20210101', accessionNumber: 'ACC-KR-0003', description: 'CR CHEST' },
    { key: 'wangUtf8', studyUid: generateUid(), patient: PATIENTS.wangUtf8, modality: 'XC', studyDate: '20200701', accessionNumber: 'ACC-CN-0004', description: 'PHOTO JPEG' },
    { key: 'wangGb', studyUid: generateUid(), patient: PATIENTS.wangGb, modality: 'OT', studyDate: '20220202', accessionNumber: 'ACC-CN-0005', description: 'OTHER GB' },
    { key: 'doe', studyUid: generateUid(), patient: PATIENTS.doe, modality: 'CT', studyDate: '20200505', accessionNumber: 'ACC123XYZ', description: 'CT ABDOMEN Doe' },
  ];
  const study = (key: string): CorpusStudy => {
    const s = studies.find((x) => x.key === key);
    if (!s) throw new Error(`no study ${key}`);
    return s;
  };
  const ids = (s: CorpusStudy): Pick<CorpusFile, 'studyUid' | 'patient' | 'modality' | 'studyDate' | 'accessionNumber' | 'studyDescription'> => ({
    studyUid: s.studyUid,
    patient: s.patient,
    modality: s.modality,
    studyDate: s.studyDate,
    accessionNumber: s.accessionNumber,
    studyDescription: s.description,
  });
  const spec = (s: CorpusStudy, seriesUid: string, sopUid: string, sopClassUid: string, seriesNumber: number, instanceNumber: number, rest: Partial<InstanceSpec> = {}): InstanceSpec => ({
    patient: s.patient,
    studyUid: s.studyUid,
    seriesUid,
    sopUid,
    sopClassUid,
    modality: s.modality,
    studyDate: s.studyDate,
    accessionNumber: s.accessionNumber,
    studyDescription: s.description,
    seriesNumber,
    instanceNumber,
    ...rest,
  });

  // --- Müller (ISO_IR 100): CT 512x512 16-bit, 10-frame native, sequence + private tags ---
  {
    const s = study('mueller');
    const series1 = generateUid();
    const sop = generateUid();
    const px = pixels16(512, 512, 0);
    const bytesOf = writePart10({
      dataset: datasetElements(spec(s, series1, sop, SOP_CLASS.CT, 1, 1, {
        image: { rows: 512, cols: 512, bits: 16 },
        extra: [
          { tag: '00280030', vr: 'DS', value: ['0.7', '0.7'] },
          { tag: '00281050', vr: 'DS', value: '40' },
          { tag: '00281051', vr: 'DS', value: '400' },
          { tag: '7FE00010', vr: 'OW', value: px },
        ],
      })),
      transferSyntaxUid: TS.EXPLICIT_LE,
      sopClassUid: SOP_CLASS.CT,
      sopInstanceUid: sop,
    });
    await addFile(b, 'ct512', bytesOf, { ...ids(s), sopUid: sop, seriesUid: series1, sopClassUid: SOP_CLASS.CT, transferSyntax: TS.EXPLICIT_LE, numberOfFrames: 1, frames: [px], bulk: { '7FE00010': px } });

    const series2 = generateUid();
    const sop2 = generateUid();
    const frames = Array.from({ length: 10 }, (_, i) => pixels16(64, 64, i));
    const bytes2 = writePart10({
      dataset: datasetElements(spec(s, series2, sop2, SOP_CLASS.MF_WORD_SC, 2, 1, {
        image: { rows: 64, cols: 64, bits: 16, frames: 10 },
        extra: [{ tag: '7FE00010', vr: 'OW', value: Buffer.concat(frames) }],
      })),
      transferSyntaxUid: TS.EXPLICIT_LE,
      sopClassUid: SOP_CLASS.MF_WORD_SC,
      sopInstanceUid: sop2,
    });
    await addFile(b, 'multiframe', bytes2, { ...ids(s), sopUid: sop2, seriesUid: series2, sopClassUid: SOP_CLASS.MF_WORD_SC, transferSyntax: TS.EXPLICIT_LE, numberOfFrames: 10, frames, bulk: { '7FE00010': Buffer.concat(frames) } });

    const series3 = generateUid();
    const sop3 = generateUid();
    const privateBig = patternBytes(3000, 3);
    const privateSmall = patternBytes(16, 4);
    const iconPixels = patternBytes(64 * 64, 5);
    const bytes3 = writePart10({
      dataset: datasetElements(spec(s, series3, sop3, SOP_CLASS.SC, 3, 1, {
        seriesDescription: 'SEQ AND PRIVATE',
        extra: [
          { tag: '00081140', vr: 'SQ', value: [
            [
              { tag: '00081150', vr: 'UI', value: SOP_CLASS.CT },
              { tag: '00081155', vr: 'UI', value: sop },
            ],
            [
              { tag: '00081150', vr: 'UI', value: SOP_CLASS.MF_WORD_SC },
              { tag: '00081155', vr: 'UI', value: sop2 },
            ],
          ] },
          { tag: '00400275', vr: 'SQ', undefinedLength: true, value: [
            [
              { tag: '00321060', vr: 'LO', value: 'REQUESTED PROC' },
              { tag: '00400009', vr: 'SH', value: 'SPS-1' },
              { tag: '00401001', vr: 'SH', value: 'RP-1' },
            ],
          ] },
          { tag: '00880200', vr: 'SQ', value: [
            [
              { tag: '00280002', vr: 'US', value: [1] },
              { tag: '00280004', vr: 'CS', value: 'MONOCHROME2' },
              { tag: '00280010', vr: 'US', value: [64] },
              { tag: '00280011', vr: 'US', value: [64] },
              { tag: '00280100', vr: 'US', value: [8] },
              { tag: '00280101', vr: 'US', value: [8] },
              { tag: '00280102', vr: 'US', value: [7] },
              { tag: '00280103', vr: 'US', value: [0] },
              { tag: '7FE00010', vr: 'OB', value: iconPixels },
            ],
          ] },
          { tag: '00090010', vr: 'LO', value: 'PACSNODE TEST' },
          { tag: '00091001', vr: 'OB', value: privateBig },
          { tag: '00091002', vr: 'OB', value: privateSmall },
          { tag: '00091003', vr: 'LO', value: 'private text' },
        ],
      })),
      transferSyntaxUid: TS.EXPLICIT_LE,
      sopClassUid: SOP_CLASS.SC,
      sopInstanceUid: sop3,
    });
    await addFile(b, 'seqPrivate', bytes3, {
      ...ids(s), sopUid: sop3, seriesUid: series3, sopClassUid: SOP_CLASS.SC, transferSyntax: TS.EXPLICIT_LE, numberOfFrames: 0,
      bulk: { '00091001': privateBig, '00880200/0/7FE00010': iconPixels },
      inline: { '00091002': privateSmall },
    });
  }

  // --- Yamada (ISO 2022 IR 87): Implicit VR LE, Explicit VR Big Endian (2 frames) ---
  {
    const s = study('yamada');
    const series = generateUid();
    const sop = generateUid();
    const px = pixels16(32, 32, 3);
    const bytesOf = writePart10({
      dataset: datasetElements(spec(s, series, sop, SOP_CLASS.MR, 1, 1, {
        image: { rows: 32, cols: 32, bits: 16 },
        extra: [{ tag: '7FE00010', vr: 'OW', value: px }],
      })),
      transferSyntaxUid: TS.IMPLICIT_LE,
      sopClassUid: SOP_CLASS.MR,
      sopInstanceUid: sop,
    });
    await addFile(b, 'implicit', bytesOf, { ...ids(s), sopUid: sop, seriesUid: series, sopClassUid: SOP_CLASS.MR, transferSyntax: TS.IMPLICIT_LE, numberOfFrames: 1, frames: [px], bulk: { '7FE00010': px } });

    const series2 = generateUid();
    const sop2 = generateUid();
    const le = [pixels16(32, 32, 5), pixels16(32, 32, 6)];
    const be = [pixels16(32, 32, 5, false), pixels16(32, 32, 6, false)];
    const bytes2 = writePart10({
      dataset: datasetElements(spec(s, series2, sop2, SOP_CLASS.MF_WORD_SC, 2, 1, {
        image: { rows: 32, cols: 32, bits: 16, frames: 2 },
        extra: [{ tag: '7FE00010', vr: 'OW', value: Buffer.concat(be) }],
      })),
      transferSyntaxUid: TS.EXPLICIT_BE,
      sopClassUid: SOP_CLASS.MF_WORD_SC,
      sopInstanceUid: sop2,
    });
    await addFile(b, 'bigEndian', bytes2, { ...ids(s), sopUid: sop2, seriesUid: series2, sopClassUid: SOP_CLASS.MF_WORD_SC, transferSyntax: TS.EXPLICIT_BE, numberOfFrames: 2, frames: le });
  }

  // --- Hong (ISO 2022 IR 149): RLE Lossless made by dcmcrle ---
  {
    const s = study('hong');
    const series = generateUid();
    const sop = generateUid();
    const native = writePart10({
      dataset: datasetElements(spec(s, series, sop, SOP_CLASS.CR, 1, 1, {
        image: { rows: 64, cols: 64, bits: 16 },
        extra: [{ tag: '7FE00010', vr: 'OW', value: pixels16(64, 64, 9) }],
      })),
      transferSyntaxUid: TS.EXPLICIT_LE,
      sopClassUid: SOP_CLASS.CR,
      sopInstanceUid: sop,
    });
    const src = path.join(dir, 'rle-src.dcm');
    const out = path.join(dir, 'rle-out.dcm');
    await writeFile(src, native);
    await run('dcmcrle', [src, out]);
    const rle = await readFile(out);
    await rm(src);
    await rm(out);
    const { fragments } = readEncapsulatedItems(rle);
    await addFile(b, 'rle', rle, { ...ids(s), sopUid: sop, seriesUid: series, sopClassUid: SOP_CLASS.CR, transferSyntax: TS.RLE, numberOfFrames: 1, frames: [Buffer.concat(fragments)] });
  }

  // --- Wang (ISO_IR 192): JPEG baseline by dcmcjpeg; 3-frame JPEG with and without BOT ---
  {
    const s = study('wangUtf8');
    const series = generateUid();
    const sop = generateUid();
    const native = writePart10({
      dataset: datasetElements(spec(s, series, sop, SOP_CLASS.SC, 1, 1, {
        image: { rows: 64, cols: 64, bits: 8 },
        extra: [{ tag: '7FE00010', vr: 'OB', value: pixels8(64, 64, 0) }],
      })),
      transferSyntaxUid: TS.EXPLICIT_LE,
      sopClassUid: SOP_CLASS.SC,
      sopInstanceUid: sop,
    });
    const src = path.join(dir, 'jpeg-src.dcm');
    const out = path.join(dir, 'jpeg-out.dcm');
    await writeFile(src, native);
    await run('dcmcjpeg', ['+eb', '+un', src, out]);
    const jpeg = await readFile(out);
    await rm(src);
    await rm(out);
    const { fragments } = readEncapsulatedItems(jpeg);
    await addFile(b, 'jpeg', jpeg, { ...ids(s), sopUid: sop, seriesUid: series, sopClassUid: SOP_CLASS.SC, transferSyntax: TS.JPEG_BASELINE, numberOfFrames: 1, frames: [Buffer.concat(fragments)] });

    // a 3-frame native file compressed by dcmcjpeg, its fragments re-encapsulated both ways
    const series2 = generateUid();
    const mfSrc = writePart10({
      dataset: datasetElements(spec(s, series2, generateUid(), SOP_CLASS.MF_BYTE_SC, 2, 1, {
        image: { rows: 64, cols: 64, bits: 8, frames: 3 },
        extra: [{ tag: '7FE00010', vr: 'OB', value: Buffer.concat([0, 1, 2].map((f) => pixels8(64, 64, f))) }],
      })),
      transferSyntaxUid: TS.EXPLICIT_LE,
      sopClassUid: SOP_CLASS.MF_BYTE_SC,
      sopInstanceUid: generateUid(),
    });
    const mfIn = path.join(dir, 'jpeg-mf-src.dcm');
    const mfOut = path.join(dir, 'jpeg-mf-out.dcm');
    await writeFile(mfIn, mfSrc);
    await run('dcmcjpeg', ['+eb', '+un', mfIn, mfOut]);
    const mf = readEncapsulatedItems(await readFile(mfOut));
    await rm(mfIn);
    await rm(mfOut);
    if (mf.fragments.length !== 3) throw new Error(`dcmcjpeg wrote ${mf.fragments.length} fragments for 3 frames`);
    for (const [i, withBot] of [[2, true], [3, false]] as const) {
      const sopN = generateUid();
      const fileBytes = writePart10({
        dataset: datasetElements(spec(s, series2, sopN, SOP_CLASS.MF_BYTE_SC, 2, i, {
          image: { rows: 64, cols: 64, bits: 8, frames: 3 },
          extra: [
            { tag: '00282110', vr: 'CS', value: '01' },
            { tag: '7FE00010', vr: 'OB', undefinedLength: true, value: encapsulatedPixelData(mf.fragments, { basicOffsetTable: withBot }) },
          ],
        })),
        transferSyntaxUid: TS.JPEG_BASELINE,
        sopClassUid: SOP_CLASS.MF_BYTE_SC,
        sopInstanceUid: sopN,
      });
      await addFile(b, withBot ? 'jpegMultiBot' : 'jpegMultiNoBot', fileBytes, { ...ids(s), sopUid: sopN, seriesUid: series2, sopClassUid: SOP_CLASS.MF_BYTE_SC, transferSyntax: TS.JPEG_BASELINE, numberOfFrames: 3, frames: mf.fragments.map((f) => Buffer.from(f)) });
    }
  }

  // --- Wang (GB18030) and Doe (ASCII): small native 8-bit instances ---
  for (const [key, label, n] of [['wangGb', 'gb18030', 1], ['doe', 'doe', 2]] as const) {
    const s = study(key);
    const series = generateUid();
    for (let i = 1; i <= n; i++) {
      const sop = generateUid();
      const px = pixels8(16, 16, i);
      const fileBytes = writePart10({
        dataset: datasetElements(spec(s, series, sop, key === 'doe' ? SOP_CLASS.CT : SOP_CLASS.SC, 1, i, {
          image: { rows: 16, cols: 16, bits: 8 },
          extra: [{ tag: '7FE00010', vr: 'OB', value: px }],
        })),
        transferSyntaxUid: TS.EXPLICIT_LE,
        sopClassUid: key === 'doe' ? SOP_CLASS.CT : SOP_CLASS.SC,
        sopInstanceUid: sop,
      });
      await addFile(b, n === 1 ? label : `${label}${i}`, fileBytes, { ...ids(s), sopUid: sop, seriesUid: series, sopClassUid: key === 'doe' ? SOP_CLASS.CT : SOP_CLASS.SC, transferSyntax: TS.EXPLICIT_LE, numberOfFrames: 1, frames: [px] });
    }
  }

  return {
    dir,
    files: b.files,
    studies,
    file(label: string): CorpusFile {
      const f = b.files.find((x) => x.label === label);
      if (!f) throw new Error(`no corpus file ${label}`);
      return f;
    },
    study,
    async cleanup() {
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A VR-typed helper for callers that build their own datasets. */
export function el(tag: string, vr: VR, value: WriteElement['value']): WriteElement {
  return value === undefined ? { tag, vr } : { tag, vr, value };
}
