// Synthetic instances for the bench, built in memory with the project's own Part-10 writer.
//
// A 0.5 MB CT slice is sent as three chunks — the encoded header (preamble, File Meta, dataset up
// to Pixel Data), the Pixel Data element header, and one shared pixel buffer — so generating 2,000
// of them costs the load generator no copying. The bytes on the wire are exactly what
// `writePart10` would produce for the whole dataset (Pixel Data is the last element).
import { open } from 'node:fs/promises';
import { writePart10, type WriteElement } from '../src/dicom/writer.js';
import { generateUid } from '../src/dicom/uids.js';

export const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';

const SOP_CLASS: Readonly<Record<Modality, string>> = {
  CT: '1.2.840.10008.5.1.4.1.1.2',
  MR: '1.2.840.10008.5.1.4.1.1.4',
  CR: '1.2.840.10008.5.1.4.1.1.1',
  DX: '1.2.840.10008.5.1.4.1.1.1.1',
  US: '1.2.840.10008.5.1.4.1.1.6.1',
};

export const MODALITIES = ['CT', 'MR', 'CR', 'DX', 'US'] as const;
export type Modality = (typeof MODALITIES)[number];

/** A deterministic PRNG (mulberry32) so that every run loads the same archive. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function pick<T>(rand: () => number, items: readonly T[]): T {
  const item = items[Math.floor(rand() * items.length)];
  if (item === undefined) throw new Error('pick from an empty list');
  return item;
}

/** One Part-10 instance as the chunks to send, in order. */
export interface EncodedInstance {
  readonly chunks: readonly Buffer[];
  readonly bytes: number;
  readonly studyUid: string;
  readonly seriesUid: string;
  readonly sopInstanceUid: string;
}

export interface Patient {
  readonly id: string;
  /** DICOM PN, e.g. `DOE^JOHN`. */
  readonly name: string;
  readonly birthDate: string;
  readonly sex: 'F' | 'M' | 'O';
}

export interface StudyAttributes {
  readonly patient: Patient;
  readonly studyUid: string;
  readonly studyDate: string;
  readonly studyTime: string;
  readonly accessionNumber: string;
  readonly studyId: string;
  readonly description: string;
  readonly modality: Modality;
}

export interface SeriesAttributes {
  readonly seriesUid: string;
  readonly seriesNumber: number;
  readonly frameOfReferenceUid: string;
}

/**
 * Pixel Data for a rows x columns, 16-bit (12 stored) MONOCHROME2 image: a noisy disc on air,
 * roughly what a CT slice in raw HU + 1024 looks like, so that nothing compresses it to nothing.
 */
export function ctPixels(rows: number, columns: number, seed: number): Buffer {
  const rand = prng(seed);
  const buf = Buffer.alloc(rows * columns * 2);
  const cy = rows / 2;
  const cx = columns / 2;
  const r2 = (Math.min(rows, columns) * 0.45) ** 2;
  for (let y = 0; y < rows; y++) {
    for (let x = 0; x < columns; x++) {
      const inside = (y - cy) ** 2 + (x - cx) ** 2 < r2;
      const v = (inside ? 1000 + 80 * rand() : 24 * rand()) | 0;
      buf.writeUInt16LE(v, (y * columns + x) * 2);
    }
  }
  return buf;
}

function pixelDataHeader(length: number): Buffer {
  // (7FE0,0010) OW, explicit VR little endian: tag, VR, 2 reserved bytes, 32-bit length
  const b = Buffer.alloc(12);
  b.writeUInt16LE(0x7fe0, 0);
  b.writeUInt16LE(0x0010, 2);
  b.write('OW', 4, 'latin1');
  b.writeUInt32LE(length, 8);
  return b;
}

export interface InstanceOptions {
  readonly study: StudyAttributes;
  readonly series: SeriesAttributes;
  readonly instanceNumber: number;
  readonly rows: number;
  readonly columns: number;
  /** rows * columns * 2 bytes, shared between instances. */
  readonly pixels: Buffer;
}

/** A realistic CT-like header (patient, study, series, equipment, image plane and pixel modules). */
function header(o: InstanceOptions, sopInstanceUid: string): WriteElement[] {
  const { study, series, instanceNumber } = o;
  const p = study.patient;
  const z = -200 + instanceNumber * 1.25;
  return [
    { tag: '00080005', vr: 'CS', value: 'ISO_IR 100' },
    { tag: '00080008', vr: 'CS', value: ['ORIGINAL', 'PRIMARY', 'AXIAL'] },
    { tag: '00080012', vr: 'DA', value: study.studyDate },
    { tag: '00080013', vr: 'TM', value: study.studyTime },
    { tag: '00080016', vr: 'UI', value: SOP_CLASS[study.modality] },
    { tag: '00080018', vr: 'UI', value: sopInstanceUid },
    { tag: '00080020', vr: 'DA', value: study.studyDate },
    { tag: '00080021', vr: 'DA', value: study.studyDate },
    { tag: '00080022', vr: 'DA', value: study.studyDate },
    { tag: '00080023', vr: 'DA', value: study.studyDate },
    { tag: '00080030', vr: 'TM', value: study.studyTime },
    { tag: '00080031', vr: 'TM', value: study.studyTime },
    { tag: '00080033', vr: 'TM', value: study.studyTime },
    { tag: '00080050', vr: 'SH', value: study.accessionNumber },
    { tag: '00080060', vr: 'CS', value: study.modality },
    { tag: '00080070', vr: 'LO', value: 'PACSNODE BENCH' },
    { tag: '00080080', vr: 'LO', value: 'GENERAL HOSPITAL' },
    { tag: '00080090', vr: 'PN', value: 'HOUSE^GREGORY^^DR' },
    { tag: '00081030', vr: 'LO', value: study.description },
    { tag: '0008103E', vr: 'LO', value: `AXIAL 1.25MM ${series.seriesNumber}` },
    { tag: '00081090', vr: 'LO', value: 'SYNTHETIC SCANNER 64' },
    { tag: '00100010', vr: 'PN', value: p.name },
    { tag: '00100020', vr: 'LO', value: p.id },
    { tag: '00100030', vr: 'DA', value: p.birthDate },
    { tag: '00100040', vr: 'CS', value: p.sex },
    { tag: '00101010', vr: 'AS', value: '042Y' },
    { tag: '00101030', vr: 'DS', value: [72.5] },
    { tag: '00180015', vr: 'CS', value: 'CHEST' },
    { tag: '00180050', vr: 'DS', value: [1.25] },
    { tag: '00180060', vr: 'DS', value: [120] },
    { tag: '00181150', vr: 'IS', value: [500] },
    { tag: '00181151', vr: 'IS', value: [250] },
    { tag: '00181210', vr: 'SH', value: 'STANDARD' },
    { tag: '00185100', vr: 'CS', value: 'HFS' },
    { tag: '0020000D', vr: 'UI', value: study.studyUid },
    { tag: '0020000E', vr: 'UI', value: series.seriesUid },
    { tag: '00200010', vr: 'SH', value: study.studyId },
    { tag: '00200011', vr: 'IS', value: [series.seriesNumber] },
    { tag: '00200013', vr: 'IS', value: [instanceNumber] },
    { tag: '00200032', vr: 'DS', value: [-179.6, -179.6, z] },
    { tag: '00200037', vr: 'DS', value: [1, 0, 0, 0, 1, 0] },
    { tag: '00200052', vr: 'UI', value: series.frameOfReferenceUid },
    { tag: '00201041', vr: 'DS', value: [z] },
    { tag: '00280002', vr: 'US', value: [1] },
    { tag: '00280004', vr: 'CS', value: 'MONOCHROME2' },
    { tag: '00280010', vr: 'US', value: [o.rows] },
    { tag: '00280011', vr: 'US', value: [o.columns] },
    { tag: '00280030', vr: 'DS', value: [0.703125, 0.703125] },
    { tag: '00280100', vr: 'US', value: [16] },
    { tag: '00280101', vr: 'US', value: [12] },
    { tag: '00280102', vr: 'US', value: [11] },
    { tag: '00280103', vr: 'US', value: [0] },
    { tag: '00281050', vr: 'DS', value: [40] },
    { tag: '00281051', vr: 'DS', value: [400] },
    { tag: '00281052', vr: 'DS', value: [-1024] },
    { tag: '00281053', vr: 'DS', value: [1] },
    { tag: '00281054', vr: 'LO', value: 'HU' },
  ];
}

export function encodeInstance(o: InstanceOptions): EncodedInstance {
  if (o.pixels.length !== o.rows * o.columns * 2) throw new Error('pixel buffer does not match rows x columns x 16 bits');
  const sopInstanceUid = generateUid();
  const head = writePart10({
    dataset: header(o, sopInstanceUid),
    transferSyntaxUid: EXPLICIT_VR_LITTLE_ENDIAN,
    sopClassUid: SOP_CLASS[o.study.modality],
    sopInstanceUid,
  });
  const chunks = [head, pixelDataHeader(o.pixels.length), o.pixels];
  return {
    chunks,
    bytes: chunks.reduce((n, c) => n + c.length, 0),
    studyUid: o.study.studyUid,
    seriesUid: o.series.seriesUid,
    sopInstanceUid,
  };
}

// ---------------------------------------------------------------------------------------------
// Patients and studies for the QIDO corpus

export const FAMILY_NAMES = [
  'DOE', 'SMITH', 'JOHNSON', 'WILLIAMS', 'BROWN', 'JONES', 'GARCIA', 'MILLER', 'DAVIS', 'RODRIGUEZ',
  'MARTINEZ', 'HERNANDEZ', 'LOPEZ', 'GONZALEZ', 'WILSON', 'ANDERSON', 'THOMAS', 'TAYLOR', 'MOORE', 'JACKSON',
  'MARTIN', 'LEE', 'PEREZ', 'THOMPSON', 'WHITE', 'HARRIS', 'SANCHEZ', 'CLARK', 'RAMIREZ', 'LEWIS',
  'ROBINSON', 'WALKER', 'YOUNG', 'ALLEN', 'KING', 'WRIGHT', 'SCOTT', 'TORRES', 'NGUYEN', 'HILL',
  'DOERR', 'DOERING',
] as const;

export const GIVEN_NAMES = [
  'JOHN', 'JANE', 'MARY', 'JAMES', 'PATRICIA', 'ROBERT', 'JENNIFER', 'MICHAEL', 'LINDA', 'WILLIAM',
  'ELIZABETH', 'DAVID', 'BARBARA', 'RICHARD', 'SUSAN', 'JOSEPH', 'JESSICA', 'THOMAS', 'SARAH', 'CHARLES',
  'KAREN', 'CHRISTOPHER', 'NANCY', 'DANIEL', 'LISA', 'MATTHEW', 'BETTY', 'ANTHONY', 'MARGARET', 'JOHANNA',
] as const;

const DESCRIPTIONS: Readonly<Record<Modality, readonly string[]>> = {
  CT: ['CT CHEST W CONTRAST', 'CT ABDOMEN PELVIS', 'CT HEAD WO CONTRAST'],
  MR: ['MR BRAIN W WO', 'MR KNEE LEFT', 'MR LUMBAR SPINE'],
  CR: ['CHEST PA AND LAT', 'HAND 3 VIEWS'],
  DX: ['CHEST 1 VIEW', 'ANKLE 2 VIEWS'],
  US: ['US ABDOMEN COMPLETE', 'US THYROID'],
};

/** The first study date; dates spread over DATE_SPAN_DAYS after it. */
export const FIRST_STUDY_DATE = Date.UTC(2012, 0, 1);
export const DATE_SPAN_DAYS = 12 * 365;

export function dicomDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10).replace(/-/g, '');
}

export function makePatient(index: number): Patient {
  const rand = prng(0x9e3779b9 ^ index);
  const sexRoll = rand();
  return {
    id: `BP${String(index).padStart(7, '0')}`,
    name: `${pick(rand, FAMILY_NAMES)}^${pick(rand, GIVEN_NAMES)}`,
    birthDate: dicomDate(Date.UTC(1930, 0, 1) + Math.floor(rand() * 80 * 365) * 86_400_000),
    sex: sexRoll < 0.49 ? 'F' : sexRoll < 0.98 ? 'M' : 'O',
  };
}

/** Study `index` of the QIDO corpus: a patient among `patients`, a date, an accession number. */
export function makeStudy(index: number, patients: number, modality?: Modality): StudyAttributes {
  const rand = prng(0x85ebca6b ^ (index * 2654435761));
  const m = modality ?? pick(rand, MODALITIES);
  const day = Math.floor(rand() * DATE_SPAN_DAYS);
  const seconds = Math.floor(rand() * 86_400);
  const hh = String(Math.floor(seconds / 3600)).padStart(2, '0');
  const mm = String(Math.floor((seconds % 3600) / 60)).padStart(2, '0');
  const ss = String(seconds % 60).padStart(2, '0');
  return {
    patient: makePatient(Math.floor(rand() * patients)),
    studyUid: generateUid(),
    studyDate: dicomDate(FIRST_STUDY_DATE + day * 86_400_000),
    studyTime: `${hh}${mm}${ss}`,
    accessionNumber: `A${String(index).padStart(9, '0')}`,
    studyId: String(index % 100_000),
    description: pick(rand, DESCRIPTIONS[m]),
    modality: m,
  };
}

export function makeSeries(number: number): SeriesAttributes {
  return { seriesUid: generateUid(), seriesNumber: number, frameOfReferenceUid: generateUid() };
}

// ---------------------------------------------------------------------------------------------
// One very large instance, written streaming to a file (never held in memory)

/** Multi-frame Grayscale Word Secondary Capture Image Storage (PS3.4 B.5): 16-bit native frames. */
export const MULTIFRAME_GRAYSCALE_WORD_SC = '1.2.840.10008.5.1.4.1.1.7.3';

/** Pixel Data's value length is 32-bit and 0xFFFFFFFF means undefined length. */
const MAX_NATIVE_PIXEL_BYTES = 0xfffffffe;

export interface LargeInstanceOptions {
  readonly study: StudyAttributes;
  readonly series: SeriesAttributes;
  readonly rows: number;
  readonly columns: number;
  readonly frames: number;
  /** Frames of rows * columns * 2 bytes, written in turn (the file repeats them). */
  readonly framePixels: readonly Buffer[];
}

export interface LargeInstance {
  /** File size in bytes (preamble and File Meta included). */
  readonly bytes: number;
  readonly frames: number;
  readonly sopClassUid: string;
  readonly sopInstanceUid: string;
  readonly studyUid: string;
  readonly seriesUid: string;
}

/** Frames per writev: 16 × 512 KiB = 8 MiB, the same buffers referenced again (no copies). */
const FRAMES_PER_WRITE = 16;

/**
 * A multi-frame 16-bit MONOCHROME2 Secondary Capture instance of `frames` native frames (Explicit
 * VR Little Endian), written to `file` (which must not exist) frame batch by frame batch: memory
 * stays at the header plus the shared frame buffers whatever the size. The bytes are those
 * `writePart10` would produce for the whole dataset (Pixel Data is the last element).
 */
export async function writeLargeInstance(file: string, o: LargeInstanceOptions): Promise<LargeInstance> {
  const frameBytes = o.rows * o.columns * 2;
  if (o.framePixels.length === 0 || o.framePixels.some((f) => f.length !== frameBytes)) throw new Error('frame buffers do not match rows x columns x 16 bits');
  const pixelBytes = frameBytes * o.frames;
  if (!Number.isSafeInteger(pixelBytes) || pixelBytes > MAX_NATIVE_PIXEL_BYTES || o.frames < 1) throw new Error(`${o.frames} frames do not fit one native Pixel Data element`);
  const sopInstanceUid = generateUid();
  const first = o.framePixels[0] as Buffer;
  const elements = header({ study: o.study, series: o.series, instanceNumber: 1, rows: o.rows, columns: o.columns, pixels: first }, sopInstanceUid)
    .filter((el) => el.tag !== '00080016')
    .concat([
      { tag: '00080016', vr: 'UI', value: MULTIFRAME_GRAYSCALE_WORD_SC },
      { tag: '00080064', vr: 'CS', value: 'WSD' },
      { tag: '00181063', vr: 'DS', value: [40] },
      { tag: '00280008', vr: 'IS', value: [o.frames] },
      { tag: '00280009', vr: 'AT', value: ['00181063'] },
    ]);
  const head = Buffer.concat([
    writePart10({ dataset: elements, transferSyntaxUid: EXPLICIT_VR_LITTLE_ENDIAN, sopClassUid: MULTIFRAME_GRAYSCALE_WORD_SC, sopInstanceUid }),
    pixelDataHeader(pixelBytes),
  ]);
  const fh = await open(file, 'wx');
  let bytes = 0;
  try {
    const write = async (buffers: Buffer[]): Promise<void> => {
      const want = buffers.reduce((n, b) => n + b.length, 0);
      const { bytesWritten } = await fh.writev(buffers);
      if (bytesWritten !== want) throw new Error(`short write to ${file} (${bytesWritten} of ${want} bytes): disk full?`);
      bytes += bytesWritten;
    };
    await write([head]);
    for (let f = 0; f < o.frames; f += FRAMES_PER_WRITE) {
      const batch: Buffer[] = [];
      for (let i = f; i < Math.min(o.frames, f + FRAMES_PER_WRITE); i++) batch.push(o.framePixels[i % o.framePixels.length] as Buffer);
      await write(batch);
    }
  } finally {
    await fh.close();
  }
  return { bytes, frames: o.frames, sopClassUid: MULTIFRAME_GRAYSCALE_WORD_SC, sopInstanceUid, studyUid: o.study.studyUid, seriesUid: o.series.seriesUid };
}
