import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { Kysely, SqliteDialect, sql } from 'kysely';
import type { MetadataStore } from '../metadata.js';
import { sqliteDialect } from '../sql/dialect.js';
import { runMigrations, type AppliedMigration, type Migration, type MigrationDriver } from '../sql/migrator.js';
import type { IndexDatabase } from '../sql/schema.js';
import { createSqlMetadataStore } from '../sql/sql-metadata-store.js';
import { SQLITE_MIGRATIONS } from './migrations/index.js';

export interface SqliteMetadataStoreOptions {
  /** Database file path, or ':memory:'. The parent directory is created when missing. */
  path: string;
  /** How long a writer waits for another process's lock (ms). Default 5000. */
  busyTimeoutMs?: number;
  /** Migrations to apply (tests only; default: the shipped ones). */
  migrations?: readonly Migration[];
}

/**
 * MetadataStore on SQLite (better-sqlite3 through kysely). One connection per store: kysely
 * serialises its use, and writers also take BEGIN IMMEDIATE so another process (CLI gc, migrate)
 * waits on busy_timeout instead of failing mid-transaction.
 */
export function createSqliteMetadataStore(options: SqliteMetadataStoreOptions): MetadataStore {
  const memory = options.path === ':memory:' || options.path === '';
  if (!memory) mkdirSync(dirname(resolve(options.path)), { recursive: true });
  const raw = new Database(options.path);
  raw.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 5000))}`);
  if (!memory) raw.pragma('journal_mode = WAL');
  // FULL: a commit survives power loss; blobs are durable before the commit anyway (SPEC §6).
  raw.pragma('synchronous = FULL');
  raw.pragma('foreign_keys = ON');
  // DICOM wildcard matching is case-sensitive (PN is matched on normalised columns).
  raw.pragma('case_sensitive_like = ON');

  const db = new Kysely<IndexDatabase>({ dialect: new SqliteDialect({ database: raw }) });
  const migrations = options.migrations ?? SQLITE_MIGRATIONS;

  const migrationDriver: MigrationDriver = {
    ensureTable: async () => {
      raw.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version    INTEGER PRIMARY KEY,
        name       TEXT NOT NULL,
        checksum   TEXT NOT NULL,
        applied_at TEXT NOT NULL
      )`);
    },
    // One IMMEDIATE transaction around check-and-apply, so two processes starting together
    // apply each migration once (each migration's own transaction nests as a savepoint).
    withLock: async (body) => {
      raw.exec('BEGIN IMMEDIATE');
      try {
        const result = await body();
        raw.exec('COMMIT');
        return result;
      } catch (e) {
        if (raw.inTransaction) raw.exec('ROLLBACK');
        throw e;
      }
    },
    applied: async () =>
      raw.prepare('SELECT version, name, checksum FROM schema_migrations ORDER BY version').all() as AppliedMigration[],
    apply: async (m, checksum) => {
      raw
        .transaction(() => {
          raw.exec(m.sql);
          raw
            .prepare('INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)')
            .run(m.version, m.name, checksum, new Date().toISOString());
        })
        .immediate();
    },
  };

  let closed = false;
  return createSqlMetadataStore({
    db,
    dialect: sqliteDialect,
    writeTransaction: (fn) =>
      db.connection().execute(async (conn) => {
        await sql`BEGIN IMMEDIATE`.execute(conn);
        try {
          const result = await fn(conn);
          await sql`COMMIT`.execute(conn);
          return result;
        } catch (e) {
          await sql`ROLLBACK`.execute(conn).catch(() => undefined);
          throw e;
        }
      }),
    // Holding kysely's connection keeps every other query out while raw SQL runs on the same handle.
    migrate: () => db.connection().execute(async () => void (await runMigrations(migrationDriver, migrations))),
    close: async () => {
      if (closed) return;
      closed = true;
      await db.destroy();
      // kysely only closes the handle if it ever ran a query.
      if (raw.open) raw.close();
    },
  });
}
