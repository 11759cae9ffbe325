import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { STALE_JOB_ERROR_PREFIX, type JobRecord, type JobStore, type JsonObject } from '../../src/storage/jobs.js';

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

/**
 * Heartbeat tests run in 2001 (and each in its own hour), long before any other test's job, so a
 * sweep only ever finds the rows of the test that made them.
 */
let hour = 0;
function clock(): (seconds: number) => Date {
  const base = Date.UTC(2001, 0, 1) + 3_600_000 * hour++;
  return (seconds) => new Date(base + seconds * 1000);
}

/** The jobs of kind `k` in `records`, by id (a sweep also fails other tests' leftovers). */
const mine = (records: JobRecord[], k: string): JobRecord[] => records.filter((j) => j.kind === k).sort((x, y) => x.id.localeCompare(y.id));

const staleError = (lastSeen: Date): string => `${STALE_JOB_ERROR_PREFIX}${lastSeen.toISOString()})`;

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
        heartbeatAt: at,
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

    describe('heartbeats and the sweep of stale jobs', () => {
      it('create, markRunning and progress set heartbeatAt; heartbeat refreshes only heartbeatAt and returns the job with its cancel flag', async () => {
        const t = clock();
        const job = await jobs.create({ kind: kind(), request: {}, at: t(0) });
        assert.deepEqual(job.heartbeatAt, t(0));
        const started = await jobs.markRunning(job.id, { at: t(1) });
        assert.deepEqual(started?.heartbeatAt, t(1));
        const p = await jobs.updateProgress(job.id, { add: { completed: 1 } }, { at: t(2) });
        assert.deepEqual([p?.heartbeatAt, p?.updatedAt], [t(2), t(2)]);
        const beat = await jobs.heartbeat(job.id, { at: t(12) });
        assert.deepEqual(beat, { ...p, heartbeatAt: t(12) }, 'only heartbeatAt changes');
        assert.deepEqual(await jobs.get(job.id), beat);
        // A cancel from elsewhere is not a sign of life, and the runner reads it from its next beat.
        const cancel = await jobs.requestCancel(job.id, { at: t(13) });
        assert.ok(cancel.outcome === 'requested');
        assert.deepEqual(cancel.job.heartbeatAt, t(12));
        const seen = await jobs.heartbeat(job.id, { at: t(22) });
        assert.equal(seen?.cancelRequested, true);
        assert.deepEqual([seen?.heartbeatAt, seen?.updatedAt, seen?.state], [t(22), t(13), 'running']);
      });

      it('a heartbeat never revives a finished job; of an unknown or malformed id it is undefined', async () => {
        const t = clock();
        const job = await running();
        const done = await jobs.finish(job.id, { state: 'completed' }, { at: t(0) });
        assert.deepEqual(await jobs.heartbeat(job.id, { at: t(10) }), done);
        assert.deepEqual(await jobs.get(job.id), done);
        assert.equal(await jobs.heartbeat(randomUUID()), undefined);
        assert.equal(await jobs.heartbeat('not-a-uuid'), undefined);
      });

      it('sweepStale fails stale running and pending jobs with the time of their last heartbeat, and leaves fresh and finished ones alone', async () => {
        const t = clock();
        const k = kind();
        const stale = await jobs.create({ kind: k, request: { n: 'stale' }, at: t(0) });
        await jobs.markRunning(stale.id, { at: t(1) });
        await jobs.updateProgress(stale.id, { set: { remaining: 5 }, add: { completed: 2 }, failedUids: ['1.2.3'] }, { at: t(5) });
        const stalePending = await jobs.create({ kind: k, request: { n: 'pending' }, at: t(2) });
        const fresh = await jobs.create({ kind: k, request: { n: 'fresh' }, at: t(0) });
        await jobs.markRunning(fresh.id, { at: t(1) });
        await jobs.heartbeat(fresh.id, { at: t(50) });
        const finished = await jobs.create({ kind: k, request: {}, at: t(0) });
        const finishedRecord = await jobs.finish(finished.id, { state: 'completed' }, { at: t(1) });

        // Cutoff at t(40): a heartbeat exactly at the cutoff is not stale.
        const boundary = await jobs.create({ kind: k, request: { n: 'boundary' }, at: t(40) });
        const swept = mine(await jobs.sweepStale({ olderThan: t(40), at: t(60) }), k);
        assert.deepEqual(swept.map((j) => j.id).sort(), [stale.id, stalePending.id].sort());

        const s = await jobs.get(stale.id);
        assert.deepEqual(swept.find((j) => j.id === stale.id), s);
        assert.equal(s?.state, 'failed');
        assert.equal(s?.error, staleError(t(5)));
        assert.deepEqual([s?.finishedAt, s?.updatedAt, s?.heartbeatAt], [t(60), t(60), t(5)]);
        assert.deepEqual([s?.remaining, s?.completed, s?.failedUids], [5, 2, ['1.2.3']], 'progress kept');
        const sp = await jobs.get(stalePending.id);
        assert.deepEqual([sp?.state, sp?.error], ['failed', staleError(t(2))]);

        assert.equal((await jobs.get(fresh.id))?.state, 'running');
        assert.equal((await jobs.get(boundary.id))?.state, 'pending');
        assert.deepEqual(await jobs.get(finished.id), finishedRecord);
        // A swept job is finished: it never changes again.
        assert.deepEqual(await jobs.updateProgress(stale.id, { add: { completed: 1 } }), s);
        assert.deepEqual(await jobs.finish(stale.id, { state: 'cancelled' }), s);
        assert.equal(await jobs.markRunning(stalePending.id), undefined);
        assert.equal((await jobs.requestCancel(stale.id)).outcome, 'finished');
      });

      it('sweepStale is idempotent: a second sweep finds nothing more', async () => {
        const t = clock();
        const k = kind();
        for (let i = 0; i < 3; i++) await running(k).then((j) => jobs.heartbeat(j.id, { at: t(i) }));
        assert.equal(mine(await jobs.sweepStale({ olderThan: t(100), at: t(101) }), k).length, 3);
        assert.deepEqual(mine(await jobs.sweepStale({ olderThan: t(100), at: t(102) }), k), []);
        const again = mine(await jobs.sweepStale({ olderThan: t(200), at: t(201) }), k);
        assert.deepEqual(again, []);
        const list = await jobs.list({ limit: 10, offset: 0, kind: k });
        assert.deepEqual(list.items.map((j) => [j.state, j.finishedAt]), [['failed', t(101)], ['failed', t(101)], ['failed', t(101)]]);
      });

      it('a heartbeat written before the sweep keeps the job alive; exclude spares the jobs the caller runs', async () => {
        const t = clock();
        const k = kind();
        const a = await running(k);
        const b = await running(k);
        const c = await running(k);
        for (const j of [a, b, c]) await jobs.heartbeat(j.id, { at: t(0) });
        await jobs.heartbeat(a.id, { at: t(35) });
        const swept = mine(await jobs.sweepStale({ olderThan: t(30), at: t(36), exclude: [b.id.toUpperCase()] }), k);
        assert.deepEqual(swept.map((j) => j.id), [c.id]);
        assert.equal((await jobs.get(a.id))?.state, 'running');
        assert.equal((await jobs.get(b.id))?.state, 'running');
      });

      it('two sweeps at once fail each stale job once', async () => {
        const t = clock();
        const k = kind();
        const ids: string[] = [];
        for (let i = 0; i < 20; i++) {
          const j = await running(k);
          await jobs.heartbeat(j.id, { at: t(i) });
          ids.push(j.id);
        }
        const [x, y] = await Promise.all([jobs.sweepStale({ olderThan: t(100), at: t(101) }), jobs.sweepStale({ olderThan: t(100), at: t(102) })]);
        const all = [...mine(x, k), ...mine(y, k)].map((j) => j.id).sort();
        assert.deepEqual(all, [...ids].sort(), 'every stale job failed by exactly one sweep');
      });
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

      it('two instances sweeping at once fail each stale job once, as counted by the rows they changed', async () => {
        const peer = fx.peer;
        assert.ok(peer, 'the fixture provides a second store');
        const t = clock();
        const k = kind();
        const ids: string[] = [];
        for (let i = 0; i < 30; i++) {
          const j = await running(k);
          await jobs.heartbeat(j.id, { at: t(i) });
          ids.push(j.id);
        }
        for (let round = 0; round < 3; round++) {
          const sweeps: JobRecord[][] = await Promise.all([jobs, peer, jobs, peer].map((s, n) => s.sweepStale({ olderThan: t(100), at: t(200 + n) })));
          const counts: number[] = sweeps.map((r) => mine(r, k).length);
          assert.equal(counts.reduce((m, n) => m + n, 0), round === 0 ? 30 : 0, `round ${round}: ${counts.join(', ')}`);
          if (round === 0) {
            assert.deepEqual(sweeps.flatMap((r) => mine(r, k).map((j) => j.id)).sort(), [...ids].sort());
            // Each job's row says which sweep failed it.
            for (const [n, r] of sweeps.entries()) for (const j of mine(r, k)) assert.deepEqual((await peer.get(j.id))?.finishedAt, t(200 + n));
          }
        }
      });

      it('a heartbeat racing a sweep from the other instance: either the job is failed or it is alive, never both', async () => {
        const peer = fx.peer;
        assert.ok(peer, 'the fixture provides a second store');
        const t = clock();
        const k = kind();
        for (let i = 0; i < 10; i++) {
          const j = await running(k);
          await jobs.heartbeat(j.id, { at: t(0) });
          const [swept, beat]: [JobRecord[], JobRecord | undefined] = await Promise.all([peer.sweepStale({ olderThan: t(30), at: t(40) }), jobs.heartbeat(j.id, { at: t(39) })]);
          const final = await jobs.get(j.id);
          if (mine(swept, k).some((s) => s.id === j.id)) {
            assert.deepEqual([final?.state, final?.error, final?.heartbeatAt], ['failed', staleError(t(0)), t(0)]);
            assert.equal(beat?.state, 'failed', 'the late heartbeat did not revive it');
          } else {
            assert.deepEqual([final?.state, final?.heartbeatAt], ['running', t(39)]);
            assert.deepEqual(beat, final);
          }
        }
      });
    });
  });
}
