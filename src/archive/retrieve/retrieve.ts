import { Readable } from 'node:stream';
import { createInflateRaw } from 'node:zlib';
import { readPart10Header } from '../../dicom/header-reader.js';
import { EXPLICIT_VR_LE, transferSyntax } from '../../dicom/transfer-syntax.js';
import type { DicomJsonDataset, DicomJsonElement } from '../../dicom/types.js';
import type { BlobStore } from '../../storage/blobs.js';
import type { InstanceRow, InstanceScope, MetadataStore } from '../../storage/metadata.js';
import { ArchiveError } from '../errors.js';
import { framesFromFragments, scanFragments, type FragmentTable } from './fragments.js';

export interface RetrieveDeps {
  metadata: MetadataStore;
  blobs: BlobStore;
}

export type LocatedInstance = InstanceRow & { header?: DicomJsonDataset };

/**
 * The instances in scope as a stream of rows; NOT_FOUND when there are none (decided before
 * anything is sent, so the edge can still answer 404).
 */
export async function locate(deps: RetrieveDeps, scope: InstanceScope, withHeader: boolean): Promise<AsyncIterable<LocatedInstance>> {
  const it = deps.metadata.listInstances(scope, { withHeader })[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done) throw new ArchiveError('NOT_FOUND', notFoundMessage(scope), { ...scope });
  return {
    [Symbol.asyncIterator]() {
      let pending: IteratorResult<LocatedInstance> | undefined = first;
      return {
        next: async () => {
          if (pending) {
            const p = pending;
            pending = undefined;
            return p;
          }
          return it.next();
        },
        return: async () => {
          await it.return?.();
          return { value: undefined, done: true };
        },
      };
    },
  };
}

function notFoundMessage(scope: InstanceScope): string {
  if (scope.sopUid) return 'instance not found';
  if (scope.seriesUid) return 'series not found';
  return 'study not found';
}

/** Resolves a bulkdata tag path ('7FE00010', '00540016/0/00181072') in a header. */
export function elementAtPath(header: DicomJsonDataset, path: string[]): DicomJsonElement | undefined {
  let ds: DicomJsonDataset | undefined = header;
  for (let i = 0; i < path.length; i++) {
    const tag = (path[i] as string).toUpperCase();
    const el: DicomJsonElement | undefined = ds?.[tag];
    if (!el) return undefined;
    if (i === path.length - 1) return el;
    const idx = Number(path[i + 1]);
    if (el.vr !== 'SQ' || !Number.isInteger(idx) || idx < 0) return undefined;
    const item = el.Value?.[idx];
    if (!item || typeof item !== 'object' || 'Alphabetic' in item) return undefined;
    ds = item as DicomJsonDataset;
    i++;
  }
  return undefined;
}

const WORD_SIZE: Partial<Record<string, number>> = { OW: 2, OF: 4, OL: 4, OD: 8, OV: 8 };

export interface BulkValue {
  stream: Readable;
  length: number | undefined;
}

export async function openBulkdata(deps: RetrieveDeps, row: InstanceRow, header: DicomJsonDataset, path: string[]): Promise<BulkValue> {
  const el = elementAtPath(header, path);
  if (el?._bulk) {
    const { offset, length } = el._bulk;
    if (length === undefined) {
      // Undefined length (encapsulated pixel data): the whole value up to the end of the file.
      return { stream: await deps.blobs.get(row.blobKey, { start: offset }), length: undefined };
    }
    if (length === 0) return { stream: Readable.from([]), length: 0 };
    const stream = await openValueRange(deps, row, offset, offset + length - 1);
    // Bulk data is served little endian (as InlineBinary already is): swap words of big endian files.
    const word = transferSyntax(row.transferSyntaxUid)?.littleEndian === false ? WORD_SIZE[el.vr] : undefined;
    return { stream: word ? Readable.from(byteSwapper(word)(stream)) : stream, length };
  }
  if (el?.InlineBinary !== undefined) {
    const buf = Buffer.from(el.InlineBinary, 'base64');
    return { stream: Readable.from([buf]), length: buf.length };
  }
  throw new ArchiveError('NOT_FOUND', 'no bulk data at this path', { path: path.join('/') });
}

export interface FramePart {
  /** The transfer syntax of the bytes: the stored one for encapsulated data, Explicit VR LE for native. */
  transferSyntaxUid: string;
  open(): Promise<Readable>;
  length: number;
}

function num(header: DicomJsonDataset, tag: string, fallback: number | undefined): number | undefined {
  const v = header[tag]?.Value?.[0];
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : fallback;
}

const fragmentCache = new Map<string, FragmentTable>();
const FRAGMENT_CACHE_MAX = 256;

/**
 * Frames (1-based) sliced from stored pixel data: native frames by offset, encapsulated frames as
 * stored fragments. Range checks give NOT_FOUND before any byte is sent.
 */
export async function locateFrames(deps: RetrieveDeps, row: InstanceRow, header: DicomJsonDataset, frameNumbers: number[]): Promise<FramePart[]> {
  const pixelElement = header['7FE00010'] ?? header['7FE00008'] ?? header['7FE00009'];
  const pixel = pixelElement?._bulk;
  if (!pixel) throw new ArchiveError('NOT_FOUND', 'the instance has no pixel data');
  const ts = transferSyntax(row.transferSyntaxUid);
  if (!ts) throw new ArchiveError('NOT_ACCEPTABLE', `frames of ${row.transferSyntaxUid} instances cannot be served`);
  const numberOfFrames = num(header, '00280008', 1) ?? 1;
  for (const n of frameNumbers) {
    if (!Number.isInteger(n) || n < 1 || n > numberOfFrames) throw new ArchiveError('NOT_FOUND', `frame ${n} does not exist (the instance has ${numberOfFrames})`, { frame: n });
  }
  if (!ts.encapsulated) {
    const rows = num(header, '00280010', undefined);
    const cols = num(header, '00280011', undefined);
    const bits = num(header, '00280100', undefined);
    const samples = num(header, '00280002', 1) ?? 1;
    if (rows === undefined || cols === undefined || bits === undefined || pixel.length === undefined) {
      throw new ArchiveError('NOT_FOUND', 'the instance lacks the attributes needed to slice frames');
    }
    const frameBits = rows * cols * samples * bits;
    if (frameBits % 8 !== 0) throw new ArchiveError('NOT_ACCEPTABLE', 'frames that are not byte-aligned cannot be served yet');
    const frameBytes = frameBits / 8;
    // Big endian: the value's words are swapped, by its VR's word size (OW: 16 bits, also for 8-bit
    // or 32-bit pixels; OB: none), as for bulk data.
    const swap = !ts.littleEndian ? (WORD_SIZE[pixelElement?.vr ?? 'OW'] ?? 0) : 0;
    // A frame that does not start on a word (8-bit frames of odd size in OW) would be swapped on
    // the wrong pairs.
    if (swap > 0 && frameBytes % swap !== 0) throw new ArchiveError('NOT_ACCEPTABLE', 'frames of a big-endian value that do not start on its words cannot be served yet');
    return frameNumbers.map((n) => {
      const start = pixel.offset + (n - 1) * frameBytes;
      const available = Math.max(0, Math.min(frameBytes, (pixel.length as number) - (n - 1) * frameBytes));
      return {
        transferSyntaxUid: EXPLICIT_VR_LE,
        length: available,
        open: async () => {
          if (available === 0) return Readable.from([]);
          const s = await openValueRange(deps, row, start, start + available - 1);
          return swap ? Readable.from(byteSwapper(swap)(s)) : s;
        },
      };
    });
  }
  let table = fragmentCache.get(row.blobKey);
  if (!table) {
    table = await scanFragments(await deps.blobs.get(row.blobKey, { start: pixel.offset }), pixel.offset);
    if (fragmentCache.size >= FRAGMENT_CACHE_MAX) fragmentCache.delete(fragmentCache.keys().next().value as string);
    fragmentCache.set(row.blobKey, table);
  }
  let frames;
  try {
    frames = framesFromFragments(table, numberOfFrames);
  } catch (err) {
    throw new ArchiveError('NOT_ACCEPTABLE', err instanceof Error ? err.message : String(err));
  }
  return frameNumbers.map((n) => {
    const frags = frames[n - 1] ?? [];
    return {
      transferSyntaxUid: row.transferSyntaxUid,
      length: frags.reduce((a, f) => a + f.length, 0),
      open: async () => {
        const streams = frags.map((f) => () => (f.length === 0 ? Promise.resolve(Readable.from([])) : deps.blobs.get(row.blobKey, { start: f.offset, end: f.offset + f.length - 1 })));
        return Readable.from(concatStreams(streams));
      },
    };
  });
}

async function* concatStreams(openers: (() => Promise<Readable>)[]): AsyncGenerator<Buffer> {
  for (const open of openers) {
    for await (const chunk of await open()) yield chunk as Buffer;
  }
}

/** Big endian -> little endian for words of `size` bytes, across chunk boundaries. */
function byteSwapper(size: number): (source: AsyncIterable<unknown>) => AsyncGenerator<Buffer> {
  return async function* swap(source) {
    let carry = Buffer.alloc(0);
    for await (const chunk of source) {
      const c = chunk as Buffer;
      const buf = carry.length > 0 ? Buffer.concat([carry, c]) : Buffer.from(c);
      const usable = buf.length - (buf.length % size);
      const out = buf.subarray(0, usable);
      if (size === 2) out.swap16();
      else if (size === 4) out.swap32();
      else if (size === 8) out.swap64();
      carry = Buffer.from(buf.subarray(usable));
      yield out;
    }
    if (carry.length > 0) yield carry;
  };
}

/**
 * Bytes [start, end] of the dataset as parsed at ingest. Offsets of deflated instances count bytes of
 * the inflated dataset, so those are inflated on the fly (streaming, nothing buffered whole).
 */
export async function openValueRange(deps: RetrieveDeps, row: InstanceRow, start: number, end: number): Promise<Readable> {
  if (!transferSyntax(row.transferSyntaxUid)?.deflated) return deps.blobs.get(row.blobKey, { start, end });
  const header = await readPart10Header(await deps.blobs.get(row.blobKey), { bulkdataThreshold: 0 });
  const compressed = await deps.blobs.get(row.blobKey, { start: header.datasetOffset });
  const inflated = compressed.pipe(createInflateRaw());
  compressed.on('error', (err) => inflated.destroy(err));
  // Offsets of deflated instances are positions as if the dataset were inflated in place.
  return Readable.from(sliceStream(inflated, start - header.datasetOffset, end - header.datasetOffset));
}

async function* sliceStream(source: Readable, start: number, end: number): AsyncGenerator<Buffer> {
  let pos = 0;
  try {
    for await (const raw of source) {
      const chunk = raw as Buffer;
      const chunkEnd = pos + chunk.length;
      if (chunkEnd > start) {
        const from = Math.max(0, start - pos);
        const to = Math.min(chunk.length, end + 1 - pos);
        if (to > from) yield chunk.subarray(from, to);
      }
      pos = chunkEnd;
      if (pos > end) break;
    }
  } finally {
    source.destroy();
  }
}
