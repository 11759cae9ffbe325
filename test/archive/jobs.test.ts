// The job service: runners run in-process, their progress and end state go to the JobStore, a
// cancel (local or from another instance) aborts the runner's signal, and shutdown interrupts.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { AccessPolicy } from '../../src/archive/access/policy.js';
import { isArchiveError } from '../../src/archive/errors.js';
import { composeProgress, createJobService, INTERRUPTED, type JobRunner } from '../../src/archive/jobs.js';
import { ANONYMOUS, type Principal } from '../../src/archive/origin.js';
import type { ProgressUpdate } from '../../src/storage/jobs.js';
import { createSqliteStores, type SqliteStores } from '../../src/storage/sqlite/sqlite-metadata-store.js';

const ctx = { principal: ANONYMOUS, origin: { protocol: 'internal' as const } };
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((_resolve, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}

describe('job service', () => {
  let dir: string;
  let a: SqliteStores;
  let b: SqliteStores;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pacsnode-jobsvc-'));
    a = createSqliteStores({ path: join(dir, 'pacs.db') });
    await a.migrate();
    b = createSqliteStores({ path: join(dir, 'pacs.db') });
    await b.migrate();
  });
  after(async () => {
    await a.close();
    await b.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('a runner that reports progress sees a cancel from another instance on its next report, and the job ends cancelled', async () => {
    // No polling: only the progress write can reveal the cancel.
    const svcA = createJobService({ store: a.jobs, progressIntervalMs: 0, cancelPollMs: 3_600_000 });
    const svcB = createJobService({ store: b.jobs });
    let reports = 0;
    let sawAbortAfter = -1;
    let cancelledAt = -1;
    const runner: JobRunner = async ({ signal, progress }) => {
      await progress({ set: { remaining: 1000 } });
      for (let i = 0; i < 1000; i++) {
        if (signal.aborted) {
          sawAbortAfter = reports;
          return;
        }
        await progress({ add: { completed: 1, remaining: -1 } });
        reports++;
        if (reports === 3) {
          await svcB.cancel(ctx, jobId);
          cancelledAt = reports;
        }
        await sleep(1);
      }
    };
    let jobId = '';
    const started = await svcA.startJob(ctx, 'store', {}, async (run) => {
      jobId = run.jobId;
      await runner(run);
    });
    const final = await started.done;
    assert.equal(final.state, 'cancelled');
    assert.equal(cancelledAt, 3);
    assert.equal(sawAbortAfter, 4, 'stopped right after the next progress report');
    assert.equal(final.completed, 4);
    assert.equal(final.remaining, 996);
    assert.deepEqual(await b.jobs.get(jobId), final);
    await svcA.close();
    await svcB.close();
  });

  it('a runner that reports nothing sees a cancel from another instance through the poll', async () => {
    const svcA = createJobService({ store: a.jobs, cancelPollMs: 20 });
    const svcB = createJobService({ store: b.jobs });
    const started = await svcA.startJob(ctx, 'move', {}, ({ signal }) => aborted(signal));
    const flagged = await svcB.cancel(ctx, started.job.id);
    assert.equal(flagged.state, 'running');
    assert.equal(flagged.cancelRequested, true);
    const final = await started.done;
    assert.equal(final.state, 'cancelled');
    assert.equal(final.error, null);
    await svcA.close();
  });

  it('a cancel on the same instance aborts the signal at once', async () => {
    const svc = createJobService({ store: a.jobs, cancelPollMs: 3_600_000 });
    const started = await svc.startJob(ctx, 'move', {}, ({ signal }) => aborted(signal));
    await svc.cancel(ctx, started.job.id);
    assert.equal((await started.done).state, 'cancelled');
    await assert.rejects(svc.cancel(ctx, started.job.id), (e: unknown) => isArchiveError(e) && e.code === 'CONFLICT');
    await svc.close();
  });

  it('progress is written at most every progressIntervalMs and always at the end', async () => {
    const svc = createJobService({ store: a.jobs, progressIntervalMs: 3_600_000 });
    let midway: number | undefined;
    const started = await svc.startJob(ctx, 'store', {}, async ({ jobId, progress }) => {
      await progress({ set: { remaining: 5 } });
      for (let i = 0; i < 5; i++) await progress({ add: { completed: 1, remaining: -1 }, ...(i === 2 ? { failedUids: ['1.2.3'] } : {}) });
      midway = (await b.jobs.get(jobId))?.completed;
    });
    const final = await started.done;
    assert.equal(midway, 0, 'nothing written before the interval');
    assert.deepEqual([final.state, final.remaining, final.completed], ['completed', 0, 5]);
    assert.deepEqual(final.failedUids, ['1.2.3']);
    await svc.close();
  });

  it('the first report is written at once; a held-back report is written when the runner goes quiet', async () => {
    const svc = createJobService({ store: a.jobs, progressIntervalMs: 50, cancelPollMs: 20 });
    let seenFirst: number | undefined;
    let seenLater: number | undefined;
    const started = await svc.startJob(ctx, 'store', {}, async ({ jobId, progress }) => {
      await progress({ set: { remaining: 2 } });
      seenFirst = (await b.jobs.get(jobId))?.remaining;
      await progress({ add: { completed: 1, remaining: -1 } });
      const end = Date.now() + 5000;
      while (Date.now() < end) {
        seenLater = (await b.jobs.get(jobId))?.completed;
        if (seenLater === 1) break;
        await sleep(10);
      }
    });
    await started.done;
    assert.equal(seenFirst, 2);
    assert.equal(seenLater, 1);
    await svc.close();
  });

  it('a runner error fails the job with its message; a bad progress report fails it with INVALID_PARAMETER', async () => {
    const svc = createJobService({ store: a.jobs, progressIntervalMs: 0 });
    const thrown = await svc.startJob(ctx, 'get', {}, async () => {
      throw new Error('peer aborted the association');
    });
    const f1 = await thrown.done;
    assert.deepEqual([f1.state, f1.error], ['failed', 'peer aborted the association']);
    const nonError = await svc.startJob(ctx, 'get', {}, () => Promise.reject('plain string'));
    assert.equal((await nonError.done).error, 'plain string');
    const syncThrow = await svc.startJob(ctx, 'get', {}, (() => {
      throw new Error('sync');
    }) as JobRunner);
    assert.equal((await syncThrow.done).error, 'sync');
    const bad = await svc.startJob(ctx, 'get', {}, async ({ progress }) => {
      await progress({ set: { completed: -1 } });
    });
    const f2 = await bad.done;
    assert.equal(f2.state, 'failed');
    assert.match(String(f2.error), /non-negative integer/);
    await svc.close();
  });

  it('close() interrupts running jobs: a runner that stops is failed "interrupted"; one that ignores the signal is marked so after the timeout', async () => {
    const svc = createJobService({ store: a.jobs, cancelPollMs: 3_600_000 });
    const polite = await svc.startJob(ctx, 'move', {}, ({ signal }) => aborted(signal));
    let release: () => void = () => {};
    const stubborn = await svc.startJob(ctx, 'move', {}, () => new Promise<void>((r) => (release = r)));
    assert.equal(svc.running, 2);
    await svc.close({ timeoutMs: 100 });
    const p = await polite.done;
    assert.deepEqual([p.state, p.error], ['failed', INTERRUPTED]);
    const s = await a.jobs.get(stubborn.job.id);
    assert.deepEqual([s?.state, s?.error], ['failed', INTERRUPTED]);
    // The late runner's own end changes nothing.
    release();
    const late = await stubborn.done;
    assert.equal(late.state, 'failed');
    await assert.rejects(svc.startJob(ctx, 'move', {}, async () => {}), (e: unknown) => isArchiveError(e) && e.code === 'INTERNAL');
  });

  it('validates kind, state filters and authorizes', async () => {
    const svc = createJobService({ store: a.jobs });
    for (const kind of ['', 'has space', 'x'.repeat(65), '-lead']) {
      await assert.rejects(svc.startJob(ctx, kind, {}, async () => {}), (e: unknown) => isArchiveError(e) && e.code === 'INVALID_PARAMETER' && e.details?.['field'] === 'kind');
    }
    for (const request of [null, [], 'x']) {
      await assert.rejects(svc.startJob(ctx, 'move', request as unknown as Record<string, never>, async () => {}), (e: unknown) => isArchiveError(e) && e.details?.['field'] === 'request');
    }
    await assert.rejects(svc.list(ctx, { state: 'finished' }), (e: unknown) => isArchiveError(e) && e.details?.['field'] === 'state');
    const user: Principal = { kind: 'user', id: 'u1', roles: ['viewer'] };
    const readOnly: AccessPolicy = { allows: (_c, action) => action === 'read' };
    const locked = createJobService({ store: a.jobs, policy: readOnly });
    await assert.rejects(locked.startJob({ ...ctx, principal: user }, 'move', {}, async () => {}), (e: unknown) => isArchiveError(e) && e.code === 'FORBIDDEN');
    await assert.rejects(locked.startJob(ctx, 'move', {}, async () => {}), (e: unknown) => isArchiveError(e) && e.code === 'UNAUTHORIZED');
    const job = await a.jobs.create({ kind: 'move', request: {} });
    await assert.rejects(locked.cancel({ ...ctx, principal: user }, job.id), (e: unknown) => isArchiveError(e) && e.code === 'FORBIDDEN');
    assert.equal((await locked.get(ctx, job.id)).id, job.id);
    // A runner may be started under another action (e.g. 'read' for exporting a study).
    const started = await locked.startJob({ ...ctx, principal: user }, 'store', {}, async () => {}, { action: 'read', studyUid: '1.2.3' });
    assert.equal((await started.done).createdBy, 'u1');
    await svc.close();
    await locked.close();
  });
});

describe('composeProgress', () => {
  const apply = (c: Record<string, number>, u: ProgressUpdate): Record<string, number> => {
    const out = { ...c };
    for (const [k, v] of Object.entries(u.set ?? {})) out[k] = v as number;
    for (const [k, v] of Object.entries(u.add ?? {})) out[k] = Math.max(0, (out[k] ?? 0) + (v as number));
    return out;
  };
  it('equals applying the two reports in order', () => {
    const start: Record<string, number> = { remaining: 10, completed: 2, failed: 0, warning: 0 };
    const reports: ProgressUpdate[] = [
      { add: { completed: 1, remaining: -1 } },
      { set: { remaining: 7 } },
      { add: { remaining: -2, failed: 1 }, failedUids: ['a'] },
      { set: { completed: 9 }, add: { warning: 2 }, failedUids: ['b'] },
      { add: { completed: 1 } },
    ];
    let sequential = start;
    let composed: ProgressUpdate = {};
    for (const r of reports) {
      sequential = apply(sequential, r);
      composed = composeProgress(composed, r);
    }
    assert.deepEqual(apply(start, composed), sequential);
    assert.deepEqual(composed.failedUids, ['a', 'b']);
  });
});
