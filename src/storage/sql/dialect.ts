import { sql, type Expression, type RawBuilder, type SqlBool } from 'kysely';
import type { DicomJsonDataset, Tag } from '../../dicom/types.js';

/**
 * The few things that differ between SQL engines (STYLE-ANCHORS rule 11: one compiler, a small
 * Dialect — not `if (dialect === …)` in every operator). Everything else in storage/sql is
 * plain kysely that both SQLite and PostgreSQL accept.
 */
export interface Dialect {
  readonly name: 'sqlite' | 'postgres';
  /**
   * `expr LIKE pattern ESCAPE '\'`, case-sensitive (DICOM wildcard matching is case-sensitive;
   * PN is matched on normalised columns). `pattern` is already SQL-escaped with `\`.
   */
  like(expr: Expression<unknown> | RawBuilder<unknown>, pattern: string): RawBuilder<SqlBool>;
  /**
   * Whether any value of `tag` in the DICOM JSON header column `headerRef` (a qualified column
   * name such as `se.header`) satisfies `cond`, which is given each value as text: a PN's
   * Alphabetic group (else the value's JSON), a number as its text. PS3.4 C.2.2.3: an attribute
   * of several values matches when any of them does. False when absent or without values.
   */
  jsonAnyValue(headerRef: string, tag: Tag, cond: (valueText: RawBuilder<string | null>) => RawBuilder<SqlBool>): RawBuilder<SqlBool>;
  /**
   * `expr` equals one of `values` (non-empty), with ONE bound parameter whatever the list's length:
   * a DICOM list (UID lists of C-FIND/C-GET/QIDO) may hold 100,000 values, far more than an engine
   * binds (SQLite 32,766 variables, PostgreSQL 65,535). SQLite: `expr IN (SELECT value FROM
   * json_each(?))` on a JSON array; PostgreSQL: `expr IN (SELECT unnest(?::text[]))` on an array
   * (numbers: `expr = ANY(?)`). Both keep the index on a column usable (one index probe per value).
   * Short lists keep `IN (?, …)`: the same matches, the plans the engines know best.
   */
  inList(expr: RawBuilder<unknown>, values: readonly string[] | readonly number[]): RawBuilder<SqlBool>;
  /** Value bound for a timestamp column. */
  toDbTime(d: Date): string | Date;
  /** A timestamp column as read back. */
  fromDbTime(v: unknown): Date;
  /** Value bound for a JSON column. */
  toDbJson(v: DicomJsonDataset): string;
  /** A JSON column as read back. */
  fromDbJson(v: unknown): DicomJsonDataset;
  /** Whether `SELECT … FOR UPDATE` exists (PostgreSQL); SQLite serialises writers with BEGIN IMMEDIATE. */
  readonly rowLocks: boolean;
}

const TAG_RE = /^[0-9A-Fa-f]{8}$/;

export function assertTag(tag: Tag): string {
  if (!TAG_RE.test(tag)) throw new Error(`not a DICOM tag: ${tag}`);
  return tag.toUpperCase();
}

/**
 * Up to this many values a list is bound one parameter per value (`IN (?, …)`); longer lists as one
 * array parameter (Dialect.inList).
 */
export const SHORT_LIST = 50;

function shortList(expr: RawBuilder<unknown>, values: readonly string[] | readonly number[]): RawBuilder<SqlBool> | undefined {
  if (values.length > SHORT_LIST) return undefined;
  return sql<SqlBool>`${expr} IN (${sql.join(values as readonly unknown[])})`;
}

function parseJson(v: unknown): DicomJsonDataset {
  if (typeof v === 'string') return JSON.parse(v) as DicomJsonDataset;
  if (v !== null && typeof v === 'object') return v as DicomJsonDataset;
  return {};
}

/**
 * SQLite: timestamps are ISO-8601 UTC text (`toISOString()`: fixed width, so text order is time
 * order), JSON is text read with json_extract. LIKE is made case-sensitive with
 * `PRAGMA case_sensitive_like = ON` (set by the adapter on its connection).
 */
export const sqliteDialect: Dialect = {
  name: 'sqlite',
  like: (expr, pattern) => sql<SqlBool>`${expr} LIKE ${pattern} ESCAPE '\\'`,
  jsonAnyValue(headerRef, tag, cond) {
    const path = `$."${assertTag(tag)}".Value`;
    // json_each's `atom` is a text or number value itself (numbers CAST to text, to compare as the
    // bound values are); an object (a PN) gives its Alphabetic group, else its JSON text.
    const text = sql<string | null>`CAST(CASE WHEN mv.type = 'object' THEN COALESCE(json_extract(mv.value, '$.Alphabetic'), mv.value) ELSE mv.atom END AS TEXT)`;
    return sql<SqlBool>`EXISTS (SELECT 1 FROM json_each(${sql.ref(headerRef)}, ${path}) AS mv WHERE ${cond(text)})`;
  },
  // json_each's `value` keeps each element's JSON type (text, integer, real): compared as the
  // bound values would be. The sub-query is evaluated once into an ephemeral index.
  inList: (expr, values) => shortList(expr, values) ?? sql<SqlBool>`${expr} IN (SELECT value FROM json_each(${JSON.stringify(values)}))`,
  toDbTime: (d) => d.toISOString(),
  fromDbTime: (v) => (v instanceof Date ? v : new Date(typeof v === 'number' ? v : String(v))),
  toDbJson: (v) => JSON.stringify(v),
  fromDbJson: parseJson,
  rowLocks: false,
};

/**
 * PostgreSQL (storage/postgres): `h->'T'->'Value'->>0`; LIKE is case-sensitive natively (text
 * columns are COLLATE "C"); timestamptz and jsonb.
 */
export const postgresDialect: Dialect = {
  name: 'postgres',
  like: (expr, pattern) => sql<SqlBool>`${expr} LIKE ${pattern} ESCAPE '\\'`,
  jsonAnyValue(headerRef, tag, cond) {
    // The tag is validated, so it is inlined as a literal: `->` is overloaded (text/int) and an
    // untyped parameter would be ambiguous. `#>> '{}'` is a scalar's text (a string unquoted).
    const values = sql`${sql.ref(headerRef)}->${sql.lit(assertTag(tag))}->'Value'`;
    const text = sql<string | null>`COALESCE(mv.v->>'Alphabetic', mv.v #>> '{}')`;
    return sql<SqlBool>`EXISTS (SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(${values}) = 'array' THEN ${values} END) AS mv(v) WHERE ${cond(text)})`;
  },
  // Text: `IN (SELECT unnest(?::text[]))`, not `= ANY(?::text[])`: the planner expects `= ANY` of
  // 50,000 values to match 50,000 rows and walks the whole table with a hashed filter (studies_pkey
  // backwards under ORDER BY id DESC LIMIT, or a Seq Scan for the count: 0.3-0.5 s on a million
  // studies), while the semi-join probes the column's unique index once per value (0.15 s). The
  // column's COLLATE "C" applies to the unnested values, so its B-tree serves them. Numbers (integer
  // columns only): `= ANY(?)` untyped, the array taking the column's type as `= ?` does.
  inList(expr, values) {
    const short = shortList(expr, values);
    if (short !== undefined) return short;
    const list = [...values] as unknown[];
    return typeof values[0] === 'number' ? sql<SqlBool>`${expr} = ANY(${list})` : sql<SqlBool>`${expr} IN (SELECT unnest(${list}::text[]))`;
  },
  toDbTime: (d) => d,
  fromDbTime: (v) => (v instanceof Date ? v : new Date(String(v))),
  // jsonb cannot hold U+0000 (22P05): NUL is DICOM value padding, dropped from the index copy only
  // (the original bytes are in the blob).
  toDbJson: (v) => JSON.stringify(v, (_key, value: unknown) => (typeof value === 'string' && value.includes('\0') ? value.replaceAll('\0', '') : value)),
  fromDbJson: parseJson,
  rowLocks: true,
};
