// PostgreSQL migration 0003 (job heartbeats, ADR 0015) on a database at version 2: existing jobs
// start from their updated_at, a row without a heartbeat (written by an older pacsnode during a
// rolling upgrade) is judged by updated_at, and a job left running is swept.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { STALE_JOB_ERROR_PREFIX } from '../../src/storage/jobs.js';
import { POSTGRES_MIGRATIONS } from '../../src/storage/postgres/migrations/index.js';
import { createPostgresStores } from '../../src/storage/postgres/postgres-stores.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';

async function query<R extends pg.QueryResultRow>(url: string, text: string): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(text)).rows;
  } finally {
    await client.end();
  }
}

describe('PostgreSQL migration 0003 (job heartbeats)', () => {
  let database: TestDatabase | undefined;
  after(async () => {
    await database?.drop();
  });

  it('adds jobs.heartbeat_at to a database at version 2: existing jobs start from updated_at, and a job left running is swept', async () => {
    database = await createTestDatabase();
    const { url } = database;
    const v2 = createPostgresStores({ url, maxConnections: 2, migrations: POSTGRES_MIGRATIONS.filter((m) => m.version <= 2) });
    await v2.migrate();
    await v2.close();
    const t0 = '2026-01-01T00:00:00.000Z';
    const t1 = '2026-01-01T00:05:00.123Z';
    await query(
      url,
      `INSERT INTO jobs (id, kind, state, request, created_at, started_at, finished_at, updated_at) VALUES
        ('00000000-0000-4000-8000-000000000001', 'move', 'running', '{}', '${t0}', '${t0}', NULL, '${t1}'),
        ('00000000-0000-4000-8000-000000000002', 'store', 'completed', '{}', '${t0}', '${t0}', '${t1}', '${t1}')`,
    );
    const stores = createPostgresStores({ url, maxConnections: 2 });
    try {
      await stores.migrate();
      const versions = await query<{ version: number; name: string }>(url, 'SELECT version, name FROM schema_migrations ORDER BY version');
      assert.deepEqual(versions.map((r) => [r.version, r.name]), POSTGRES_MIGRATIONS.map((m) => [m.version, m.name]));
      const column = await query<{ data_type: string; is_nullable: string }>(
        url,
        "SELECT data_type, is_nullable FROM information_schema.columns WHERE table_name = 'jobs' AND column_name = 'heartbeat_at'",
      );
      assert.deepEqual(column, [{ data_type: 'timestamp with time zone', is_nullable: 'YES' }]);
      const running = await stores.jobs.get('00000000-0000-4000-8000-000000000001');
      assert.deepEqual([running?.state, running?.heartbeatAt], ['running', new Date(t1)]);
      const done = await stores.jobs.get('00000000-0000-4000-8000-000000000002');
      assert.deepEqual(done?.heartbeatAt, new Date(t1));
      await query(url, `INSERT INTO jobs (id, kind, state, request, created_at, updated_at) VALUES ('00000000-0000-4000-8000-000000000003', 'get', 'pending', '{}', '${t0}', '${t0}')`);
      assert.equal((await stores.jobs.get('00000000-0000-4000-8000-000000000003'))?.heartbeatAt, null);

      const swept = await stores.jobs.sweepStale({ olderThan: new Date('2026-01-02T00:00:00.000Z') });
      assert.deepEqual(swept.map((j) => [j.id, j.state, j.error]).sort(), [
        ['00000000-0000-4000-8000-000000000001', 'failed', `${STALE_JOB_ERROR_PREFIX}${t1})`],
        ['00000000-0000-4000-8000-000000000003', 'failed', `${STALE_JOB_ERROR_PREFIX}${t0})`],
      ]);
      assert.deepEqual(await stores.jobs.get('00000000-0000-4000-8000-000000000002'), done);
      await stores.migrate();
    } finally {
      await stores.close();
    }
  });
});
