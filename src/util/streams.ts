import type { Readable, Writable } from 'node:stream';

/** Resolves on 'drain' or on 'close' (a destroyed stream never drains): the wait after write() said false. */
export function drainedOrClosed(stream: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.once('drain', done);
    stream.once('close', done);
  });
}

/**
 * An optional capability of a Readable that a store hands out: fill a caller-owned buffer
 * ("bring your own buffer"). A response writer that owns a few buffers and reuses them after each
 * socket write callback avoids one fresh allocation per read (external memory drives GC).
 * Whoever uses readInto() must not also consume the stream as a Readable, and destroys it when done.
 */
export interface ReadIntoSource {
  /** Bytes the stream delivers in total (known when it was opened). */
  readonly byteLength: number;
  /** Reads up to `length` bytes into `buf` at `offset`; resolves 0 at the end. One call at a time. */
  readInto(buf: Buffer, offset: number, length: number): Promise<number>;
}

export function readIntoSource(stream: unknown): (ReadIntoSource & Readable) | undefined {
  const s = stream as Partial<ReadIntoSource> | null;
  return s !== null && typeof s === 'object' && typeof s.readInto === 'function' && typeof s.byteLength === 'number' ? (stream as ReadIntoSource & Readable) : undefined;
}
