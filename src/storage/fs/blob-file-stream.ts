import { close as fsClose, fstat, open as fsOpen, read as fsRead, type Stats } from 'node:fs';
import { Readable } from 'node:stream';
import type { ReadIntoSource } from '../../util/streams.js';

/** Largest single read: an ordinary instance (~0.5 MB) is one read, a large one streams in 1 MiB steps. */
const CHUNK = 1024 * 1024;

/**
 * The bytes [start, start + byteLength) of an open file, as a Readable (one fresh buffer of the
 * exact size per read, no read to discover EOF) and as a ReadIntoSource (reads into the caller's
 * buffers). The descriptor is closed on end, on destroy() and on error — after a read in flight.
 */
export class BlobFileStream extends Readable implements ReadIntoSource {
  readonly byteLength: number;
  private fd: number | undefined;
  private pos: number;
  private remaining: number;
  private busy = false;
  private afterRead: (() => void) | undefined;

  constructor(fd: number, start: number, byteLength: number) {
    super({ highWaterMark: CHUNK });
    this.fd = fd;
    this.pos = start;
    this.byteLength = byteLength;
    this.remaining = byteLength;
  }

  readInto(buf: Buffer, offset: number, length: number): Promise<number> {
    const n = Math.min(length, this.remaining);
    if (this.fd === undefined) return Promise.reject(new Error('blob stream closed'));
    if (n <= 0) return Promise.resolve(0);
    return new Promise((resolve, reject) => this.readRaw(buf, offset, n, (err, got) => (err ? reject(err) : resolve(got))));
  }

  override _read(): void {
    const n = Math.min(CHUNK, this.remaining);
    if (n <= 0 || this.fd === undefined) {
      this.push(null);
      return;
    }
    const buf = Buffer.allocUnsafeSlow(n);
    this.readRaw(buf, 0, n, (err, got) => {
      if (err) this.destroy(err);
      else if (got === 0) this.push(null); // the file is shorter than when it was opened
      else this.push(got === n ? buf : buf.subarray(0, got));
    });
  }

  private readRaw(buf: Buffer, offset: number, n: number, done: (err: Error | null, got: number) => void): void {
    if (this.busy) {
      done(new Error('one read at a time'), 0);
      return;
    }
    this.busy = true;
    fsRead(this.fd as number, buf, offset, n, this.pos, (err, got) => {
      this.busy = false;
      if (!err) {
        this.pos += got;
        this.remaining = got === 0 ? 0 : this.remaining - got;
      }
      const after = this.afterRead;
      this.afterRead = undefined;
      done(err, got);
      after?.();
    });
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    const fd = this.fd;
    this.fd = undefined;
    if (fd === undefined) {
      callback(err);
      return;
    }
    // Never close a descriptor a read is still using (the number could be reused meanwhile).
    const closeNow = (): void => fsClose(fd, (closeErr) => callback(err ?? closeErr));
    if (this.busy) this.afterRead = closeNow;
    else closeNow();
  }
}

/**
 * Opens bytes [start, end] (inclusive, end clamped to the file) of a file; undefined when the path
 * is not a regular file. Errors of open() (ENOENT …) are thrown as they are, for the caller to map.
 */
export async function openBlobFile(path: string, range: { start?: number | undefined; end?: number | undefined }): Promise<BlobFileStream | undefined> {
  const fd = await new Promise<number>((resolve, reject) => fsOpen(path, 'r', (e, d) => (e ? reject(e) : resolve(d))));
  let info: Stats;
  try {
    info = await new Promise<Stats>((resolve, reject) => fstat(fd, (e, s) => (e ? reject(e) : resolve(s))));
  } catch (e) {
    fsClose(fd, () => undefined);
    throw e;
  }
  if (!info.isFile()) {
    fsClose(fd, () => undefined);
    return undefined;
  }
  // Blobs are immutable: the size now bounds the read, so no read is spent on discovering EOF.
  const from = range.start ?? 0;
  const to = Math.min(range.end ?? Number.MAX_SAFE_INTEGER, info.size - 1);
  return new BlobFileStream(fd, from, Math.max(0, to - from + 1));
}
