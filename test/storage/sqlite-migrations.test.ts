import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { isStorageError } from '../../src/storage/errors.js';
import { migrationChecksum } from '../../src/storage/sql/migrator.js';
import { SQLITE_MIGRATIONS } from '../../src/storage/sqlite/migrations/index.js';
import { createSqliteMetadataStore } from '../../src/storage/sqlite/sqlite-metadata-store.js';

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
      const broken = [...SQLITE_MIGRATIONS, { version: 2, name: 'next', sql: 'CREATE TABLE ok_part (id INTEGER); SELECT nonsense FROM nowhere;' }];
      const store = createSqliteMetadataStore({ path, migrations: broken });
      await assert.rejects(store.migrate());
      await store.close();
      assert.deepEqual(rows(path).map((r) => r.version), [1]);
      const db = new Database(path, { readonly: true });
      const t = db.prepare("SELECT name FROM sqlite_master WHERE name = 'ok_part'").get();
      db.close();
      assert.equal(t, undefined);
      const fixed = [...SQLITE_MIGRATIONS, { version: 2, name: 'next', sql: 'CREATE TABLE ok_part (id INTEGER);' }];
      const retry = createSqliteMetadataStore({ path, migrations: fixed });
      await retry.migrate();
      await retry.close();
      assert.deepEqual(rows(path).map((r) => r.version), [1, 2]);
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
