import type { Readable, Writable } from 'node:stream';

/**
 * Resolves on 'drain' or on 'close' (a destroyed stream never drains): the wait after write() said
 * false. At once when the stream is already destroyed (its 'close' may have been emitted already)
 * or needs no drain.
 */
export function drainedOrClosed(stream: Writable): Promise<void> {
  if (stream.destroyed || !stream.writableNeedDrain) return Promise.resolve();
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
 * `body.pipe(out)` with the guarantees of stream.pipeline that a blob put needs, without its
 * per-call cost (an AbortController aborted at the end, whose DOMException captures a stack
 * trace, and end-of-stream watchers on both streams: ~40 µs per call measured, once per stored
 * instance). Resolves once `out` has finished (its final() completed); rejects on the first error
 * of either stream, on either closing early, or when `signal` aborts (an Error named AbortError,
 * the reason as its cause) — after unpiping and destroying both streams.
 */
export function pumpInto(body: Readable, out: Writable, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const cleanup = (): void => {
      body.off('error', fail);
      body.off('close', onBodyClose);
      out.off('error', fail);
      out.off('close', onOutClose);
      out.off('finish', onFinish);
      signal?.removeEventListener('abort', onAbort);
    };
    function fail(err: unknown): void {
      if (settled) return;
      settled = true;
      cleanup();
      const error = err instanceof Error ? err : new Error(String(err));
      body.unpipe(out);
      // Destroyed without the error: this promise reports it, and an 'error' event nobody listens
      // to any more would crash the process.
      body.destroy();
      out.destroy();
      reject(error);
    }
    function onFinish(): void {
      if (settled) return;
      settled = true;
      cleanup();
      resolve();
    }
    function onBodyClose(): void {
      if (!body.readableEnded) fail(new Error('the body closed before its end'));
    }
    function onOutClose(): void {
      if (!out.writableFinished) fail(new Error('the destination closed before it finished'));
    }
    function onAbort(): void {
      fail(Object.assign(new Error('The operation was aborted', { cause: signal?.reason }), { name: 'AbortError' }));
    }
    if (signal?.aborted) {
      onAbort();
      return;
    }
    // A stream destroyed before this call (its 'error' and 'close' already emitted) fails at once.
    if (body.destroyed || out.destroyed) {
      fail(body.errored ?? out.errored ?? new Error('a stream was destroyed before the copy began'));
      return;
    }
    body.on('error', fail);
    body.on('close', onBodyClose);
    out.on('error', fail);
    out.on('close', onOutClose);
    out.on('finish', onFinish);
    signal?.addEventListener('abort', onAbort, { once: true });
    body.pipe(out);
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
