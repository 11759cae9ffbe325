import { sql, type Kysely } from 'kysely';
import type { Dialect } from './dialect.js';
import type { IndexDatabase } from './schema.js';

type Db = Kysely<IndexDatabase>;

/**
 * Runs a read of several statements on one snapshot, so figures read together agree (a page and
 * its total, statistics). PostgreSQL: one READ ONLY REPEATABLE READ transaction on one pooled
 * connection — separate pool statements, or READ COMMITTED, would each see a different commit
 * (read-only transactions never fail to serialize). SQLite: the one connection, held for the
 * whole read, keeps this process's group-commit writer out; a deferred BEGIN makes it one WAL
 * snapshot against other processes too (CLI), at the cost of two statements without I/O.
 */
export function readInSnapshot<T>(db: Db, dialect: Dialect, fn: (trx: Db) => Promise<T>): Promise<T> {
  if (dialect.name === 'postgres') return db.transaction().setIsolationLevel('repeatable read').setAccessMode('read only').execute(fn);
  return db.connection().execute(async (conn) => {
    await sql`BEGIN`.execute(conn);
    try {
      const result = await fn(conn);
      await sql`COMMIT`.execute(conn);
      return result;
    } catch (e) {
      // Never leave the one connection inside a transaction (every later write would fail).
      await sql`ROLLBACK`.execute(conn).catch(() => undefined);
      throw e;
    }
  });
}
