import type { Query } from '../../dicom/query-model.js';
import type { MetadataStore } from '../../storage/metadata.js';

/**
 * Exact match counts (the N of QIDO's Warning 299) memoised until the index changes. Counting a
 * broad search (no filter, ModalitiesInStudy, a short name prefix) over a large archive costs far
 * more than fetching its first page, and viewers repeat the same search (refresh, paging) far more
 * often than the archive changes. An entry is used only while the highest `changes` seq — which
 * every commit that stores, replaces or deletes advances — is the one it was counted at, and for
 * at most MAX_AGE_MS (PostgreSQL may commit a lower seq after a higher one; the age bound limits
 * how long such a count can lag). Process memory only: a cache, never shared state.
 */
const MAX_ENTRIES = 256;
const MAX_AGE_MS = 10_000;

interface Entry {
  seq: number;
  count: number;
  at: number;
}

export interface CountMemo {
  count(query: Query): Promise<number>;
}

export function createCountMemo(metadata: Pick<MetadataStore, 'count' | 'lastChangeSeq'>, now: () => number = Date.now): CountMemo {
  const entries = new Map<string, Entry>();
  return {
    async count(query) {
      // limit and offset do not change the count.
      const key = JSON.stringify({ ...query, limit: 0, offset: 0 });
      const seq = await metadata.lastChangeSeq();
      const hit = entries.get(key);
      if (hit && hit.seq === seq && now() - hit.at < MAX_AGE_MS) {
        entries.delete(key);
        entries.set(key, hit);
        return hit.count;
      }
      const at = now();
      const count = await metadata.count(query);
      entries.delete(key);
      entries.set(key, { seq, count, at });
      if (entries.size > MAX_ENTRIES) {
        const oldest = entries.keys().next().value;
        if (oldest !== undefined) entries.delete(oldest);
      }
      return count;
    },
  };
}
