import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { StorageError } from '../errors.js';
import type {
  BlobGetOptions,
  BlobListOptions,
  BlobPutOptions,
  BlobPutResult,
  BlobStat,
  BlobStore,
} from '../blobs.js';
import { assertValidBlobKey } from '../blob-key.js';

interface StoredObject {
  data: Buffer;
  modifiedAt: Date;
}

interface Temporary {
  chunks: Buffer[];
  touchedAt: Date;
  /** Set by cleanupTemporary: the upload was abandoned and must fail. */
  removed: boolean;
}

/** In-memory BlobStore for unit tests. Same semantics as the fs adapter (atomic put, ranges). */
export function createMemoryBlobStore(): BlobStore {
  const objects = new Map<string, StoredObject>();
  const temporaries = new Map<string, Temporary>();

  async function put(key: string, body: Readable, options: BlobPutOptions = {}): Promise<BlobPutResult> {
    assertValidBlobKey(key);
    const { signal } = options;
    signal?.throwIfAborted();
    const tmpId = randomUUID();
    const tmp: Temporary = { chunks: [], touchedAt: new Date(), removed: false };
    temporaries.set(tmpId, tmp);
    const onAbort = (): void => {
      body.destroy(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      let size = 0;
      for await (const chunk of body) {
        const buf = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk as Uint8Array);
        size += buf.length;
        tmp.chunks.push(buf);
        tmp.touchedAt = new Date();
      }
      signal?.throwIfAborted();
      if (tmp.removed) throw new StorageError('STORAGE_UNAVAILABLE', 'temporary upload was removed');
      objects.set(key, { data: Buffer.concat(tmp.chunks, size), modifiedAt: new Date() });
      return { key, size };
    } finally {
      signal?.removeEventListener('abort', onAbort);
      temporaries.delete(tmpId);
    }
  }

  async function get(key: string, options: BlobGetOptions = {}): Promise<Readable> {
    assertValidBlobKey(key);
    const obj = objects.get(key);
    if (!obj) throw new StorageError('NOT_FOUND', 'blob not found', { key });
    const start = options.start ?? 0;
    const end = options.end ?? obj.data.length - 1;
    if (start < 0 || end < start - 1) throw new StorageError('INVALID_PARAMETER', 'invalid byte range');
    return Readable.from([obj.data.subarray(start, end + 1)].filter((b) => b.length > 0));
  }

  async function stat(key: string): Promise<BlobStat | undefined> {
    assertValidBlobKey(key);
    const obj = objects.get(key);
    return obj ? { key, size: obj.data.length, modifiedAt: obj.modifiedAt } : undefined;
  }

  async function* list(options: BlobListOptions = {}): AsyncIterable<BlobStat> {
    const keys = [...objects.keys()].sort();
    for (const key of keys) {
      const obj = objects.get(key);
      if (!obj) continue;
      if (options.prefix !== undefined && !key.startsWith(options.prefix)) continue;
      if (options.olderThan && !(obj.modifiedAt < options.olderThan)) continue;
      yield { key, size: obj.data.length, modifiedAt: obj.modifiedAt };
    }
  }

  return {
    kind: 'memory',
    put,
    get,
    delete: async (key) => {
      assertValidBlobKey(key);
      objects.delete(key);
    },
    stat,
    list,
    cleanupTemporary: async (olderThan) => {
      let removed = 0;
      for (const [id, tmp] of temporaries) {
        if (tmp.touchedAt < olderThan) {
          tmp.removed = true;
          tmp.chunks = [];
          temporaries.delete(id);
          removed++;
        }
      }
      return removed;
    },
    check: async () => {},
    close: async () => {},
  };
}
