// Job heartbeats and the sweep (ADR 0015), with two "instances" — two job services, each on its own
// SQLite connection to one database file, as two pacsnode processes: a live job keeps heartbeating
// whatever its runner does and is never swept; a job whose process stopped is failed by the other
// instance within the stale time, and at start-up.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { isArchiveError } from '../../src/archive/errors.js';
import { createJobService, type JobService, type JobServiceDeps } from '../../src/archive/jobs.js';
import { ANONYMOUS } from '../../src/archive/origin.js';
import { STALE_JOB_ERROR_PREFIX, type JobRecord, type JobStore } from '../../src/storage/jobs.js';
import { createSqliteStores, type SqliteStores } from '../../src/storage/sqlite/sqlite-metadata-store.js';
import { freezableJobStore } from '../helpers/freezable-job-store.js';

const ctx = { principal: ANONYMOUS, origin: { protocol: 'internal' as const } };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/**
 * Short intervals: a heartbeat every 50 ms, a sweep every 50 ms, stale after 300 ms (6 beats: the
 * suite runs beside PostgreSQL tests and WAL fsyncs, so one write may take a while).
 */
const FAST = { heartbeatIntervalMs: 50, staleAfterMs: 300 } as const;

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((_resolve, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}

/** A runner blocked until released (or its signal aborts). */
function blocked(): { runner: (run: { signal: AbortSignal }) => Promise<void>; release(): void } {
  let release: () => void = () => {};
  const released = new Promise<void>((r) => (release = r));
  return { runner: ({ signal }) => Promise.race([released, aborted(signal)]), release: () => release() };
}

async function eventually<T>(check: () => Promise<T | undefined>, what: string, timeoutMs = 5000): Promise<T> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const v = await check();
    if (v !== undefined) return v;
    await sleep(5);
  }
  assert.fail(`timed out waiting for ${what}`);
}

const STALE_RE = /^interrupted: the process running this job stopped \(no heartbeat since (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)\)$/;

describe('job heartbeats and the sweep', () => {
  let dir: string;
  let a: SqliteStores;
  let b: SqliteStores;
  const services: JobService[] = [];
  /** A job service, closed after the test (so no sweep of one test reaches into the next). */
  const service = (store: JobStore, options: Omit<JobServiceDeps, 'store'>): JobService => {
    const svc = createJobService({ store, ...options });
    services.push(svc);
    return svc;
  };
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pacsnode-heartbeat-'));
    a = createSqliteStores({ path: join(dir, 'pacs.db') });
    await a.migrate();
    b = createSqliteStores({ path: join(dir, 'pacs.db') });
    await b.migrate();
  });
  afterEach(async () => {
    for (const s of services.splice(0)) await s.close({ timeoutMs: 100 });
  });
  after(async () => {
    await a.close();
    await b.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('a job whose runner is blocked keeps heartbeating and is never swept by another instance; the beat stops when it ends', async () => {
    const svcA = service(a.jobs, { ...FAST, cancelPollMs: 3_600_000 });
    const svcB = service(b.jobs, FAST);
    const work = blocked();
    const { job, done } = await svcA.startJob(ctx, 'move', {}, work.runner);
    const beats = new Set<number>();
    const end = Date.now() + 1000;
    while (Date.now() < end) {
      const swept = await svcB.sweep();
      assert.ok(!swept.some((j) => j.id === job.id), 'the live job was swept');
      const seen = await b.jobs.get(job.id);
      assert.equal(seen?.state, 'running');
      assert.ok(seen?.heartbeatAt);
      assert.ok(Date.now() - seen.heartbeatAt.getTime() < FAST.staleAfterMs, 'the heartbeat is fresh');
      beats.add(seen.heartbeatAt.getTime());
      await sleep(20);
    }
    assert.ok(beats.size >= 5, `the heartbeat moved (${beats.size} distinct values in 1000 ms)`);
    const seen = await b.jobs.get(job.id);
    assert.deepEqual(seen?.updatedAt, job.updatedAt, 'a heartbeat is not an update');
    work.release();
    const final = await done;
    assert.deepEqual([final.state, final.error], ['completed', null]);
    const last = (await b.jobs.get(job.id))?.heartbeatAt;
    await sleep(200);
    assert.deepEqual((await b.jobs.get(job.id))?.heartbeatAt, last, 'no heartbeat after the job ended');
  });

  it('a job whose process stops is failed by another instance within the stale time; the process, resumed, leaves it failed', async () => {
    const frozen = freezableJobStore(a.jobs);
    const svcA = service(frozen.store, { ...FAST, cancelPollMs: 3_600_000 });
    // The other instance: only its sweep acts here.
    service(b.jobs, FAST);
    const { job, done } = await svcA.startJob(ctx, 'move', { destination: 'DEST' }, ({ signal, progress }) =>
      progress({ set: { remaining: 4 }, add: { completed: 1 } }).then(() => aborted(signal)),
    );
    await eventually(async () => ((await b.jobs.get(job.id))?.completed === 1 ? true : undefined), 'the first progress report');
    await sleep(120);
    frozen.freeze();
    const frozenAt = Date.now();
    const lastBeat = (await b.jobs.get(job.id))?.heartbeatAt;
    assert.ok(lastBeat);
    const failed = await eventually(async () => {
      const j = await b.jobs.get(job.id);
      return j?.state === 'failed' ? j : undefined;
    }, 'the sweep');
    const elapsed = Date.now() - frozenAt;
    const match = STALE_RE.exec(String(failed.error));
    assert.ok(match, String(failed.error));
    assert.equal(match[1], lastBeat.toISOString());
    assert.ok(failed.finishedAt);
    assert.ok(failed.finishedAt.getTime() - lastBeat.getTime() >= FAST.staleAfterMs, 'not failed before the stale time');
    // Stale after 300 ms, swept every 50 ms: well within two seconds even on a slow machine.
    assert.ok(elapsed < 2000, `failed ${elapsed} ms after the process stopped`);
    assert.deepEqual([failed.remaining, failed.completed], [4, 1], 'progress kept');
    assert.equal(failed.cancelRequested, false);

    // The "dead" process comes back (SIGCONT): its held heartbeat reads the job finished, the runner
    // is aborted, and its own end changes nothing.
    frozen.thaw();
    const final = await done;
    assert.deepEqual([final.state, final.error], ['failed', failed.error]);
    assert.deepEqual(await b.jobs.get(job.id), failed);
    assert.equal(svcA.running, 0);
  });

  it('at start-up, a job service fails the jobs left pending or running by a process that died, and only those', async () => {
    const hourAgo = new Date(Date.now() - 3_600_000);
    const kind = `dead-${Date.now()}`;
    const running = await a.jobs.create({ kind, request: {}, at: hourAgo });
    await a.jobs.markRunning(running.id, { at: hourAgo });
    await a.jobs.updateProgress(running.id, { set: { remaining: 3 } }, { at: hourAgo });
    const pending = await a.jobs.create({ kind, request: {}, at: hourAgo });
    const finished = await a.jobs.create({ kind, request: {}, at: hourAgo });
    const finishedRecord = await a.jobs.finish(finished.id, { state: 'completed' }, { at: hourAgo });
    // Another instance's live job (its heartbeat just arrived).
    const live = await a.jobs.create({ kind, request: {} });
    await a.jobs.markRunning(live.id);

    // Only the start-up sweep can act: the next one would come in an hour.
    service(b.jobs, { heartbeatIntervalMs: 10_000, staleAfterMs: 60_000, sweepIntervalMs: 3_600_000 });
    const swept = await eventually(async () => {
      const page = await b.jobs.list({ limit: 10, offset: 0, kind, states: ['failed'] });
      return page.total === 2 ? page.items : undefined;
    }, 'the start-up sweep');
    assert.deepEqual(swept.map((j) => j.id).sort(), [running.id, pending.id].sort());
    for (const j of swept) assert.equal(j.error, `${STALE_JOB_ERROR_PREFIX}${hourAgo.toISOString()})`);
    assert.equal((await b.jobs.get(live.id))?.state, 'running');
    assert.deepEqual(await b.jobs.get(finished.id), finishedRecord);
    await a.jobs.finish(live.id, { state: 'completed' });
  });

  it('a cancel from another instance still stops a heartbeating job (the beat reads the flag, never clears it)', async () => {
    const svcA = service(a.jobs, { ...FAST, cancelPollMs: 3_600_000 });
    const svcB = service(b.jobs, FAST);
    const work = blocked();
    const { job, done } = await svcA.startJob(ctx, 'get', {}, work.runner);
    await sleep(120);
    const flagged = await svcB.cancel(ctx, job.id);
    assert.deepEqual([flagged.state, flagged.cancelRequested], ['running', true]);
    const final = await done;
    assert.deepEqual([final.state, final.error, final.cancelRequested], ['cancelled', null, true]);
  });

  it('a service never sweeps the jobs it runs itself, even when their heartbeat is late', async () => {
    // This process's heartbeat writes are lost (e.g. its event loop was blocked): its own sweep
    // still knows the job is alive; another instance would not.
    const deaf: JobStore = { ...a.jobs, heartbeat: (id) => a.jobs.get(id) };
    const svc = service(deaf, { ...FAST, cancelPollMs: 3_600_000 });
    const work = blocked();
    const { job, done } = await svc.startJob(ctx, 'store', {}, work.runner);
    await sleep(600);
    const mine: JobRecord[] = await svc.sweep();
    assert.ok(!mine.some((j) => j.id === job.id));
    assert.equal((await a.jobs.get(job.id))?.state, 'running');
    const other = service(b.jobs, FAST);
    const theirs = await other.sweep();
    assert.ok(theirs.some((j) => j.id === job.id), 'another instance sweeps it');
    const final = await done;
    assert.match(String(final.error), STALE_RE);
    work.release();
  });

  it('refuses a stale time shorter than two heartbeats', () => {
    assert.throws(
      () => createJobService({ store: a.jobs, heartbeatIntervalMs: 100, staleAfterMs: 150 }),
      (e: unknown) => isArchiveError(e) && e.code === 'INVALID_PARAMETER' && e.details?.['field'] === 'staleAfterMs',
    );
  });
});
