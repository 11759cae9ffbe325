import { mkdirSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { Kysely, SqliteDialect, sql } from 'kysely';
import type { JobStore } from '../jobs.js';
import type { MetadataStore } from '../metadata.js';
import type { NodeStore } from '../nodes.js';
import { createPathSync } from '../path-sync.js';
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
  /** Tests only: replaces the fsync of the WAL file that precedes every answer to a writer. */
  walFsync?: (wal: FileHandle) => Promise<void>;
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
  // A commit must survive power loss before anyone is answered (SPEC §6). In WAL mode SQLite's
  // FULL does that with an fsync of the WAL inside COMMIT, on the event loop. NORMAL skips that
  // fsync (the WAL is still synced before every checkpoint, the database after it), and the
  // group-commit writer syncs the WAL itself, in libuv's thread pool, before it answers (ADR 0012).
  raw.pragma(memory ? 'synchronous = FULL' : 'synchronous = NORMAL');
  // SQLite keeps the same WAL inode while a connection is open (it truncates or rewrites, never
  // unlinks); the directory is synced once after the file is first opened so its entry is durable.
  const wal = memory
    ? undefined
    : createPathSync(`${resolve(options.path)}-wal`, { syncParentOnOpen: true, ...(options.walFsync ? { fsync: options.walFsync } : {}) });
  raw.pragma('foreign_keys = ON');
  // DICOM wildcard matching is case-sensitive (PN is matched on normalised columns).
  raw.pragma('case_sensitive_like = ON');
  // The statement journal of a group commit's savepoints (and sorter spills) in memory, not in a
  // fresh file under /var/tmp per transaction.
  raw.pragma('temp_store = MEMORY');

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

  const groupCommit = createGroupCommit(db, wal ? () => wal.sync() : async () => undefined);
  const shared: SqlWriteDriver = { db, dialect: sqliteDialect, writeTransaction: (fn) => groupCommit.run(fn) };
  // Holding kysely's connection keeps every other query out while raw SQL runs on the same handle.
  const migrate = async (): Promise<void> => {
    await db.connection().execute(async () => void (await runMigrations(migrationDriver, migrations)));
    await wal?.sync();
  };
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await db.destroy();
    // kysely only closes the handle if it ever ran a query.
    if (raw.open) raw.close();
    await wal?.close();
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
 * event loop) are committed together, one SAVEPOINT each so a failing one rolls back alone. Nobody
 * is answered before the COMMIT that holds their change has returned AND `durable()` (the WAL
 * fsync, in the thread pool) has completed after it; the next batch is built meanwhile, and
 * batches waiting for the sync share one.
 */
function createGroupCommit(db: Kysely<IndexDatabase>, durable: () => Promise<void>): { run<T>(fn: WriteFn<T>): Promise<T> } {
  const pending: PendingWrite[] = [];
  let draining = false;
  const MAX_BATCH = 64;

  function answer(batch: readonly PendingWrite[], outcomes: readonly ({ ok: true; value: unknown } | { ok: false; err: unknown })[]): void {
    batch.forEach((p, i) => {
      const o = outcomes[i];
      if (o?.ok) p.resolve(o.value);
      else p.reject(o?.err);
    });
  }

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
          if (batch.length === 1 && batch[0]) {
            // Alone in its transaction: no savepoint (nor its statement journal) is needed.
            try {
              outcomes.push({ ok: true, value: await batch[0].fn(conn) });
            } catch (err) {
              await sql`ROLLBACK`.execute(conn).catch(() => undefined);
              batch[0].reject(err);
              return;
            }
          } else {
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
          }
          try {
            await sql`COMMIT`.execute(conn);
          } catch (e) {
            await sql`ROLLBACK`.execute(conn).catch(() => undefined);
            for (const p of batch) p.reject(e);
            return;
          }
          // The connection is free again: the next batch builds while this one's WAL is synced.
          void durable().then(
            () => answer(batch, outcomes),
            (e: unknown) => {
              for (const p of batch) p.reject(e);
            },
          );
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
