import type { BlobStore } from '../../storage/blobs.js';
import type { MetadataStore } from '../../storage/metadata.js';
import type { Logger } from '../context.js';

export interface GcResult {
  scanned: number;
  deleted: number;
  temporariesRemoved: number;
}

const BATCH = 500;

/**
 * Deletes blobs no index row references, but only those older than the grace period, so an ingest
 * between its blob write and its index commit is never harmed (SPEC §6).
 */
export async function collectGarbage(deps: { metadata: MetadataStore; blobs: BlobStore; logger: Logger }, graceSecs: number, now = new Date()): Promise<GcResult> {
  const olderThan = new Date(now.getTime() - graceSecs * 1000);
  let scanned = 0;
  let deleted = 0;
  let batch: string[] = [];
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    const referenced = await deps.metadata.referencedBlobKeys(batch);
    for (const key of batch) {
      if (referenced.has(key)) continue;
      await deps.blobs.delete(key);
      deleted++;
      deps.logger.info({ blobKey: key }, 'gc: deleted unreferenced blob');
    }
    batch = [];
  };
  for await (const stat of deps.blobs.list({ olderThan })) {
    scanned++;
    batch.push(stat.key);
    if (batch.length >= BATCH) await flush();
  }
  await flush();
  const temporariesRemoved = await deps.blobs.cleanupTemporary(olderThan);
  return { scanned, deleted, temporariesRemoved };
}
