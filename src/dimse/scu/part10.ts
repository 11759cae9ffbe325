/**
 * The File Meta Information of a Part-10 source (PS3.10 7.1), read incrementally so that the data
 * set behind it can be sent as it is, chunk by chunk, never held whole in memory.
 */
import { createReadStream } from 'node:fs';
import { HeaderError, readPart10Header } from '../../dicom/header-reader.js';

export interface FileMeta {
  /** (0002,0002) Media Storage SOP Class UID */
  sopClassUid: string;
  /** (0002,0003) Media Storage SOP Instance UID */
  sopInstanceUid: string;
  /** (0002,0010) Transfer Syntax UID */
  transferSyntaxUid: string;
  /** Where the data set begins. */
  datasetOffset: number;
}

export class NotPart10Error extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotPart10Error';
  }
}

/** File Meta is a few hundred bytes; this bounds a hostile or broken file. */
const MAX_META_BYTES = 64 * 1024;
const LONG_VRS: ReadonlySet<string> = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

function uid(b: Buffer): string {
  return b.toString('latin1').replace(/[\0 ]+$/, '');
}

/**
 * Parses the File Meta at the start of `buf`. Returns undefined while more bytes are needed
 * (`ended`: no more will come, so what is there must do); throws NotPart10Error otherwise.
 */
export function parseFileMeta(buf: Buffer, ended: boolean): FileMeta | undefined {
  if (buf.length < 132) {
    if (ended) throw new NotPart10Error('shorter than a Part-10 preamble');
    return undefined;
  }
  if (buf.toString('latin1', 128, 132) !== 'DICM') throw new NotPart10Error('no DICM prefix');
  let o = 132;
  const values = new Map<number, string>();
  for (;;) {
    if (o > MAX_META_BYTES) throw new NotPart10Error('File Meta Information too long');
    if (buf.length < o + 8) {
      if (!ended) return undefined;
      break;
    }
    if (buf.readUInt16LE(o) !== 0x0002) break;
    const element = buf.readUInt16LE(o + 2);
    const vr = buf.toString('latin1', o + 4, o + 6);
    let header = 8;
    let length = buf.readUInt16LE(o + 6);
    if (LONG_VRS.has(vr)) {
      if (buf.length < o + 12) {
        if (!ended) return undefined;
        throw new NotPart10Error('truncated File Meta Information');
      }
      header = 12;
      length = buf.readUInt32LE(o + 8);
      if (length === 0xffffffff) throw new NotPart10Error('undefined length in File Meta Information');
    }
    if (buf.length < o + header + length) {
      if (!ended) return undefined;
      throw new NotPart10Error('truncated File Meta Information');
    }
    if (element === 0x0002 || element === 0x0003 || element === 0x0010) values.set(element, uid(buf.subarray(o + header, o + header + length)));
    o += header + length;
  }
  const sopClassUid = values.get(0x0002);
  const sopInstanceUid = values.get(0x0003);
  const transferSyntaxUid = values.get(0x0010);
  if (!sopClassUid || !sopInstanceUid || !transferSyntaxUid) throw new NotPart10Error('File Meta Information lacks (0002,0002), (0002,0003) or (0002,0010)');
  return { sopClassUid, sopInstanceUid, transferSyntaxUid, datasetOffset: o };
}

export interface OpenedPart10 {
  meta: FileMeta;
  /** The data set bytes, exactly as in the source, from the end of File Meta on. */
  dataset: AsyncIterable<Uint8Array>;
  /** Stops reading the source (when the data set is not consumed to its end). */
  close(): Promise<void>;
}

/**
 * Reads File Meta from a Part-10 byte source; the rest of the source is handed on unread.
 * The source is closed (its iterator returned) on failure and by close().
 */
export async function openPart10(source: AsyncIterable<Uint8Array>): Promise<OpenedPart10> {
  const it = source[Symbol.asyncIterator]();
  const close = async (): Promise<void> => {
    await it.return?.();
  };
  const head: Buffer[] = [];
  let headLength = 0;
  let ended = false;
  let meta: FileMeta | undefined;
  try {
    while (meta === undefined) {
      const r = await it.next();
      if (r.done === true) ended = true;
      else {
        const chunk = Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
        head.push(chunk);
        headLength += chunk.length;
      }
      meta = parseFileMeta(head.length === 1 ? (head[0] as Buffer) : Buffer.concat(head, headLength), ended);
      if (meta === undefined && ended) throw new NotPart10Error('truncated');
    }
  } catch (err) {
    await close().catch(() => {});
    throw err;
  }
  const found = meta;
  const rest = Buffer.concat(head, headLength).subarray(found.datasetOffset);
  const sourceEnded = ended;
  async function* dataset(): AsyncGenerator<Uint8Array> {
    try {
      if (rest.length > 0) yield rest;
      if (sourceEnded) return;
      for (;;) {
        const r = await it.next();
        if (r.done === true) return;
        yield r.value;
      }
    } finally {
      await close();
    }
  }
  return { meta: found, dataset: dataset(), close };
}

/** A file read in large chunks (fewer, larger PDUs). */
export function fileSource(path: string): AsyncIterable<Uint8Array> {
  return createReadStream(path, { highWaterMark: 1024 * 1024 });
}

/** The File Meta of a file: only the first chunk(s) are read. */
export async function readFileMeta(path: string): Promise<FileMeta> {
  const stream = createReadStream(path, { highWaterMark: 16 * 1024 });
  try {
    const opened = await openPart10(stream);
    return opened.meta;
  } finally {
    stream.destroy();
  }
}

/**
 * Whether the data set of a Part-10 file of `size` bytes is whole, before it is sent: its header
 * does not end early, and Pixel Data of defined length ends within the file. A
 * truncated file would stop mid data set on the wire; the peer then aborts the association (as
 * DCMTK's storescp does) and every instance after it fails too. Throws NotPart10Error saying why.
 */
export async function checkFileComplete(path: string, size: number): Promise<void> {
  const stream = createReadStream(path, { highWaterMark: 64 * 1024 });
  try {
    let header;
    try {
      header = await readPart10Header(stream, { bulkdataThreshold: 1024 });
    } catch (err) {
      // Only a data set that ends early is refused: one our reader does not take for another
      // reason (a header over 16 MiB of values, a VR it does not know) may be fine for the peer.
      if (err instanceof HeaderError && err.code === 'TRUNCATED') throw new NotPart10Error(`the data set cannot be read (${err.code}): ${err.message}`);
      return;
    }
    const pd = header.pixelData;
    // Offsets of a deflated data set count inflated bytes: not comparable with the file's size.
    if (pd !== undefined && !header.deflated && (pd.length !== undefined ? pd.offset + pd.length > size : pd.offset >= size)) {
      throw new NotPart10Error('the file ends inside Pixel Data (7FE0,0010): truncated');
    }
  } finally {
    stream.destroy();
  }
}
