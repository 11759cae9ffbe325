import type { FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';

/** Bytes accepted and not yet written, before the writer applies backpressure. */
const MAX_OUTSTANDING = 4 * 1024 * 1024;
/** Writes in the thread pool at once for one file. */
const MAX_WRITES = 2;

/**
 * A Writable onto an open FileHandle that leaves closing (and fsync) to the caller. Chunks are
 * accepted at once and written at their offsets by up to MAX_WRITES positional writes in flight,
 * each a writev of every chunk that arrived meanwhile or in the same tick: the file fills while the
 * rest of the upload is still being received (a serial writer issued one small write, then
 * everything else after the last byte), in a few system calls per instance rather than one per
 * chunk. At most
 * MAX_OUTSTANDING bytes wait or are being written; `final` and `destroy` wait for every write to
 * settle, so no write lands after the caller closes or removes the file.
 */
/** The writer, with the number of bytes it has been given (all of them written once it finished). */
export type FileWriter = Writable & {
  readonly bytesAccepted: number;
  /**
   * Settles once the early write-back started so far has finished (never rejects: a failed early
   * sync only means the caller's own final fsync has more to do, and reports any error itself).
   */
  writeBack(): Promise<void>;
};

export interface FileWriterOptions {
  /**
   * Early write-back: once this many bytes have been written since the last one began, an
   * fdatasync is started in the background (one at a time) so that the disk writes the start of
   * the file while the rest is still being received; the caller's final fsync then has only the
   * tail left. 0 or absent: off (no fsync wanted at all).
   */
  readonly writeBackBytes?: number;
}

export function fileWriter(fh: FileHandle, options: FileWriterOptions = {}): FileWriter {
  const writeBackBytes = options.writeBackBytes ?? 0;
  let position = 0;
  let accepted = 0;
  /** Bytes written (completed writes) since the last early write-back began. */
  let unsynced = 0;
  let writingBack: Promise<void> | undefined;
  /** The last byte has arrived: the caller's final fsync follows, a write-back now would be redundant. */
  let finishing = false;
  let queued: Buffer[] = [];
  let outstanding = 0;
  let running = 0;
  let failure: Error | undefined;
  const writes = new Set<Promise<void>>();
  /** Called whenever a write settles (a writer waiting for room, or for the end). */
  let onSettled: (() => void) | undefined;

  /** A pump is due at the end of this tick (see write()). */
  let pumpDue = false;
  const pump = (): void => {
    pumpDue = false;
    while (running < MAX_WRITES && queued.length > 0 && !failure) {
      const bufs = queued;
      queued = [];
      const bytes = bufs.reduce((n, b) => n + b.length, 0);
      const at = position;
      position += bytes;
      running++;
      const done: Promise<void> = writevFullyAt(fh, bufs, at)
        .then(() => {
          unsynced += bytes;
          startWriteBack();
        })
        .catch((err: unknown) => {
          failure ??= err instanceof Error ? err : new Error(String(err));
        })
        .finally(() => {
          running--;
          outstanding -= bytes;
          writes.delete(done);
          pump();
          onSettled?.();
        });
      writes.add(done);
    }
  };

  const startWriteBack = (): void => {
    if (writeBackBytes <= 0 || writingBack || finishing || unsynced < writeBackBytes || failure) return;
    unsynced = 0;
    writingBack = fh
      .datasync()
      .catch(() => undefined)
      .finally(() => {
        writingBack = undefined;
      });
  };

  const settledAll = async (): Promise<void> => {
    while (writes.size > 0) await Promise.allSettled([...writes]);
  };

  const writer = new Writable({
    highWaterMark: 1 << 20,
    write(chunk: Buffer, _encoding, callback) {
      if (failure) {
        callback(failure);
        return;
      }
      if (chunk.length === 0) {
        callback();
        return;
      }
      queued.push(chunk);
      accepted += chunk.length;
      outstanding += chunk.length;
      // Chunks handed over in one tick (a body that arrived while the file was being opened,
      // flushed by pipe() in one go) go out in one writev: each write is a thread-pool round trip.
      if (!pumpDue) {
        pumpDue = true;
        queueMicrotask(pump);
      }
      if (outstanding <= MAX_OUTSTANDING) {
        callback();
        return;
      }
      onSettled = () => {
        if (outstanding > MAX_OUTSTANDING && !failure) return;
        onSettled = undefined;
        callback(failure);
      };
    },
    final(callback) {
      finishing = true;
      pump();
      settledAll().then(
        () => callback(failure),
        (err: unknown) => callback(err instanceof Error ? err : new Error(String(err))),
      );
    },
    destroy(err, callback) {
      finishing = true;
      onSettled = undefined;
      queued = [];
      settledAll().then(
        () => callback(err),
        () => callback(err),
      );
    },
  });
  Object.defineProperty(writer, 'bytesAccepted', { get: () => accepted, enumerable: true });
  const writeBack = async (): Promise<void> => {
    await settledAll();
    await writingBack;
  };
  return Object.assign(writer, { writeBack }) as FileWriter;
}

/** Positional writev of the buffers at `position` (a short write finishes the rest). */
async function writevFullyAt(fh: FileHandle, bufs: Buffer[], position: number): Promise<void> {
  let rest = bufs;
  let at = position;
  while (rest.length > 0) {
    const { bytesWritten } = await fh.writev(rest, at);
    if (bytesWritten === 0) throw new Error('write made no progress');
    at += bytesWritten;
    let skip = bytesWritten;
    const next: Buffer[] = [];
    for (const b of rest) {
      if (skip >= b.length) {
        skip -= b.length;
        continue;
      }
      next.push(skip > 0 ? b.subarray(skip) : b);
      skip = 0;
    }
    rest = next;
  }
}
