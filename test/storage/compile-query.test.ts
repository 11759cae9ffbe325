import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DummyDriver,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
} from 'kysely';
import type { Query } from '../../src/dicom/query-model.js';
import { countMatches, escapeLike, selectInstances, selectStudies, wildcardToLike } from '../../src/storage/sql/compile-query.js';
import { postgresDialect, sqliteDialect } from '../../src/storage/sql/dialect.js';
import type { IndexDatabase } from '../../src/storage/sql/schema.js';

const pg = new Kysely<IndexDatabase>({
  dialect: {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (db) => new PostgresIntrospector(db),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  },
});
const lite = new Kysely<IndexDatabase>({
  dialect: {
    createAdapter: () => new SqliteAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (db) => new SqliteIntrospector(db),
    createQueryCompiler: () => new SqliteQueryCompiler(),
  },
});

const base: Query = { level: 'study', constraints: [], includeFields: [], fuzzy: false, limit: 10, offset: 0 };

describe('Query -> SQL compiler', () => {
  it('escapes LIKE metacharacters and maps DICOM wildcards', () => {
    assert.equal(escapeLike('100%_a\\b'), '100\\%\\_a\\\\b');
    assert.equal(wildcardToLike('Do?e*%_'), 'Do_e%\\%\\_');
  });

  it('matches a non-indexed tag through the dialect JSON extraction', () => {
    const query: Query = { ...base, level: 'instance', constraints: [{ kind: 'single', tag: '00081090', value: 'X' }] };
    const onPg = selectInstances(pg, postgresDialect, query).compile();
    assert.match(onPg.sql, /"i"\."header"->'00081090'->'Value'->>0/);
    const onLite = selectInstances(lite, sqliteDialect, query).compile();
    assert.match(onLite.sql, /json_extract\("i"\."header", \?\)/);
    assert.ok(onLite.parameters.includes('$."00081090".Value[0]'));
  });

  it('uses numbered parameters on PostgreSQL and ESCAPE for wildcards', () => {
    const query: Query = { ...base, constraints: [{ kind: 'wildcard', tag: '00081030', pattern: 'CT*' }] };
    const c = selectStudies(pg, postgresDialect, query).compile();
    assert.match(c.sql, /"st"\."study_description" LIKE \$\d+ ESCAPE '\\'/);
    assert.ok(c.parameters.includes('CT%'));
  });

  it('turns ModalitiesInStudy into EXISTS over the study series', () => {
    const query: Query = { ...base, constraints: [{ kind: 'list', tag: '00080061', values: ['CT', 'MR'] }] };
    const c = countMatches(lite, sqliteDialect, query).compile();
    assert.match(c.sql, /EXISTS \(SELECT 1 FROM "series" AS "x_se" WHERE "x_se"\."study_fk" = "st"\."id" AND "x_se"\."modality" IN \(\?, \?\)\)/);
  });

  it('a universal wildcard adds no condition', () => {
    const query: Query = { ...base, constraints: [{ kind: 'wildcard', tag: '00100010', pattern: '*' }] };
    assert.doesNotMatch(selectStudies(lite, sqliteDialect, query).compile().sql, /patient_name_norm/);
  });

  it('refuses a malformed tag', () => {
    const query: Query = { ...base, constraints: [{ kind: 'single', tag: "0008'; DROP", value: 'x' }] };
    assert.throws(() => selectStudies(lite, sqliteDialect, query).compile());
  });
});
