/**
 * JobStore port: long-running operations (SCU store/move/get, …) persisted in the database, so
 * that any instance can read a job's progress and request its cancellation while the instance that
 * runs it polls the row (ARCHITECTURE rule 11). Every adapter passes
 * test/contract/job-store.contract.ts.
 *
 * Life cycle: pending -> running -> completed | failed | cancelled; a pending job may also go
 * straight to cancelled. A finished job never changes again.
 *
 * Liveness (ADR 0015): the process running a job refreshes its `heartbeatAt` (create, markRunning,
 * updateProgress and heartbeat all do); `sweepStale` fails every pending or running job whose
 * heartbeat is too old — its process died — in one conditional UPDATE, so concurrent sweeps from
 * several instances act once per job and a heartbeat that arrives first always wins.
 */
export type JobState = 'pending' | 'running' | 'completed' | 'failed' | 'cancelled';
export type FinishedJobState = 'completed' | 'failed' | 'cancelled';

export const JOB_STATES: readonly JobState[] = ['pending', 'running', 'completed', 'failed', 'cancelled'];
export const FINISHED_JOB_STATES: readonly FinishedJobState[] = ['completed', 'failed', 'cancelled'];

export function isFinishedJobState(state: JobState): state is FinishedJobState {
  return state === 'completed' || state === 'failed' || state === 'cancelled';
}

export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
/**
 * A job's request is a JSON object: the SQLite column holds JSON text while PostgreSQL's jsonb
 * comes back parsed, and only an object (never a bare string) reads back the same from both.
 */
export interface JsonObject {
  [key: string]: JsonValue;
}

/** Sub-operation counters, as in DIMSE C-MOVE/C-GET responses. */
export interface JobCounters {
  remaining: number;
  completed: number;
  failed: number;
  warning: number;
}

export interface JobRecord extends JobCounters {
  /** UUID. */
  id: string;
  /** 'store' | 'move' | 'get' | … */
  kind: string;
  state: JobState;
  /** What was asked (JSON, no secrets). */
  request: JsonObject;
  /** SOP Instance UIDs of failed sub-operations, in the order reported. */
  failedUids: string[];
  error: string | null;
  /** Set by requestCancel on a running job; the runner stops at its next progress update. */
  cancelRequested: boolean;
  /** Principal id of whoever started it. */
  createdBy: string | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  updatedAt: Date;
  /**
   * Last sign of life from the process running the job (create, markRunning, progress, heartbeat);
   * null only for a row written by a pacsnode older than migration 0003 (then updatedAt counts).
   */
  heartbeatAt: Date | null;
}

/** How a job failed by `sweepStale` starts its error; the time of its last heartbeat follows. */
export const STALE_JOB_ERROR_PREFIX = 'interrupted: the process running this job stopped (no heartbeat since ';

/**
 * A progress report, applied atomically: `set` replaces counters, `add` adds to them (never below
 * 0), `failedUids` are appended. A counter appears in at most one of `set` and `add`.
 */
export interface ProgressUpdate {
  set?: Partial<JobCounters>;
  add?: Partial<JobCounters>;
  failedUids?: readonly string[];
}

export interface JobListOptions {
  limit: number;
  offset: number;
  /** Only jobs in one of these states. */
  states?: readonly JobState[];
  kind?: string;
}

export interface JobPage {
  /** Newest first. */
  items: JobRecord[];
  total: number;
}

export type CancelResult =
  | { outcome: 'not-found' }
  /** Was pending: now cancelled (finished). */
  | { outcome: 'cancelled'; job: JobRecord }
  /** Was running: cancelRequested is now set; the runner finishes it. */
  | { outcome: 'requested'; job: JobRecord }
  /** Already completed, failed or cancelled: unchanged. */
  | { outcome: 'finished'; job: JobRecord };

export interface JobStore {
  /** A new pending job; `id` defaults to a random UUID. */
  create(input: { kind: string; request: JsonObject; createdBy?: string | null; id?: string; at?: Date }): Promise<JobRecord>;
  /** undefined for an unknown (or malformed) id. */
  get(id: string): Promise<JobRecord | undefined>;
  list(options: JobListOptions): Promise<JobPage>;
  /** pending -> running (sets startedAt); undefined when the job is not pending (e.g. cancelled meanwhile). */
  markRunning(id: string, options?: { at?: Date }): Promise<JobRecord | undefined>;
  /**
   * Applies a progress report to a pending or running job and returns the job as it now is
   * (a finished job is returned unchanged); undefined when unknown. The runner reads
   * `cancelRequested` from the answer.
   */
  updateProgress(id: string, update: ProgressUpdate, options?: { at?: Date }): Promise<JobRecord | undefined>;
  /**
   * Finishes a pending or running job (sets finishedAt), applying a last progress report;
   * a job already finished is returned unchanged; undefined when unknown.
   */
  finish(id: string, outcome: { state: FinishedJobState; error?: string | null; progress?: ProgressUpdate }, options?: { at?: Date }): Promise<JobRecord | undefined>;
  requestCancel(id: string, options?: { at?: Date }): Promise<CancelResult>;
  /**
   * Records a sign of life of a pending or running job (sets heartbeatAt only: updatedAt and the
   * cancel flag are left alone) and returns the job as it now is, so the runner also reads
   * `cancelRequested`; a finished job is returned unchanged; undefined when unknown.
   */
  heartbeat(id: string, options?: { at?: Date }): Promise<JobRecord | undefined>;
  /**
   * Fails (error `STALE_JOB_ERROR_PREFIX<last heartbeat ISO-8601>)`, finishedAt = updatedAt =
   * `at`) every pending or running job whose heartbeat (updatedAt when it has none) is before
   * `olderThan`, except the `exclude` ids (jobs the caller runs itself). One conditional UPDATE:
   * the staleness test is in its WHERE, so two sweeps at once fail each job once, and a job whose
   * heartbeat was written first is not touched. Returns the jobs it failed.
   */
  sweepStale(options: { olderThan: Date; at?: Date; exclude?: readonly string[] }): Promise<JobRecord[]>;
}
