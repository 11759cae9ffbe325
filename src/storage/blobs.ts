import type { Readable } from 'node:stream';

/**
 * BlobStore port: the original Part-10 bytes under opaque, never-reused keys.
 * Every adapter (fs, memory, s3) passes test/contract/blob-store.contract.ts.
 */
export interface BlobPutOptions {
  /** Aborting fails the put and leaves no object under `key` (temporary data is removed). */
  signal?: AbortSignal;
  /** Expected size in bytes when known (lets S3 choose a single PUT). */
  sizeHint?: number;
}

export interface BlobPutResult {
  key: string;
  size: number;
}

export interface BlobGetOptions {
  /** Inclusive start byte. */
  start?: number;
  /** Inclusive end byte (like HTTP Range / fs.createReadStream). */
  end?: number;
}

export interface BlobStat {
  key: string;
  size: number;
  /** Last modification time (creation time: blobs are never modified). */
  modifiedAt: Date;
}

export interface BlobListOptions {
  prefix?: string;
  /** Only blobs last modified before this instant. */
  olderThan?: Date;
}

export interface BlobStore {
  readonly kind: string;
  /**
   * Stream `body` into a new object. Atomic: the object is visible under `key` only after the
   * whole body was written durably (fs: temp file, fsync, rename, fsync dir; s3: upload completed).
   * While streaming, bytes already land in temporary storage (never buffered whole in memory).
   * If `body` errors or `signal` aborts, rejects and leaves nothing under `key`.
   */
  put(key: string, body: Readable, options?: BlobPutOptions): Promise<BlobPutResult>;
  /** Streams the object, or a byte range of it. Rejects with StorageError NOT_FOUND when absent. */
  get(key: string, options?: BlobGetOptions): Promise<Readable>;
  /** Deleting an absent key is not an error. */
  delete(key: string): Promise<void>;
  /** undefined when absent. */
  stat(key: string): Promise<BlobStat | undefined>;
  /** Every committed object (not temporaries) matching the options. */
  list(options?: BlobListOptions): AsyncIterable<BlobStat>;
  /**
   * Removes temporary data (abandoned uploads) older than `olderThan`. Returns how many were removed.
   */
  cleanupTemporary(olderThan: Date): Promise<number>;
  /** Throws when the store cannot be used (used by /health). */
  check(): Promise<void>;
  close(): Promise<void>;
}

/** A new opaque key: `YYYY/MM/<uuid>.dcm`. Keys are never reused. */
export function newBlobKey(now: Date, uuid: string): string {
  const y = now.getUTCFullYear().toString().padStart(4, '0');
  const m = (now.getUTCMonth() + 1).toString().padStart(2, '0');
  return `${y}/${m}/${uuid}.dcm`;
}
