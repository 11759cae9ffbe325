// A job whose error quotes a peer's text with control characters (a DIMSE Error Comment holding a
// NUL) still finishes on PostgreSQL, which refuses U+0000 in text: the error is stored with the
// control characters blanked, and the job does not stay 'running' until the stale sweep.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ANONYMOUS } from '../../src/archive/origin.js';
import { createJobService } from '../../src/archive/jobs.js';
import { createPostgresStores } from '../../src/storage/postgres/postgres-stores.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';

const ctx = { principal: ANONYMOUS, origin: { protocol: 'internal' as const } };

describe('job errors with control characters (PostgreSQL)', () => {
  let database: TestDatabase;
  let stores: ReturnType<typeof createPostgresStores>;
  before(async () => {
    database = await createTestDatabase();
    stores = createPostgresStores({ url: database.url, maxConnections: 2 });
    await stores.migrate();
  });
  after(async () => {
    await stores.close();
    await database.drop();
  });

  it('a runner error holding NUL and other control characters fails the job with them blanked', async () => {
    const svc = createJobService({ store: stores.jobs, progressIntervalMs: 0 });
    try {
      const job = await svc.startJob(ctx, 'move', {}, async () => {
        throw new Error('PEER answered C-MOVE with status 0xa900: bad\u0000value\u0001\nhere');
      });
      const done = await job.done;
      assert.equal(done.state, 'failed');
      assert.equal(done.error, 'PEER answered C-MOVE with status 0xa900: bad value  here');
      const stored = await stores.jobs.get(done.id);
      assert.equal(stored?.state, 'failed');
    } finally {
      await svc.close();
    }
  });
});
