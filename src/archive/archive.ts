import type { Readable } from 'node:stream';
import type { Query, QueryLevel } from '../dicom/query-model.js';
import type { DicomJsonDataset } from '../dicom/types.js';
import { isAddressableUid } from '../dicom/uid.js';
import type { BlobStore } from '../storage/blobs.js';
import type { ChangeRow, InstanceRow, InstanceScope, MetadataStore, RemoveResult } from '../storage/metadata.js';
import { ALLOW_ALL, authorize, type AccessPolicy } from './access/policy.js';
import { createBrowse, type Browse } from './browse.js';
import type { ArchiveSettings, CallContext, Logger } from './context.js';
import { ArchiveError, toArchiveError } from './errors.js';
import { createEventBus, type EventBus } from './events.js';
import { errorMessage, ingestInstance, LARGE_HEADER_PERMITS, type IngestInput } from './ingest/ingest.js';
import { createSemaphore, type Semaphore } from '../util/semaphore.js';
import type { IngestOutcome } from './ingest/outcome.js';
import { buildQuery, type QueryParams } from './query/build-query.js';
import { buildResultDatasets, type ResultOptions } from './query/results.js';
import { createCountMemo } from './query/count-memo.js';
import { collectGarbage, type GcResult } from './remove/gc.js';
import { locate, locateFrames, openBulkdata, type BulkValue, type FramePart, type LocatedInstance } from './retrieve/retrieve.js';

export interface ArchiveDeps {
  metadata: MetadataStore;
  blobs: BlobStore;
  settings: ArchiveSettings;
  logger: Logger;
  policy?: AccessPolicy;
  now?: () => Date;
  /** Permits for ingests with a large header (default: LARGE_HEADER_PERMITS of its own). */
  largeHeaders?: Semaphore;
}

export interface QueryInput extends ResultOptions {
  level: QueryLevel;
  studyUid?: string;
  seriesUid?: string;
  params: QueryParams;
}

export interface QueryOutput {
  query: Query;
  datasets: DicomJsonDataset[];
  /** Matches beyond this page (0 when none). */
  remaining: number;
}

export type RemoveTarget =
  | { level: 'study'; studyUid: string }
  | { level: 'series'; seriesUid: string; studyUid?: string }
  | { level: 'instance'; sopUid: string; studyUid?: string; seriesUid?: string };

export interface HealthReport {
  ok: boolean;
  database: 'ok' | 'error';
  storage: 'ok' | 'error';
}

/**
 * The archive core: the only entry point for the HTTP and DIMSE edges. Browsing (REST lists,
 * details, statistics) comes from browse.ts.
 */
export interface Archive extends Browse {
  readonly settings: ArchiveSettings;
  readonly events: EventBus;
  ingest(ctx: CallContext, input: IngestInput): Promise<IngestOutcome>;
  query(ctx: CallContext, input: QueryInput): Promise<QueryOutput>;
  /** Instances in scope (NOT_FOUND when none), optionally with their headers. */
  locate(ctx: CallContext, scope: InstanceScope, options?: { withHeader?: boolean }): Promise<AsyncIterable<LocatedInstance>>;
  /** One instance with its header (NOT_FOUND when absent). */
  instance(ctx: CallContext, scope: Required<Pick<InstanceScope, 'sopUid'>> & InstanceScope): Promise<{ row: InstanceRow; header: DicomJsonDataset }>;
  /** The stored Part-10 bytes of an instance. */
  openInstance(ctx: CallContext, row: InstanceRow): Promise<Readable>;
  bulkdata(ctx: CallContext, scope: Required<InstanceScope>, path: string[]): Promise<BulkValue>;
  frames(ctx: CallContext, scope: Required<InstanceScope>, frameNumbers: number[]): Promise<FramePart[]>;
  remove(ctx: CallContext, target: RemoveTarget): Promise<RemoveResult>;
  gc(ctx: CallContext, options?: { now?: Date }): Promise<GcResult>;
  changes(ctx: CallContext, options: { since?: number; limit?: number }): Promise<ChangeRow[]>;
  health(): Promise<HealthReport>;
}

function checkUids(scope: Partial<Record<string, string | undefined>>): void {
  for (const [name, uid] of Object.entries(scope)) {
    if (uid !== undefined && !isAddressableUid(uid)) throw new ArchiveError('INVALID_UID', `${name} is not a valid UID`, { key: name });
  }
}

export function createArchive(deps: ArchiveDeps): Archive {
  const { metadata, blobs, settings, logger } = deps;
  const policy = deps.policy ?? ALLOW_ALL;
  const events = createEventBus((err) => logger.error({ err: errorMessage(err) }, 'event listener failed'));
  const ingestDeps = { metadata, blobs, settings, logger, events, largeHeaders: deps.largeHeaders ?? createSemaphore(LARGE_HEADER_PERMITS), ...(deps.now ? { now: deps.now } : {}) };

  const instance: Archive['instance'] = async (ctx, scope) => {
    checkUids({ ...scope });
    authorize(policy, ctx, 'read', scope);
    const row = await metadata.getInstance(scope.sopUid, scope);
    const header = row ? await metadata.getInstanceHeader(row.sopUid) : undefined;
    if (!row || !header) throw new ArchiveError('NOT_FOUND', 'instance not found', { ...scope });
    return { row, header };
  };

  const counts = createCountMemo(metadata);
  const browse = createBrowse({ metadata, policy, now: deps.now ?? (() => new Date()) });

  const archive: Archive = {
    settings,
    events,
    ...browse,
    async ingest(ctx, input) {
      authorize(policy, ctx, 'store', input.expectedStudyUid !== undefined ? { studyUid: input.expectedStudyUid } : undefined);
      return ingestInstance(ingestDeps, ctx, input);
    },
    async query(ctx, input) {
      authorize(policy, ctx, 'read', input.studyUid !== undefined ? { studyUid: input.studyUid } : undefined);
      const query = buildQuery(input, settings);
      // One row more than asked tells whether more exist; only then is the exact count worth its cost.
      const rows = await metadata.query({ ...query, limit: query.limit + 1 });
      const more = rows.rows.length > query.limit;
      if (more) rows.rows.length = query.limit;
      const datasets = buildResultDatasets(query, rows, input);
      const remaining = more ? Math.max(1, (await counts.count(query)) - query.offset - datasets.length) : 0;
      return { query, datasets, remaining };
    },
    async locate(ctx, scope, options) {
      checkUids({ ...scope });
      authorize(policy, ctx, 'read', scope);
      return locate({ metadata, blobs }, scope, options?.withHeader ?? false);
    },
    instance,
    async openInstance(ctx, row) {
      authorize(policy, ctx, 'read', { studyUid: row.studyUid });
      return blobs.get(row.blobKey);
    },
    async bulkdata(ctx, scope, path) {
      const { row, header } = await instance(ctx, scope);
      return openBulkdata({ metadata, blobs }, row, header, path);
    },
    async frames(ctx, scope, frameNumbers) {
      const { row, header } = await instance(ctx, scope);
      return locateFrames({ metadata, blobs }, row, header, frameNumbers);
    },
    async remove(ctx, target) {
      checkUids({ ...target, level: undefined });
      authorize(policy, ctx, 'delete', target.studyUid !== undefined ? { studyUid: target.studyUid } : undefined);
      let result: RemoveResult | undefined;
      if (target.level === 'study') result = await metadata.removeStudy(target.studyUid);
      else if (target.level === 'series') result = await metadata.removeSeries(target.seriesUid, target.studyUid);
      else {
        const scope = { ...(target.studyUid ? { studyUid: target.studyUid } : {}), ...(target.seriesUid ? { seriesUid: target.seriesUid } : {}) };
        result = await metadata.removeInstance(target.sopUid, scope);
      }
      if (!result) {
        // As the GETs: details name the UID(s) asked for (docs/errors.md).
        const { level, ...uids } = target;
        const details = Object.fromEntries(Object.entries(uids).filter(([, v]) => v !== undefined));
        throw new ArchiveError('NOT_FOUND', `${level} not found`, details);
      }
      // Blobs go after the commit: a crash here leaves unreferenced blobs for gc, never a row without its blob.
      for (const key of result.blobKeys) {
        await blobs.delete(key).catch((err: unknown) => logger.warn({ blobKey: key, err: errorMessage(err) }, 'blob delete failed (gc will retry)'));
      }
      // `level` is the logger's own field (the severity): the removed level goes as `removed`.
      const { level: removed, ...uids } = target;
      logger.info({ removed, ...uids, origin: ctx.origin.protocol, instances: result.instances }, 'removed');
      if (target.level === 'study') events.emit({ type: 'StudyDeleted', studyUid: target.studyUid });
      return result;
    },
    async gc(ctx, options) {
      authorize(policy, ctx, 'admin');
      return collectGarbage({ metadata, blobs, logger }, settings.gcGraceSecs, options?.now ?? new Date());
    },
    async changes(ctx, options) {
      authorize(policy, ctx, 'read');
      return metadata.changes(options);
    },
    async health() {
      const [db, st] = await Promise.allSettled([metadata.ping(), blobs.check()]);
      const database = db.status === 'fulfilled' ? 'ok' : 'error';
      const storage = st.status === 'fulfilled' ? 'ok' : 'error';
      return { ok: database === 'ok' && storage === 'ok', database, storage };
    },
  };
  return guardArchive(archive);
}

/** Every call converts lower-layer errors (storage, DICOM parsing) into ArchiveErrors. */
function guardArchive(archive: Archive): Archive {
  const guarded = { ...archive } as Record<string, unknown>;
  for (const [name, value] of Object.entries(archive)) {
    if (typeof value !== 'function') continue;
    const fn = value as (...args: unknown[]) => Promise<unknown>;
    guarded[name] = async (...args: unknown[]): Promise<unknown> => {
      try {
        return await fn(...args);
      } catch (err) {
        throw toArchiveError(err);
      }
    };
  }
  return guarded as unknown as Archive;
}
