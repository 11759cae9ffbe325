import type { FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';

/** Bytes handed to the thread pool and not yet written, before the writer applies backpressure. */
const MAX_IN_FLIGHT = 4 * 1024 * 1024;

/**
 * A Writable onto an open FileHandle that leaves closing (and fsync) to the caller. Each chunk is
 * written at its own offset as soon as it arrives, without waiting for the previous write: the
 * file fills while the rest of the upload is still being received (a serial writer issued one
 * small write, then everything else in one writev after the last byte arrived). At most
 * MAX_IN_FLIGHT bytes are outstanding; `final` and `destroy` wait for every write to settle, so
 * no write lands after the caller closes or removes the file.
 */
export function fileWriter(fh: FileHandle): Writable {
  let position = 0;
  let inFlight = 0;
  let failure: Error | undefined;
  const pending = new Set<Promise<void>>();
  /** Called whenever a write settles (a writer waiting for room, or for the end). */
  let onSettled: (() => void) | undefined;

  const settledAll = async (): Promise<void> => {
    while (pending.size > 0) await Promise.allSettled([...pending]);
  };

  return new Writable({
    highWaterMark: 1 << 20,
    write(chunk: Buffer, _encoding, callback) {
      if (failure) {
        callback(failure);
        return;
      }
      const at = position;
      position += chunk.length;
      inFlight += chunk.length;
      const done = writeFullyAt(fh, chunk, at).then(
        () => {
          inFlight -= chunk.length;
        },
        (err: unknown) => {
          inFlight -= chunk.length;
          failure ??= err instanceof Error ? err : new Error(String(err));
        },
      );
      const tracked: Promise<void> = done.finally(() => {
        pending.delete(tracked);
        onSettled?.();
      });
      pending.add(tracked);
      if (inFlight <= MAX_IN_FLIGHT) {
        callback();
        return;
      }
      onSettled = () => {
        if (inFlight > MAX_IN_FLIGHT && !failure) return;
        onSettled = undefined;
        callback(failure);
      };
    },
    final(callback) {
      settledAll().then(
        () => callback(failure),
        (err: unknown) => callback(err instanceof Error ? err : new Error(String(err))),
      );
    },
    destroy(err, callback) {
      onSettled = undefined;
      settledAll().then(
        () => callback(err),
        () => callback(err),
      );
    },
  });
}

/** pwrite of the whole buffer at `position` (a short write finishes piecewise). */
async function writeFullyAt(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesWritten } = await fh.write(buf, off, buf.length - off, position + off);
    if (bytesWritten === 0) throw new Error('write made no progress');
    off += bytesWritten;
  }
}
