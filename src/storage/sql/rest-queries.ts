import { sql, type Kysely } from 'kysely';
import type { ChangeKind, InstanceRow, Page, PageOptions, SeriesSummary, StudyListOptions, StudySummary } from '../metadata.js';
import { compileWhere } from './compile-query.js';
import type { Dialect } from './dialect.js';
import type { IndexDatabase } from './schema.js';

/**
 * The REST API's reads (SPEC §5: lists with totals, details, statistics) over the shared schema.
 * Plain kysely plus the Dialect, so SQLite and PostgreSQL run the same text. Filters reuse the
 * QIDO compiler (`compileWhere`), so PN, wildcard and range matching mean the same everywhere.
 */

type Db = Kysely<IndexDatabase>;

const IN_CHUNK = 500;
const num = (v: number | string | null | undefined): number => (v === null || v === undefined ? 0 : Number(v));

function pageOf(p: PageOptions): { limit: number; offset: number } {
  return { limit: Math.max(1, Math.floor(p.limit)), offset: Math.max(0, Math.floor(p.offset)) };
}

// ---- studies ---------------------------------------------------------------------------

function studyBase(db: Db) {
  return db
    .selectFrom('studies as st')
    .innerJoin('patients as p', 'p.id', 'st.patient_fk')
    .select([
      'st.id',
      'st.study_uid',
      'p.patient_id',
      'p.patient_name',
      'p.birth_date',
      'p.sex',
      'st.study_date',
      'st.study_time',
      'st.study_description',
      'st.accession_number',
      'st.num_series',
      'st.num_instances',
      'st.total_bytes',
      'st.received_at',
      'st.updated_at',
    ]);
}
type StudyBaseRow = Awaited<ReturnType<ReturnType<typeof studyBase>['executeTakeFirstOrThrow']>>;

/** Distinct modalities of each study (one indexed query per chunk of studies). */
export async function modalitiesOf(db: Db, studyIds: number[]): Promise<Map<number, string[]>> {
  const out = new Map<number, string[]>();
  for (let k = 0; k < studyIds.length; k += IN_CHUNK) {
    const rows = await db
      .selectFrom('series')
      .select(['study_fk', 'modality'])
      .distinct()
      .where('study_fk', 'in', studyIds.slice(k, k + IN_CHUNK))
      .where('modality', 'is not', null)
      .execute();
    for (const r of rows) {
      if (r.modality === null) continue;
      const list = out.get(r.study_fk) ?? [];
      list.push(r.modality);
      out.set(r.study_fk, list);
    }
  }
  for (const list of out.values()) list.sort();
  return out;
}

async function toStudySummaries(db: Db, dialect: Dialect, rows: StudyBaseRow[]): Promise<StudySummary[]> {
  const mods = rows.length > 0 ? await modalitiesOf(db, rows.map((r) => r.id)) : new Map<number, string[]>();
  return rows.map((r) => ({
    studyUid: r.study_uid,
    patientId: r.patient_id,
    patientName: r.patient_name,
    patientBirthDate: r.birth_date,
    patientSex: r.sex,
    studyDate: r.study_date,
    studyTime: r.study_time,
    studyDescription: r.study_description,
    accessionNumber: r.accession_number,
    modalities: mods.get(r.id) ?? [],
    numSeries: num(r.num_series),
    numInstances: num(r.num_instances),
    totalBytes: num(r.total_bytes),
    receivedAt: dialect.fromDbTime(r.received_at),
    updatedAt: dialect.fromDbTime(r.updated_at),
  }));
}

export async function listStudies(db: Db, dialect: Dialect, options: StudyListOptions): Promise<Page<StudySummary>> {
  const { limit, offset } = pageOf(options);
  const where = compileWhere({ level: 'study', constraints: options.constraints, includeFields: [], fuzzy: false, limit, offset }, dialect);
  const dir = options.sort.descending ? 'desc' : 'asc';
  let q = studyBase(db).where(where);
  // received_at is NOT NULL: ORDER BY received_at, id walks its index. study_date may be absent;
  // absent dates come last in both directions (NULL order differs between engines, so it is explicit).
  if (options.sort.key === 'study_date') q = q.orderBy(sql`st.study_date IS NULL`).orderBy('st.study_date', dir);
  else q = q.orderBy('st.received_at', dir);
  const rows = await q.orderBy('st.id', dir).limit(limit).offset(offset).execute();
  const items = await toStudySummaries(db, dialect, rows);
  // The exact count is only worth its cost when this page does not already tell it.
  let total: number;
  if (rows.length > 0 && rows.length < limit) total = offset + rows.length;
  else {
    const n = await db
      .selectFrom('studies as st')
      .innerJoin('patients as p', 'p.id', 'st.patient_fk')
      .where(where)
      .select(sql<number | string>`COUNT(*)`.as('n'))
      .executeTakeFirst();
    total = num(n?.n);
  }
  return { items, total };
}

export async function getStudy(db: Db, dialect: Dialect, studyUid: string): Promise<StudySummary | undefined> {
  const row = await studyBase(db).where('st.study_uid', '=', studyUid).executeTakeFirst();
  return row ? (await toStudySummaries(db, dialect, [row]))[0] : undefined;
}

// ---- series ----------------------------------------------------------------------------

function seriesBase(db: Db) {
  return db
    .selectFrom('series as se')
    .innerJoin('studies as st', 'st.id', 'se.study_fk')
    .select([
      'se.id',
      'st.study_uid',
      'se.series_uid',
      'se.modality',
      'se.series_number',
      'se.series_description',
      'se.series_date',
      'se.body_part',
      'se.num_instances',
      'se.total_bytes',
      'se.received_at',
      'se.updated_at',
    ]);
}
type SeriesBaseRow = Awaited<ReturnType<ReturnType<typeof seriesBase>['executeTakeFirstOrThrow']>>;

function toSeriesSummary(dialect: Dialect, r: SeriesBaseRow): SeriesSummary {
  return {
    studyUid: r.study_uid,
    seriesUid: r.series_uid,
    modality: r.modality,
    seriesNumber: r.series_number,
    seriesDescription: r.series_description,
    seriesDate: r.series_date,
    bodyPart: r.body_part,
    numInstances: num(r.num_instances),
    totalBytes: num(r.total_bytes),
    receivedAt: dialect.fromDbTime(r.received_at),
    updatedAt: dialect.fromDbTime(r.updated_at),
  };
}

export async function listSeries(db: Db, dialect: Dialect, studyUid: string, page: PageOptions): Promise<Page<SeriesSummary> | undefined> {
  const study = await db.selectFrom('studies').select(['id', 'num_series']).where('study_uid', '=', studyUid).executeTakeFirst();
  if (!study) return undefined;
  const { limit, offset } = pageOf(page);
  const rows = await seriesBase(db)
    .where('se.study_fk', '=', study.id)
    .orderBy(sql`se.series_number IS NULL`)
    .orderBy('se.series_number')
    .orderBy('se.id')
    .limit(limit)
    .offset(offset)
    .execute();
  return { items: rows.map((r) => toSeriesSummary(dialect, r)), total: num(study.num_series) };
}

export async function getSeries(db: Db, dialect: Dialect, seriesUid: string): Promise<SeriesSummary | undefined> {
  const row = await seriesBase(db).where('se.series_uid', '=', seriesUid).executeTakeFirst();
  return row ? toSeriesSummary(dialect, row) : undefined;
}

// ---- instances -------------------------------------------------------------------------

export async function listSeriesInstances(db: Db, dialect: Dialect, seriesUid: string, page: PageOptions): Promise<Page<InstanceRow> | undefined> {
  const series = await db
    .selectFrom('series as se')
    .innerJoin('studies as st', 'st.id', 'se.study_fk')
    .select(['se.id', 'se.num_instances', 'st.study_uid'])
    .where('se.series_uid', '=', seriesUid)
    .executeTakeFirst();
  if (!series) return undefined;
  const { limit, offset } = pageOf(page);
  const rows = await db
    .selectFrom('instances as i')
    .select(['i.sop_uid', 'i.sop_class_uid', 'i.instance_number', 'i.transfer_syntax', 'i.blob_key', 'i.size', 'i.sha256', 'i.received_at'])
    .where('i.series_fk', '=', series.id)
    .orderBy(sql`i.instance_number IS NULL`)
    .orderBy('i.instance_number')
    .orderBy('i.id')
    .limit(limit)
    .offset(offset)
    .execute();
  return {
    items: rows.map((r) => ({
      studyUid: series.study_uid,
      seriesUid,
      sopUid: r.sop_uid,
      sopClassUid: r.sop_class_uid,
      instanceNumber: r.instance_number,
      transferSyntaxUid: r.transfer_syntax,
      blobKey: r.blob_key,
      size: num(r.size),
      sha256: r.sha256,
      receivedAt: dialect.fromDbTime(r.received_at),
    })),
    total: num(series.num_instances),
  };
}

// ---- statistics ------------------------------------------------------------------------

/**
 * The statistics queries, exported so a test can EXPLAIN exactly what runs: none of them reads
 * `instances` (the studies carry series/instance/byte counters; series carry theirs per
 * modality), and the "last 24 h" count is a range on the indexed `changes.at`.
 */
export function statisticsQueries(db: Db, dialect: Dialect, options: { since: Date; kinds: ChangeKind[] }) {
  return {
    patients: db.selectFrom('patients').select(sql<number | string>`COUNT(*)`.as('n')),
    totals: db
      .selectFrom('studies')
      .select([
        sql<number | string>`COUNT(*)`.as('studies'),
        sql<number | string | null>`SUM(num_series)`.as('series'),
        sql<number | string | null>`SUM(num_instances)`.as('instances'),
        sql<number | string | null>`SUM(total_bytes)`.as('bytes'),
      ]),
    byModality: db.selectFrom('series').select(['modality', sql<number | string | null>`SUM(num_instances)`.as('n')]).groupBy('modality'),
    changesSince: db
      .selectFrom('changes')
      .select(sql<number | string>`COUNT(*)`.as('n'))
      .where('at', '>=', dialect.toDbTime(options.since))
      .where('kind', 'in', options.kinds.length > 0 ? options.kinds : ['stored']),
  };
}
