// /api/jobs when the process running a job dies (ADR 0015): two "instances" — two apps, each with
// its own job service and SQLite connection on one database file. A runs a job and stops (its
// store is frozen: no heartbeat, no progress, no end, as after kill -9 or a power loss); B's sweep
// fails the job within the stale time and GET through B shows it failed with the reason, while a
// live job of A, blocked in its runner, stays running.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { createJobService, type JobService } from '../../src/archive/jobs.js';
import { ANONYMOUS } from '../../src/archive/origin.js';
import { registerJobRoutes, type JobJson } from '../../src/http/api/jobs.js';
import { errorHandler, notFoundHandler } from '../../src/http/errors.js';
import { createSqliteStores, type SqliteStores } from '../../src/storage/sqlite/sqlite-metadata-store.js';
import { freezableJobStore, type FreezableJobStore } from '../helpers/freezable-job-store.js';

const ctx = { principal: ANONYMOUS, origin: { protocol: 'rest' as const } };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const HEARTBEAT_MS = 50;
// 6 beats: the suite runs beside PostgreSQL tests and WAL fsyncs, so one write may take a while.
const STALE_MS = 300;

async function buildApp(jobs: JobService): Promise<FastifyInstance> {
  const app = Fastify();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler);
  app.decorateRequest('principal', null);
  registerJobRoutes(app, { jobs });
  await app.ready();
  return app;
}

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((_resolve, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}

describe('/api/jobs: a job whose process died is failed by another instance', () => {
  let dir: string;
  let storesA: SqliteStores;
  let storesB: SqliteStores;
  let frozen: FreezableJobStore;
  let jobsA: JobService;
  let jobsB: JobService;
  let appB: FastifyInstance;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pacsnode-jobs-heartbeat-'));
    const path = join(dir, 'pacs.db');
    storesA = createSqliteStores({ path });
    await storesA.migrate();
    storesB = createSqliteStores({ path });
    await storesB.migrate();
    frozen = freezableJobStore(storesA.jobs);
    jobsA = createJobService({ store: frozen.store, progressIntervalMs: 0, cancelPollMs: 3_600_000, heartbeatIntervalMs: HEARTBEAT_MS, staleAfterMs: STALE_MS });
    jobsB = createJobService({ store: storesB.jobs, heartbeatIntervalMs: HEARTBEAT_MS, staleAfterMs: STALE_MS });
    appB = await buildApp(jobsB);
  });
  after(async () => {
    frozen.thaw();
    await appB.close();
    await jobsA.close({ timeoutMs: 200 });
    await jobsB.close();
    await storesA.close();
    await storesB.close();
    await rm(dir, { recursive: true, force: true });
  });

  const getJob = async (id: string): Promise<JobJson> => {
    const res = await appB.inject({ method: 'GET', url: `/api/jobs/${id}` });
    assert.equal(res.statusCode, 200, res.body);
    return res.json<JobJson>();
  };

  it('GET through B shows a live, blocked job of A running, and A\'s job failed "interrupted" once A stops', async () => {
    let releaseLive: () => void = () => {};
    const live = await jobsA.startJob(ctx, 'store', { which: 'live' }, ({ signal }) =>
      Promise.race([new Promise<void>((r) => (releaseLive = r)), aborted(signal)]),
    );
    const dying = await jobsA.startJob(ctx, 'move', { which: 'dying' }, async ({ signal, progress }) => {
      await progress({ set: { remaining: 5 }, add: { completed: 2 }, failedUids: ['1.2.840.9'] });
      await aborted(signal);
    });
    // Both alive through several stale periods, their heartbeats moving on.
    let lastBeat = '';
    for (let i = 0; i < 24; i++) {
      const seenLive = await getJob(live.job.id);
      assert.equal(seenLive.state, 'running');
      assert.match(String(seenLive.heartbeat_at), /Z$/);
      assert.ok(String(seenLive.heartbeat_at) >= lastBeat, 'heartbeat_at went backwards');
      lastBeat = String(seenLive.heartbeat_at);
      assert.equal((await getJob(dying.job.id)).state, 'running');
      await sleep(HEARTBEAT_MS);
    }
    // The live job ends normally; then A "dies" with the other one running.
    releaseLive();
    assert.equal((await live.done).state, 'completed');
    frozen.freeze();
    const diedAt = Date.now();
    let seen: JobJson | undefined;
    while (Date.now() - diedAt < 5000) {
      seen = await getJob(dying.job.id);
      if (seen.state !== 'running') break;
      await sleep(5);
    }
    const elapsed = Date.now() - diedAt;
    assert.ok(seen);
    assert.equal(seen.state, 'failed');
    assert.match(String(seen.error), /^interrupted: the process running this job stopped \(no heartbeat since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\)$/);
    assert.ok(elapsed < 2000, `failed ${elapsed} ms after A stopped (stale after ${STALE_MS} ms)`);
    assert.match(String(seen.finished_at), /Z$/);
    assert.deepEqual([seen.remaining, seen.completed, seen.failed_uids], [5, 2, ['1.2.840.9']], 'progress kept');
    assert.equal((await getJob(live.job.id)).state, 'completed');
    assert.ok(lastBeat > new Date(diedAt - 60_000).toISOString(), 'no recent heartbeat_at was shown while the job ran');
    // Finished: cancelling it is a conflict.
    const res = await appB.inject({ method: 'DELETE', url: `/api/jobs/${dying.job.id}` });
    assert.equal(res.statusCode, 409, res.body);
    // A resumes: the job stays failed with the same reason.
    frozen.thaw();
    const final = await dying.done;
    assert.deepEqual([final.state, final.error], ['failed', seen.error]);
    assert.deepEqual((await getJob(dying.job.id)).error, seen.error);
  });
});
