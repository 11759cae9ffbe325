// PostgreSQL migrations (ARCHITECTURE rule 12): applied once, recorded with their checksum, a second
// run (also from another pool, as another process) is a no-op, and two processes migrating at once
// apply each migration once under the advisory lock.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { isStorageError } from '../../src/storage/errors.js';
import { POSTGRES_MIGRATIONS } from '../../src/storage/postgres/migrations/index.js';
import { createPostgresStores } from '../../src/storage/postgres/postgres-stores.js';
import { migrationChecksum } from '../../src/storage/sql/migrator.js';
import type { TestDatabase } from '../helpers/postgres.js';

async function query<R extends pg.QueryResultRow>(url: string, text: string): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(text)).rows;
  } finally {
    await client.end();
  }
}

interface MigrationRow {
  version: number;
  name: string;
  checksum: string;
  applied_at: Date;
}
const migrationRows = (url: string): Promise<MigrationRow[]> => query<MigrationRow>(url, 'SELECT * FROM schema_migrations ORDER BY version');
const shipped = POSTGRES_MIGRATIONS.map((m) => [m.version, m.name, migrationChecksum(m)]);

/**
 * The migration checks, on the server that `createDatabase` makes fresh databases on: run by
 * postgres-migrations.test.ts on the system PostgreSQL and by postgres16.test.ts on PostgreSQL 16.
 */
export function postgresMigrationChecks(name: string, createDatabase: () => Promise<TestDatabase>): void {
  describe(name, () => {
    const databases: TestDatabase[] = [];
    async function fresh(): Promise<TestDatabase> {
      const d = await createDatabase();
      databases.push(d);
      return d;
    }
    after(async () => {
      for (const d of databases) await d.drop();
    });

    it('apply once, record version, name and checksum, and a second run (also from a new pool) is a no-op', async () => {
      const { url } = await fresh();
      const stores = createPostgresStores({ url, maxConnections: 2 });
      await stores.migrate();
      const first = await migrationRows(url);
      assert.deepEqual(first.map((r) => [r.version, r.name, r.checksum]), shipped);
      await stores.migrate();
      await stores.close();
      const again = createPostgresStores({ url, maxConnections: 2 });
      await again.migrate();
      await again.close();
      assert.deepEqual(await migrationRows(url), first);
    });

    it('two processes migrating at once apply each migration once', async () => {
      const { url } = await fresh();
      const pools = Array.from({ length: 3 }, () => createPostgresStores({ url, maxConnections: 2 }));
      await Promise.all(pools.map((s) => s.migrate()));
      await Promise.all(pools.map((s) => s.close()));
      assert.deepEqual((await migrationRows(url)).map((r) => [r.version, r.name, r.checksum]), shipped);
    });

    it('refuses a released migration whose SQL changed, and a database migrated by a newer version', async () => {
      const { url } = await fresh();
      const stores = createPostgresStores({ url, maxConnections: 2 });
      await stores.migrate();
      await stores.close();
      const edited = POSTGRES_MIGRATIONS.map((m) => (m.version === 1 ? { ...m, sql: `${m.sql}\n-- edited` } : m));
      const tampered = createPostgresStores({ url, maxConnections: 2, migrations: edited });
      await assert.rejects(tampered.migrate(), (e: unknown) => isStorageError(e) && /changed after it was applied/.test(e.message));
      await tampered.close();
      const newer = createPostgresStores({ url, maxConnections: 2, migrations: [...POSTGRES_MIGRATIONS, { version: 999, name: 'future', sql: 'CREATE TABLE future_thing (id integer);' }] });
      await newer.migrate();
      await newer.close();
      const older = createPostgresStores({ url, maxConnections: 2 });
      await assert.rejects(older.migrate(), (e: unknown) => isStorageError(e) && /unknown to this version/.test(e.message));
      await older.close();
    });

    it('a failing migration leaves no trace and applies once fixed', async () => {
      const { url } = await fresh();
      const next = Math.max(...POSTGRES_MIGRATIONS.map((m) => m.version)) + 1;
      const broken = createPostgresStores({ url, maxConnections: 2, migrations: [...POSTGRES_MIGRATIONS, { version: next, name: 'next', sql: 'CREATE TABLE ok_part (id integer); SELECT nonsense FROM nowhere;' }] });
      await assert.rejects(broken.migrate());
      await broken.close();
      assert.deepEqual((await migrationRows(url)).map((r) => r.version), POSTGRES_MIGRATIONS.map((m) => m.version));
      assert.deepEqual(await query(url, "SELECT 1 FROM pg_class WHERE relname = 'ok_part'"), []);
      const fixed = createPostgresStores({ url, maxConnections: 2, migrations: [...POSTGRES_MIGRATIONS, { version: next, name: 'next', sql: 'CREATE TABLE ok_part (id integer);' }] });
      await fixed.migrate();
      await fixed.close();
      assert.deepEqual((await migrationRows(url)).map((r) => r.version), [...POSTGRES_MIGRATIONS.map((m) => m.version), next]);
    });

    describe('the schema', () => {
      let url: string;
      before(async () => {
        url = (await fresh()).url;
        const stores = createPostgresStores({ url, maxConnections: 2 });
        await stores.migrate();
        await stores.close();
      });

      it('has pg_trgm GIN indexes on the framed normalised names and jsonb_path_ops GIN indexes on every header', async () => {
        const rows = await query<{ indexname: string; indexdef: string }>(url, "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'");
        const def = (name: string): string => rows.find((r) => r.indexname === name)?.indexdef ?? '';
        for (const name of ['patients_patient_name_norm_trgm', 'studies_referring_physician_norm_trgm']) {
          assert.match(def(name), /USING gin \(+'='::text \|\| \w+_norm\) \|\| '='::text\)+ gin_trgm_ops\)/, name);
          // 0004: finer statistics, so ANALYZE's sample cannot make a short name pattern look common.
          const [target] = await query<{ attstattarget: number }>(url, `SELECT attstattarget FROM pg_attribute WHERE attrelid = '${name}'::regclass AND attnum = 1`);
          assert.equal(Number(target?.attstattarget), 1000, name);
        }
        // 0005: a finer StudyDate histogram, so a month's range is estimated close to its size.
        const [dateTarget] = await query<{ attstattarget: number }>(url, "SELECT attstattarget FROM pg_attribute WHERE attrelid = 'studies'::regclass AND attname = 'study_date'");
        assert.equal(Number(dateTarget?.attstattarget), 1000);
        for (const table of ['patients', 'studies', 'series', 'instances']) {
          assert.match(def(`${table}_header`), /USING gin \(header jsonb_path_ops\)/, table);
        }
        const types = await query<{ table_name: string; column_name: string; data_type: string }>(
          url,
          "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE column_name = 'header' AND table_schema = 'public'",
        );
        assert.deepEqual(new Set(types.map((t) => t.data_type)), new Set(['jsonb']));
      });

      it('refuses invalid node and job rows (CHECK constraints back the validation)', async () => {
        const insertNode = (ae: string, host: string, port: number): Promise<unknown> =>
          query(url, `INSERT INTO dicom_nodes (ae_title, host, port, created_at, updated_at) VALUES (${pg.escapeLiteral(ae)}, ${pg.escapeLiteral(host)}, ${port}, now(), now())`);
        await assert.rejects(insertNode('', 'h', 104), /check constraint/);
        await assert.rejects(insertNode('SEVENTEEN_CHARS_X', 'h', 104), /check constraint/);
        await assert.rejects(insertNode('AE', '', 104), /check constraint/);
        await assert.rejects(insertNode('AE', 'h', 0), /check constraint/);
        await assert.rejects(insertNode('AE', 'h', 65536), /check constraint/);
        await insertNode('AE', 'h', 65535);
        assert.deepEqual(await query(url, 'SELECT allow_store, allow_find, allow_retrieve, move_destination FROM dicom_nodes'), [
          { allow_store: true, allow_find: true, allow_retrieve: true, move_destination: true },
        ]);
        await assert.rejects(
          query(url, "INSERT INTO jobs (id, kind, state, request, created_at, updated_at) VALUES (gen_random_uuid(), 'k', 'done', '{}', now(), now())"),
          /check constraint/,
        );
      });
    });
  });
}
