import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { JobRecord, JobStore, JsonObject } from '../../src/storage/jobs.js';

/**
 * The JobStore contract: every adapter (SQLite file, SQLite :memory:, PostgreSQL) passes it
 * unchanged. Tests scope lists by a private `kind`, so the suite also runs against a database
 * holding other jobs. With `peer` (a second store opened on the same database — as a second
 * pacsnode process would), it also checks that progress and cancellation cross instances.
 */
export interface JobStoreFixture {
  /** A migrated store. */
  jobs: JobStore;
  /** Another store on the same database (its own connection), when the adapter has one. */
  peer?: JobStore;
  /** Closes the stores and removes what the factory created. */
  cleanup: () => Promise<void>;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function kind(): string {
  return `test-${randomBytes(6).toString('hex')}`;
}

/** `options.peer`: the factory provides a second store on the same database (not possible for :memory:). */
export function jobStoreContract(name: string, factory: () => Promise<JobStoreFixture>, options: { peer: boolean }): void {
  describe(`JobStore contract: ${name}`, () => {
    let fx: JobStoreFixture;
    let jobs: JobStore;
    before(async () => {
      fx = await factory();
      jobs = fx.jobs;
    });
    after(async () => {
      await fx.cleanup();
    });

    async function running(k = kind(), request: JsonObject = {}): Promise<JobRecord> {
      const job = await jobs.create({ kind: k, request });
      const started = await jobs.markRunning(job.id);
      assert.ok(started);
      return started;
    }

    it('creates a pending job with a UUID, zero counters and the request as given', async () => {
      const at = new Date('2026-04-01T08:00:00.250Z');
      const request: JsonObject = { level: 'STUDY', study_uid: '1.2.3', sop_uids: ['1.2.3.4', '1.2.3.5'], n: 3.5, wait: false, none: null, note: 'Müller 放射' };
      const job = await jobs.create({ kind: 'move', request, createdBy: 'alice', at });
      assert.match(job.id, UUID_RE);
      assert.deepEqual(job, {
        id: job.id,
        kind: 'move',
        state: 'pending',
        request,
        remaining: 0,
        completed: 0,
        failed: 0,
        warning: 0,
        failedUids: [],
        error: null,
        cancelRequested: false,
        createdBy: 'alice',
        createdAt: at,
        startedAt: null,
        finishedAt: null,
        updatedAt: at,
      });
      assert.deepEqual(await jobs.get(job.id), job);
      assert.notEqual((await jobs.create({ kind: 'move', request })).id, job.id);
    });

    it('accepts a caller-chosen id and finds jobs by id in any letter case', async () => {
      const id = randomUUID();
      const job = await jobs.create({ kind: kind(), request: { nested: { list: [1, 'two', null, true], empty: {} } }, id: id.toUpperCase() });
      assert.equal(job.id, id);
      assert.deepEqual(job.request, { nested: { list: [1, 'two', null, true], empty: {} } });
      assert.equal(job.createdBy, null);
      assert.equal((await jobs.get(id.toUpperCase()))?.id, id);
    });

    it('refuses a request that is not a JSON object and a malformed id', async () => {
      for (const request of [null, 'text', 42, ['a']]) {
        await assert.rejects(jobs.create({ kind: kind(), request: request as unknown as JsonObject }));
      }
      await assert.rejects(jobs.create({ kind: kind(), request: {}, id: 'not-a-uuid' }));
    });

    it('get of an unknown or malformed id is undefined', async () => {
      assert.equal(await jobs.get(randomUUID()), undefined);
      assert.equal(await jobs.get('not-a-uuid'), undefined);
      assert.equal(await jobs.get(''), undefined);
      assert.equal(await jobs.get("' OR 1=1 --"), undefined);
    });

    it('markRunning moves pending to running once and sets startedAt', async () => {
      const job = await jobs.create({ kind: kind(), request: {} });
      const at = new Date('2026-04-01T08:00:01.000Z');
      const started = await jobs.markRunning(job.id, { at });
      assert.equal(started?.state, 'running');
      assert.deepEqual(started?.startedAt, at);
      assert.deepEqual(started?.updatedAt, at);
      assert.equal(await jobs.markRunning(job.id), undefined);
      assert.equal(await jobs.markRunning(randomUUID()), undefined);
      assert.equal(await jobs.markRunning('nope'), undefined);
    });

    it('updateProgress sets and adds counters, appends failed UIDs and never goes below zero', async () => {
      const job = await running();
      let p = await jobs.updateProgress(job.id, { set: { remaining: 10 } });
      assert.equal(p?.remaining, 10);
      p = await jobs.updateProgress(job.id, { add: { remaining: -1, completed: 1 } });
      assert.deepEqual([p?.remaining, p?.completed, p?.failed, p?.warning], [9, 1, 0, 0]);
      p = await jobs.updateProgress(job.id, { add: { remaining: -2, failed: 1, warning: 1 }, failedUids: ['1.2.3.1'] });
      p = await jobs.updateProgress(job.id, { add: { failed: 1 }, failedUids: ['1.2.3.2', '1.2.3.3'] });
      assert.deepEqual([p?.remaining, p?.completed, p?.failed, p?.warning], [7, 1, 2, 1]);
      assert.deepEqual(p?.failedUids, ['1.2.3.1', '1.2.3.2', '1.2.3.3']);
      p = await jobs.updateProgress(job.id, { add: { remaining: -100 }, set: { completed: 5 } });
      assert.equal(p?.remaining, 0);
      assert.equal(p?.completed, 5);
      assert.equal(p?.state, 'running');
      assert.deepEqual(await jobs.get(job.id), p);
    });

    it('updateProgress refuses a counter both set and added, and non-integer counts', async () => {
      const job = await running();
      await assert.rejects(jobs.updateProgress(job.id, { set: { completed: 1 }, add: { completed: 1 } }));
      await assert.rejects(jobs.updateProgress(job.id, { add: { completed: 0.5 } }));
      await assert.rejects(jobs.updateProgress(job.id, { set: { remaining: Number.NaN } }));
      const after = await jobs.get(job.id);
      assert.equal(after?.completed, 0);
    });

    it('concurrent progress reports are all counted (atomic updates)', async () => {
      const job = await running();
      await Promise.all(Array.from({ length: 25 }, (_, i) => jobs.updateProgress(job.id, { add: { completed: 1 }, failedUids: i % 5 === 0 ? [`9.9.${i}`] : [] })));
      const done = await jobs.get(job.id);
      assert.equal(done?.completed, 25);
      assert.deepEqual([...(done?.failedUids ?? [])].sort(), ['9.9.0', '9.9.10', '9.9.15', '9.9.20', '9.9.5']);
    });

    it('updateProgress of an unknown job is undefined', async () => {
      assert.equal(await jobs.updateProgress(randomUUID(), { add: { completed: 1 } }), undefined);
      assert.equal(await jobs.updateProgress('bad', { add: { completed: 1 } }), undefined);
    });

    it('finish records the state, error and last progress, and a finished job never changes', async () => {
      const job = await running();
      const at = new Date('2026-04-01T09:00:00.000Z');
      const done = await jobs.finish(job.id, { state: 'failed', error: 'association rejected', progress: { add: { failed: 3 }, failedUids: ['1.2'] } }, { at });
      assert.equal(done?.state, 'failed');
      assert.equal(done?.error, 'association rejected');
      assert.equal(done?.failed, 3);
      assert.deepEqual(done?.failedUids, ['1.2']);
      assert.deepEqual(done?.finishedAt, at);
      assert.deepEqual(done?.updatedAt, at);
      assert.deepEqual(await jobs.updateProgress(job.id, { add: { completed: 1 } }), done);
      assert.deepEqual(await jobs.finish(job.id, { state: 'completed' }), done);
      assert.equal(await jobs.markRunning(job.id), undefined);
      assert.deepEqual(await jobs.get(job.id), done);
      assert.equal(await jobs.finish(randomUUID(), { state: 'completed' }), undefined);
    });

    it('a pending job can be finished directly (e.g. failed before it started)', async () => {
      const job = await jobs.create({ kind: kind(), request: {} });
      const done = await jobs.finish(job.id, { state: 'completed' });
      assert.equal(done?.state, 'completed');
      assert.equal(done?.error, null);
      assert.ok(done?.finishedAt instanceof Date);
    });

    it('requestCancel flags a running job, which sees it on its next progress update', async () => {
      const job = await running();
      const result = await jobs.requestCancel(job.id);
      assert.equal(result.outcome, 'requested');
      assert.ok(result.outcome === 'requested');
      assert.equal(result.job.state, 'running');
      assert.equal(result.job.cancelRequested, true);
      assert.equal(result.job.finishedAt, null);
      const seen = await jobs.updateProgress(job.id, { add: { completed: 1 } });
      assert.equal(seen?.cancelRequested, true);
      assert.equal((await jobs.requestCancel(job.id)).outcome, 'requested');
      const done = await jobs.finish(job.id, { state: 'cancelled' });
      assert.equal(done?.state, 'cancelled');
      assert.equal(done?.completed, 1);
    });

    it('requestCancel cancels a pending job at once, which then never starts', async () => {
      const job = await jobs.create({ kind: kind(), request: {} });
      const result = await jobs.requestCancel(job.id);
      assert.equal(result.outcome, 'cancelled');
      assert.ok(result.outcome === 'cancelled');
      assert.equal(result.job.state, 'cancelled');
      assert.ok(result.job.finishedAt instanceof Date);
      assert.equal(await jobs.markRunning(job.id), undefined);
      assert.equal((await jobs.get(job.id))?.state, 'cancelled');
    });

    it('requestCancel of a finished job leaves it unchanged; of an unknown one says not-found', async () => {
      const job = await running();
      const done = await jobs.finish(job.id, { state: 'completed' });
      const result = await jobs.requestCancel(job.id);
      assert.equal(result.outcome, 'finished');
      assert.ok(result.outcome === 'finished');
      assert.deepEqual(result.job, done);
      assert.deepEqual(await jobs.requestCancel(randomUUID()), { outcome: 'not-found' });
      assert.deepEqual(await jobs.requestCancel('x'), { outcome: 'not-found' });
    });

    it('lists newest first with paging, total and filters by state and kind', async () => {
      const k = kind();
      const created: JobRecord[] = [];
      // Same timestamp for all: order must not depend on clock resolution.
      const at = new Date('2026-04-02T00:00:00.000Z');
      for (let i = 0; i < 5; i++) created.push(await jobs.create({ kind: k, request: { i }, at }));
      await jobs.markRunning(created[1]!.id);
      await jobs.markRunning(created[3]!.id);
      await jobs.finish(created[3]!.id, { state: 'completed' });
      const all = await jobs.list({ limit: 100, offset: 0, kind: k });
      assert.equal(all.total, 5);
      assert.deepEqual(all.items.map((j) => j.id), created.map((j) => j.id).reverse());
      const page = await jobs.list({ limit: 2, offset: 1, kind: k });
      assert.deepEqual(page.items.map((j) => j.id), [created[3]!.id, created[2]!.id]);
      assert.equal(page.total, 5);
      const pending = await jobs.list({ limit: 100, offset: 0, kind: k, states: ['pending'] });
      assert.deepEqual(pending.items.map((j) => j.id), [created[4]!.id, created[2]!.id, created[0]!.id]);
      assert.equal(pending.total, 3);
      const active = await jobs.list({ limit: 100, offset: 0, kind: k, states: ['running', 'completed'] });
      assert.deepEqual(active.items.map((j) => [j.id, j.state]), [[created[3]!.id, 'completed'], [created[1]!.id, 'running']]);
      assert.deepEqual(await jobs.list({ limit: 100, offset: 0, kind: k, states: [] }), { items: [], total: 0 });
      assert.deepEqual(await jobs.list({ limit: 100, offset: 0, kind: kind() }), { items: [], total: 0 });
      // Without a kind filter, the newest job of all is ours.
      const newest = await jobs.list({ limit: 1, offset: 0 });
      assert.equal(newest.items[0]?.id, created[4]!.id);
      assert.ok(newest.total >= 5);
    });

    if (options.peer) describe('across instances (a second store on the same database)', () => {
      it('a job created on one instance is readable, with its progress, from the other', async () => {
        const peer = fx.peer;
        assert.ok(peer, 'the fixture provides a second store');
        const job = await running(kind(), { from: 'A' });
        assert.deepEqual(await peer.get(job.id), job);
        const p = await jobs.updateProgress(job.id, { set: { remaining: 4 }, add: { completed: 2 }, failedUids: ['1.2.840.1'] });
        assert.deepEqual(await peer.get(job.id), p);
        const list = await peer.list({ limit: 10, offset: 0, kind: job.kind });
        assert.deepEqual(list.items.map((j) => j.id), [job.id]);
      });

      it('a cancel requested on the other instance is seen by the runner on its next progress update', async () => {
        const peer = fx.peer;
        assert.ok(peer, 'the fixture provides a second store');
        const job = await running();
        assert.equal((await peer.requestCancel(job.id)).outcome, 'requested');
        const seen = await jobs.updateProgress(job.id, { add: { completed: 1 } });
        assert.equal(seen?.cancelRequested, true);
        await jobs.finish(job.id, { state: 'cancelled' });
        const there = await peer.get(job.id);
        assert.equal(there?.state, 'cancelled');
        assert.equal(there?.completed, 1);
        assert.equal((await peer.requestCancel(job.id)).outcome, 'finished');
      });

      it('progress reports from both instances at once are all counted', async () => {
        const peer = fx.peer;
        assert.ok(peer, 'the fixture provides a second store');
        const job = await running();
        await Promise.all(
          Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? jobs : peer).updateProgress(job.id, { add: { completed: 1 } })),
        );
        assert.equal((await jobs.get(job.id))?.completed, 20);
      });
    });
  });
}
