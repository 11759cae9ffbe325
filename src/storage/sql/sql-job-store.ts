import { randomUUID } from 'node:crypto';
import { sql, type Kysely, type RawBuilder, type Selectable, type Updateable } from 'kysely';
import { StorageError } from '../errors.js';
import {
  isFinishedJobState,
  JOB_STATES,
  STALE_JOB_ERROR_PREFIX,
  type CancelResult,
  type JobCounters,
  type JobListOptions,
  type JobPage,
  type JobRecord,
  type JobState,
  type JobStore,
  type JsonObject,
  type ProgressUpdate,
} from '../jobs.js';
import type { IndexDatabase, JobsTable } from './schema.js';
import { readInSnapshot } from './read-snapshot.js';
import { fromDbBool, fromDbInt, toDbBool, type SqlWriteDriver } from './write-driver.js';

type JobRow = Selectable<JobsTable>;
type Db = Kysely<IndexDatabase>;

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const COUNTERS = ['remaining', 'completed', 'failed', 'warning'] as const;
const ACTIVE_STATES: JobState[] = ['pending', 'running'];

/** Ids are lower-case UUIDs (PostgreSQL's uuid type prints them so); anything else is unknown. */
function normaliseId(id: string): string | undefined {
  const lower = id.toLowerCase();
  return UUID_RE.test(lower) ? lower : undefined;
}

function parseJson(v: unknown): unknown {
  return typeof v === 'string' ? (JSON.parse(v) as unknown) : v;
}

function isPlainObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkCount(name: string, v: number): number {
  if (!Number.isSafeInteger(v)) throw new StorageError('INVALID_PARAMETER', `job counter ${name} must be an integer`, { field: name });
  return v;
}

/** The counters and failed UIDs after applying `update` to `row`. */
function applyProgress(row: JobRow, update: ProgressUpdate | undefined): JobCounters & { failedUids: string[] } {
  const next: JobCounters = {
    remaining: fromDbInt(row.remaining),
    completed: fromDbInt(row.completed),
    failed: fromDbInt(row.failed),
    warning: fromDbInt(row.warning),
  };
  for (const k of COUNTERS) {
    const s = update?.set?.[k];
    const a = update?.add?.[k];
    if (s !== undefined && a !== undefined) throw new StorageError('INVALID_PARAMETER', `job counter ${k} both set and added`, { field: k });
    if (s !== undefined) next[k] = Math.max(0, checkCount(k, s));
    if (a !== undefined) next[k] = Math.max(0, next[k] + checkCount(k, a));
  }
  const failedUids = (parseJson(row.failed_uids) as string[] | null) ?? [];
  for (const uid of update?.failedUids ?? []) failedUids.push(String(uid));
  return { ...next, failedUids };
}

/**
 * JobStore over kysely, shared by the SQLite and PostgreSQL adapters. Every state change is a
 * read-modify-write of one row inside the adapter's write transaction (SQLite: BEGIN IMMEDIATE;
 * PostgreSQL: SELECT … FOR UPDATE), so concurrent progress reports and cancellations from several
 * instances never lose an update and a finished job never changes again. The heartbeat and the
 * sweep are single conditional UPDATEs instead (ADR 0015): the state and staleness tests sit in
 * their WHERE, which the engine re-checks on the row it writes (SQLite: one writer at a time;
 * PostgreSQL READ COMMITTED: a row changed meanwhile is re-evaluated after its lock is released).
 */
export function createSqlJobStore(driver: SqlWriteDriver): JobStore {
  const { db, dialect } = driver;

  const toRecord = (r: JobRow): JobRecord => ({
    id: r.id,
    kind: r.kind,
    state: (JOB_STATES as readonly string[]).includes(r.state) ? (r.state as JobState) : 'failed',
    request: (parseJson(r.request) as JsonObject | null) ?? {},
    remaining: fromDbInt(r.remaining),
    completed: fromDbInt(r.completed),
    failed: fromDbInt(r.failed),
    warning: fromDbInt(r.warning),
    failedUids: (parseJson(r.failed_uids) as string[] | null) ?? [],
    error: r.error,
    cancelRequested: fromDbBool(r.cancel_requested),
    createdBy: r.created_by,
    createdAt: dialect.fromDbTime(r.created_at),
    startedAt: r.started_at === null || r.started_at === undefined ? null : dialect.fromDbTime(r.started_at),
    finishedAt: r.finished_at === null || r.finished_at === undefined ? null : dialect.fromDbTime(r.finished_at),
    updatedAt: dialect.fromDbTime(r.updated_at),
    heartbeatAt: r.heartbeat_at === null || r.heartbeat_at === undefined ? null : dialect.fromDbTime(r.heartbeat_at),
  });

  /** The job's last sign of life: its heartbeat, or updated_at on a row older than migration 0003. */
  const lastSeen = sql`COALESCE(heartbeat_at, updated_at)`;
  /** `lastSeen` as ISO-8601 UTC text with milliseconds (SQLite stores it so already). */
  const lastSeenText: RawBuilder<string> =
    dialect.name === 'postgres'
      ? sql<string>`to_char(${lastSeen} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`
      : sql<string>`${lastSeen}`;

  async function lockRow(trx: Db, id: string): Promise<JobRow | undefined> {
    const q = trx.selectFrom('jobs').selectAll().where('id', '=', id);
    return (dialect.rowLocks ? q.forUpdate() : q).executeTakeFirst();
  }

  /** Runs `fn` on the locked row of a known job inside a write transaction. */
  function withJob<T>(id: string, fn: (trx: Db, row: JobRow) => Promise<T>): Promise<T | undefined> {
    const key = normaliseId(id);
    if (key === undefined) return Promise.resolve(undefined);
    return driver.writeTransaction(async (trx) => {
      const row = await lockRow(trx, key);
      return row ? fn(trx, row) : undefined;
    });
  }

  const progressColumns = (p: ReturnType<typeof applyProgress>) => ({
    remaining: p.remaining,
    completed: p.completed,
    failed: p.failed,
    warning: p.warning,
    failed_uids: JSON.stringify(p.failedUids),
  });

  async function updateRow(trx: Db, id: string, set: Updateable<JobsTable>): Promise<JobRecord> {
    const row = await trx.updateTable('jobs').set(set).where('id', '=', id).returningAll().executeTakeFirstOrThrow();
    return toRecord(row);
  }

  return {
    async create(input) {
      const id = input.id === undefined ? randomUUID() : normaliseId(input.id);
      if (id === undefined) throw new StorageError('INVALID_PARAMETER', 'job id must be a UUID', { field: 'id' });
      if (!isPlainObject(input.request)) throw new StorageError('INVALID_PARAMETER', 'job request must be a JSON object', { field: 'request' });
      const at = dialect.toDbTime(input.at ?? new Date());
      const row = await driver.writeTransaction((trx) =>
        trx
          .insertInto('jobs')
          .values({
            id,
            kind: input.kind,
            state: 'pending',
            request: JSON.stringify(input.request),
            remaining: 0,
            completed: 0,
            failed: 0,
            warning: 0,
            failed_uids: '[]',
            error: null,
            cancel_requested: toDbBool(false),
            created_by: input.createdBy ?? null,
            created_at: at,
            started_at: null,
            finished_at: null,
            updated_at: at,
            heartbeat_at: at,
          })
          .returningAll()
          .executeTakeFirstOrThrow(),
      );
      return toRecord(row);
    },

    async get(id) {
      const key = normaliseId(id);
      if (key === undefined) return undefined;
      const row = await db.selectFrom('jobs').selectAll().where('id', '=', key).executeTakeFirst();
      return row ? toRecord(row) : undefined;
    },

    async list(options: JobListOptions): Promise<JobPage> {
      const states = options.states;
      if (states !== undefined && states.length === 0) return { items: [], total: 0 };
      // The page and its total from one snapshot (two pool statements could see different commits).
      return readInSnapshot(db, dialect, async (trx) => {
        let base = trx.selectFrom('jobs');
        if (states !== undefined) base = base.where('state', 'in', [...states]);
        if (options.kind !== undefined) base = base.where('kind', '=', options.kind);
        const rows = await base.selectAll().orderBy('seq', 'desc').limit(options.limit).offset(options.offset).execute();
        const count = await base.select((eb) => eb.fn.countAll<number | string>().as('n')).executeTakeFirst();
        return { items: rows.map(toRecord), total: Number(count?.n ?? 0) };
      });
    },

    markRunning(id, options) {
      const at = dialect.toDbTime(options?.at ?? new Date());
      return withJob(id, async (trx, row) => {
        if (row.state !== 'pending') return undefined;
        return updateRow(trx, row.id, { state: 'running', started_at: at, updated_at: at, heartbeat_at: at });
      });
    },

    updateProgress(id, update, options) {
      const at = dialect.toDbTime(options?.at ?? new Date());
      return withJob(id, async (trx, row) => {
        if (isFinishedJobState(toRecord(row).state)) return toRecord(row);
        // A progress report is a sign of life too.
        return updateRow(trx, row.id, { ...progressColumns(applyProgress(row, update)), updated_at: at, heartbeat_at: at });
      });
    },

    finish(id, outcome, options) {
      const at = dialect.toDbTime(options?.at ?? new Date());
      return withJob(id, async (trx, row) => {
        if (isFinishedJobState(toRecord(row).state)) return toRecord(row);
        return updateRow(trx, row.id, {
          ...progressColumns(applyProgress(row, outcome.progress)),
          state: outcome.state,
          error: outcome.error ?? null,
          finished_at: at,
          updated_at: at,
        });
      });
    },

    async requestCancel(id, options): Promise<CancelResult> {
      const at = dialect.toDbTime(options?.at ?? new Date());
      const result = await withJob(id, async (trx, row): Promise<CancelResult> => {
        const job = toRecord(row);
        if (isFinishedJobState(job.state)) return { outcome: 'finished', job };
        if (job.state === 'pending') {
          return { outcome: 'cancelled', job: await updateRow(trx, row.id, { state: 'cancelled', cancel_requested: toDbBool(true), finished_at: at, updated_at: at }) };
        }
        return { outcome: 'requested', job: await updateRow(trx, row.id, { cancel_requested: toDbBool(true), updated_at: at }) };
      });
      return result ?? { outcome: 'not-found' };
    },

    async heartbeat(id, options) {
      const key = normaliseId(id);
      if (key === undefined) return undefined;
      const at = dialect.toDbTime(options?.at ?? new Date());
      const row = await driver.writeTransaction((trx) =>
        trx.updateTable('jobs').set({ heartbeat_at: at }).where('id', '=', key).where('state', 'in', ACTIVE_STATES).returningAll().executeTakeFirst(),
      );
      if (row) return toRecord(row);
      // Finished (possibly swept) or unknown: the runner learns it from the answer.
      const current = await db.selectFrom('jobs').selectAll().where('id', '=', key).executeTakeFirst();
      return current ? toRecord(current) : undefined;
    },

    async sweepStale(options) {
      const at = dialect.toDbTime(options.at ?? new Date());
      const olderThan = dialect.toDbTime(options.olderThan);
      const exclude = (options.exclude ?? []).map(normaliseId).filter((k): k is string => k !== undefined);
      // One statement: the staleness test is re-checked by the engine on the row it writes, so a
      // sweep never acts on a job another sweep has just failed or whose heartbeat just arrived.
      const rows = await driver.writeTransaction((trx) => {
        let q = trx
          .updateTable('jobs')
          .set({
            state: 'failed',
            error: sql<string>`CAST(${STALE_JOB_ERROR_PREFIX} AS TEXT) || ${lastSeenText} || ')'`,
            finished_at: at,
            updated_at: at,
          })
          .where('state', 'in', ACTIVE_STATES)
          .where(lastSeen, '<', olderThan);
        if (exclude.length > 0) q = q.where('id', 'not in', exclude);
        return q.returningAll().execute();
      });
      return rows.map(toRecord);
    },
  };
}
