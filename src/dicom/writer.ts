/**
 * Dataset and Part-10 encoding: test corpora (exact byte sequences, every transfer syntax we read)
 * and, later, DIMSE responses. Originals are never re-encoded with this (ARCHITECTURE rule 4).
 */
import { deflateRawSync } from 'node:zlib';
import { personNameString } from './json.js';
import { transferSyntax } from './transfer-syntax.js';
import type { DicomJsonDataset, DicomJsonElement, DicomJsonValue, VR } from './types.js';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from './uids.js';

export interface WriteElement {
  tag: string;
  vr: VR;
  /**
   * Buffer: the value bytes verbatim (padded to even length). string / string[]: text, joined with
   * `\`. number[]: binary numbers for US/SS/UL/SL/FL/FD/SV/UV/OW/OL/OF/OD/OV, decimal text for IS/DS.
   * WriteElement[][]: sequence items.
   */
  value?: Buffer | string | string[] | number[] | WriteElement[][];
  /** SQ: undefined-length sequence and items; OB/OW with a Buffer value: encapsulated (value = items + delimiter). */
  undefinedLength?: boolean;
}

export interface EncodeOptions {
  explicitVr: boolean;
  littleEndian?: boolean;
  /** Encodes text values; default latin1 (which is ASCII for ASCII text). */
  encodeText?: (text: string, vr: VR) => Buffer;
}

const LONG_LENGTH_VRS: ReadonlySet<VR> = new Set<VR>(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
const BINARY_VRS: ReadonlySet<VR> = new Set<VR>(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN']);
const UNDEFINED_LENGTH = 0xffffffff;

function tagNumbers(tag: string): [number, number] {
  if (!/^[0-9A-Fa-f]{8}$/.test(tag)) throw new Error(`invalid tag ${tag}`);
  return [parseInt(tag.slice(0, 4), 16), parseInt(tag.slice(4), 16)];
}

function padByte(vr: VR): number {
  return vr === 'UI' || BINARY_VRS.has(vr) ? 0x00 : 0x20;
}

function padEven(b: Buffer, vr: VR): Buffer {
  return b.length % 2 === 0 ? b : Buffer.concat([b, Buffer.from([padByte(vr)])]);
}

const NUMBER_SIZE: Readonly<Record<string, number>> = { US: 2, SS: 2, OW: 2, UL: 4, SL: 4, FL: 4, OF: 4, OL: 4, FD: 8, OD: 8, SV: 8, UV: 8, OV: 8 };

function numberBytes(vr: VR, values: readonly number[], le: boolean): Buffer {
  const size = NUMBER_SIZE[vr];
  if (size === undefined) throw new Error(`numbers cannot be written as ${vr}`);
  const b = Buffer.alloc(values.length * size);
  const dv = new DataView(b.buffer, b.byteOffset, b.length);
  values.forEach((v, i) => {
    const o = i * size;
    switch (vr) {
      case 'US': case 'OW': dv.setUint16(o, v, le); break;
      case 'SS': dv.setInt16(o, v, le); break;
      case 'UL': case 'OL': dv.setUint32(o, v, le); break;
      case 'SL': dv.setInt32(o, v, le); break;
      case 'FL': case 'OF': dv.setFloat32(o, v, le); break;
      case 'FD': case 'OD': dv.setFloat64(o, v, le); break;
      case 'SV': dv.setBigInt64(o, BigInt(v), le); break;
      default: dv.setBigUint64(o, BigInt(v), le);
    }
  });
  return b;
}

function atBytes(values: string[], le: boolean): Buffer {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((t, i) => {
    const [g, e] = tagNumbers(t);
    if (le) {
      b.writeUInt16LE(g, i * 4);
      b.writeUInt16LE(e, i * 4 + 2);
    } else {
      b.writeUInt16BE(g, i * 4);
      b.writeUInt16BE(e, i * 4 + 2);
    }
  });
  return b;
}

/** DS allows 16 characters: shorten the JavaScript rendering when it is longer. */
export function formatDecimalString(n: number): string {
  let s = String(n);
  for (let p = 16; s.length > 16 && p > 0; p--) s = Number(n.toPrecision(p)).toString();
  if (s.length > 16) s = n.toExponential(8);
  return s;
}

function elementHeader(group: number, element: number, vr: VR | undefined, length: number, explicit: boolean, le: boolean): Buffer {
  const long = vr === undefined || !explicit || LONG_LENGTH_VRS.has(vr);
  const b = Buffer.alloc(explicit && vr !== undefined && long ? 12 : 8);
  if (le) {
    b.writeUInt16LE(group, 0);
    b.writeUInt16LE(element, 2);
  } else {
    b.writeUInt16BE(group, 0);
    b.writeUInt16BE(element, 2);
  }
  if (!explicit || vr === undefined) {
    if (le) b.writeUInt32LE(length, 4);
    else b.writeUInt32BE(length, 4);
    return b;
  }
  b.write(vr, 4, 'latin1');
  if (long) {
    if (le) b.writeUInt32LE(length, 8);
    else b.writeUInt32BE(length, 8);
  } else {
    if (length > 0xffff) throw new Error(`value of ${vr} too long for a 16-bit length: ${length}`);
    if (le) b.writeUInt16LE(length, 6);
    else b.writeUInt16BE(length, 6);
  }
  return b;
}

function itemTag(element: number, length: number, le: boolean): Buffer {
  return elementHeader(0xfffe, element, undefined, length, false, le);
}

function valueBytes(el: WriteElement, opts: Required<Pick<EncodeOptions, 'explicitVr' | 'littleEndian'>> & EncodeOptions): Buffer {
  const { vr, value } = el;
  const le = opts.littleEndian;
  if (value === undefined) return Buffer.alloc(0);
  if (Buffer.isBuffer(value)) return el.undefinedLength === true ? value : padEven(value, vr);
  if (vr === 'SQ') {
    if (!Array.isArray(value) || !value.every((item) => Array.isArray(item))) throw new Error(`SQ ${el.tag} needs items`);
    const items = value as WriteElement[][];
    const parts: Buffer[] = [];
    for (const item of items) {
      const body = encodeDataset(item, opts);
      if (el.undefinedLength === true) parts.push(itemTag(0xe000, UNDEFINED_LENGTH, le), body, itemTag(0xe00d, 0, le));
      else parts.push(itemTag(0xe000, body.length, le), body);
    }
    if (el.undefinedLength === true) parts.push(itemTag(0xe0dd, 0, le));
    return Buffer.concat(parts);
  }
  const list: (string | number)[] = typeof value === 'string' ? [value] : (value as (string | number)[]);
  if (vr === 'AT') return atBytes(list.map(String), le);
  if (list.length > 0 && typeof list[0] === 'number' && vr !== 'IS' && vr !== 'DS') return numberBytes(vr, list as number[], le);
  const text = list.map((v) => (typeof v === 'number' ? (vr === 'DS' ? formatDecimalString(v) : String(Math.trunc(v))) : v)).join('\\');
  const encode = opts.encodeText ?? ((t: string) => Buffer.from(t, 'latin1'));
  return padEven(encode(text, vr), vr);
}

/** One element: header and value, in the given encoding. */
export function encodeElement(el: WriteElement, opts: EncodeOptions): Buffer {
  const o = { ...opts, littleEndian: opts.littleEndian ?? true };
  const [group, element] = tagNumbers(el.tag);
  const value = valueBytes(el, o);
  const length = el.undefinedLength === true ? UNDEFINED_LENGTH : value.length;
  return Buffer.concat([elementHeader(group, element, el.vr, length, o.explicitVr, o.littleEndian), value]);
}

/** Elements sorted by tag (as DICOM requires), concatenated. */
export function encodeDataset(elements: readonly WriteElement[], opts: EncodeOptions): Buffer {
  const sorted = [...elements].sort((a, b) => {
    const x = parseInt(a.tag, 16);
    const y = parseInt(b.tag, 16);
    return x - y;
  });
  return Buffer.concat(sorted.map((el) => encodeElement(el, opts)));
}

export interface Part10Options {
  dataset: readonly WriteElement[];
  transferSyntaxUid: string;
  sopClassUid: string;
  sopInstanceUid: string;
  implementationClassUid?: string;
  implementationVersionName?: string;
  /** (0002,0016) Source Application Entity Title: the calling AE for DIMSE-received instances. */
  sourceAeTitle?: string;
  /** Leave out (0002,0000): some writers do, and readers must cope. */
  omitGroupLength?: boolean;
  /** Text encoder for the dataset (default latin1). */
  encodeText?: (text: string, vr: VR) => Buffer;
}

export type FileMetaOptions = Omit<Part10Options, 'dataset' | 'encodeText'>;

/**
 * Preamble, DICM prefix and File Meta Information (Explicit VR LE, PS3.10 7.1): what precedes the
 * dataset of a Part-10 file. DIMSE puts it in front of a received dataset's bytes, unchanged.
 */
export function encodeFileMeta(opts: FileMetaOptions): Buffer {
  const metaElements: WriteElement[] = [
    { tag: '00020001', vr: 'OB', value: Buffer.from([0x00, 0x01]) },
    { tag: '00020002', vr: 'UI', value: opts.sopClassUid },
    { tag: '00020003', vr: 'UI', value: opts.sopInstanceUid },
    { tag: '00020010', vr: 'UI', value: opts.transferSyntaxUid },
    { tag: '00020012', vr: 'UI', value: opts.implementationClassUid ?? IMPLEMENTATION_CLASS_UID },
    { tag: '00020013', vr: 'SH', value: opts.implementationVersionName ?? IMPLEMENTATION_VERSION_NAME },
  ];
  if (opts.sourceAeTitle !== undefined) metaElements.push({ tag: '00020016', vr: 'AE', value: opts.sourceAeTitle });
  const metaBody = encodeDataset(metaElements, { explicitVr: true, littleEndian: true });
  const groupLength = opts.omitGroupLength === true
    ? Buffer.alloc(0)
    : encodeElement({ tag: '00020000', vr: 'UL', value: [metaBody.length] }, { explicitVr: true, littleEndian: true });
  const preamble = Buffer.alloc(132);
  preamble.write('DICM', 128, 'latin1');
  return Buffer.concat([preamble, groupLength, metaBody]);
}

/** A complete Part-10 file: preamble, DICM, File Meta (Explicit VR LE), dataset in its transfer syntax. */
export function writePart10(opts: Part10Options): Buffer {
  const ts = transferSyntax(opts.transferSyntaxUid);
  const encodeOpts: EncodeOptions = { explicitVr: ts?.explicitVr ?? true, littleEndian: ts?.littleEndian ?? true };
  if (opts.encodeText !== undefined) encodeOpts.encodeText = opts.encodeText;
  let dataset = encodeDataset(opts.dataset, encodeOpts);
  if (ts?.deflated === true) dataset = deflateRawSync(dataset);
  return Buffer.concat([encodeFileMeta(opts), dataset]);
}

/**
 * The value of an encapsulated Pixel Data element (to write with `undefinedLength: true`): the
 * Basic Offset Table item (empty unless asked for), one fragment per frame (padded to even
 * length), and the sequence delimiter.
 */
export function encapsulatedPixelData(frames: readonly Buffer[], opts: { basicOffsetTable?: boolean } = {}): Buffer {
  const fragments = frames.map((f) => padEven(f, 'OB'));
  const parts: Buffer[] = [];
  if (opts.basicOffsetTable === true) {
    const table = Buffer.alloc(4 * frames.length);
    let offset = 0;
    fragments.forEach((f, i) => {
      table.writeUInt32LE(offset, i * 4);
      offset += 8 + f.length;
    });
    parts.push(itemTag(0xe000, table.length, true), table);
  } else {
    parts.push(itemTag(0xe000, 0, true));
  }
  for (const f of fragments) parts.push(itemTag(0xe000, f.length, true), f);
  parts.push(itemTag(0xe0dd, 0, true));
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------------------------------------
// DICOM JSON -> bytes

const NUMERIC_BINARY_VRS: ReadonlySet<VR> = new Set<VR>(['US', 'SS', 'UL', 'SL', 'FL', 'FD', 'SV', 'UV']);

function jsonText(v: DicomJsonValue, vr: VR): string {
  if (v === null) return '';
  if (typeof v === 'number') return vr === 'DS' ? formatDecimalString(v) : String(v);
  if (typeof v === 'string') return v;
  if (vr === 'PN') return personNameString(v);
  throw new Error(`a ${vr} value cannot be an object`);
}

function jsonToWriteElement(tag: string, el: DicomJsonElement): WriteElement | undefined {
  const { vr } = el;
  if (vr === 'SQ') {
    const items = (el.Value ?? []).map((item) => {
      if (item === null || typeof item !== 'object') throw new Error(`SQ ${tag} holds a non-item value`);
      return jsonToWriteElements(item as DicomJsonDataset);
    });
    return { tag, vr, value: items };
  }
  if (el.InlineBinary !== undefined) return { tag, vr, value: Buffer.from(el.InlineBinary, 'base64') };
  // Bulk data lives elsewhere; it cannot be encoded from the JSON alone
  if (el.BulkDataURI !== undefined || el._bulk !== undefined) return undefined;
  const values = el.Value ?? [];
  if (values.length === 0) return { tag, vr };
  if (NUMERIC_BINARY_VRS.has(vr)) {
    const nums = values.map((v) => (typeof v === 'number' ? v : Number(v)));
    return { tag, vr, value: numberBytes(vr, nums, true) };
  }
  if (vr === 'AT') return { tag, vr, value: atBytes(values.map((v) => String(v)), true) };
  const text = values.map((v) => jsonText(v, vr)).join('\\');
  return { tag, vr, value: Buffer.from(text, 'utf8') };
}

function jsonToWriteElements(ds: DicomJsonDataset): WriteElement[] {
  const out: WriteElement[] = [];
  for (const [tag, el] of Object.entries(ds)) {
    const w = jsonToWriteElement(tag.toUpperCase(), el);
    if (w !== undefined) out.push(w);
  }
  return out;
}

/**
 * Encodes a DICOM JSON dataset (little endian) with all text in UTF-8, labelled so: (0008,0005) is
 * set to ISO_IR 192 at top level whatever the JSON said. Elements that only have a BulkDataURI or
 * `_bulk` reference are left out.
 */
export function encodeDicomJsonDataset(ds: DicomJsonDataset, opts: { explicitVr: boolean }): Buffer {
  const elements = jsonToWriteElements(ds).filter((e) => e.tag !== '00080005');
  elements.push({ tag: '00080005', vr: 'CS', value: 'ISO_IR 192' });
  return encodeDataset(elements, { explicitVr: opts.explicitVr, littleEndian: true });
}
