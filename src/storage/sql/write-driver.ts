import type { Kysely } from 'kysely';
import type { Dialect } from './dialect.js';
import type { IndexDatabase } from './schema.js';

/**
 * What the node and job stores need from an adapter: the shared kysely handle, its Dialect and how
 * a write transaction is opened (SQLite: the group-commit writer, BEGIN IMMEDIATE; PostgreSQL:
 * READ COMMITTED, with `SELECT … FOR UPDATE` taken by the store when `dialect.rowLocks`).
 * A subset of SqlStoreDriver, so one adapter connection serves every store.
 */
export interface SqlWriteDriver {
  db: Kysely<IndexDatabase>;
  dialect: Dialect;
  writeTransaction<T>(fn: (trx: Kysely<IndexDatabase>) => Promise<T>): Promise<T>;
}

/** Reads a boolean column: SQLite gives 0/1, PostgreSQL true/false. */
export function fromDbBool(v: unknown): boolean {
  return v === true || v === 1 || v === '1' || v === 't' || v === 'true' || v === 1n;
}

/** Writes a boolean column (see DbBool in schema.ts). */
export function toDbBool(b: boolean): number {
  return b ? 1 : 0;
}

/** A counter column (PostgreSQL bigint arrives as a string). */
export function fromDbInt(v: unknown): number {
  return v === null || v === undefined ? 0 : Number(v);
}
