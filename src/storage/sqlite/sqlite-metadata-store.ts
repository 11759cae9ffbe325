import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { Kysely, SqliteDialect, sql } from 'kysely';
import type { JobStore } from '../jobs.js';
import type { MetadataStore } from '../metadata.js';
import type { NodeStore } from '../nodes.js';
import { sqliteDialect } from '../sql/dialect.js';
import { runMigrations, type AppliedMigration, type Migration, type MigrationDriver } from '../sql/migrator.js';
import type { IndexDatabase } from '../sql/schema.js';
import { createSqlJobStore } from '../sql/sql-job-store.js';
import { createSqlMetadataStore } from '../sql/sql-metadata-store.js';
import { createSqlNodeStore } from '../sql/sql-node-store.js';
import type { SqlWriteDriver } from '../sql/write-driver.js';
import { SQLITE_MIGRATIONS } from './migrations/index.js';

export interface SqliteMetadataStoreOptions {
  /** Database file path, or ':memory:'. The parent directory is created when missing. */
  path: string;
  /** How long a writer waits for another process's lock (ms). Default 5000. */
  busyTimeoutMs?: number;
  /** Migrations to apply (tests only; default: the shipped ones). */
  migrations?: readonly Migration[];
}

/** Every store of one SQLite database, sharing one connection (and its group-commit writer). */
export interface SqliteStores {
  metadata: MetadataStore;
  nodes: NodeStore;
  jobs: JobStore;
  /** Applies pending migrations (the same as metadata.migrate()). */
  migrate(): Promise<void>;
  /** Closes the connection shared by all three stores (metadata.close() does the same); idempotent. */
  close(): Promise<void>;
}

/**
 * MetadataStore on SQLite (better-sqlite3 through kysely). One connection per store: kysely
 * serialises its use, and writers also take BEGIN IMMEDIATE so another process (CLI gc, migrate)
 * waits on busy_timeout instead of failing mid-transaction.
 */
export function createSqliteMetadataStore(options: SqliteMetadataStoreOptions): MetadataStore {
  return createSqliteStores(options).metadata;
}

/**
 * The metadata, node and job stores on ONE SQLite connection: one writer, so node and job writes
 * join the same group commit as ingests instead of contending for the file lock with a second
 * connection of the same process.
 */
export function createSqliteStores(options: SqliteMetadataStoreOptions): SqliteStores {
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

  // kysely prepares every statement anew; the hot paths (ingest, QIDO) repeat the same few SQL
  // texts, so prepared statements are kept by text (SQLite re-prepares them itself after a schema
  // change). The store never iterates a statement lazily, so one statement is never busy twice.
  const statements = new Map<string, Database.Statement>();
  const database = {
    prepare(text: string): Database.Statement {
      let stmt = statements.get(text);
      if (!stmt) {
        if (statements.size >= 1000) statements.clear();
        stmt = raw.prepare(text);
        statements.set(text, stmt);
      }
      return stmt;
    },
    close(): void {
      raw.close();
    },
  };
  const db = new Kysely<IndexDatabase>({ dialect: new SqliteDialect({ database }) });
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

  const groupCommit = createGroupCommit(db);
  const shared: SqlWriteDriver = { db, dialect: sqliteDialect, writeTransaction: (fn) => groupCommit.run(fn) };
  // Holding kysely's connection keeps every other query out while raw SQL runs on the same handle.
  const migrate = (): Promise<void> => db.connection().execute(async () => void (await runMigrations(migrationDriver, migrations)));
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await db.destroy();
    // kysely only closes the handle if it ever ran a query.
    if (raw.open) raw.close();
  };
  const metadata = createSqlMetadataStore({ ...shared, migrate, close });
  return { metadata, nodes: createSqlNodeStore(shared), jobs: createSqlJobStore(shared), migrate, close };
}

type WriteFn<T> = (trx: Kysely<IndexDatabase>) => Promise<T>;

interface PendingWrite {
  fn: WriteFn<unknown>;
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

/**
 * Group commit: write transactions that arrive while the database is busy (SQLite runs on the
 * event loop, and with synchronous = FULL every COMMIT waits for an fsync) are committed together,
 * one SAVEPOINT each so a failing one rolls back alone. Nobody is answered before the COMMIT that
 * holds their change has returned, so durability is unchanged; the fsync is shared.
 */
function createGroupCommit(db: Kysely<IndexDatabase>): { run<T>(fn: WriteFn<T>): Promise<T> } {
  const pending: PendingWrite[] = [];
  let draining = false;
  const MAX_BATCH = 64;

  async function drain(): Promise<void> {
    try {
      while (pending.length > 0) {
        const batch = pending.splice(0, MAX_BATCH);
        // A failure outside the transaction body (e.g. the store was closed) still answers everyone.
        await db.connection().execute(async (conn) => {
          try {
            await sql`BEGIN IMMEDIATE`.execute(conn);
          } catch (e) {
            for (const p of batch) p.reject(e);
            return;
          }
          const outcomes: ({ ok: true; value: unknown } | { ok: false; err: unknown })[] = [];
          for (const p of batch) {
            await sql`SAVEPOINT write_item`.execute(conn);
            try {
              const value = await p.fn(conn);
              await sql`RELEASE write_item`.execute(conn);
              outcomes.push({ ok: true, value });
            } catch (err) {
              await sql`ROLLBACK TO write_item`.execute(conn).catch(() => undefined);
              await sql`RELEASE write_item`.execute(conn).catch(() => undefined);
              outcomes.push({ ok: false, err });
            }
          }
          try {
            await sql`COMMIT`.execute(conn);
          } catch (e) {
            await sql`ROLLBACK`.execute(conn).catch(() => undefined);
            for (const p of batch) p.reject(e);
            return;
          }
          batch.forEach((p, i) => {
            const o = outcomes[i];
            if (o?.ok) p.resolve(o.value);
            else p.reject(o?.err);
          });
        }).catch((e: unknown) => {
          // Promises settle once: those already answered ignore this.
          for (const p of batch) p.reject(e);
        });
      }
    } finally {
      draining = false;
    }
  }

  return {
    run<T>(fn: WriteFn<T>): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        pending.push({ fn, resolve: resolve as (v: unknown) => void, reject });
        if (!draining) {
          draining = true;
          // Let writes that became ready in this turn of the event loop join the same transaction.
          setImmediate(() => void drain());
        }
      });
    },
  };
}
