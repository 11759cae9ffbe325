/**
 * Streaming transfer-syntax re-encoding of a DICOM data set (PS3.5 §7): Implicit VR LE <->
 * Explicit VR LE, and Explicit VR BE or Deflated Explicit VR LE -> either LE syntax.
 *
 * Approach: a small explicit state machine over elements. Input chunks are pushed into a
 * `Transcoder`, which is always in one of two states: reading an element header (bytes of a
 * header split across chunks wait in a 12-byte carry buffer), or passing a value through (a
 * count of bytes left). A stack of frames (data set / item / sequence) tracks nesting and where
 * defined-length containers end, by absolute input offset. Since header sizes differ between
 * the encodings, every sequence and item is written with undefined length and closed with its
 * delimitation item, so nothing is back-patched and nothing is held.
 *
 * Output: element headers and short values (or short pieces of values) are written into a 64 KiB
 * block, handed out as views that are never written again, once 16 KiB have gathered (so tiny
 * input chunks do not make tiny output chunks); longer values pass through as slices of the
 * input chunks, uncopied; big-endian values are copied (at most 64 KiB at a time) and swapped in
 * place in the copy. Deflated input is inflated by a zlib stream first. Memory is bounded
 * whatever the input: the carry buffers, one block, and the frame stack (MAX_DEPTH).
 *
 * Choices a caller sees:
 * - Group length elements (gggg,0000) are dropped when the encoding changes: their values
 *   would be wrong, and they are optional (retired) in data sets.
 * - Data Set Trailing Padding (FFFC,FFFC) passes through like any other element.
 * - Stray delimitation items (a delimiter that closes nothing, length 0) are dropped.
 * - Implicit -> explicit VR: the dictionary VR (`vrForTag`: US for US-or-SS, OW for OB-or-OW,
 *   UL for group lengths, LO for private creators, UN for other private and unknown tags);
 *   Pixel Data (7FE0,0010) is OB when Bits Allocated (0028,0100), seen before it in the same
 *   data set or item, is 8 or less, else OW; a value too long for its VR's 16-bit length field
 *   becomes UN; an undefined-length element whose VR is not binary is a sequence (SQ).
 * - Explicit UN of undefined length is a sequence encoded in Implicit VR LE (PS3.5 6.2.2); it is
 *   converted as such (written as SQ in explicit output).
 * - Encapsulated (undefined-length OB/OW) values are rejected: they belong to encapsulated
 *   transfer syntaxes, which are not supported (except as identity, passed through unread).
 */
import { Readable } from 'node:stream';
import { createInflateRaw } from 'node:zlib';
import { implicitVr, vrForTag } from './dictionary.js';
import { DEFLATED_EXPLICIT_VR_LE, EXPLICIT_VR_BE, EXPLICIT_VR_LE, IMPLICIT_VR_LE, transferSyntax } from './transfer-syntax.js';
import type { VR } from './types.js';

/** Malformed or truncated input, or an unsupported pair of transfer syntaxes. */
export class ReencodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReencodeError';
  }
}

function normalise(uid: string): string {
  return transferSyntax(uid)?.uid ?? uid;
}

const SOURCES: ReadonlySet<string> = new Set([IMPLICIT_VR_LE, EXPLICIT_VR_LE, EXPLICIT_VR_BE, DEFLATED_EXPLICIT_VR_LE]);

/** True when reencodeDataSet can turn a data set in `from` into `to` (both transfer syntax UIDs). */
export function canReencode(from: string, to: string): boolean {
  const f = normalise(from);
  const t = normalise(to);
  return f === t || ((t === IMPLICIT_VR_LE || t === EXPLICIT_VR_LE) && SOURCES.has(f));
}

/**
 * Re-encodes a DICOM data set (NO File Meta group, NO preamble: the bytes that follow the File Meta
 * in a Part-10 file, or that travel in P-DATA) from transfer syntax `from` to `to`, streaming:
 * bounded memory whatever the size of the input (large values such as Pixel Data pass through
 * in chunks; never buffer a whole value over 64 KiB or a whole data set).
 * Throws ReencodeError (exported, extends Error) on malformed input (through the iterator); an
 * unsupported pair (see canReencode) throws ReencodeError at once. Identity passes bytes through.
 */
export function reencodeDataSet(source: AsyncIterable<Uint8Array>, from: string, to: string): AsyncIterable<Uint8Array> {
  if (!canReencode(from, to)) throw new ReencodeError(`cannot re-encode a data set from ${from} to ${to}`);
  const f = normalise(from);
  if (f === normalise(to)) return source;
  const input = f === DEFLATED_EXPLICIT_VR_LE ? inflate(source) : source;
  const enc: Encoding = f === IMPLICIT_VR_LE ? IMPLICIT_LE : { explicit: true, le: f !== EXPLICIT_VR_BE };
  return transcode(input, enc, normalise(to) === EXPLICIT_VR_LE);
}

async function* transcode(source: AsyncIterable<Uint8Array>, enc: Encoding, explicitOut: boolean): AsyncGenerator<Uint8Array> {
  const t = new Transcoder(enc, explicitOut);
  for await (const chunk of source) {
    for (const out of t.push(chunk)) yield out;
  }
  for (const out of t.finish()) yield out;
}

/** Raw inflate (PS3.5 A.5) of a chunk source; zlib's errors become ReencodeError, the source's pass unchanged. */
async function* inflate(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  const input = Readable.from(source, { objectMode: false });
  const z = createInflateRaw();
  let sourceError: unknown;
  input.on('error', (err) => {
    sourceError = err;
    z.destroy(err);
  });
  input.pipe(z);
  try {
    for await (const chunk of z) yield chunk as Buffer;
  } catch (err) {
    if (sourceError !== undefined || err instanceof ReencodeError) throw err;
    throw new ReencodeError(`deflated data set: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    input.destroy();
    z.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// Encoding facts

interface Encoding {
  explicit: boolean;
  le: boolean;
}

const IMPLICIT_LE: Encoding = { explicit: false, le: true };

const UNDEFINED_LENGTH = 0xffffffff;
const BLOCK_SIZE = 64 * 1024;
/** Value bytes in pieces shorter than this are copied into the output block instead of being passed as slices. */
const COPY_BELOW = 256;
/** Output waits in the block until this much has gathered (or a slice passes, or the input ends). */
const YIELD_AT = 16 * 1024;
const NOTHING: readonly Uint8Array[] = Object.freeze([]);
const MAX_DEPTH = 64;

const ALL_VRS: readonly VR[] = [
  'AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FD', 'FL', 'IS', 'LO', 'LT', 'OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'PN',
  'SH', 'SL', 'SQ', 'SS', 'ST', 'SV', 'TM', 'UC', 'UI', 'UL', 'UN', 'UR', 'US', 'UT', 'UV',
];
/** VR by its two bytes read as a big-endian 16-bit number. */
const VR_BY_CODE: ReadonlyMap<number, VR> = new Map(ALL_VRS.map((vr) => [(vr.charCodeAt(0) << 8) | vr.charCodeAt(1), vr]));
/** VRs with the 12-byte explicit header (2 reserved bytes, 32-bit length). */
const LONG_VRS: ReadonlySet<VR> = new Set<VR>(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
/** Undefined length on one of these is an encapsulated value. */
const BULK_VRS: ReadonlySet<VR> = new Set<VR>(['OB', 'OD', 'OF', 'OL', 'OV', 'OW']);
/** Big endian -> little endian: bytes per swapped unit (AT is two 16-bit numbers). */
const SWAP_SIZE: Readonly<Partial<Record<VR, 2 | 4 | 8>>> = {
  US: 2, SS: 2, OW: 2, AT: 2, UL: 4, SL: 4, FL: 4, OL: 4, OF: 4, FD: 8, SV: 8, UV: 8, OD: 8, OV: 8,
};

const VR_CACHE_MAX = 4096;
const vrCache = new Map<number, VR>();

/** The dictionary VR of a tag, for implicit VR input. */
function dictionaryVr(group: number, element: number): VR {
  const key = group * 0x10000 + element;
  const hit = vrCache.get(key);
  if (hit !== undefined) return hit;
  const vr = vrForTag(key.toString(16).padStart(8, '0')) ?? 'UN';
  if (vrCache.size < VR_CACHE_MAX) vrCache.set(key, vr);
  return vr;
}

// ---------------------------------------------------------------------------------------------
// Output

/**
 * Collects output: small writes go into a block that is handed out in views (the bytes of a view
 * are never written again), large values are queued as the caller's slices. Small writes are
 * gathered up to YIELD_AT, so that tiny input chunks do not make as many tiny output chunks.
 */
class Sink {
  block: Buffer = Buffer.allocUnsafe(BLOCK_SIZE);
  private start = 0;
  private end = 0;
  private ready: Uint8Array[] = [];

  /** Offset in `block` of n contiguous bytes for the caller to fill. */
  reserve(n: number): number {
    if (this.end + n > this.block.length) {
      this.flush();
      this.block = Buffer.allocUnsafe(Math.max(BLOCK_SIZE, n));
      this.start = 0;
      this.end = 0;
    }
    const at = this.end;
    this.end += n;
    return at;
  }

  copy(bytes: Uint8Array): void {
    const at = this.reserve(bytes.length);
    // a loop beats TypedArray#set's call overhead on the few bytes a tiny input chunk brings
    if (bytes.length > 16) this.block.set(bytes, at);
    else for (let i = 0; i < bytes.length; i++) this.block[at + i] = bytes[i] as number;
  }

  pass(slice: Uint8Array): void {
    this.flush();
    this.ready.push(slice);
  }

  /** What is written so far, in order, once worth handing out (`all`: everything, now). */
  take(all: boolean): readonly Uint8Array[] {
    if (!all && this.ready.length === 0 && this.end - this.start < YIELD_AT) return NOTHING;
    this.flush();
    const out = this.ready;
    this.ready = [];
    return out;
  }

  private flush(): void {
    if (this.end > this.start) this.ready.push(this.block.subarray(this.start, this.end));
    this.start = this.end;
  }
}

// ---------------------------------------------------------------------------------------------
// The state machine

interface Frame {
  kind: 'item' | 'sequence';
  /** Absolute input offset where a defined-length container ends; undefined: ends at its delimiter. */
  end: number | undefined;
  /** The nearest end of this frame or an enclosing one (Infinity: none). */
  limit: number;
  /** Input encoding of the frame's content (Implicit VR LE inside an undefined-length UN). */
  enc: Encoding;
  /** Items: Bits Allocated (0028,0100) when seen in this item. */
  bitsAllocated: number | undefined;
  /** Items: Pixel Representation (0028,0103) when seen in this item (SS for "US or SS" values when 1). */
  pixelRepresentation: number | undefined;
}

/** What to do with the value bytes still to come. */
interface ValueJob {
  left: number;
  /** Big endian unit to swap (0: none). */
  swap: 0 | 2 | 4 | 8;
  /** Copy into the block rather than pass slices (short values). */
  copy: boolean;
  /** Dropped, not written (group lengths). */
  drop: boolean;
  /** Bits Allocated or Pixel Representation: capture the value into the frame. */
  capture: 'bitsAllocated' | 'pixelRepresentation' | undefined;
}

class Transcoder {
  private readonly sink = new Sink();
  private readonly stack: Frame[];
  /** Input bytes consumed. */
  private pos = 0;
  /** Bytes of an element header split across chunks. */
  private readonly head = new Uint8Array(12);
  private headLen = 0;
  private job: ValueJob | undefined;
  /** Bytes of a big-endian unit split across chunks. */
  private readonly unit = Buffer.alloc(8);
  private unitLen = 0;
  private captured = 0;
  private capturedLen = 0;

  constructor(
    enc: Encoding,
    private readonly explicitOut: boolean,
  ) {
    this.stack = [{ kind: 'item', end: undefined, limit: Infinity, enc, bitsAllocated: undefined, pixelRepresentation: undefined }];
  }

  push(raw: Uint8Array): readonly Uint8Array[] {
    // plain views: Buffer#subarray builds a Buffer each time
    const chunk = Buffer.isBuffer(raw) ? new Uint8Array(raw.buffer, raw.byteOffset, raw.length) : raw;
    let off = 0;
    while (off < chunk.length) off = this.job === undefined ? this.header(chunk, off) : this.value(chunk, off);
    this.closeEnded();
    return this.sink.take(false);
  }

  finish(): readonly Uint8Array[] {
    this.closeEnded();
    if (this.job !== undefined) throw new ReencodeError(`input ended inside a value (${this.job.left} bytes missing)`);
    if (this.headLen > 0) throw new ReencodeError(`input ended inside an element header at offset ${this.pos}`);
    if (this.stack.length > 1) throw new ReencodeError('input ended inside a sequence');
    return this.sink.take(true);
  }

  private top(): Frame {
    return this.stack[this.stack.length - 1] as Frame;
  }

  /** Closes the defined-length containers that end here, writing their delimiters. */
  private closeEnded(): void {
    for (let f = this.top(); f.end === this.pos; f = this.top()) {
      this.stack.pop();
      this.writeItemTag(f.kind === 'item' ? 0xe00d : 0xe0dd, 0);
    }
  }

  private open(kind: Frame['kind'], length: number, enc: Encoding): void {
    if (this.stack.length > MAX_DEPTH) throw new ReencodeError(`sequences nested deeper than ${MAX_DEPTH / 2}`);
    const end = length === UNDEFINED_LENGTH ? undefined : this.pos + length;
    const limit = Math.min(end ?? Infinity, this.top().limit);
    this.stack.push({ kind, end, limit, enc, bitsAllocated: undefined, pixelRepresentation: undefined });
  }

  // --- element headers

  /** Reads one header from chunk[off..] (or completes one begun in a previous chunk); returns the new offset. */
  private header(chunk: Uint8Array, off: number): number {
    this.closeEnded();
    const enc = this.top().enc;
    let src: Uint8Array;
    let at: number;
    let size: number;
    if (this.headLen === 0 && chunk.length - off >= 12) {
      src = chunk;
      at = off;
      size = headerSize(chunk, off, enc);
      off += size;
    } else {
      for (;;) {
        const need = this.headLen < 8 ? 8 : headerSize(this.head, 0, enc);
        if (this.headLen >= need) {
          size = need;
          break;
        }
        if (off === chunk.length) return off;
        while (this.headLen < need && off < chunk.length) this.head[this.headLen++] = chunk[off++] as number;
      }
      src = this.head;
      at = 0;
      this.headLen = 0;
    }
    const start = this.pos;
    this.pos += size;
    const group = u16(src, at, enc.le);
    const element = u16(src, at + 2, enc.le);
    let vr: VR | undefined;
    let length: number;
    if (group === 0xfffe || !enc.explicit) {
      length = u32(src, at + 4, enc.le);
    } else {
      vr = VR_BY_CODE.get(((src[at + 4] as number) << 8) | (src[at + 5] as number));
      if (vr === undefined) throw new ReencodeError(`invalid VR at offset ${start}`);
      length = size === 12 ? u32(src, at + 8, enc.le) : u16(src, at + 6, enc.le);
    }
    const limit = this.top().limit;
    if (this.pos > limit || (length !== UNDEFINED_LENGTH && this.pos + length > limit)) {
      throw new ReencodeError(`element (${hex4(group)},${hex4(element)}) at offset ${start} overruns its item or sequence`);
    }
    if (group === 0xfffe) this.delimiterOrItem(element, length, start);
    else if (this.top().kind === 'sequence') throw new ReencodeError(`expected an item at offset ${start}`);
    else this.element(group, element, vr, length, start);
    return off;
  }

  private delimiterOrItem(element: number, length: number, start: number): void {
    const f = this.top();
    if (f.kind === 'sequence') {
      if (element === 0xe000) {
        this.writeItemTag(0xe000, UNDEFINED_LENGTH);
        this.open('item', length, f.enc);
        return;
      }
      if (element === 0xe0dd && f.end === undefined) {
        this.stack.pop();
        this.writeItemTag(0xe0dd, 0);
        return;
      }
      throw new ReencodeError(`expected an item at offset ${start}`);
    }
    if (element === 0xe00d && f.end === undefined && this.stack.length > 1) {
      this.stack.pop();
      this.writeItemTag(0xe00d, 0);
      return;
    }
    // a delimiter that closes nothing carries no data: dropped
    if ((element === 0xe00d || element === 0xe0dd) && length === 0) return;
    throw new ReencodeError(`unexpected (FFFE,${hex4(element)}) at offset ${start}`);
  }

  private element(group: number, element: number, vrIn: VR | undefined, length: number, start: number): void {
    const frame = this.top();
    const enc = frame.enc;
    const vr = vrIn ?? dictionaryVr(group, element);
    if (length === UNDEFINED_LENGTH) {
      if (vr === 'SQ' || vr === 'UN' || (vrIn === undefined && !BULK_VRS.has(vr))) {
        this.writeHeader(group, element, 'SQ', UNDEFINED_LENGTH);
        // explicit UN of undefined length holds Implicit VR LE (PS3.5 6.2.2)
        this.open('sequence', length, vrIn === 'UN' ? IMPLICIT_LE : enc);
        return;
      }
      const what = BULK_VRS.has(vr) ? 'encapsulated value (only in encapsulated transfer syntaxes)' : `undefined length on ${vr}`;
      throw new ReencodeError(`(${hex4(group)},${hex4(element)}) at offset ${start}: ${what}`);
    }
    if (vr === 'SQ') {
      this.writeHeader(group, element, 'SQ', UNDEFINED_LENGTH);
      this.open('sequence', length, enc);
      return;
    }
    const job: ValueJob = {
      left: length,
      swap: enc.le ? 0 : (SWAP_SIZE[vr] ?? 0),
      copy: length < COPY_BELOW,
      drop: element === 0,
      capture: group === 0x0028 && length === 2 ? (element === 0x0100 ? 'bitsAllocated' : element === 0x0103 ? 'pixelRepresentation' : undefined) : undefined,
    };
    if (!job.drop) this.writeHeader(group, element, this.outputVr(group, element, vrIn, vr, length, frame), length);
    if (job.capture !== undefined) this.capturedLen = 0;
    if (length === 0) return;
    this.job = job;
  }

  /** Pixel Representation of the item being read, else of the nearest enclosing one that has it. */
  private pixelRepresentation(): number | undefined {
    for (let i = this.stack.length - 1; i >= 0; i--) {
      const v = this.stack[i]?.pixelRepresentation;
      if (v !== undefined) return v;
    }
    return undefined;
  }

  private outputVr(group: number, element: number, vrIn: VR | undefined, vr: VR, length: number, frame: Frame): VR {
    if (vrIn !== undefined) return vrIn;
    let out = vr;
    if (group === 0x7fe0 && element === 0x0010) out = frame.bitsAllocated !== undefined && frame.bitsAllocated <= 8 ? 'OB' : 'OW';
    else if (vr === 'US') out = implicitVr(hex4(group) + hex4(element), this.pixelRepresentation());
    return length > 0xffff && !LONG_VRS.has(out) ? 'UN' : out;
  }

  // --- values

  private value(chunk: Uint8Array, off: number): number {
    const job = this.job as ValueJob;
    const n = Math.min(job.left, chunk.length - off);
    const part = chunk.subarray(off, off + n);
    if (job.capture !== undefined) this.capture(part);
    if (!job.drop) {
      if (job.swap !== 0) this.swapped(part, job.swap);
      else if (job.copy || n < COPY_BELOW) this.sink.copy(part);
      else this.sink.pass(part);
    }
    job.left -= n;
    this.pos += n;
    if (job.left === 0) this.endValue(job);
    return off + n;
  }

  private capture(part: Uint8Array): void {
    for (const b of part) this.captured = this.capturedLen++ === 0 ? b : this.captured | (b << 8);
  }

  private endValue(job: ValueJob): void {
    this.job = undefined;
    if (this.unitLen > 0) {
      // the odd bytes of a value whose length is not a multiple of its unit: as they are
      this.sink.copy(this.unit.subarray(0, this.unitLen));
      this.unitLen = 0;
    }
    if (job.capture !== undefined) {
      const v = this.captured;
      this.top()[job.capture] = this.top().enc.le ? v : ((v & 0xff) << 8) | (v >> 8);
    }
  }

  /** Copies big-endian units into the block and swaps them there; a unit split across chunks waits in `unit`. */
  private swapped(part: Uint8Array, size: 2 | 4 | 8): void {
    let p = part;
    if (this.unitLen > 0) {
      let i = 0;
      while (this.unitLen < size && i < p.length) this.unit[this.unitLen++] = p[i++] as number;
      if (this.unitLen < size) return;
      this.unitLen = 0;
      const at = this.sink.reserve(size);
      for (let j = 0; j < size; j++) this.sink.block[at + j] = this.unit[size - 1 - j] as number;
      p = p.subarray(i);
    }
    const whole = p.length - (p.length % size);
    for (let i = 0; i < whole; i += BLOCK_SIZE) {
      const n = Math.min(BLOCK_SIZE, whole - i);
      const at = this.sink.reserve(n);
      this.sink.block.set(p.subarray(i, i + n), at);
      swapInPlace(this.sink.block, at, n, size);
    }
    for (let i = whole; i < p.length; i++) this.unit[this.unitLen++] = p[i] as number;
  }

  // --- output headers (always little endian)

  private writeItemTag(element: number, length: number): void {
    const b = this.sink.block;
    const at = this.sink.reserve(8);
    b.writeUInt32LE(0xfffe + element * 0x10000, at);
    b.writeUInt32LE(length, at + 4);
  }

  private writeHeader(group: number, element: number, vr: VR, length: number): void {
    if (!this.explicitOut) {
      const at = this.sink.reserve(8);
      const b = this.sink.block;
      b.writeUInt32LE(group + element * 0x10000, at);
      b.writeUInt32LE(length, at + 4);
      return;
    }
    const long = LONG_VRS.has(vr);
    const at = this.sink.reserve(long ? 12 : 8);
    const b = this.sink.block;
    b.writeUInt32LE(group + element * 0x10000, at);
    b[at + 4] = vr.charCodeAt(0);
    b[at + 5] = vr.charCodeAt(1);
    if (long) {
      b.writeUInt16LE(0, at + 6);
      b.writeUInt32LE(length, at + 8);
    } else {
      b.writeUInt16LE(length, at + 6);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Byte helpers

/** 8 or 12: the size of the element header starting at b[i] (at least 8 bytes present). */
function headerSize(b: Uint8Array, i: number, enc: Encoding): 8 | 12 {
  if (!enc.explicit || u16(b, i, enc.le) === 0xfffe) return 8;
  const vr = VR_BY_CODE.get(((b[i + 4] as number) << 8) | (b[i + 5] as number));
  return vr !== undefined && LONG_VRS.has(vr) ? 12 : 8;
}

function u16(b: Uint8Array, i: number, le: boolean): number {
  const x = b[i] as number;
  const y = b[i + 1] as number;
  return le ? x | (y << 8) : (x << 8) | y;
}

function u32(b: Uint8Array, i: number, le: boolean): number {
  const lo = u16(b, le ? i : i + 2, le);
  const hi = u16(b, le ? i + 2 : i, le);
  return hi * 0x10000 + lo;
}

function hex4(n: number): string {
  return n.toString(16).toUpperCase().padStart(4, '0');
}

function swapInPlace(b: Buffer, at: number, n: number, size: 2 | 4 | 8): void {
  const region = b.subarray(at, at + n);
  if (size === 2) region.swap16();
  else if (size === 4) region.swap32();
  else region.swap64();
}
