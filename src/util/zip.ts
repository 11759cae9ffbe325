// A streaming ZIP writer (PKWARE APPNOTE 6.3.x) for downloads of originals: STORED entries whose
// CRC-32 is computed while the bytes pass through, so nothing is buffered, staged or read twice.
//
// Layout choices (why, not what):
// - Method 0 (stored): DICOM pixel data is mostly compressed already and the archive must be cheap
//   to produce; readers extract stored entries without inflating.
// - General purpose bit 3: the CRC is only known after the entry has been streamed, so the local
//   header carries zeros (APPNOTE 4.4.4) and a data descriptor follows the data. Sizes are declared
//   up front (from the index), so the writer knows before the local header whether an entry needs
//   ZIP64, and it checks the bytes actually streamed against the declared size.
// - Bit 11: names are UTF-8.
// - ZIP64 per entry when its size reaches the 32-bit limit: the local header then carries a ZIP64
//   extra field (sizes 0) and the data descriptor uses 8-byte sizes — APPNOTE 4.3.9.2 ties the two
//   together, and always pairing them is the simplest rule every reader agrees on. Offsets at or
//   above the limit go into the central directory's ZIP64 extra field; the ZIP64 end of central
//   directory record and locator are written whenever a count, size or offset of the directory
//   overflows its classic field.
// - The central directory is built from small per-entry records (name, CRC, size, offset): memory
//   grows with the number of entries, never with their contents.
import { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';

export interface ZipEntry {
  /** Path inside the archive ('/'-separated, no leading '/'). */
  name: string;
  /** Exact number of bytes `open()` will yield; a mismatch fails the archive. */
  size: number;
  mtime?: Date;
  /** Opened only when the entry is written (one entry at a time). */
  open(): Promise<AsyncIterable<Uint8Array>>;
}

export interface ZipOptions {
  /**
   * Sizes and offsets at or above this use ZIP64 fields (default 0xFFFFFFFF, the classic sentinel).
   * Lower only in tests, to exercise ZIP64 without writing gigabytes.
   */
  zip64Threshold?: number;
  /** Entry counts at or above this use the ZIP64 end records (default 0xFFFF). Tests only. */
  zip64CountThreshold?: number;
  /** Readable buffer size in bytes (default 1 MiB). */
  highWaterMark?: number;
}

const SIG_LOCAL = 0x04034b50;
const SIG_DESCRIPTOR = 0x08074b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_EOCD = 0x06054b50;

const FLAGS = 0x0008 | 0x0800; // data descriptor | UTF-8 names
const METHOD_STORED = 0;
const VERSION_DEFAULT = 20;
const VERSION_ZIP64 = 45;
/** Made by: Unix (3) so external attributes carry a file mode; spec version 6.3. */
const VERSION_MADE_BY = (3 << 8) | 63;
const EXTERNAL_ATTRS = (0o100644 << 16) >>> 0; // regular file, rw-r--r--
const ZIP64_EXTRA_ID = 0x0001;
const MAX32 = 0xffffffff;
const MAX16 = 0xffff;

/** What the central directory needs of one entry (never its contents). */
interface CentralRecord {
  name: Buffer;
  crc: number;
  size: number;
  offset: number;
  zip64: boolean;
  time: number;
  date: number;
}

class ZipError extends Error {
  override name = 'ZipError';
}

/** MS-DOS date and time (local time, 2-second resolution, clamped to 1980–2107). */
function dosDateTime(d: Date): { date: number; time: number } {
  const year = d.getFullYear();
  if (Number.isNaN(year) || year < 1980) return { date: (0 << 9) | (1 << 5) | 1, time: 0 };
  if (year > 2107) return { date: (127 << 9) | (12 << 5) | 31, time: (23 << 11) | (59 << 5) | 29 };
  return {
    date: ((year - 1980) << 9) | ((d.getMonth() + 1) << 5) | d.getDate(),
    time: (d.getHours() << 11) | (d.getMinutes() << 5) | Math.floor(d.getSeconds() / 2),
  };
}

function localHeader(name: Buffer, dt: { date: number; time: number }, zip64: boolean): Buffer {
  const extraLen = zip64 ? 20 : 0;
  const b = Buffer.alloc(30 + name.length + extraLen);
  b.writeUInt32LE(SIG_LOCAL, 0);
  b.writeUInt16LE(zip64 ? VERSION_ZIP64 : VERSION_DEFAULT, 4);
  b.writeUInt16LE(FLAGS, 6);
  b.writeUInt16LE(METHOD_STORED, 8);
  b.writeUInt16LE(dt.time, 10);
  b.writeUInt16LE(dt.date, 12);
  // CRC and sizes follow in the data descriptor (bit 3): zero here, or the ZIP64 sentinel.
  b.writeUInt32LE(0, 14);
  b.writeUInt32LE(zip64 ? MAX32 : 0, 18);
  b.writeUInt32LE(zip64 ? MAX32 : 0, 22);
  b.writeUInt16LE(name.length, 26);
  b.writeUInt16LE(extraLen, 28);
  name.copy(b, 30);
  if (zip64) {
    const e = 30 + name.length;
    b.writeUInt16LE(ZIP64_EXTRA_ID, e);
    b.writeUInt16LE(16, e + 2);
    // Original and compressed size, both 0 as the local header's sizes are (APPNOTE 4.5.3).
    b.writeBigUInt64LE(0n, e + 4);
    b.writeBigUInt64LE(0n, e + 12);
  }
  return b;
}

function dataDescriptor(crc: number, size: number, zip64: boolean): Buffer {
  const b = Buffer.alloc(zip64 ? 24 : 16);
  b.writeUInt32LE(SIG_DESCRIPTOR, 0);
  b.writeUInt32LE(crc, 4);
  if (zip64) {
    b.writeBigUInt64LE(BigInt(size), 8);
    b.writeBigUInt64LE(BigInt(size), 16);
  } else {
    b.writeUInt32LE(size, 8);
    b.writeUInt32LE(size, 12);
  }
  return b;
}

function centralHeader(r: CentralRecord, threshold: number): Buffer {
  const sizes64 = r.zip64; // same rule as the local header: an entry is ZIP64 iff its size overflows
  const offset64 = r.offset >= threshold;
  const extraLen = sizes64 || offset64 ? 4 + (sizes64 ? 16 : 0) + (offset64 ? 8 : 0) : 0;
  const b = Buffer.alloc(46 + r.name.length + extraLen);
  b.writeUInt32LE(SIG_CENTRAL, 0);
  b.writeUInt16LE(VERSION_MADE_BY, 4);
  b.writeUInt16LE(sizes64 || offset64 ? VERSION_ZIP64 : VERSION_DEFAULT, 6);
  b.writeUInt16LE(FLAGS, 8);
  b.writeUInt16LE(METHOD_STORED, 10);
  b.writeUInt16LE(r.time, 12);
  b.writeUInt16LE(r.date, 14);
  b.writeUInt32LE(r.crc, 16);
  b.writeUInt32LE(sizes64 ? MAX32 : r.size, 20);
  b.writeUInt32LE(sizes64 ? MAX32 : r.size, 24);
  b.writeUInt16LE(r.name.length, 28);
  b.writeUInt16LE(extraLen, 30);
  b.writeUInt16LE(0, 32); // comment length
  b.writeUInt16LE(0, 34); // disk number start
  b.writeUInt16LE(0, 36); // internal attributes
  b.writeUInt32LE(EXTERNAL_ATTRS, 38);
  b.writeUInt32LE(offset64 ? MAX32 : r.offset, 42);
  r.name.copy(b, 46);
  if (extraLen > 0) {
    let e = 46 + r.name.length;
    b.writeUInt16LE(ZIP64_EXTRA_ID, e);
    b.writeUInt16LE(extraLen - 4, e + 2);
    e += 4;
    // Fixed order, only the fields whose classic value is the sentinel (APPNOTE 4.5.3).
    if (sizes64) {
      b.writeBigUInt64LE(BigInt(r.size), e);
      b.writeBigUInt64LE(BigInt(r.size), e + 8);
      e += 16;
    }
    if (offset64) b.writeBigUInt64LE(BigInt(r.offset), e);
  }
  return b;
}

function endRecords(count: number, cdSize: number, cdOffset: number, threshold: number, countThreshold: number): Buffer {
  const count64 = count >= countThreshold;
  const size64 = cdSize >= threshold;
  const offset64 = cdOffset >= threshold;
  const pieces: Buffer[] = [];
  if (count64 || size64 || offset64) {
    const rec = Buffer.alloc(56);
    rec.writeUInt32LE(SIG_ZIP64_EOCD, 0);
    rec.writeBigUInt64LE(44n, 4); // size of the remaining record
    rec.writeUInt16LE(VERSION_MADE_BY, 12);
    rec.writeUInt16LE(VERSION_ZIP64, 14);
    rec.writeUInt32LE(0, 16); // this disk
    rec.writeUInt32LE(0, 20); // disk with the central directory
    rec.writeBigUInt64LE(BigInt(count), 24);
    rec.writeBigUInt64LE(BigInt(count), 32);
    rec.writeBigUInt64LE(BigInt(cdSize), 40);
    rec.writeBigUInt64LE(BigInt(cdOffset), 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(SIG_ZIP64_LOCATOR, 0);
    loc.writeUInt32LE(0, 4); // disk with the ZIP64 EOCD
    loc.writeBigUInt64LE(BigInt(cdOffset + cdSize), 8);
    loc.writeUInt32LE(1, 16); // total disks
    pieces.push(rec, loc);
  }
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(SIG_EOCD, 0);
  eocd.writeUInt16LE(0, 4);
  eocd.writeUInt16LE(0, 6);
  eocd.writeUInt16LE(count64 ? MAX16 : count, 8);
  eocd.writeUInt16LE(count64 ? MAX16 : count, 10);
  eocd.writeUInt32LE(size64 ? MAX32 : cdSize, 12);
  eocd.writeUInt32LE(offset64 ? MAX32 : cdOffset, 16);
  eocd.writeUInt16LE(0, 20); // comment length
  pieces.push(eocd);
  return Buffer.concat(pieces);
}

function checkEntry(entry: ZipEntry, name: Buffer): void {
  if (name.length === 0 || name.length > MAX16) throw new ZipError(`invalid ZIP entry name length ${name.length}`);
  if (!Number.isSafeInteger(entry.size) || entry.size < 0) throw new ZipError(`invalid size ${entry.size} for ZIP entry ${entry.name}`);
}

interface Destroyable {
  destroy(error?: Error): unknown;
}

function isDestroyable(v: unknown): v is Destroyable {
  return typeof v === 'object' && v !== null && typeof (v as { destroy?: unknown }).destroy === 'function';
}

/** Marks the pump's exit after the consumer destroyed the stream (not an error of the archive). */
const ABORTED = Symbol('aborted');

class ZipReadable extends Readable {
  private started = false;
  private wake: (() => void) | undefined;
  /** The entry source being streamed: destroyed with us so blob streams never linger. */
  private source: AsyncIterable<Uint8Array> | undefined;
  private offset = 0;
  private readonly threshold: number;
  private readonly countThreshold: number;

  constructor(
    private readonly entries: AsyncIterable<ZipEntry>,
    options: ZipOptions,
  ) {
    super({ highWaterMark: options.highWaterMark ?? 1024 * 1024 });
    this.threshold = options.zip64Threshold ?? MAX32;
    this.countThreshold = options.zip64CountThreshold ?? MAX16;
  }

  override _read(): void {
    if (!this.started) {
      this.started = true;
      this.pump().catch((err: unknown) => {
        if (err !== ABORTED && !this.destroyed) this.destroy(err instanceof Error ? err : new Error(String(err)));
      });
      return;
    }
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const source = this.source;
    this.source = undefined;
    if (isDestroyable(source)) source.destroy();
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
    callback(error);
  }

  /** Pushes one chunk; waits for the consumer when its buffer is full. */
  private async send(chunk: Uint8Array): Promise<void> {
    if (this.destroyed) throw ABORTED;
    this.offset += chunk.byteLength;
    if (!this.push(chunk)) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      if (this.destroyed) throw ABORTED;
    }
  }

  private async pump(): Promise<void> {
    const central: CentralRecord[] = [];
    const it = this.entries[Symbol.asyncIterator]();
    try {
      for (;;) {
        const next = await it.next();
        if (next.done) break;
        if (this.destroyed) throw ABORTED;
        central.push(await this.writeEntry(next.value));
      }
    } catch (err) {
      // Closes the source of entries (e.g. a database cursor) when the archive stops early.
      await it.return?.().catch(() => undefined);
      throw err;
    }
    await this.writeCentralDirectory(central);
    this.push(null);
  }

  private async writeEntry(entry: ZipEntry): Promise<CentralRecord> {
    const name = Buffer.from(entry.name, 'utf8');
    checkEntry(entry, name);
    const dt = dosDateTime(entry.mtime ?? new Date());
    const zip64 = entry.size >= this.threshold;
    const offset = this.offset;
    await this.send(localHeader(name, dt, zip64));

    const source = await entry.open();
    if (this.destroyed) {
      if (isDestroyable(source)) source.destroy();
      throw ABORTED;
    }
    this.source = source;
    let crc = 0;
    let written = 0;
    try {
      for await (const chunk of source) {
        if (chunk.byteLength === 0) continue;
        written += chunk.byteLength;
        if (written > entry.size) throw new ZipError(`ZIP entry ${entry.name} is longer than its declared ${entry.size} bytes`);
        crc = crc32(chunk, crc);
        await this.send(chunk);
      }
    } finally {
      // Leaving the loop early (error, consumer gone) already closed a Readable source via its
      // iterator's return(); this covers the rest.
      this.source = undefined;
      if (isDestroyable(source) && written !== entry.size) source.destroy();
    }
    if (written !== entry.size) throw new ZipError(`ZIP entry ${entry.name} has ${written} bytes, ${entry.size} declared`);
    await this.send(dataDescriptor(crc, written, zip64));
    return { name, crc, size: written, offset, zip64, time: dt.time, date: dt.date };
  }

  private async writeCentralDirectory(central: CentralRecord[]): Promise<void> {
    const cdOffset = this.offset;
    let batch: Buffer[] = [];
    let batchBytes = 0;
    for (const r of central) {
      const h = centralHeader(r, this.threshold);
      batch.push(h);
      batchBytes += h.length;
      if (batchBytes >= 64 * 1024) {
        await this.send(Buffer.concat(batch, batchBytes));
        batch = [];
        batchBytes = 0;
      }
    }
    if (batchBytes > 0) await this.send(Buffer.concat(batch, batchBytes));
    const cdSize = this.offset - cdOffset;
    await this.send(endRecords(central.length, cdSize, cdOffset, this.threshold, this.countThreshold));
  }
}

/**
 * A ZIP archive of `entries` as a byte stream. Entries are pulled and opened one at a time, as the
 * consumer reads (backpressure end to end); destroying the stream closes the open entry source and
 * the entry iterator. A source that yields more or fewer bytes than declared fails the stream.
 */
export function zipStream(entries: AsyncIterable<ZipEntry>, options: ZipOptions = {}): Readable {
  return new ZipReadable(entries, options);
}
