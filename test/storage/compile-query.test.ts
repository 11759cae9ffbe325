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
import type { Constraint, Query } from '../../src/dicom/query-model.js';
import { countMatches, escapeLike, selectInstances, selectSeries, selectStudies, wildcardToLike } from '../../src/storage/sql/compile-query.js';
import { postgresDialect, SHORT_LIST, sqliteDialect } from '../../src/storage/sql/dialect.js';
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

  it('matches a non-indexed tag on any of its values through the dialect JSON functions', () => {
    const query: Query = { ...base, level: 'instance', constraints: [{ kind: 'single', tag: '00081090', value: 'X' }] };
    const onPg = selectInstances(pg, postgresDialect, query).compile();
    assert.match(onPg.sql, /EXISTS \(SELECT 1 FROM jsonb_array_elements\(CASE WHEN jsonb_typeof\("i"\."header"->'00081090'->'Value'\) = 'array'/);
    const onLite = selectInstances(lite, sqliteDialect, query).compile();
    assert.match(onLite.sql, /EXISTS \(SELECT 1 FROM json_each\("i"\."header", \?\) AS mv/);
    assert.ok(onLite.parameters.includes('$."00081090".Value'));
  });

  it('uses numbered parameters on PostgreSQL and ESCAPE for wildcards', () => {
    const query: Query = { ...base, constraints: [{ kind: 'wildcard', tag: '00081030', pattern: 'CT*' }] };
    const c = selectStudies(pg, postgresDialect, query).compile();
    assert.match(c.sql, /"st"\."study_description" LIKE \$\d+ ESCAPE '\\'/);
    assert.ok(c.parameters.includes('CT%'));
  });

  it('turns ModalitiesInStudy into EXISTS over the study series', () => {
    const query: Query = { ...base, constraints: [{ kind: 'list', tag: '00080061', values: ['CT', 'MR'] }] };
    const exists = /EXISTS \(SELECT 1 FROM "series" AS "x_se" WHERE "x_se"\."study_fk" = "st"\."id" AND "x_se"\."modality" IN \(\?, \?\)\)/;
    assert.match(selectStudies(lite, sqliteDialect, query).compile().sql, exists);
    // With another condition the count keeps the EXISTS too.
    const withDate: Query = { ...query, constraints: [...query.constraints, { kind: 'range', tag: '00080020', from: '20200101', to: '20201231' }] };
    assert.match(countMatches(lite, sqliteDialect, withDate).compile().sql, exists);
  });

  it('counts a study search by ModalitiesInStudy alone on series, as distinct studies', () => {
    const keys: Constraint[] = [
      { kind: 'single', tag: '00080061', value: 'CT' },
      { kind: 'list', tag: '00080061', values: ['CT', 'MR'] },
      { kind: 'wildcard', tag: '00080061', pattern: 'C*' },
    ];
    for (const c of keys) {
      // A universal key beside it adds no condition, so the short form still applies.
      const query: Query = { ...base, constraints: [c, { kind: 'wildcard', tag: '00100010', pattern: '*' }] };
      for (const [db, dialect] of [[pg, postgresDialect], [lite, sqliteDialect]] as const) {
        const sql = countMatches(db, dialect, query).compile().sql;
        assert.match(sql, /^select COUNT\(DISTINCT se\.study_fk\) as "n" from "series" as "se" where "se"\."modality" /, sql);
        assert.doesNotMatch(sql, /"studies"|"patients"/, sql);
      }
    }
    // Not for a StudyInstanceUID scope, another level, two keys, or a universal ModalitiesInStudy.
    const mis: Constraint = { kind: 'single', tag: '00080061', value: 'CT' };
    for (const query of [
      { ...base, studyUid: '1.2.3', constraints: [mis] },
      { ...base, level: 'series', constraints: [mis] },
      { ...base, level: 'patient', constraints: [mis] },
      { ...base, constraints: [mis, { kind: 'single', tag: '00080061', value: 'MR' }] },
      { ...base, constraints: [{ kind: 'wildcard', tag: '00080061', pattern: '*' }] },
    ] satisfies Query[]) {
      assert.doesNotMatch(countMatches(lite, sqliteDialect, query).compile().sql, /COUNT\(DISTINCT/, JSON.stringify(query));
    }
  });

  it('joins patients in a study search only when a condition refers to them', () => {
    const join = /join "patients"/;
    assert.doesNotMatch(selectStudies(pg, postgresDialect, base).compile().sql, join);
    assert.doesNotMatch(selectStudies(pg, postgresDialect, { ...base, constraints: [{ kind: 'range', tag: '00080020', from: '20200101', to: '20200131' }] }).compile().sql, join);
    // A patient attribute that is not indexed is matched on the study's header (it holds the patient's attributes).
    assert.doesNotMatch(selectStudies(pg, postgresDialect, { ...base, constraints: [{ kind: 'single', tag: '00101010', value: '042Y' }] }).compile().sql, join);
    for (const tag of ['00100020', '00100010', '00100030', '00100040', '00100021']) {
      const c = selectStudies(pg, postgresDialect, { ...base, constraints: [{ kind: 'single', tag, value: 'X' }] }).compile().sql;
      assert.match(c, join, tag);
    }
  });

  it('a universal wildcard adds no condition', () => {
    const query: Query = { ...base, constraints: [{ kind: 'wildcard', tag: '00100010', pattern: '*' }] };
    assert.doesNotMatch(selectStudies(lite, sqliteDialect, query).compile().sql, /patient_name_norm/);
  });

  it('binds a long list as one parameter (any length), a short one value by value', () => {
    const uids = Array.from({ length: 40_000 }, (_, k) => `1.2.${k}`);
    const long: Query = { ...base, constraints: [{ kind: 'list', tag: '0020000D', values: uids }] };
    const onLite = selectStudies(lite, sqliteDialect, long).compile();
    assert.match(onLite.sql, /"st"\."study_uid" IN \(SELECT value FROM json_each\(\?\)\)/);
    assert.ok(onLite.parameters.includes(JSON.stringify(uids)));
    assert.ok(onLite.parameters.length < 10, String(onLite.parameters.length));
    const onPg = selectStudies(pg, postgresDialect, long).compile();
    assert.match(onPg.sql, /"st"\."study_uid" IN \(SELECT unnest\(\$1::text\[\]\)\)/);
    assert.deepEqual(onPg.parameters[0], uids);
    assert.ok(onPg.parameters.length < 10, String(onPg.parameters.length));
    // Numbers (integer columns) on PostgreSQL: an untyped array, typed by the column.
    const numbers: Query = { ...base, level: 'series', constraints: [{ kind: 'list', tag: '00200011', values: uids.map((_, k) => String(k)) }] };
    assert.match(selectSeries(pg, postgresDialect, numbers).compile().sql, /"se"\."series_number" = ANY\(\$1\)/);
    assert.match(selectSeries(lite, sqliteDialect, numbers).compile().sql, /"se"\."series_number" IN \(SELECT value FROM json_each\(\?\)\)/);
    // Up to SHORT_LIST values: `IN (?, …)` as before.
    const short: Query = { ...base, constraints: [{ kind: 'list', tag: '0020000D', values: uids.slice(0, SHORT_LIST) }] };
    assert.match(selectStudies(lite, sqliteDialect, short).compile().sql, new RegExp(`"st"\\."study_uid" IN \\(${Array(SHORT_LIST).fill('\\?').join(', ')}\\)`));
  });

  it('refuses a malformed tag', () => {
    const query: Query = { ...base, constraints: [{ kind: 'single', tag: "0008'; DROP", value: 'x' }] };
    assert.throws(() => selectStudies(lite, sqliteDialect, query).compile());
  });
});
