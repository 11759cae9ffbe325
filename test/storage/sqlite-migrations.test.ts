import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { isStorageError } from '../../src/storage/errors.js';
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

      assert.deepEqual(rows(path).map((r) => [r.version, r.name]), [[1, 'initial'], [2, 'nodes-jobs']]);
      const db = new Database(path, { readonly: true });
      const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((t) => t.name);
      const changes = db.prepare('SELECT COUNT(*) AS n FROM changes').get() as { n: number };
      db.close();
      assert.ok(tables.includes('dicom_nodes') && tables.includes('jobs'));
      assert.equal(changes.n, 1);
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
