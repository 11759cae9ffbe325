import {
  isFinishedJobState,
  JOB_STATES,
  type FinishedJobState,
  type JobCounters,
  type JobRecord,
  type JobState,
  type JobStore,
  type JsonObject,
  type ProgressUpdate,
} from '../storage/jobs.js';
import { ALLOW_ALL, authorize, type AccessPolicy, type Action } from './access/policy.js';
import { pageOptions } from './browse.js';
import { silentLogger, type CallContext, type Logger } from './context.js';
import { ArchiveError, toArchiveError } from './errors.js';

/**
 * Jobs (SPEC §5): long operations (SCU store/move/get, supplied by the DIMSE edge as runners) run
 * in the process that started them, while their state lives in the JobStore so that any instance
 * can read their progress and cancel them (ARCHITECTURE rule 11).
 *
 * The runner gets an AbortSignal and a `progress` function. Progress is written at most every
 * `progressIntervalMs` (and always at the end); each write also reads the cancel flag, and the flag
 * is polled every `cancelPollMs` for runners that report rarely. A cancel requested on any instance
 * therefore aborts the signal; a runner that stops on it (by returning or throwing) ends the job
 * `cancelled`.
 *
 * Liveness (ADR 0015): while a job runs, this process refreshes its heartbeat every
 * `heartbeatIntervalMs` (a progress write counts as one), whatever the runner is doing. Every
 * instance sweeps at start-up and every `sweepIntervalMs`: a pending or running job with no
 * heartbeat for `staleAfterMs` — its process crashed, was killed or lost power — is failed with
 * "interrupted: the process running this job stopped (no heartbeat since …)". The sweep is one
 * conditional UPDATE (JobStore.sweepStale), so instances sweeping together fail a job once.
 */

export interface JobRunContext {
  readonly jobId: string;
  readonly request: JsonObject;
  /** Aborted when a cancel is requested (from any instance) or this process shuts down. */
  readonly signal: AbortSignal;
  /**
   * Reports progress: `set` replaces counters, `add` adds to them, `failedUids` are appended.
   * Throws INVALID_PARAMETER for malformed counts; storage trouble is logged, never thrown
   * (the report is kept and written with the next one).
   */
  progress(update: ProgressUpdate): Promise<void>;
}

/** Does the work; resolves when done, throws to fail the job. */
export type JobRunner = (run: JobRunContext) => Promise<void>;

export interface StartedJob {
  /** The job as stored when it started (state running). */
  job: JobRecord;
  /** Settles (never rejects) with the finished job: `?wait=true` answers with it. */
  done: Promise<JobRecord>;
}

export interface JobListInput {
  limit?: number;
  offset?: number;
  /** One state or several. */
  state?: string | readonly string[];
  kind?: string;
}

export interface JobPageResult {
  items: JobRecord[];
  total: number;
  limit: number;
  offset: number;
}

export interface JobService {
  /**
   * Creates a job, marks it running and runs `runner` in this process. Authorised as
   * `options.action` (default 'admin'), on `options.studyUid` when given.
   */
  startJob(ctx: CallContext, kind: string, request: JsonObject, runner: JobRunner, options?: { action?: Action; studyUid?: string }): Promise<StartedJob>;
  /** NOT_FOUND when unknown. */
  get(ctx: CallContext, id: string): Promise<JobRecord>;
  /** Newest first. */
  list(ctx: CallContext, input?: JobListInput): Promise<JobPageResult>;
  /**
   * Cancels a job: a pending one at once, a running one by flagging it (its runner, on whichever
   * instance, stops at its next progress report or poll). NOT_FOUND when unknown; CONFLICT when
   * already finished.
   */
  cancel(ctx: CallContext, id: string): Promise<JobRecord>;
  /** Jobs running in this process. */
  readonly running: number;
  /**
   * Fails the jobs of other processes that stopped (no heartbeat for `staleAfterMs`) and returns
   * them. Runs at start-up and every `sweepIntervalMs`; exposed for tests and tools.
   */
  sweep(): Promise<JobRecord[]>;
  /**
   * Stops accepting jobs and sweeping, aborts the local ones and waits up to `timeoutMs` (default
   * 5000) for their runners; those still running are marked failed ("interrupted").
   */
  close(options?: { timeoutMs?: number }): Promise<void>;
}

export interface JobServiceDeps {
  store: JobStore;
  policy?: AccessPolicy;
  logger?: Logger;
  now?: () => Date;
  /** Minimum time between two progress writes of one job (ms). Default 250; 0 writes every report. */
  progressIntervalMs?: number;
  /** How often a running job re-reads its cancel flag (ms). Default 1000. */
  cancelPollMs?: number;
  /** How often the process running a job refreshes its heartbeat (ms). Default 10 000. */
  heartbeatIntervalMs?: number;
  /**
   * A pending or running job whose heartbeat is older than this (ms) is failed by the sweep.
   * Default 3 × heartbeatIntervalMs; at least 2 × heartbeatIntervalMs.
   */
  staleAfterMs?: number;
  /** How often this instance sweeps (ms), after the sweep at start-up. Default heartbeatIntervalMs. */
  sweepIntervalMs?: number;
}

export const DEFAULT_HEARTBEAT_INTERVAL_MS = 10_000;

export const JOB_KIND_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
export const INTERRUPTED = 'interrupted: pacsnode shut down while the job was running';
const ERROR_MAX = 1000;
const COUNTERS: readonly (keyof JobCounters)[] = ['remaining', 'completed', 'failed', 'warning'];

function invalid(field: string, message: string): ArchiveError {
  return new ArchiveError('INVALID_PARAMETER', message, { field });
}

async function guard<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toArchiveError(err);
  }
}

function errorText(err: unknown): string {
  // Messages may quote a peer's text (a DIMSE Error Comment): no control characters (PostgreSQL
  // refuses U+0000 in text, and the job could then not be finished), bounded in length.
  // eslint-disable-next-line no-control-regex
  const text = (err instanceof Error ? err.message : String(err)).replace(/[\u0000-\u001f\u007f]/g, ' ');
  return text.length > ERROR_MAX ? `${text.slice(0, ERROR_MAX - 1)}…` : text;
}

/** Checks a runner's progress report (a runner bug fails its job with INVALID_PARAMETER). */
export function checkProgress(update: ProgressUpdate): void {
  for (const k of COUNTERS) {
    const s = update.set?.[k];
    const a = update.add?.[k];
    if (s !== undefined && a !== undefined) throw invalid(`progress.${k}`, `progress: ${k} both set and added`);
    if (s !== undefined && (!Number.isSafeInteger(s) || s < 0)) throw invalid(`progress.set.${k}`, `progress: ${k} must be a non-negative integer`);
    if (a !== undefined && !Number.isSafeInteger(a)) throw invalid(`progress.add.${k}`, `progress: ${k} must be an integer`);
  }
  if (update.failedUids !== undefined && !(Array.isArray(update.failedUids) && update.failedUids.every((u) => typeof u === 'string'))) {
    throw invalid('progress.failedUids', 'progress: failedUids must be strings');
  }
}

/** The report equal to applying `a` then `b` (counters clamp at 0 only once, at the end). */
export function composeProgress(a: ProgressUpdate, b: ProgressUpdate): ProgressUpdate {
  const set: Partial<JobCounters> = { ...a.set };
  const add: Partial<JobCounters> = { ...a.add };
  for (const k of COUNTERS) {
    const s = b.set?.[k];
    const d = b.add?.[k];
    if (s !== undefined) {
      set[k] = s;
      delete add[k];
    }
    if (d !== undefined) {
      const base = set[k];
      if (base !== undefined) set[k] = Math.max(0, base + d);
      else add[k] = (add[k] ?? 0) + d;
    }
  }
  const failedUids = [...(a.failedUids ?? []), ...(b.failedUids ?? [])];
  return {
    ...(Object.keys(set).length > 0 ? { set } : {}),
    ...(Object.keys(add).length > 0 ? { add } : {}),
    ...(failedUids.length > 0 ? { failedUids } : {}),
  };
}

function isEmpty(u: ProgressUpdate): boolean {
  return u.set === undefined && u.add === undefined && (u.failedUids === undefined || u.failedUids.length === 0);
}

interface LocalJob {
  abort(reason: 'cancel' | 'shutdown'): void;
  /** Stops the heartbeat (the job is finished or has been given up). */
  stopHeartbeat(): void;
  done: Promise<JobRecord>;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export function createJobService(deps: JobServiceDeps): JobService {
  const { store } = deps;
  const policy = deps.policy ?? ALLOW_ALL;
  const logger = deps.logger ?? silentLogger;
  const now = deps.now ?? (() => new Date());
  const progressIntervalMs = Math.max(0, deps.progressIntervalMs ?? 250);
  const cancelPollMs = Math.max(10, deps.cancelPollMs ?? 1000);
  const heartbeatIntervalMs = Math.max(10, deps.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS);
  const staleAfterMs = deps.staleAfterMs ?? 3 * heartbeatIntervalMs;
  const sweepIntervalMs = Math.max(10, deps.sweepIntervalMs ?? heartbeatIntervalMs);
  // A live job must never look stale: allow for one missed beat and a slow write.
  if (!(staleAfterMs >= 2 * heartbeatIntervalMs)) {
    throw new ArchiveError('INVALID_PARAMETER', 'staleAfterMs must be at least twice heartbeatIntervalMs', { field: 'staleAfterMs' });
  }
  const local = new Map<string, LocalJob>();
  let closing = false;
  let closed: Promise<void> | undefined;

  async function finishWithRetry(id: string, outcome: { state: FinishedJobState; error: string | null; progress: ProgressUpdate }): Promise<JobRecord | undefined> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await store.finish(id, outcome, { at: now() });
      } catch (err) {
        if (attempt >= 4) {
          logger.error({ jobId: id, err: errorText(err) }, 'could not record the end of a job');
          return undefined;
        }
        await sleep(100 * 2 ** attempt);
      }
    }
  }

  function runJob(job: JobRecord, runner: JobRunner): LocalJob {
    const controller = new AbortController();
    let stopReason: 'cancel' | 'shutdown' | undefined;
    const abort = (reason: 'cancel' | 'shutdown'): void => {
      if (controller.signal.aborted) return;
      stopReason = reason;
      controller.abort(new ArchiveError('CONFLICT', reason === 'cancel' ? 'job cancelled' : INTERRUPTED, { jobId: job.id }));
    };
    let last = job;
    let pending: ProgressUpdate = {};
    // The first report is written at once (e.g. how many sub-operations there are).
    let lastWrite = 0;
    let writes: Promise<void> = Promise.resolve();

    const observe = (rec: JobRecord | undefined): void => {
      if (!rec) return;
      last = rec;
      // Finished elsewhere (e.g. marked interrupted after a shutdown timeout) counts as cancelled.
      if (rec.cancelRequested || isFinishedJobState(rec.state)) abort('cancel');
    };

    const write = (): Promise<void> => {
      writes = writes.then(async () => {
        if (isEmpty(pending)) return;
        const update = pending;
        pending = {};
        lastWrite = Date.now();
        const sentAt = lastWrite;
        try {
          observe(await store.updateProgress(job.id, update, { at: now() }));
          lastBeat = Math.max(lastBeat, sentAt);
        } catch (err) {
          pending = composeProgress(update, pending);
          logger.warn({ jobId: job.id, err: errorText(err) }, 'job progress not written (kept for the next write)');
        }
      });
      return writes;
    };

    // The heartbeat runs on its own timer, so a runner blocked on a slow peer still shows its
    // process alive; a progress write counts as a beat. Unref'd: it is no reason to stay up.
    let lastBeat = Date.now();
    let beating = false;
    const heartbeat = setInterval(() => {
      // Timed from when a beat was sent (the time it records), not from when its write returned.
      const sentAt = Date.now();
      if (beating || sentAt - lastBeat < heartbeatIntervalMs / 2) return;
      beating = true;
      store
        .heartbeat(job.id, { at: now() })
        .then(
          (rec) => {
            lastBeat = Math.max(lastBeat, sentAt);
            observe(rec);
          },
          (err: unknown) => logger.warn({ jobId: job.id, err: errorText(err) }, 'job heartbeat not written'),
        )
        .finally(() => {
          beating = false;
        });
    }, heartbeatIntervalMs);
    heartbeat.unref();
    const stopHeartbeat = (): void => clearInterval(heartbeat);

    // Reports held back by the interval are written here too when the runner goes quiet; the
    // write reads the cancel flag like the poll does.
    const poll = setInterval(() => {
      if (!isEmpty(pending) && Date.now() - lastWrite >= progressIntervalMs) {
        void write();
        return;
      }
      store.get(job.id).then(observe, (err: unknown) => logger.warn({ jobId: job.id, err: errorText(err) }, 'job cancel poll failed'));
    }, cancelPollMs);
    // Not unref'd: a running job is work in progress, like an open socket (close() ends it).

    const context: JobRunContext = {
      jobId: job.id,
      request: job.request,
      signal: controller.signal,
      async progress(update) {
        checkProgress(update);
        pending = composeProgress(pending, update);
        if (Date.now() - lastWrite >= progressIntervalMs) await write();
      },
    };

    const started = Date.now();
    const done = (async (): Promise<JobRecord> => {
      let state: FinishedJobState;
      let error: string | null = null;
      try {
        await Promise.resolve().then(() => runner(context));
        // A runner that returns once stopped by a shutdown did not finish its work either.
        state = stopReason === 'cancel' ? 'cancelled' : stopReason === 'shutdown' ? 'failed' : 'completed';
        if (stopReason === 'shutdown') error = INTERRUPTED;
      } catch (err) {
        if (stopReason === 'cancel') state = 'cancelled';
        else {
          state = 'failed';
          error = stopReason === 'shutdown' ? INTERRUPTED : errorText(err);
        }
      }
      clearInterval(poll);
      stopHeartbeat();
      await writes;
      const final = await finishWithRetry(job.id, { state, error, progress: pending });
      local.delete(job.id);
      const result = final ?? last;
      logger.info(
        {
          jobId: job.id,
          kind: job.kind,
          state: result.state,
          completed: result.completed,
          failed: result.failed,
          warning: result.warning,
          durationMs: Date.now() - started,
        },
        'job finished',
      );
      return result;
    })();
    return { abort, stopHeartbeat, done };
  }

  let sweepTimer: NodeJS.Timeout | undefined;
  let sweeping: Promise<JobRecord[]> | undefined;

  /** One sweep at a time; the jobs this process runs are alive by definition and left out. */
  function sweep(): Promise<JobRecord[]> {
    if (sweeping) return sweeping;
    const run = (async () => {
      const at = now();
      const swept = await store.sweepStale({ olderThan: new Date(at.getTime() - staleAfterMs), at, exclude: [...local.keys()] });
      for (const j of swept) {
        logger.warn({ jobId: j.id, kind: j.kind, error: j.error }, 'job failed: the process running it stopped sending heartbeats');
      }
      return swept;
    })();
    sweeping = run;
    const clear = (): void => {
      if (sweeping === run) sweeping = undefined;
    };
    run.then(clear, clear);
    return run;
  }

  const sweepQuietly = (): void => {
    if (closing) return;
    sweep().catch((err: unknown) => logger.warn({ err: errorText(err) }, 'job sweep failed (retried at the next interval)'));
  };

  const service: JobService = {
    get running() {
      return local.size;
    },

    sweep: () => guard(sweep),

    startJob: (ctx, kind, request, runner, options) =>
      guard(async () => {
        if (closing) throw new ArchiveError('INTERNAL', 'the job service is shutting down');
        authorize(policy, ctx, options?.action ?? 'admin', options?.studyUid !== undefined ? { studyUid: options.studyUid } : undefined);
        if (typeof kind !== 'string' || !JOB_KIND_RE.test(kind)) throw invalid('kind', 'kind must be 1–64 letters, digits, ".", "_", ":" or "-"');
        if (typeof request !== 'object' || request === null || Array.isArray(request)) throw invalid('request', 'request must be a JSON object');
        try {
          JSON.stringify(request);
        } catch {
          throw invalid('request', 'request must be JSON');
        }
        const created = await store.create({ kind, request, createdBy: ctx.principal.id, at: now() });
        const job = await store.markRunning(created.id, { at: now() });
        if (!job) {
          // Cancelled between create and start (by another instance): nothing to run.
          const current = (await store.get(created.id)) ?? created;
          return { job: current, done: Promise.resolve(current) };
        }
        const handle = runJob(job, runner);
        local.set(job.id, handle);
        logger.info({ jobId: job.id, kind, origin: ctx.origin.protocol }, 'job started');
        return { job, done: handle.done };
      }),

    get: (ctx, id) =>
      guard(async () => {
        authorize(policy, ctx, 'read');
        const job = await store.get(id);
        if (!job) throw new ArchiveError('NOT_FOUND', 'job not found', { id });
        return job;
      }),

    list: (ctx, input) =>
      guard(async () => {
        authorize(policy, ctx, 'read');
        const page = pageOptions(input);
        let states: JobState[] | undefined;
        if (input?.state !== undefined) {
          const wanted = typeof input.state === 'string' ? [input.state] : [...input.state];
          for (const s of wanted) {
            if (!(JOB_STATES as readonly string[]).includes(s)) throw invalid('state', `state must be one of ${JOB_STATES.join(', ')}`);
          }
          states = wanted as JobState[];
        }
        if (input?.kind !== undefined && !JOB_KIND_RE.test(input.kind)) throw invalid('kind', 'kind must be 1–64 letters, digits, ".", "_", ":" or "-"');
        const result = await store.list({ ...page, ...(states ? { states } : {}), ...(input?.kind !== undefined ? { kind: input.kind } : {}) });
        return { ...result, ...page };
      }),

    cancel: (ctx, id) =>
      guard(async () => {
        authorize(policy, ctx, 'admin');
        const result = await store.requestCancel(id, { at: now() });
        switch (result.outcome) {
          case 'not-found':
            throw new ArchiveError('NOT_FOUND', 'job not found', { id });
          case 'finished':
            throw new ArchiveError('CONFLICT', `job already ${result.job.state}`, { id: result.job.id, state: result.job.state });
          case 'requested':
            // Running here: stop at once rather than at the next poll.
            local.get(result.job.id)?.abort('cancel');
            logger.info({ jobId: result.job.id, origin: ctx.origin.protocol }, 'job cancel requested');
            return result.job;
          case 'cancelled':
            logger.info({ jobId: result.job.id, origin: ctx.origin.protocol }, 'pending job cancelled');
            return result.job;
        }
      }),

    close(options) {
      // Once: main.ts closes the jobs with the HTTP server and again before the stores.
      closed ??= closeOnce(options);
      return closed;
    },
  };

  async function closeOnce(options?: { timeoutMs?: number }): Promise<void> {
    closing = true;
    if (sweepTimer) clearInterval(sweepTimer);
    sweepTimer = undefined;
    // The stores close after this: let a sweep in flight end first.
    await sweeping?.catch(() => undefined);
    const jobs = [...local.entries()];
    if (jobs.length === 0) return;
    for (const [, j] of jobs) j.abort('shutdown');
    const timeoutMs = options?.timeoutMs ?? 5000;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      Promise.all(jobs.map(([, j]) => j.done)).then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), timeoutMs);
      }),
    ]);
    if (timer) clearTimeout(timer);
    if (!timedOut) return;
    for (const [id] of jobs) {
      if (!local.has(id)) continue;
      logger.warn({ jobId: id }, 'job runner did not stop in time; marking it interrupted');
      local.get(id)?.stopHeartbeat();
      await store.finish(id, { state: 'failed', error: INTERRUPTED }, { at: now() }).catch((err: unknown) => logger.error({ jobId: id, err: errorText(err) }, 'could not mark a job interrupted'));
    }
  }

  // At start-up (jobs left behind by a process that died, perhaps this one's predecessor), then
  // periodically: jobs of another instance that dies while this one runs.
  sweepQuietly();
  sweepTimer = setInterval(sweepQuietly, sweepIntervalMs);
  sweepTimer.unref();
  return service;
}
