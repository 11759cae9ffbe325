/**
 * Streaming Part-10 header reader: File Meta and the dataset up to Pixel Data, as DICOM JSON.
 *
 * The parser is one generator reading from a queue of received chunks. It reads synchronously while
 * the queue holds enough bytes and yields only to ask for more input, so the per-element cost stays
 * that of a plain function; two small drivers feed it, one from an async chunk source and one from
 * a buffer, so both paths share every rule. Bulk values are skipped by count (their chunks
 * dropped), so memory stays bounded by the retained header, whatever the size of the instance.
 */
import { constants as zlibConstants, createInflateRaw, inflateRawSync, type InflateRaw } from 'node:zlib';
import { resolveCharacterSet, parseSpecificCharacterSet, type CharsetDecoder } from './charset.js';
import { implicitVr, vrForTag } from './dictionary.js';
import { transferSyntax } from './transfer-syntax.js';
import type { DicomJsonDataset, DicomJsonElement, DicomJsonValue, PersonName, VR } from './types.js';

export interface HeaderReadOptions {
  /** Binary values (OB/OD/OF/OL/OV/OW/UN) longer than this are recorded as `_bulk`, not read. */
  bulkdataThreshold: number;
  /** Bytes of header that may be parsed and retained (bulk values skipped do not count); default 16 MiB. */
  maxHeaderBytes?: number;
  /** archive.default_character_set, used when (0008,0005) is absent or unknown; default 'ISO_IR 100'. */
  defaultCharacterSet?: string;
  /**
   * The File Meta's group length (0002,0000) is exact, because pacsnode wrote it in front of a data
   * set received over the network (C-STORE): File Meta ends there, and a group 0002 element after
   * it is in the data set, where PS3.5 7.1 allows none (MALFORMED). Otherwise group 0002 elements
   * past a wrong group length are still read as File Meta, as many writers get it wrong.
   */
  exactFileMetaLength?: boolean;
  /**
   * Awaited once, before the parser retains more than LARGE_HEADER_BYTES of header values (a
   * header of that size costs ~10 times as much as JS values and JSON): the caller may hold the
   * parse there until it admits one more large header. Not called for ordinary headers.
   */
  admitLargeHeader?: () => Promise<void>;
}

/**
 * Header values retained beyond which `admitLargeHeader` is asked first. Images stay far below
 * (a CT header holds a few KiB; binary values over the bulk data threshold are not retained);
 * big structured reports, RT structure sets and hostile peers do not.
 */
export const LARGE_HEADER_BYTES = 1024 * 1024;

export interface PixelDataRef {
  tag: '7FE00010' | '7FE00008' | '7FE00009';
  vr: VR;
  /** Absolute offset of the value (after the element header). */
  offset: number;
  /** undefined: undefined length (encapsulated). */
  length?: number;
}

export interface ParsedHeader {
  /** Group 0002 elements (group length not included). */
  meta: DicomJsonDataset;
  /** (0002,0010), trailing NUL/space stripped. */
  transferSyntaxUid: string;
  /** The dataset up to, not including, Pixel Data. */
  dataset: DicomJsonDataset;
  pixelData?: PixelDataRef;
  /** Absolute offset where the dataset (after File Meta) begins. */
  datasetOffset: number;
  /** Position where reading stopped (after the Pixel Data element header, or the end of input). */
  bytesConsumed: number;
  /**
   * Deflated transfer syntax: every offset past `datasetOffset` (in `_bulk`, `pixelData`,
   * `bytesConsumed`) counts bytes of the inflated dataset, i.e. positions in the file as if the
   * dataset had been inflated in place.
   */
  deflated: boolean;
  /** Some (0008,0005) held a term we do not know; its values were decoded with the default. */
  characterSetUnknown: boolean;
  /**
   * Tag paths ("00200013", "00540016/0/00181072") whose IS/DS text was not a number: the element
   * is kept without Value, so the index never holds a value we could not read.
   */
  droppedValues: string[];
}

export type HeaderErrorCode = 'NOT_PART10' | 'TRUNCATED' | 'HEADER_TOO_LARGE' | 'MALFORMED';

export class HeaderError extends Error {
  readonly code: HeaderErrorCode;
  constructor(code: HeaderErrorCode, message: string) {
    super(message);
    this.name = 'HeaderError';
    this.code = code;
  }
}

const DEFAULT_MAX_HEADER_BYTES = 16 * 1024 * 1024;
const UNDEFINED_LENGTH = 0xffffffff;
const MAX_DEPTH = 64;
const EMPTY = new Uint8Array(0);

// ---------------------------------------------------------------------------------------------
// Parser primitives

/** What the parser asks of its driver: one more chunk in `ctx.q`, or to switch `ctx.q` to the inflated stream. */
type Request = 'more' | 'inflate' | 'admit';

type Parser<T> = Generator<Request, T, void>;

interface Encoding {
  explicit: boolean;
  le: boolean;
}

const EXPLICIT_LE: Encoding = { explicit: true, le: true };
const IMPLICIT_LE: Encoding = { explicit: false, le: true };
/** Item and delimiter headers have no VR in any encoding; indexed by little-endianness. */
const IMPLICIT: readonly [Encoding, Encoding] = [{ explicit: false, le: false }, IMPLICIT_LE];

interface Context {
  q: ChunkQueue;
  pos: number;
  retained: number;
  maxHeaderBytes: number;
  exactMeta: boolean;
  /** Whether the driver can admit a large header (an async driver with `admitLargeHeader`). */
  gated: boolean;
  admitted: boolean;
  threshold: number;
  defaultCharacterSet: string;
  characterSetUnknown: boolean;
  droppedValues: string[];
  pixelData?: PixelDataRef;
}

function checkRetained(ctx: Context, n: number): void {
  if (ctx.retained + n > ctx.maxHeaderBytes) {
    throw new HeaderError('HEADER_TOO_LARGE', `header exceeds ${ctx.maxHeaderBytes} bytes`);
  }
}

/** n bytes if the queue holds them (the common case, no generator involved), else undefined. */
function tryRead(ctx: Context, n: number): Uint8Array | undefined {
  if (ctx.q.available < n) return undefined;
  checkRetained(ctx, n);
  ctx.pos += n;
  ctx.retained += n;
  return ctx.q.take(n);
}

function* read(ctx: Context, n: number): Parser<Uint8Array> {
  checkRetained(ctx, n); // before waiting for input that would only be refused
  for (;;) {
    const b = tryRead(ctx, n);
    if (b !== undefined) return b;
    if (ctx.q.ended) throw truncated();
    yield 'more';
  }
}

/** Drops n bytes as they arrive: a skipped value is never held. */
function* skip(ctx: Context, n: number): Parser<void> {
  let left = n;
  for (;;) {
    left -= ctx.q.drop(left);
    if (left === 0) break;
    if (ctx.q.ended) throw truncated();
    yield 'more';
  }
  ctx.pos += n;
}

/** Up to n bytes without consuming them; fewer only at the end of input. */
function* peek(ctx: Context, n: number): Parser<Uint8Array> {
  while (ctx.q.available < n && !ctx.q.ended) yield 'more';
  return ctx.q.peek(n);
}

function truncated(): HeaderError {
  return new HeaderError('TRUNCATED', 'input ended inside the header');
}

// ---------------------------------------------------------------------------------------------
// VRs

const VRS: ReadonlySet<string> = new Set<VR>([
  'AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FD', 'FL', 'IS', 'LO', 'LT', 'OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'PN',
  'SH', 'SL', 'SQ', 'SS', 'ST', 'SV', 'TM', 'UC', 'UI', 'UL', 'UN', 'UR', 'US', 'UT', 'UV',
]);
const LONG_LENGTH_VRS: ReadonlySet<string> = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
const BINARY_VRS: ReadonlySet<string> = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN']);
/** Text VRs whose bytes follow (0008,0005); the others are ASCII by definition. */
const CHARSET_VRS: ReadonlySet<string> = new Set(['SH', 'LO', 'ST', 'LT', 'UC', 'UT', 'PN']);
/** Single-valued texts: a backslash is content, leading spaces are significant (not UR). */
const UNSPLIT_VRS: ReadonlySet<string> = new Set(['LT', 'ST', 'UT', 'UR']);
const WORD_SIZE: Readonly<Record<string, number>> = { OW: 2, OF: 4, OL: 4, OD: 8, OV: 8 };

function isVr(s: string): s is VR {
  return VRS.has(s);
}

const HEX2: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).toUpperCase().padStart(2, '0'));

function hexTag(group: number, element: number): string {
  return (HEX2[group >> 8] as string) + (HEX2[group & 0xff] as string) + (HEX2[element >> 8] as string) + (HEX2[element & 0xff] as string);
}

function u16(b: Uint8Array, i: number, le: boolean): number {
  return le ? (b[i] as number) | ((b[i + 1] as number) << 8) : ((b[i] as number) << 8) | (b[i + 1] as number);
}

function u32(b: Uint8Array, i: number, le: boolean): number {
  return le
    ? ((b[i] as number) | ((b[i + 1] as number) << 8) | ((b[i + 2] as number) << 16)) + (b[i + 3] as number) * 0x1000000
    : (b[i] as number) * 0x1000000 + (((b[i + 1] as number) << 16) | ((b[i + 2] as number) << 8) | (b[i + 3] as number));
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

interface ElementHeader {
  group: number;
  element: number;
  /** undefined: implicit VR, or an item/delimiter. */
  vr: VR | undefined;
  length: number;
}

/** Interprets the first 8 bytes of an element; `long` = 4 more bytes hold the length. */
function parseHeader8(ctx: Context, h: Uint8Array, enc: Encoding): { header: ElementHeader; long: boolean } {
  const group = u16(h, 0, enc.le);
  const element = u16(h, 2, enc.le);
  if (group === 0xfffe || !enc.explicit) return { header: { group, element, vr: undefined, length: u32(h, 4, enc.le) }, long: false };
  const vr = String.fromCharCode(h[4] as number, h[5] as number);
  if (!isVr(vr)) {
    // Some writers fall back to implicit VR for single elements of an explicit-VR dataset;
    // reading the 4 bytes as a length is what makes such files readable at all.
    if (/^[A-Z]{2}$/.test(vr)) throw new HeaderError('MALFORMED', `unknown VR ${vr} at offset ${ctx.pos - 8}`);
    return { header: { group, element, vr: undefined, length: u32(h, 4, enc.le) }, long: false };
  }
  if (LONG_LENGTH_VRS.has(vr)) return { header: { group, element, vr, length: 0 }, long: true };
  return { header: { group, element, vr, length: u16(h, 6, enc.le) }, long: false };
}

/** The element header if the queue holds all of it, else undefined (nothing consumed). */
function tryElementHeader(ctx: Context, enc: Encoding): ElementHeader | undefined {
  if (ctx.q.available < 12) return undefined;
  const { header, long } = parseHeader8(ctx, tryRead(ctx, 8) as Uint8Array, enc);
  if (long) header.length = u32(tryRead(ctx, 4) as Uint8Array, 0, enc.le);
  return header;
}

function* readElementHeader(ctx: Context, enc: Encoding): Parser<ElementHeader> {
  const fast = tryElementHeader(ctx, enc);
  if (fast !== undefined) return fast;
  const { header, long } = parseHeader8(ctx, yield* read(ctx, 8), enc);
  if (long) header.length = u32(yield* read(ctx, 4), 0, enc.le);
  return header;
}

// ---------------------------------------------------------------------------------------------
// Values

function trimTrailing(bytes: Uint8Array): Uint8Array {
  let end = bytes.length;
  while (end > 0 && (bytes[end - 1] === 0x20 || bytes[end - 1] === 0)) end--;
  return end === bytes.length ? bytes : bytes.subarray(0, end);
}

function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

const IS_RE = /^[+-]?\d+$/;
const DS_RE = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

function personName(s: string): PersonName | null {
  const groups = s.split('=');
  const pn: PersonName = {};
  if (groups[0]) pn.Alphabetic = groups[0];
  if (groups[1]) pn.Ideographic = groups[1];
  if (groups[2]) pn.Phonetic = groups[2];
  return pn.Alphabetic === undefined && pn.Ideographic === undefined && pn.Phonetic === undefined ? null : pn;
}

/** Text value -> DICOM JSON values; undefined = no Value (empty, or numbers that were not numbers). */
function textValues(vr: VR, text: string, ctx: Context, path: string): DicomJsonValue[] | undefined {
  if (UNSPLIT_VRS.has(vr)) {
    const s = vr === 'UR' ? text.trim() : text.replace(/ +$/, '');
    return s === '' ? undefined : [s];
  }
  if (!text.includes('\\')) {
    const v = oneValue(vr, text.trim());
    if (v === INVALID) {
      ctx.droppedValues.push(path);
      return undefined;
    }
    return v === null ? undefined : [v];
  }
  const parts = text.split('\\');
  const values: DicomJsonValue[] = new Array<DicomJsonValue>(parts.length);
  let any = false;
  for (let i = 0; i < parts.length; i++) {
    const v = oneValue(vr, (parts[i] as string).trim());
    if (v === INVALID) {
      ctx.droppedValues.push(path);
      return undefined;
    }
    if (v !== null) any = true;
    values[i] = v;
  }
  return any ? values : undefined;
}

const INVALID = Symbol('invalid');

function oneValue(vr: VR, p: string): DicomJsonValue | typeof INVALID {
  if (p === '') return null;
  if (vr === 'PN') return personName(p);
  if (vr === 'IS') return IS_RE.test(p) ? Number(p) : INVALID;
  if (vr === 'DS') return DS_RE.test(p) ? Number(p) : INVALID;
  return p;
}

function numericValues(vr: VR, b: Uint8Array, le: boolean): DicomJsonValue[] {
  const dv = view(b);
  const out: DicomJsonValue[] = [];
  switch (vr) {
    case 'US':
      for (let i = 0; i + 2 <= b.length; i += 2) out.push(dv.getUint16(i, le));
      break;
    case 'SS':
      for (let i = 0; i + 2 <= b.length; i += 2) out.push(dv.getInt16(i, le));
      break;
    case 'UL':
      for (let i = 0; i + 4 <= b.length; i += 4) out.push(dv.getUint32(i, le));
      break;
    case 'SL':
      for (let i = 0; i + 4 <= b.length; i += 4) out.push(dv.getInt32(i, le));
      break;
    case 'FL':
      for (let i = 0; i + 4 <= b.length; i += 4) out.push(dv.getFloat32(i, le));
      break;
    case 'FD':
      for (let i = 0; i + 8 <= b.length; i += 8) out.push(dv.getFloat64(i, le));
      break;
    case 'SV':
    case 'UV':
      for (let i = 0; i + 8 <= b.length; i += 8) {
        const v = vr === 'SV' ? dv.getBigInt64(i, le) : dv.getBigUint64(i, le);
        // beyond 2^53 a JSON number would silently change the value
        out.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString());
      }
      break;
    case 'AT':
      for (let i = 0; i + 4 <= b.length; i += 4) out.push(hexTag(dv.getUint16(i, le), dv.getUint16(i + 2, le)));
      break;
    default:
      break;
  }
  return out;
}

/** DICOM JSON InlineBinary is little endian (PS3.18 F.2.7): swap words read from big-endian data. */
function inlineBinary(vr: VR, bytes: Uint8Array, le: boolean): string {
  const size = WORD_SIZE[vr];
  if (le || size === undefined || bytes.length % size !== 0) {
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
  }
  const copy = Buffer.from(bytes);
  if (size === 2) copy.swap16();
  else if (size === 4) copy.swap32();
  else copy.swap64();
  return copy.toString('base64');
}

// ---------------------------------------------------------------------------------------------
// Dataset, sequences, fragments

function isPixelDataTag(group: number, element: number): boolean {
  return group === 0x7fe0 && (element === 0x0010 || element === 0x0008 || element === 0x0009);
}

function* skipFragments(ctx: Context, enc: Encoding): Parser<void> {
  for (;;) {
    const h = tryElementHeader(ctx, IMPLICIT[enc.le ? 1 : 0]) ?? (yield* readElementHeader(ctx, IMPLICIT[enc.le ? 1 : 0]));
    if (h.group === 0xfffe && h.element === 0xe0dd) return;
    if (h.group !== 0xfffe || h.element !== 0xe000 || h.length === UNDEFINED_LENGTH) {
      throw new HeaderError('MALFORMED', `expected a fragment item at offset ${ctx.pos - 8}`);
    }
    yield* skip(ctx, h.length);
  }
}

function* readSequence(ctx: Context, enc: Encoding, length: number, depth: number, path: string, cs: CharsetDecoder, pixelRepresentation: number | undefined): Parser<DicomJsonDataset[]> {
  if (depth >= MAX_DEPTH) throw new HeaderError('MALFORMED', `sequences nested deeper than ${MAX_DEPTH}`);
  const end = length === UNDEFINED_LENGTH ? undefined : ctx.pos + length;
  const items: DicomJsonDataset[] = [];
  for (;;) {
    if (end !== undefined && ctx.pos >= end) {
      if (ctx.pos > end) throw new HeaderError('MALFORMED', `sequence item overruns its sequence at ${path}`);
      break;
    }
    const itemEnc = IMPLICIT[enc.le ? 1 : 0];
    const h = tryElementHeader(ctx, itemEnc) ?? (yield* readElementHeader(ctx, itemEnc));
    if (h.group === 0xfffe && h.element === 0xe0dd) {
      if (end === undefined) break;
      continue;
    }
    if (h.group !== 0xfffe || h.element !== 0xe000) {
      throw new HeaderError('MALFORMED', `expected an item in ${path} at offset ${ctx.pos - 8}`);
    }
    const itemEnd = h.length === UNDEFINED_LENGTH ? undefined : ctx.pos + h.length;
    items.push(yield* readDataset(ctx, enc, itemEnd, depth + 1, `${path}/${items.length}/`, cs, pixelRepresentation));
  }
  return items;
}

function sequenceElement(items: DicomJsonDataset[]): DicomJsonElement {
  return items.length === 0 ? { vr: 'SQ' } : { vr: 'SQ', Value: items };
}

/**
 * Reads elements until `end` (defined-length item), an item delimiter (undefined-length item), or
 * at top level (`depth` 0) the end of input or Pixel Data.
 */
/** Asks the driver once to admit a large header before retaining `n` more bytes would make it one. */
function* admitBeforeRetaining(ctx: Context, n: number): Parser<void> {
  if (ctx.gated && !ctx.admitted && ctx.retained + n > LARGE_HEADER_BYTES) {
    ctx.admitted = true;
    yield 'admit';
  }
}

/** Pixel Representation (0028,0103) as read so far in a data set (it precedes the pixel values, tags ascending). */
function pixelRepresentationOf(ds: DicomJsonDataset): number | undefined {
  const v = ds['00280103']?.Value?.[0];
  return typeof v === 'number' ? v : undefined;
}

/** `inheritedPixelRepresentation`: of the nearest enclosing data set that has one (for "US or SS" values). */
function* readDataset(
  ctx: Context,
  enc: Encoding,
  end: number | undefined,
  depth: number,
  prefix: string,
  inherited: CharsetDecoder,
  inheritedPixelRepresentation?: number,
): Parser<DicomJsonDataset> {
  const ds: DicomJsonDataset = {};
  let cs = inherited;
  const pixelRepresentation = (): number | undefined => pixelRepresentationOf(ds) ?? inheritedPixelRepresentation;
  for (;;) {
    if (end !== undefined) {
      if (ctx.pos >= end) {
        if (ctx.pos > end) throw new HeaderError('MALFORMED', `element overruns its item at offset ${end}`);
        break;
      }
    } else if (depth === 0) {
      if (ctx.q.available === 0 && (yield* peek(ctx, 1)).length === 0) break;
    }
    const h = tryElementHeader(ctx, enc) ?? (yield* readElementHeader(ctx, enc));
    if (h.group === 0xfffe) {
      if (h.element === 0xe00d && depth > 0 && end === undefined) break;
      // stray delimiters (seen after padding at top level, or in defined-length items) carry no data
      if (h.length !== UNDEFINED_LENGTH && h.element !== 0xe000) {
        yield* skip(ctx, h.length);
        continue;
      }
      throw new HeaderError('MALFORMED', `unexpected item at offset ${ctx.pos - 8}`);
    }
    const tag = hexTag(h.group, h.element);
    let vr: VR = h.vr ?? implicitVr(tag, pixelRepresentation());
    if (depth === 0 && isPixelDataTag(h.group, h.element)) {
      const undefinedLength = h.length === UNDEFINED_LENGTH;
      if (h.vr === undefined && undefinedLength) vr = 'OB'; // encapsulated fragments are OB whatever the dictionary says
      ctx.pixelData = { tag: tag as PixelDataRef['tag'], vr, offset: ctx.pos };
      if (!undefinedLength) ctx.pixelData.length = h.length;
      break;
    }
    if (h.group === 0x0002 && depth === 0 && ctx.exactMeta) {
      throw new HeaderError('MALFORMED', `File Meta element (${tag.slice(0, 4)},${tag.slice(4)}) inside the data set`);
    }
    if (h.element === 0 || h.group === 0x0002) {
      // group lengths are not emitted (and are wrong often enough not to be trusted); group 0002
      // belongs to File Meta and is not part of the dataset
      if (h.length === UNDEFINED_LENGTH) throw new HeaderError('MALFORMED', `undefined length for ${tag}`);
      yield* skip(ctx, h.length);
      continue;
    }
    const path = prefix + tag;
    if (h.length === UNDEFINED_LENGTH) {
      if (vr === 'SQ' || vr === 'UN' || !BINARY_VRS.has(vr)) {
        // UN of undefined length is a sequence in Implicit VR LE (PS3.5 6.2.2, CP-246)
        const itemEnc = h.vr === 'UN' ? IMPLICIT_LE : enc;
        ds[tag] = sequenceElement(yield* readSequence(ctx, itemEnc, h.length, depth, path, cs, pixelRepresentation()));
        continue;
      }
      // encapsulated value outside top-level Pixel Data (e.g. an icon image): located, not read
      const offset = ctx.pos;
      yield* skipFragments(ctx, enc);
      ds[tag] = { vr, _bulk: { offset } };
      continue;
    }
    if (vr === 'SQ') {
      ds[tag] = sequenceElement(yield* readSequence(ctx, enc, h.length, depth, path, cs, pixelRepresentation()));
      continue;
    }
    if (BINARY_VRS.has(vr)) {
      if (h.length > ctx.threshold) {
        const offset = ctx.pos;
        yield* skip(ctx, h.length);
        ds[tag] = { vr, _bulk: { offset, length: h.length } };
      } else if (h.length === 0) {
        ds[tag] = { vr };
      } else {
        yield* admitBeforeRetaining(ctx, h.length);
        ds[tag] = { vr, InlineBinary: inlineBinary(vr, tryRead(ctx, h.length) ?? (yield* read(ctx, h.length)), enc.le) };
      }
      continue;
    }
    yield* admitBeforeRetaining(ctx, h.length);
    const bytes = h.length === 0 ? EMPTY : (tryRead(ctx, h.length) ?? (yield* read(ctx, h.length)));
    const el: DicomJsonElement = { vr };
    let values: DicomJsonValue[] | undefined;
    switch (vr) {
      case 'US': case 'SS': case 'UL': case 'SL': case 'FL': case 'FD': case 'SV': case 'UV': case 'AT':
        values = numericValues(vr, bytes, enc.le);
        break;
      default: {
        const trimmed = trimTrailing(bytes);
        const text = CHARSET_VRS.has(vr) ? cs.decode(trimmed, vr === 'PN') : latin1(trimmed);
        values = textValues(vr, text, ctx, path);
        if (tag === '00080005') {
          cs = resolveCharacterSet(parseSpecificCharacterSet(latin1(trimmed)), ctx.defaultCharacterSet);
          if (cs.unknown) ctx.characterSetUnknown = true;
        }
      }
    }
    if (values !== undefined && values.length > 0) el.Value = values;
    ds[tag] = el;
  }
  return ds;
}

function* readMeta(ctx: Context): Parser<{ meta: DicomJsonDataset; transferSyntaxUid: string }> {
  const pre = yield* peek(ctx, 132);
  if (pre.length < 132 || pre[128] !== 0x44 || pre[129] !== 0x49 || pre[130] !== 0x43 || pre[131] !== 0x4d) {
    throw new HeaderError('NOT_PART10', 'no DICM prefix at offset 128');
  }
  yield* read(ctx, 132);
  const meta: DicomJsonDataset = {};
  const latin = resolveCharacterSet([], 'ISO_IR 100');
  let metaEnd: number | undefined;
  let tsUid: string | undefined;
  for (;;) {
    const next = yield* peek(ctx, 2);
    if (next.length < 2) break;
    const group = (next[0] as number) | ((next[1] as number) << 8);
    if (group !== 0x0002) break;
    // past the declared group length only while it is certainly not deflate data (never when exact)
    if (metaEnd !== undefined && ctx.pos >= metaEnd && (ctx.exactMeta || (tsUid !== undefined && transferSyntax(tsUid)?.deflated === true))) break;
    const h = yield* readElementHeader(ctx, EXPLICIT_LE);
    if (h.length === UNDEFINED_LENGTH) throw new HeaderError('MALFORMED', 'undefined length in File Meta');
    if (h.element === 0x0000) {
      const v = yield* read(ctx, h.length);
      if (h.length === 4) metaEnd = ctx.pos + view(v).getUint32(0, true);
      continue;
    }
    const tag = hexTag(h.group, h.element);
    const vr = h.vr ?? vrForTag(tag) ?? 'UN';
    const bytes = yield* read(ctx, h.length);
    if (BINARY_VRS.has(vr) || vr === 'SQ') {
      meta[tag] = h.length === 0 ? { vr } : { vr, InlineBinary: inlineBinary(vr, bytes, true) };
      continue;
    }
    const el: DicomJsonElement = { vr };
    const trimmed = trimTrailing(bytes);
    const values = ['US', 'UL', 'SS', 'SL', 'AT'].includes(vr) ? numericValues(vr, bytes, true) : textValues(vr, latin.decode(trimmed), ctx, tag);
    if (values !== undefined && values.length > 0) el.Value = values;
    meta[tag] = el;
    if (tag === '00020010') tsUid = latin1(trimmed).trim();
  }
  if (tsUid === undefined || tsUid === '') throw new HeaderError('MALFORMED', 'File Meta has no Transfer Syntax UID (0002,0010)');
  return { meta, transferSyntaxUid: tsUid };
}

function* parsePart10(ctx: Context): Parser<ParsedHeader> {
  const { meta, transferSyntaxUid } = yield* readMeta(ctx);
  const datasetOffset = ctx.pos;
  const ts = transferSyntax(transferSyntaxUid);
  // unknown syntaxes are nearly always new compressions, which all use Explicit VR LE
  const enc: Encoding = ts === undefined ? EXPLICIT_LE : { explicit: ts.explicitVr, le: ts.littleEndian };
  const deflated = ts?.deflated === true;
  if (deflated) yield 'inflate';
  const cs = resolveCharacterSet([], ctx.defaultCharacterSet);
  const dataset = yield* readDataset(ctx, enc, undefined, 0, '', cs);
  const result: ParsedHeader = {
    meta,
    transferSyntaxUid,
    dataset,
    datasetOffset,
    bytesConsumed: ctx.pos,
    deflated,
    characterSetUnknown: ctx.characterSetUnknown,
    droppedValues: ctx.droppedValues,
  };
  if (ctx.pixelData !== undefined) result.pixelData = ctx.pixelData;
  return result;
}

function newContext(options: HeaderReadOptions, q: ChunkQueue): Context {
  return {
    q,
    pos: 0,
    retained: 0,
    maxHeaderBytes: options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES,
    exactMeta: options.exactFileMetaLength === true,
    gated: false,
    admitted: false,
    threshold: options.bulkdataThreshold,
    defaultCharacterSet: options.defaultCharacterSet ?? 'ISO_IR 100',
    characterSetUnknown: false,
    droppedValues: [],
  };
}

// ---------------------------------------------------------------------------------------------
// Drivers

/** Received chunks not yet consumed. Hands out views; copies only when a request spans chunks. */
class ChunkQueue {
  private chunks: Uint8Array[] = [];
  private off = 0;
  available = 0;
  ended = false;

  push(c: Uint8Array): void {
    if (c.length === 0) return;
    // plain views: Buffer#subarray builds a Buffer each time, measurably slower per element
    this.chunks.push(Buffer.isBuffer(c) ? new Uint8Array(c.buffer, c.byteOffset, c.length) : c);
    this.available += c.length;
  }

  /** Exactly n bytes; the caller made sure they are available. */
  take(n: number): Uint8Array {
    const out = this.peek(n);
    this.drop(n);
    return out;
  }

  peek(n: number): Uint8Array {
    const want = Math.min(n, this.available);
    const first = this.chunks[0];
    if (first === undefined || want === 0) return EMPTY;
    if (first.length - this.off >= want) return first.subarray(this.off, this.off + want);
    const out = new Uint8Array(want);
    let filled = 0;
    let off = this.off;
    for (const c of this.chunks) {
      const k = Math.min(c.length - off, want - filled);
      out.set(c.subarray(off, off + k), filled);
      filled += k;
      off = 0;
      if (filled === want) break;
    }
    return out;
  }

  /** Drops up to n bytes; returns how many were dropped. */
  drop(n: number): number {
    let left = Math.min(n, this.available);
    const dropped = left;
    while (left > 0) {
      const first = this.chunks[0] as Uint8Array;
      const k = Math.min(first.length - this.off, left);
      this.off += k;
      left -= k;
      if (this.off === first.length) {
        this.chunks.shift();
        this.off = 0;
      }
    }
    this.available -= dropped;
    return dropped;
  }

  rest(): Uint8Array[] {
    const out = this.chunks.map((c, i) => (i === 0 ? c.subarray(this.off) : c));
    this.chunks = [];
    this.off = 0;
    this.available = 0;
    return out;
  }
}

function concat(chunks: Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0] as Uint8Array;
  return Buffer.concat(chunks);
}

/** Parses a whole Part-10 file held in memory (tests, small inputs). */
export function readPart10HeaderFromBuffer(buf: Uint8Array, options: HeaderReadOptions): ParsedHeader {
  const q = new ChunkQueue();
  q.push(buf);
  q.ended = true;
  const ctx = newContext(options, q);
  const parser = parsePart10(ctx);
  for (;;) {
    const step = parser.next();
    if (step.done === true) return step.value;
    if (step.value === 'more') throw truncated(); // unreachable: the parser checks `ended` first
    if (step.value === 'admit') continue; // unreachable: never gated
    const compressed = concat(ctx.q.rest());
    const iq = new ChunkQueue();
    try {
      // SYNC_FLUSH: a truncated stream yields what it has, and the parser reports TRUNCATED
      iq.push(inflateRawSync(compressed, { finishFlush: zlibConstants.Z_SYNC_FLUSH }));
    } catch (err) {
      throw new HeaderError('MALFORMED', `deflated dataset: ${(err as Error).message}`);
    }
    iq.ended = true;
    ctx.q = iq;
  }
}

/**
 * Compressed bytes fed to the inflater per step: what one step inflates is held until the parser
 * takes it (a received 64 KiB chunk of zeros inflated at once held ~64 MiB). The first step is
 * 1 KiB (deflate expands at most ~1032×: ~1 MiB); each next one is sized from the ratio just
 * seen to inflate to about 1 MiB, between 1 and 64 KiB (ordinary data: 64 KiB steps).
 */
const INFLATE_MIN_STEP = 1024;
const INFLATE_MAX_STEP = 64 * 1024;
const INFLATE_TARGET_OUTPUT = 1024 * 1024;

/** Pull-driven raw inflate: output for each compressed chunk is collected before the next is fed. */
class PullInflater {
  private readonly z: InflateRaw = createInflateRaw();
  private out: Buffer[] = [];
  private error: Error | undefined;
  private finished = false;

  constructor() {
    this.z.on('data', (b: Buffer) => this.out.push(b));
    this.z.on('error', (e: Error) => {
      this.error = e;
    });
    this.z.on('end', () => {
      this.finished = true;
    });
  }

  // a method, so that TypeScript does not carry a narrowing of `error` across the awaits
  private failure(): Error | undefined {
    return this.error;
  }

  private drain(): Buffer[] {
    const o = this.out;
    this.out = [];
    return o;
  }

  async write(chunk: Uint8Array): Promise<Buffer[]> {
    if (this.finished || this.error !== undefined) return this.drain();
    // the deflate stream may end (or fail) before this chunk is taken: settle on that too
    await new Promise<void>((resolve) => {
      const done = (): void => {
        this.z.off('end', done);
        this.z.off('error', done);
        resolve();
      };
      this.z.once('end', done);
      this.z.once('error', done);
      this.z.write(chunk, done);
    });
    const failure = this.failure();
    if (failure !== undefined) throw new HeaderError('MALFORMED', `deflated dataset: ${failure.message}`);
    return this.drain();
  }

  /** No more input. A stream cut short ends here too; the parser then reports TRUNCATED. */
  async end(): Promise<Buffer[]> {
    if (!this.finished && this.error === undefined) {
      await new Promise<void>((resolve) => {
        const done = (): void => resolve();
        this.z.once('end', done);
        this.z.once('error', done);
        this.z.end();
      });
    }
    return this.drain();
  }

  destroy(): void {
    this.z.destroy();
  }
}

/**
 * Reads File Meta and the dataset up to Pixel Data from a chunk source, pulling only as many
 * chunks as needed. The source is never closed or returned: the caller may keep consuming it
 * (e.g. the rest of the bytes go to the blob store).
 */
export async function readPart10Header(source: AsyncIterable<Uint8Array>, options: HeaderReadOptions): Promise<ParsedHeader> {
  // next() by hand, never for-await: breaking out of for-await would call return() and end the source
  const it = source[Symbol.asyncIterator]();
  let sourceDone = false;
  const pullRaw = async (): Promise<Uint8Array | undefined> => {
    if (sourceDone) return undefined;
    const r = await it.next();
    if (r.done === true) {
      sourceDone = true;
      return undefined;
    }
    return r.value;
  };
  const ctx = newContext(options, new ChunkQueue());
  let pull = async (): Promise<void> => {
    const c = await pullRaw();
    if (c === undefined) ctx.q.ended = true;
    else ctx.q.push(c);
  };
  let inflater: PullInflater | undefined;
  const admit = options.admitLargeHeader;
  ctx.gated = admit !== undefined;
  const parser = parsePart10(ctx);
  try {
    for (;;) {
      const step = parser.next();
      if (step.done === true) return step.value;
      if (step.value === 'more') {
        await pull();
        continue;
      }
      if (step.value === 'admit') {
        await admit?.();
        continue;
      }
      const pending = ctx.q.rest();
      const iq = new ChunkQueue();
      const infl = new PullInflater();
      inflater = infl;
      let inflateStep = INFLATE_MIN_STEP;
      pull = async (): Promise<void> => {
        for (;;) {
          let c = pending.shift() ?? (await pullRaw());
          if (c === undefined) {
            for (const o of await infl.end()) iq.push(o);
            iq.ended = true;
            return;
          }
          if (c.length > inflateStep) {
            pending.unshift(c.subarray(inflateStep));
            c = c.subarray(0, inflateStep);
          }
          const outs = await infl.write(c);
          const produced = outs.reduce((n, o) => n + o.length, 0);
          if (produced > 0) inflateStep = Math.min(INFLATE_MAX_STEP, Math.max(INFLATE_MIN_STEP, Math.floor((INFLATE_TARGET_OUTPUT * c.length) / produced)));
          for (const o of outs) iq.push(o);
          if (outs.length > 0) return;
        }
      };
      ctx.q = iq;
    }
  } finally {
    inflater?.destroy();
  }
}
