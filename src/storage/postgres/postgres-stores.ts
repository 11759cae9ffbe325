import { setTimeout as sleep } from 'node:timers/promises';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { JobStore } from '../jobs.js';
import type { MetadataStore } from '../metadata.js';
import type { NodeStore } from '../nodes.js';
import { postgresDialect } from '../sql/dialect.js';
import { runMigrations, type AppliedMigration, type Migration, type MigrationDriver } from '../sql/migrator.js';
import type { IndexDatabase } from '../sql/schema.js';
import { createSqlJobStore } from '../sql/sql-job-store.js';
import { createSqlMetadataStore } from '../sql/sql-metadata-store.js';
import { createSqlNodeStore } from '../sql/sql-node-store.js';
import type { SqlWriteDriver } from '../sql/write-driver.js';
import { POSTGRES_MIGRATIONS } from './migrations/index.js';

export interface PostgresStoresOptions {
  /** `postgres://user:password@host:port/database` (also `postgresql://`). */
  url: string;
  /** Pool size (config `database.max_connections`). */
  maxConnections: number;
  /** Migrations to apply (tests only; default: the shipped ones). */
  migrations?: readonly Migration[];
  /** Errors of idle pooled connections (the server restarted, a network cut); the pool replaces them. */
  onIdleError?: (err: Error) => void;
}

/** Every store of one PostgreSQL database, sharing one pool. */
export interface PostgresStores {
  metadata: MetadataStore;
  nodes: NodeStore;
  jobs: JobStore;
  /** Applies pending migrations under an advisory lock (the same as metadata.migrate()). */
  migrate(): Promise<void>;
  /** Ends the pool shared by all three stores (metadata.close() does the same); idempotent. */
  close(): Promise<void>;
}

/** Key of the advisory lock held while migrating ('pacsnode' in ASCII): one process migrates at a time. */
const MIGRATION_LOCK_KEY = '8097862952414045285';
/** A write transaction is retried this many times on the errors below, then the error is thrown. */
const MAX_WRITE_ATTEMPTS = 12;
/**
 * Retried: serialization failure, deadlock (two writers locking rows in opposite order, e.g. a
 * series moving between studies), and unique violation — two first instances of one new study or
 * series racing to insert its row: the loser's retry finds the row and locks it.
 */
const RETRYABLE = new Set(['40001', '40P01', '23505']);

const INT8 = 20;
const NUMERIC = 1700;

/**
 * Counters, ids and COUNT(*) are bigint and SUM() is numeric: read as numbers (safe up to 2^53,
 * far beyond any count or byte total here). timestamptz already arrives as Date, jsonb as objects.
 * Set per pool, not on pg's global registry, so no other pg user in the process is affected.
 */
const types: pg.CustomTypesConfig = {
  getTypeParser: (oid: number, format?: 'text' | 'binary') => {
    if (oid === INT8 && format !== 'binary') return (v: string): number => Number.parseInt(v, 10);
    if (oid === NUMERIC && format !== 'binary') return (v: string): number => Number.parseFloat(v);
    return pg.types.getTypeParser(oid, format);
  },
};

function pgErrorCode(e: unknown): string | undefined {
  if (typeof e !== 'object' || e === null || !('code' in e)) return undefined;
  const code = (e as { code: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * MetadataStore, NodeStore and JobStore on PostgreSQL (15, 16) through kysely's PostgresDialect,
 * on one pg pool of `maxConnections`. The SQL is the shared layer's (storage/sql); this adapter
 * supplies the pool, type parsers, `postgresDialect` (row locks), the write transaction with its
 * retries and the migrations.
 */
export function createPostgresStores(options: PostgresStoresOptions): PostgresStores {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: Math.max(1, Math.floor(options.maxConnections)),
    types,
    application_name: 'pacsnode',
  });
  // Without a listener an idle client's error (server restart) would crash the process.
  pool.on('error', (err) => options.onIdleError?.(err));
  const db = new Kysely<IndexDatabase>({ dialect: new PostgresDialect({ pool }) });
  const migrations = options.migrations ?? POSTGRES_MIGRATIONS;

  /**
   * One short READ COMMITTED transaction; the shared layer takes `SELECT … FOR UPDATE` row locks
   * (postgresDialect.rowLocks). Retryable conflicts start the whole transaction again after a
   * short randomised back-off, so concurrent first ingests of one study never fail.
   */
  async function writeTransaction<T>(fn: (trx: Kysely<IndexDatabase>) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await db.transaction().setIsolationLevel('read committed').execute(fn);
      } catch (e) {
        const code = pgErrorCode(e);
        if (code === undefined || !RETRYABLE.has(code) || attempt >= MAX_WRITE_ATTEMPTS) throw e;
        await sleep(Math.random() * Math.min(100, 2 * 2 ** attempt));
      }
    }
  }

  /** Runs `body` on one pooled connection. */
  async function withClient<T>(body: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await pool.connect();
    try {
      return await body(client);
    } finally {
      client.release();
    }
  }

  // The lock is session-level on one dedicated connection, held across every migration of the run
  // (each migration is its own transaction); a second process starting together waits, then finds
  // everything applied. A dropped connection releases it.
  let lockClient: pg.PoolClient | undefined;
  const onLockClient = <T>(body: (client: pg.PoolClient) => Promise<T>): Promise<T> =>
    lockClient === undefined ? withClient(body) : body(lockClient);

  const migrationDriver: MigrationDriver = {
    // Concurrent CREATE TABLE IF NOT EXISTS can still collide in the catalogue: take the lock.
    ensureTable: () =>
      withClient(async (client) => {
        await client.query('BEGIN');
        try {
          await client.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`);
          await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
  version    integer PRIMARY KEY,
  name       text NOT NULL,
  checksum   text NOT NULL,
  applied_at timestamptz NOT NULL
)`);
          await client.query('COMMIT');
        } catch (e) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw e;
        }
      }),
    withLock: async (body) => {
      const client = await pool.connect();
      let broken = false;
      try {
        await client.query(`SELECT pg_advisory_lock(${MIGRATION_LOCK_KEY})`);
        lockClient = client;
        try {
          return await body();
        } finally {
          lockClient = undefined;
          await client.query(`SELECT pg_advisory_unlock(${MIGRATION_LOCK_KEY})`).catch(() => {
            broken = true;
          });
        }
      } finally {
        // A connection whose unlock failed is discarded, which releases its session lock.
        client.release(broken);
      }
    },
    applied: () =>
      onLockClient(async (client) => {
        const res = await client.query<AppliedMigration>('SELECT version, name, checksum FROM schema_migrations ORDER BY version');
        return res.rows.map((r) => ({ version: Number(r.version), name: r.name, checksum: r.checksum }));
      }),
    apply: (m, checksum) =>
      onLockClient(async (client) => {
        await client.query('BEGIN');
        try {
          // Simple-query protocol: the migration may hold many statements.
          await client.query(m.sql);
          await client.query('INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, now())', [
            m.version,
            m.name,
            checksum,
          ]);
          await client.query('COMMIT');
        } catch (e) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw e;
        }
      }),
  };

  const migrate = async (): Promise<void> => {
    await runMigrations(migrationDriver, migrations);
  };
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      // kysely ends the pool only if it ever ran a query; migrations use the pool directly.
      await db.destroy();
      if (!pool.ending && !pool.ended) await pool.end();
    })();
    return closing;
  };

  const shared: SqlWriteDriver = { db, dialect: postgresDialect, writeTransaction };
  const metadata = createSqlMetadataStore({ ...shared, migrate, close });
  return { metadata, nodes: createSqlNodeStore(shared), jobs: createSqlJobStore(shared), migrate, close };
}
