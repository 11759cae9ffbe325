import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { isStorageError } from '../../src/storage/errors.js';
import { STALE_JOB_ERROR_PREFIX } from '../../src/storage/jobs.js';
import { migrationChecksum } from '../../src/storage/sql/migrator.js';
import { SQLITE_MIGRATIONS } from '../../src/storage/sqlite/migrations/index.js';
import { createSqliteMetadataStore, createSqliteStores } from '../../src/storage/sqlite/sqlite-metadata-store.js';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'pacsnode-migrate-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

interface MigrationRow {
  version: number;
  name: string;
  checksum: string;
  applied_at: string;
}

function rows(path: string): MigrationRow[] {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare('SELECT * FROM schema_migrations ORDER BY version').all() as MigrationRow[];
  } finally {
    db.close();
  }
}

describe('SQLite migrations', () => {
  it('apply once, record version, name and checksum, and a second run (also from a new process) is a no-op', async () => {
    await withDir(async (dir) => {
      const path = join(dir, 'pacs.db');
      const store = createSqliteMetadataStore({ path });
      await store.migrate();
      const first = rows(path);
      assert.deepEqual(
        first.map((r) => [r.version, r.name, r.checksum]),
        SQLITE_MIGRATIONS.map((m) => [m.version, m.name, migrationChecksum(m)]),
      );
      await store.migrate();
      await store.close();
      const again = createSqliteMetadataStore({ path });
      await again.migrate();
      await again.close();
      assert.deepEqual(rows(path), first);
    });
  });

  it('refuses a released migration whose SQL changed', async () => {
    await withDir(async (dir) => {
      const path = join(dir, 'pacs.db');
      const store = createSqliteMetadataStore({ path });
      await store.migrate();
      await store.close();
      const edited = SQLITE_MIGRATIONS.map((m) => (m.version === 1 ? { ...m, sql: `${m.sql}\n-- edited` } : m));
      const tampered = createSqliteMetadataStore({ path, migrations: edited });
      await assert.rejects(tampered.migrate(), (e: unknown) => isStorageError(e) && /changed after it was applied/.test(e.message));
      await tampered.close();
    });
  });

  it('refuses a database migrated by a newer version', async () => {
    await withDir(async (dir) => {
      const path = join(dir, 'pacs.db');
      const newer = [...SQLITE_MIGRATIONS, { version: 999, name: 'future', sql: 'CREATE TABLE future_thing (id INTEGER);' }];
      const store = createSqliteMetadataStore({ path, migrations: newer });
      await store.migrate();
      await store.close();
      const older = createSqliteMetadataStore({ path });
      await assert.rejects(older.migrate(), (e: unknown) => isStorageError(e) && /unknown to this version/.test(e.message));
      await older.close();
    });
  });

  it('a failing run leaves the database as it was, and a fixed migration applies later', async () => {
    await withDir(async (dir) => {
      const path = join(dir, 'pacs.db');
      const first = createSqliteMetadataStore({ path });
      await first.migrate();
      await first.close();
      const shipped = SQLITE_MIGRATIONS.map((m) => m.version);
      const next = Math.max(...shipped) + 1;
      const broken = [...SQLITE_MIGRATIONS, { version: next, name: 'next', sql: 'CREATE TABLE ok_part (id INTEGER); SELECT nonsense FROM nowhere;' }];
      const store = createSqliteMetadataStore({ path, migrations: broken });
      await assert.rejects(store.migrate());
      await store.close();
      assert.deepEqual(rows(path).map((r) => r.version), shipped);
      const db = new Database(path, { readonly: true });
      const t = db.prepare("SELECT name FROM sqlite_master WHERE name = 'ok_part'").get();
      db.close();
      assert.equal(t, undefined);
      const fixed = [...SQLITE_MIGRATIONS, { version: next, name: 'next', sql: 'CREATE TABLE ok_part (id INTEGER);' }];
      const retry = createSqliteMetadataStore({ path, migrations: fixed });
      await retry.migrate();
      await retry.close();
      assert.deepEqual(rows(path).map((r) => r.version), [...shipped, next]);
    });
  });

  it('0002 adds dicom_nodes and jobs to a database at version 1, keeping its data; a second run is a no-op', async () => {
    await withDir(async (dir) => {
      const path = join(dir, 'pacs.db');
      const v1 = SQLITE_MIGRATIONS.filter((m) => m.version === 1);
      const old = createSqliteMetadataStore({ path, migrations: v1 });
      await old.migrate();
      await old.close();
      const seed = new Database(path);
      seed.prepare("INSERT INTO changes (kind, level, study_uid, at) VALUES ('stored', 'study', '1.2.3', '2026-01-01T00:00:00.000Z')").run();
      seed.close();

      const stores = createSqliteStores({ path });
      await stores.migrate();
      await stores.migrate();
      const { node } = await stores.nodes.upsert({ aeTitle: 'MIGRATED', host: 'h', port: 104, description: null, allowStore: true, allowFind: true, allowRetrieve: true, moveDestination: true });
      const job = await stores.jobs.create({ kind: 'store', request: { n: 1 } });
      await stores.close();

      const again = createSqliteStores({ path });
      await again.migrate();
      assert.deepEqual(await again.nodes.get('MIGRATED'), node);
      assert.deepEqual(await again.jobs.get(job.id), job);
      await again.close();

      assert.deepEqual(rows(path).map((r) => [r.version, r.name]), SQLITE_MIGRATIONS.map((m) => [m.version, m.name]));
      assert.deepEqual(rows(path).slice(0, 2).map((r) => [r.version, r.name]), [[1, 'initial'], [2, 'nodes-jobs']]);
      const db = new Database(path, { readonly: true });
      const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((t) => t.name);
      const changes = db.prepare('SELECT COUNT(*) AS n FROM changes').get() as { n: number };
      db.close();
      assert.ok(tables.includes('dicom_nodes') && tables.includes('jobs'));
      assert.equal(changes.n, 1);
    });
  });

  it('0003 adds jobs.heartbeat_at to a database at version 2: existing jobs start from updated_at, and a job left running is swept', async () => {
    await withDir(async (dir) => {
      const path = join(dir, 'pacs.db');
      const v2 = SQLITE_MIGRATIONS.filter((m) => m.version <= 2);
      const old = createSqliteMetadataStore({ path, migrations: v2 });
      await old.migrate();
      await old.close();
      const seed = new Database(path);
      const insert = seed.prepare('INSERT INTO jobs (id, kind, state, request, created_at, started_at, finished_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
      const t0 = '2026-01-01T00:00:00.000Z';
      const t1 = '2026-01-01T00:05:00.123Z';
      insert.run('00000000-0000-4000-8000-000000000001', 'move', 'running', '{}', t0, t0, null, t1);
      insert.run('00000000-0000-4000-8000-000000000002', 'store', 'completed', '{}', t0, t0, t1, t1);
      seed.close();

      const stores = createSqliteStores({ path });
      await stores.migrate();
      assert.deepEqual(rows(path).map((r) => r.version), [1, 2, 3]);
      const running = await stores.jobs.get('00000000-0000-4000-8000-000000000001');
      assert.deepEqual([running?.state, running?.heartbeatAt], ['running', new Date(t1)]);
      const done = await stores.jobs.get('00000000-0000-4000-8000-000000000002');
      assert.deepEqual(done?.heartbeatAt, new Date(t1));
      // A row written by a pacsnode older than 0003 (rolling upgrade) has no heartbeat: updated_at counts.
      const legacy = new Database(path);
      legacy
        .prepare('INSERT INTO jobs (id, kind, state, request, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)')
        .run('00000000-0000-4000-8000-000000000003', 'get', 'pending', '{}', t0, t0);
      legacy.close();
      assert.equal((await stores.jobs.get('00000000-0000-4000-8000-000000000003'))?.heartbeatAt, null);

      const swept = await stores.jobs.sweepStale({ olderThan: new Date('2026-01-02T00:00:00.000Z') });
      assert.deepEqual(swept.map((j) => [j.id, j.state, j.error]).sort(), [
        ['00000000-0000-4000-8000-000000000001', 'failed', `${STALE_JOB_ERROR_PREFIX}${t1})`],
        ['00000000-0000-4000-8000-000000000003', 'failed', `${STALE_JOB_ERROR_PREFIX}${t0})`],
      ]);
      assert.deepEqual(await stores.jobs.get('00000000-0000-4000-8000-000000000002'), done);
      await stores.migrate();
      await stores.close();
    });
  });

  it('the database refuses invalid node and job rows (CHECK constraints back the validation)', async () => {
    await withDir(async (dir) => {
      const path = join(dir, 'pacs.db');
      const stores = createSqliteStores({ path });
      await stores.migrate();
      await stores.close();
      const db = new Database(path);
      const insertNode = db.prepare('INSERT INTO dicom_nodes (ae_title, host, port, created_at, updated_at) VALUES (?, ?, ?, ?, ?)');
      const t = '2026-01-01T00:00:00.000Z';
      assert.throws(() => insertNode.run('', 'h', 104, t, t), /CHECK/);
      assert.throws(() => insertNode.run('SEVENTEEN_CHARS_X', 'h', 104, t, t), /CHECK/);
      assert.throws(() => insertNode.run('AE', '', 104, t, t), /CHECK/);
      assert.throws(() => insertNode.run('AE', 'h', 0, t, t), /CHECK/);
      assert.throws(() => insertNode.run('AE', 'h', 65536, t, t), /CHECK/);
      insertNode.run('AE', 'h', 65535, t, t);
      const row = db.prepare('SELECT allow_store, allow_find, allow_retrieve, move_destination FROM dicom_nodes').get();
      assert.deepEqual(row, { allow_store: 1, allow_find: 1, allow_retrieve: 1, move_destination: 1 });
      assert.throws(
        () => db.prepare("INSERT INTO jobs (id, kind, state, request, created_at, updated_at) VALUES ('x', 'k', 'done', '{}', ?, ?)").run(t, t),
        /CHECK/,
      );
      db.close();
    });
  });

  it('uses WAL on a file database', async () => {
    await withDir(async (dir) => {
      const path = join(dir, 'pacs.db');
      const store = createSqliteMetadataStore({ path });
      await store.migrate();
      await store.close();
      const db = new Database(path, { readonly: true });
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
      db.close();
    });
  });
});
