import { createHash } from 'node:crypto';
import { StorageError } from '../errors.js';

/**
 * Numbered plain-SQL migrations (ARCHITECTURE rule 12): applied in order, recorded in
 * `schema_migrations(version, name, checksum, applied_at)`, checked by SHA-256 so an edited
 * released migration is refused, and a second run is a no-op.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export interface AppliedMigration {
  version: number;
  name: string;
  checksum: string;
}

/** What a dialect provides to run migrations (multi-statement SQL needs the raw driver). */
export interface MigrationDriver {
  /** Creates `schema_migrations` if missing. */
  ensureTable(): Promise<void>;
  /**
   * Runs `body` holding the migration lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory
   * lock), so concurrent starters apply each migration once.
   */
  withLock<T>(body: () => Promise<T>): Promise<T>;
  applied(): Promise<AppliedMigration[]>;
  /** Executes the SQL and records the row, in one transaction. */
  apply(migration: Migration, checksum: string): Promise<void>;
}

export function migrationChecksum(m: Migration): string {
  return createHash('sha256').update(m.sql, 'utf8').digest('hex');
}

export interface MigrationReport {
  applied: number[];
}

export async function runMigrations(driver: MigrationDriver, migrations: readonly Migration[]): Promise<MigrationReport> {
  const ordered = [...migrations].sort((a, b) => a.version - b.version);
  for (let k = 1; k < ordered.length; k++) {
    if (ordered[k]?.version === ordered[k - 1]?.version) throw new Error(`duplicate migration version ${ordered[k]?.version}`);
  }
  await driver.ensureTable();
  return driver.withLock(async () => {
    const done = new Map((await driver.applied()).map((a) => [a.version, a]));
    const known = new Set(ordered.map((m) => m.version));
    for (const v of done.keys()) {
      if (!known.has(v)) {
        throw new StorageError('DATABASE_UNAVAILABLE', `database has migration ${v}, unknown to this version of pacsnode`);
      }
    }
    const applied: number[] = [];
    for (const m of ordered) {
      const checksum = migrationChecksum(m);
      const prior = done.get(m.version);
      if (prior) {
        if (prior.checksum !== checksum) {
          throw new StorageError('DATABASE_UNAVAILABLE', `migration ${m.version} (${m.name}) changed after it was applied`, {
            version: m.version,
          });
        }
        continue;
      }
      await driver.apply(m, checksum);
      applied.push(m.version);
    }
    return { applied };
  });
}
