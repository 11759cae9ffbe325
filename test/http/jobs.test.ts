// /api/jobs (SPEC §5) on two "instances" — two apps, each with its own job service and SQLite
// connection on one database file — as two pacsnode processes behind a load balancer: a job run
// by A is listed, read (state, counters, failed UIDs) and cancelled through B.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { ANONYMOUS } from '../../src/archive/origin.js';
import { createJobService, type JobRunner, type JobService } from '../../src/archive/jobs.js';
import { registerJobRoutes, type JobJson } from '../../src/http/api/jobs.js';
import { errorHandler, notFoundHandler } from '../../src/http/errors.js';
import { createSqliteStores, type SqliteStores } from '../../src/storage/sqlite/sqlite-metadata-store.js';

interface ErrorJson {
  error: { code: string; message: string; details: Record<string, unknown> };
}
interface ListJson {
  items: JobJson[];
  total: number;
  limit: number;
  offset: number;
}

const JOB_KEYS = [
  'cancel_requested',
  'completed',
  'created_at',
  'created_by',
  'error',
  'failed',
  'failed_uids',
  'finished_at',
  'heartbeat_at',
  'id',
  'kind',
  'remaining',
  'request',
  'started_at',
  'state',
  'updated_at',
  'warning',
];

const ctx = { principal: ANONYMOUS, origin: { protocol: 'rest' as const } };

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

function assertError(res: LightMyRequestResponse, status: number, code: string): ErrorJson {
  assert.equal(res.statusCode, status, res.body);
  const body = res.json<ErrorJson>();
  assert.equal(body.error.code, code);
  return body;
}

/** Credits handed to a runner one by one; waiting rejects when the job's signal aborts. */
function steps(): { next(n?: number): void; wait(signal: AbortSignal): Promise<void> } {
  let credits = 0;
  const waiters: (() => void)[] = [];
  return {
    next(n = 1) {
      credits += n;
      while (credits > 0 && waiters.length > 0) {
        credits--;
        waiters.shift()?.();
      }
    },
    wait(signal) {
      if (signal.aborted) return Promise.reject(signal.reason);
      if (credits > 0) {
        credits--;
        return Promise.resolve();
      }
      return new Promise((resolve, reject) => {
        const go = (): void => {
          signal.removeEventListener('abort', stop);
          resolve();
        };
        const stop = (): void => {
          const i = waiters.indexOf(go);
          if (i >= 0) waiters.splice(i, 1);
          reject(signal.reason);
        };
        waiters.push(go);
        signal.addEventListener('abort', stop, { once: true });
      });
    },
  };
}

async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe('/api/jobs across two instances on one database', () => {
  let dir: string;
  let storesA: SqliteStores;
  let storesB: SqliteStores;
  let jobsA: JobService;
  let jobsB: JobService;
  let appA: FastifyInstance;
  let appB: FastifyInstance;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pacsnode-jobs-http-'));
    const path = join(dir, 'pacs.db');
    storesA = createSqliteStores({ path });
    await storesA.migrate();
    storesB = createSqliteStores({ path });
    await storesB.migrate();
    jobsA = createJobService({ store: storesA.jobs, progressIntervalMs: 0, cancelPollMs: 20 });
    jobsB = createJobService({ store: storesB.jobs, progressIntervalMs: 0, cancelPollMs: 20 });
    appA = await buildApp(jobsA);
    appB = await buildApp(jobsB);
  });
  after(async () => {
    await appA.close();
    await appB.close();
    await jobsA.close();
    await jobsB.close();
    await storesA.close();
    await storesB.close();
    await rm(dir, { recursive: true, force: true });
  });

  const getJob = (app: FastifyInstance, id: string) => app.inject({ method: 'GET', url: `/api/jobs/${id}` });
  const cancel = (app: FastifyInstance, id: string) => app.inject({ method: 'DELETE', url: `/api/jobs/${id}` });

  it('a job run by A shows its progress and failed UIDs through B, then completes', async () => {
    const s = steps();
    const runner: JobRunner = async ({ signal, progress }) => {
      await progress({ set: { remaining: 3 } });
      for (let i = 0; i < 3; i++) {
        await s.wait(signal);
        if (i === 1) await progress({ add: { failed: 1, remaining: -1 }, failedUids: ['1.2.840.99.1'] });
        else await progress({ add: { completed: 1, remaining: -1 } });
      }
      await progress({ add: { warning: 1 } });
    };
    const { job, done } = await jobsA.startJob(ctx, 'move', { level: 'STUDY', study_uid: '1.2.3', destination: 'DEST' }, runner);
    assert.equal(job.state, 'running');

    const first = await getJob(appB, job.id);
    assert.equal(first.statusCode, 200);
    const j0 = first.json<JobJson>();
    assert.deepEqual(Object.keys(j0).sort(), JOB_KEYS);
    assert.equal(j0.kind, 'move');
    assert.equal(j0.state, 'running');
    assert.deepEqual(j0.request, { level: 'STUDY', study_uid: '1.2.3', destination: 'DEST' });
    assert.equal(j0.created_by, 'anonymous');
    assert.match(String(j0.started_at), /Z$/);
    assert.equal(j0.finished_at, null);

    await eventually(async () => (await getJob(appB, job.id)).json<JobJson>().remaining === 3, 'remaining = 3 on B');
    s.next();
    await eventually(async () => (await getJob(appB, job.id)).json<JobJson>().completed === 1, 'completed = 1 on B');
    s.next();
    await eventually(async () => (await getJob(appB, job.id)).json<JobJson>().failed === 1, 'failed = 1 on B');
    const mid = (await getJob(appB, job.id)).json<JobJson>();
    assert.deepEqual([mid.state, mid.remaining, mid.completed, mid.failed, mid.warning], ['running', 1, 1, 1, 0]);
    assert.deepEqual(mid.failed_uids, ['1.2.840.99.1']);
    s.next();
    const final = await done;
    assert.equal(final.state, 'completed');
    const seen = (await getJob(appB, job.id)).json<JobJson>();
    assert.deepEqual([seen.state, seen.remaining, seen.completed, seen.failed, seen.warning], ['completed', 0, 2, 1, 1]);
    assert.equal(seen.error, null);
    assert.match(String(seen.finished_at), /Z$/);
    // Finished: cancelling is a conflict, on either instance.
    const conflict = assertError(await cancel(appB, job.id), 409, 'CONFLICT');
    assert.equal(conflict.error.details['state'], 'completed');
    assertError(await cancel(appA, job.id), 409, 'CONFLICT');
  });

  it('DELETE through B cancels a job running on A (202, cancel_requested); A\'s runner stops and the job ends cancelled', async () => {
    const s = steps();
    let stoppedBy: unknown;
    const runner: JobRunner = async ({ signal, progress }) => {
      await progress({ set: { remaining: 10 } });
      s.next();
      for (;;) {
        try {
          await s.wait(signal);
        } catch (err) {
          stoppedBy = err;
          throw err;
        }
        await progress({ add: { completed: 1, remaining: -1 } });
      }
    };
    const { job, done } = await jobsA.startJob(ctx, 'store', { files: 10 }, runner);
    await eventually(async () => (await getJob(appB, job.id)).json<JobJson>().completed === 1, 'first sub-operation');
    const res = await cancel(appB, job.id);
    assert.equal(res.statusCode, 202, res.body);
    const flagged = res.json<JobJson>();
    assert.deepEqual(Object.keys(flagged).sort(), JOB_KEYS);
    assert.equal(flagged.id, job.id);
    assert.equal(flagged.state, 'running');
    assert.equal(flagged.cancel_requested, true);
    const final = await done;
    assert.ok(stoppedBy, 'the runner saw its signal abort');
    assert.equal(final.state, 'cancelled');
    assert.equal(final.completed, 1);
    const seen = (await getJob(appB, job.id)).json<JobJson>();
    assert.equal(seen.state, 'cancelled');
    assert.equal(seen.error, null);
    assert.notEqual(seen.finished_at, null);
    assertError(await cancel(appB, job.id), 409, 'CONFLICT');
  });

  it('a failing runner ends the job failed with its message', async () => {
    const { job, done } = await jobsA.startJob(ctx, 'get', {}, async ({ progress }) => {
      await progress({ set: { remaining: 2 } });
      throw new Error('association rejected by the peer (1/1/3)');
    });
    await done;
    const seen = (await getJob(appB, job.id)).json<JobJson>();
    assert.equal(seen.state, 'failed');
    assert.equal(seen.error, 'association rejected by the peer (1/1/3)');
    assert.equal(seen.remaining, 2);
  });

  it('DELETE of a pending job cancels it at once (202, state cancelled)', async () => {
    const pending = await storesA.jobs.create({ kind: 'move', request: {} });
    const res = await cancel(appB, pending.id);
    assert.equal(res.statusCode, 202);
    const body = res.json<JobJson>();
    assert.equal(body.state, 'cancelled');
    assert.notEqual(body.finished_at, null);
  });

  it('unknown or malformed ids are 404 for GET and DELETE', async () => {
    for (const id of [randomUUID(), 'not-a-uuid', '123']) {
      assertError(await getJob(appB, id), 404, 'NOT_FOUND');
      assertError(await cancel(appB, id), 404, 'NOT_FOUND');
    }
    // Ids are case-insensitive UUIDs.
    const job = await storesA.jobs.create({ kind: 'x', request: {} });
    assert.equal((await getJob(appB, job.id.toUpperCase())).json<JobJson>().id, job.id);
  });

  describe('list', () => {
    const kind = `list-${randomUUID().slice(0, 8)}`;
    const ids: string[] = [];
    before(async () => {
      for (let i = 0; i < 4; i++) {
        const { job, done } = await jobsA.startJob(ctx, kind, { i }, async () => {
          if (i === 2) throw new Error('boom');
        });
        ids.push(job.id);
        await done;
      }
      ids.push((await storesB.jobs.create({ kind, request: { i: 4 } })).id);
    });
    const list = (query: string) => appB.inject({ method: 'GET', url: `/api/jobs${query}` });

    it('answers the list envelope, newest first', async () => {
      const res = await list(`?kind=${kind}`);
      assert.equal(res.statusCode, 200);
      const body = res.json<ListJson>();
      assert.deepEqual(Object.keys(body).sort(), ['items', 'limit', 'offset', 'total']);
      assert.deepEqual(body.items.map((j) => j.id), [...ids].reverse());
      assert.deepEqual([body.total, body.limit, body.offset], [5, 100, 0]);
      for (const j of body.items) assert.deepEqual(Object.keys(j).sort(), JOB_KEYS);
    });

    it('filters by state and pages', async () => {
      const failed = (await list(`?kind=${kind}&state=failed`)).json<ListJson>();
      assert.deepEqual(failed.items.map((j) => j.id), [ids[2]]);
      const completed = (await list(`?kind=${kind}&state=completed&limit=2&offset=1`)).json<ListJson>();
      assert.deepEqual(completed.items.map((j) => j.id), [ids[1], ids[0]]);
      assert.equal(completed.total, 3);
      const pending = (await list(`?kind=${kind}&state=pending`)).json<ListJson>();
      assert.deepEqual(pending.items.map((j) => j.id), [ids[4]]);
      const all = (await list('?limit=1')).json<ListJson>();
      assert.ok(all.total >= 5);
      assert.equal(all.items.length, 1);
    });

    for (const [query, field] of [
      ['?state=done', 'state'],
      ['?limit=0', 'limit'],
      ['?limit=5000', 'limit'],
      ['?offset=-3', 'offset'],
      ['?kind=bad%20kind', 'kind'],
    ] as const) {
      it(`refuses ${query} naming ${field}`, async () => {
        const body = assertError(await list(query), 400, 'INVALID_PARAMETER');
        assert.equal(body.error.details['field'], field);
      });
    }
  });
});
