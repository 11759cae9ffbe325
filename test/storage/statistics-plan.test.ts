// GET /api/statistics must stay cheap at 1M instances: EXPLAIN QUERY PLAN of the exact queries the
// store runs (storage/sql/rest-queries.ts statisticsQueries) shows no read of `instances`, and the
// "last 24 h" count walks the `changes.at` index.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { Kysely, SqliteDialect, type Compilable } from 'kysely';
import { sqliteDialect } from '../../src/storage/sql/dialect.js';
import { statisticsQueries } from '../../src/storage/sql/rest-queries.js';
import type { IndexDatabase } from '../../src/storage/sql/schema.js';
import { createSqliteMetadataStore } from '../../src/storage/sqlite/sqlite-metadata-store.js';
import { makeRecord, token } from '../contract/records.js';

describe('statistics queries (SQLite EXPLAIN QUERY PLAN)', () => {
  let dir: string;
  let raw: Database.Database;
  let db: Kysely<IndexDatabase>;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'pacsnode-stats-'));
    const file = path.join(dir, 'pacs.db');
    const store = createSqliteMetadataStore({ path: file });
    await store.migrate();
    const issuer = token();
    for (let k = 0; k < 40; k++) {
      await store.commitInstance(makeRecord({ issuer, modality: k % 2 === 0 ? 'CT' : 'MR', receivedAt: new Date(Date.now() - k * 3_600_000) }), { onDuplicate: 'replace', onPatientMismatch: 'accept' });
    }
    await store.close();
    raw = new Database(file, { readonly: true });
    db = new Kysely<IndexDatabase>({ dialect: new SqliteDialect({ database: raw }) });
  });
  after(async () => {
    await db.destroy();
    if (raw.open) raw.close();
    await rm(dir, { recursive: true, force: true });
  });

  function plan(q: Compilable): string[] {
    const c = q.compile();
    const rows = raw.prepare(`EXPLAIN QUERY PLAN ${c.sql}`).all(...(c.parameters as unknown[])) as { detail: string }[];
    return rows.map((r) => r.detail);
  }

  it('none of the statistics queries reads the instances table', () => {
    const queries = statisticsQueries(db, sqliteDialect, { since: new Date(Date.now() - 24 * 3_600_000), kinds: ['stored', 'replaced'] });
    for (const [name, q] of Object.entries(queries)) {
      const details = plan(q);
      assert.ok(details.length > 0, name);
      for (const d of details) assert.doesNotMatch(d, /\binstances\b/, `${name}: ${d}`);
    }
  });

  it('counts the changes of the last 24 h through the changes.at index', () => {
    const { changesSince } = statisticsQueries(db, sqliteDialect, { since: new Date(Date.now() - 24 * 3_600_000), kinds: ['stored', 'replaced'] });
    const details = plan(changesSince);
    assert.ok(details.some((d) => /^SEARCH (TABLE )?changes USING (COVERING )?INDEX changes_at \(at>\?\)/.test(d)), details.join(' | '));
    assert.ok(!details.some((d) => /^SCAN (TABLE )?changes\b/.test(d)), details.join(' | '));
  });

  it('reads only the counters: totals from studies, per modality from series, patients from patients', () => {
    const q = statisticsQueries(db, sqliteDialect, { since: new Date(), kinds: ['stored'] });
    const tables = (details: string[]): string[] => [...new Set(details.flatMap((d) => /^(?:SCAN|SEARCH) (?:TABLE )?(\w+)/.exec(d)?.slice(1) ?? []))];
    assert.deepEqual(tables(plan(q.totals)), ['studies']);
    assert.deepEqual(tables(plan(q.byModality)), ['series']);
    assert.deepEqual(tables(plan(q.patients)), ['patients']);
  });
});
