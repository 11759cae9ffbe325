import { sql, type Kysely, type RawBuilder, type SqlBool } from 'kysely';
import type { Query } from '../../dicom/query-model.js';
import type { DicomJsonDataset } from '../../dicom/types.js';
import type {
  ChangeKind,
  ChangeRow,
  CommitOptions,
  CommitResult,
  InstanceRecord,
  InstanceRow,
  InstanceScope,
  MetadataStore,
  QueryRows,
  RemoveResult,
  StoreStatistics,
} from '../metadata.js';
import { countMatches, selectInstances, selectPatients, selectSeries, selectStudies } from './compile-query.js';
import type { Dialect } from './dialect.js';
import { getSeries, getStudy, listSeries, listSeriesInstances, listStudies, modalitiesOf, statisticsQueries } from './rest-queries.js';
import type { IndexDatabase } from './schema.js';

/**
 * MetadataStore over kysely, shared by the SQLite and PostgreSQL adapters. An adapter supplies
 * the connection, its Dialect, how a write transaction is opened (SQLite: BEGIN IMMEDIATE;
 * PostgreSQL: READ COMMITTED with the Dialect's row locks, retried on serialization failures
 * and on unique violations — two first instances of one new study racing to insert it),
 * migrations and close.
 */
export interface SqlStoreDriver {
  db: Kysely<IndexDatabase>;
  dialect: Dialect;
  writeTransaction<T>(fn: (trx: Kysely<IndexDatabase>) => Promise<T>): Promise<T>;
  migrate(): Promise<void>;
  close(): Promise<void>;
}

type Db = Kysely<IndexDatabase>;

const LIST_PAGE = 500;
const IN_CHUNK = 500;
const DEFAULT_CHANGES_LIMIT = 1000;
/** Key of byModality for series without a Modality value. */
export const UNKNOWN_MODALITY = 'UNKNOWN';

const num = (v: number | string | null | undefined): number => (v === null || v === undefined ? 0 : Number(v));

export function createSqlMetadataStore(driver: SqlStoreDriver): MetadataStore {
  const { db, dialect } = driver;

  // ---- counters and pruning (inside a write transaction) -------------------------------------

  async function adjustPatient(trx: Db, id: number, dStudies: number): Promise<void> {
    if (dStudies === 0) return;
    await trx
      .updateTable('patients')
      .set({ num_studies: sql<number>`num_studies + ${dStudies}` })
      .where('id', '=', id)
      .execute();
  }

  /** Counter deltas; with `touch`, the row's updated_at too (an ingest always touches its study and series). */
  async function adjustStudy(trx: Db, id: number, dSeries: number, dInstances: number, dBytes: number, touch?: string | Date): Promise<void> {
    if (dSeries === 0 && dInstances === 0 && dBytes === 0 && touch === undefined) return;
    await trx
      .updateTable('studies')
      .set({
        num_series: sql<number>`num_series + ${dSeries}`,
        num_instances: sql<number>`num_instances + ${dInstances}`,
        total_bytes: sql<number>`total_bytes + ${dBytes}`,
        ...(touch === undefined ? {} : { updated_at: touch }),
      })
      .where('id', '=', id)
      .execute();
  }

  async function adjustSeries(trx: Db, id: number, dInstances: number, dBytes: number, touch?: string | Date): Promise<void> {
    if (dInstances === 0 && dBytes === 0 && touch === undefined) return;
    await trx
      .updateTable('series')
      .set({
        num_instances: sql<number>`num_instances + ${dInstances}`,
        total_bytes: sql<number>`total_bytes + ${dBytes}`,
        ...(touch === undefined ? {} : { updated_at: touch }),
      })
      .where('id', '=', id)
      .execute();
  }

  /** Deletes the patient when it has no study left. */
  async function prunePatient(trx: Db, id: number): Promise<void> {
    await trx.deleteFrom('patients').where('id', '=', id).where('num_studies', '<=', 0).execute();
  }

  /** Deletes the study when it has no series left (and then maybe its patient). Returns 1 when removed. */
  async function pruneStudy(trx: Db, id: number): Promise<number> {
    const st = await trx.selectFrom('studies').select(['num_series', 'patient_fk']).where('id', '=', id).executeTakeFirst();
    if (!st || num(st.num_series) > 0) return 0;
    await trx.deleteFrom('studies').where('id', '=', id).execute();
    await adjustPatient(trx, st.patient_fk, -1);
    await prunePatient(trx, st.patient_fk);
    return 1;
  }

  /** Deletes the series when it has no instance left, then maybe its study. */
  async function pruneSeries(trx: Db, id: number): Promise<{ series: number; studies: number }> {
    const se = await trx.selectFrom('series').select(['num_instances', 'study_fk']).where('id', '=', id).executeTakeFirst();
    if (!se || num(se.num_instances) > 0) return { series: 0, studies: 0 };
    await trx.deleteFrom('series').where('id', '=', id).execute();
    await adjustStudy(trx, se.study_fk, -1, 0, 0);
    return { series: 1, studies: await pruneStudy(trx, se.study_fk) };
  }

  async function appendChange(
    trx: Db,
    kind: ChangeKind,
    level: ChangeRow['level'],
    uids: { studyUid: string; seriesUid?: string | null; sopUid?: string | null },
  ): Promise<void> {
    await trx
      .insertInto('changes')
      .values({
        kind,
        level,
        study_uid: uids.studyUid,
        series_uid: uids.seriesUid ?? null,
        sop_uid: uids.sopUid ?? null,
        at: dialect.toDbTime(new Date()),
      })
      .execute();
  }

  /**
   * `table.column IS DISTINCT FROM value` for any of `cols` (NULL-safe, both dialects): the filter
   * of an attribute update, so that one changing nothing writes nothing — SQLite rewrites every
   * index whose column is in SET whatever the values, and PostgreSQL then keeps the update HOT.
   */
  function anyDistinct(table: 'patients' | 'studies' | 'series', cols: Record<string, unknown>): RawBuilder<SqlBool> {
    const terms = Object.entries(cols).map(([column, value]) => sql<SqlBool>`${sql.ref(`${table}.${column}`)} IS DISTINCT FROM ${value}`);
    return sql<SqlBool>`(${sql.join(terms, sql` OR `)})`;
  }

  // ---- commit ----------------------------------------------------------------------------

  async function commitIn(trx: Db, r: InstanceRecord, options: CommitOptions): Promise<CommitResult> {
    const now = dialect.toDbTime(new Date());
    const header = dialect.toDbJson(r.header);
    const patientHeader = dialect.toDbJson(r.levelHeaders.patient);
    const studyHeader = dialect.toDbJson(r.levelHeaders.study);
    const seriesHeader = dialect.toDbJson(r.levelHeaders.series);

    let instQ = trx
      .selectFrom('instances')
      .select(['id', 'sha256', 'blob_key', 'size', 'series_fk'])
      .where('sop_uid', '=', r.sopUid);
    if (dialect.rowLocks) instQ = instQ.forUpdate();
    const existing = await instQ.executeTakeFirst();
    if (existing) {
      if (existing.sha256 === r.blob.sha256) return { kind: 'duplicate' };
      if (options.onDuplicate === 'reject') return { kind: 'rejected-duplicate' };
    }

    let studyQ = trx
      .selectFrom('studies as st')
      .innerJoin('patients as p', 'p.id', 'st.patient_fk')
      .select(['st.id', 'st.patient_fk', 'p.patient_id', 'p.issuer'])
      .where('st.study_uid', '=', r.studyUid);
    if (dialect.rowLocks) studyQ = studyQ.forUpdate();
    const study0 = await studyQ.executeTakeFirst();
    const patientMismatch =
      study0 !== undefined && (study0.patient_id !== r.patient.patient_id || study0.issuer !== r.patient.issuer);
    if (patientMismatch && options.onPatientMismatch === 'reject') return { kind: 'rejected-patient-mismatch' };

    // Patient: upsert by (patient_id, issuer); attributes follow the last stored instance. Every
    // attribute update below is filtered by anyDistinct(): an instance that changes nothing (the
    // usual case: the next instance of a known study) rewrites no row and no index entry.
    const p = r.patient;
    const patientCols = {
      patient_name: p.patient_name,
      patient_name_norm: p.patient_name_norm,
      birth_date: p.birth_date,
      sex: p.sex,
      header: patientHeader,
    };
    let patientId: number;
    if (study0 && !patientMismatch) {
      patientId = study0.patient_fk;
      await trx
        .updateTable('patients')
        .set({ ...patientCols, updated_at: now })
        .where('id', '=', patientId)
        .where(anyDistinct('patients', patientCols))
        .execute();
    } else {
      const inserted = await trx
        .insertInto('patients')
        .values({ patient_id: p.patient_id, issuer: p.issuer, ...patientCols, num_studies: 0, created_at: now, updated_at: now })
        .onConflict((oc) => oc.columns(['patient_id', 'issuer']).doUpdateSet({ ...patientCols, updated_at: now }).where(anyDistinct('patients', patientCols)))
        .returning('id')
        .executeTakeFirst();
      // No row back: the patient exists and nothing changed.
      patientId =
        inserted?.id ??
        (await trx
          .selectFrom('patients')
          .select('id')
          .where('patient_id', '=', p.patient_id)
          .where('issuer', '=', p.issuer)
          .executeTakeFirstOrThrow()).id;
    }

    // Study.
    const studyCols = { ...r.study, header: studyHeader };
    let studyId: number;
    if (study0) {
      studyId = study0.id;
      if (study0.patient_fk !== patientId) {
        await trx.updateTable('studies').set({ patient_fk: patientId }).where('id', '=', studyId).execute();
        await adjustPatient(trx, study0.patient_fk, -1);
        await adjustPatient(trx, patientId, 1);
        await prunePatient(trx, study0.patient_fk);
      }
      await trx
        .updateTable('studies')
        .set({ ...studyCols, updated_at: now })
        .where('id', '=', studyId)
        .where(anyDistinct('studies', studyCols))
        .execute();
    } else {
      const ins = await trx
        .insertInto('studies')
        .values({
          patient_fk: patientId,
          study_uid: r.studyUid,
          ...studyCols,
          num_series: 0,
          num_instances: 0,
          total_bytes: 0,
          received_at: dialect.toDbTime(r.receivedAt),
          updated_at: now,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      studyId = ins.id;
      await adjustPatient(trx, patientId, 1);
    }

    // Series. A new series is counted in its study by the study's counter update below.
    let seriesQ = trx
      .selectFrom('series')
      .select(['id', 'study_fk', 'num_instances', 'total_bytes'])
      .where('series_uid', '=', r.seriesUid);
    if (dialect.rowLocks) seriesQ = seriesQ.forUpdate();
    const series0 = await seriesQ.executeTakeFirst();
    const seriesCols = { ...r.series, header: seriesHeader };
    let seriesId: number;
    let newSeries = 0;
    if (series0) {
      seriesId = series0.id;
      if (series0.study_fk !== studyId) {
        // The series moves to the instance's study, with everything it holds.
        const n = num(series0.num_instances);
        const bytes = num(series0.total_bytes);
        await trx.updateTable('series').set({ study_fk: studyId }).where('id', '=', seriesId).execute();
        await adjustStudy(trx, series0.study_fk, -1, -n, -bytes);
        await adjustStudy(trx, studyId, 1, n, bytes);
        await pruneStudy(trx, series0.study_fk);
      }
      await trx
        .updateTable('series')
        .set({ ...seriesCols, updated_at: now })
        .where('id', '=', seriesId)
        .where(anyDistinct('series', seriesCols))
        .execute();
    } else {
      const ins = await trx
        .insertInto('series')
        .values({
          study_fk: studyId,
          series_uid: r.seriesUid,
          ...seriesCols,
          num_instances: 0,
          total_bytes: 0,
          received_at: dialect.toDbTime(r.receivedAt),
          updated_at: now,
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      seriesId = ins.id;
      newSeries = 1;
    }

    // Instance. The counters (and updated_at) of its series and study: one statement each.
    const instanceCols = {
      series_fk: seriesId,
      sop_class_uid: r.instance.sop_class_uid,
      instance_number: r.instance.instance_number,
      transfer_syntax: r.transferSyntaxUid,
      blob_key: r.blob.key,
      size: r.blob.size,
      sha256: r.blob.sha256,
      received_at: dialect.toDbTime(r.receivedAt),
      header,
    };
    const uids = { studyUid: r.studyUid, seriesUid: r.seriesUid, sopUid: r.sopUid };
    if (existing) {
      const oldSize = num(existing.size);
      await trx.updateTable('instances').set(instanceCols).where('id', '=', existing.id).execute();
      if (existing.series_fk === seriesId) {
        await adjustSeries(trx, seriesId, 0, r.blob.size - oldSize, now);
        await adjustStudy(trx, studyId, newSeries, 0, r.blob.size - oldSize, now);
      } else {
        const oldSeries = await trx
          .selectFrom('series')
          .select('study_fk')
          .where('id', '=', existing.series_fk)
          .executeTakeFirstOrThrow();
        await adjustSeries(trx, existing.series_fk, -1, -oldSize);
        await adjustStudy(trx, oldSeries.study_fk, 0, -1, -oldSize);
        await adjustSeries(trx, seriesId, 1, r.blob.size, now);
        // Before pruning: the instance's study must already count its new series.
        await adjustStudy(trx, studyId, newSeries, 1, r.blob.size, now);
        await pruneSeries(trx, existing.series_fk);
      }
      await appendChange(trx, 'replaced', 'instance', uids);
      return { kind: 'replaced', oldBlobKey: existing.blob_key, patientMismatch };
    }
    await trx
      .insertInto('instances')
      .values({ sop_uid: r.sopUid, ...instanceCols })
      .execute();
    await adjustSeries(trx, seriesId, 1, r.blob.size, now);
    await adjustStudy(trx, studyId, newSeries, 1, r.blob.size, now);
    await appendChange(trx, 'stored', 'instance', uids);
    return { kind: 'stored', patientMismatch };
  }

  // ---- removal ---------------------------------------------------------------------------
  // With row locks (PostgreSQL, READ COMMITTED) a removal first locks the study row, as an ingest
  // into that study does (instance row, then study row): a concurrent ingest either commits before
  // the removal reads what to delete, or waits and then finds the study gone — never an instance
  // inserted under a series being deleted. SQLite serialises writers instead.

  async function lockStudyRow(trx: Db, studyId: number): Promise<void> {
    if (dialect.rowLocks) await trx.selectFrom('studies').select('id').where('id', '=', studyId).forUpdate().execute();
  }

  async function removeStudyIn(trx: Db, studyUid: string): Promise<RemoveResult | undefined> {
    let stQ = trx.selectFrom('studies').select(['id', 'patient_fk']).where('study_uid', '=', studyUid);
    if (dialect.rowLocks) stQ = stQ.forUpdate();
    const st = await stQ.executeTakeFirst();
    if (!st) return undefined;
    const keys = await trx
      .selectFrom('instances as i')
      .innerJoin('series as se', 'se.id', 'i.series_fk')
      .select('i.blob_key')
      .where('se.study_fk', '=', st.id)
      .execute();
    const seriesIds = trx.selectFrom('series').select('id').where('study_fk', '=', st.id);
    await trx.deleteFrom('instances').where('series_fk', 'in', seriesIds).execute();
    const delSeries = await trx.deleteFrom('series').where('study_fk', '=', st.id).executeTakeFirst();
    await trx.deleteFrom('studies').where('id', '=', st.id).execute();
    await adjustPatient(trx, st.patient_fk, -1);
    await prunePatient(trx, st.patient_fk);
    await appendChange(trx, 'deleted', 'study', { studyUid });
    return { blobKeys: keys.map((k) => k.blob_key), studies: 1, series: Number(delSeries.numDeletedRows), instances: keys.length };
  }

  async function removeSeriesIn(trx: Db, seriesUid: string, studyUid?: string): Promise<RemoveResult | undefined> {
    if (dialect.rowLocks) {
      const found = await trx.selectFrom('series').select('study_fk').where('series_uid', '=', seriesUid).executeTakeFirst();
      if (found) await lockStudyRow(trx, found.study_fk);
    }
    const se = await trx
      .selectFrom('series as se')
      .innerJoin('studies as st', 'st.id', 'se.study_fk')
      .select(['se.id', 'se.study_fk', 'st.study_uid'])
      .where('se.series_uid', '=', seriesUid)
      .executeTakeFirst();
    if (!se || (studyUid !== undefined && se.study_uid !== studyUid)) return undefined;
    const rows = await trx.selectFrom('instances').select(['blob_key', 'size']).where('series_fk', '=', se.id).execute();
    const bytes = rows.reduce((s, r) => s + num(r.size), 0);
    await trx.deleteFrom('instances').where('series_fk', '=', se.id).execute();
    await trx.deleteFrom('series').where('id', '=', se.id).execute();
    await adjustStudy(trx, se.study_fk, -1, -rows.length, -bytes);
    const studies = await pruneStudy(trx, se.study_fk);
    await appendChange(trx, 'deleted', 'series', { studyUid: se.study_uid, seriesUid });
    return { blobKeys: rows.map((r) => r.blob_key), studies, series: 1, instances: rows.length };
  }

  async function removeInstanceIn(
    trx: Db,
    sopUid: string,
    scope: { studyUid?: string; seriesUid?: string } = {},
  ): Promise<RemoveResult | undefined> {
    if (dialect.rowLocks) {
      const found = await trx
        .selectFrom('instances as i')
        .innerJoin('series as se', 'se.id', 'i.series_fk')
        .select('se.study_fk')
        .where('i.sop_uid', '=', sopUid)
        .forUpdate('i')
        .executeTakeFirst();
      if (found) await lockStudyRow(trx, found.study_fk);
    }
    const row = await trx
      .selectFrom('instances as i')
      .innerJoin('series as se', 'se.id', 'i.series_fk')
      .innerJoin('studies as st', 'st.id', 'se.study_fk')
      .select(['i.id', 'i.blob_key', 'i.size', 'i.series_fk', 'se.series_uid', 'se.study_fk', 'st.study_uid'])
      .where('i.sop_uid', '=', sopUid)
      .executeTakeFirst();
    if (!row) return undefined;
    if (scope.studyUid !== undefined && row.study_uid !== scope.studyUid) return undefined;
    if (scope.seriesUid !== undefined && row.series_uid !== scope.seriesUid) return undefined;
    const size = num(row.size);
    await trx.deleteFrom('instances').where('id', '=', row.id).execute();
    await adjustSeries(trx, row.series_fk, -1, -size);
    await adjustStudy(trx, row.study_fk, 0, -1, -size);
    const pruned = await pruneSeries(trx, row.series_fk);
    await appendChange(trx, 'deleted', 'instance', { studyUid: row.study_uid, seriesUid: row.series_uid, sopUid });
    return { blobKeys: [row.blob_key], studies: pruned.studies, series: pruned.series, instances: 1 };
  }

  // ---- reads -----------------------------------------------------------------------------

  async function query(q: Query): Promise<QueryRows> {
    switch (q.level) {
      case 'patient': {
        const rows = await selectPatients(db, dialect, q).execute();
        return {
          level: 'patient',
          rows: rows.map((r) => ({
            patientId: r.patient_id,
            issuer: r.issuer,
            header: dialect.fromDbJson(r.header),
            numStudies: num(r.num_studies),
          })),
        };
      }
      case 'study': {
        const rows = await selectStudies(db, dialect, q).execute();
        const mods = await modalitiesOf(db, rows.map((r) => r.id));
        return {
          level: 'study',
          rows: rows.map((r) => ({
            studyUid: r.study_uid,
            header: dialect.fromDbJson(r.header),
            numSeries: num(r.num_series),
            numInstances: num(r.num_instances),
            totalBytes: num(r.total_bytes),
            modalities: mods.get(r.id) ?? [],
            receivedAt: dialect.fromDbTime(r.received_at),
            updatedAt: dialect.fromDbTime(r.updated_at),
          })),
        };
      }
      case 'series': {
        const rows = await selectSeries(db, dialect, q).execute();
        return {
          level: 'series',
          rows: rows.map((r) => ({
            studyUid: r.study_uid,
            seriesUid: r.series_uid,
            header: dialect.fromDbJson(r.header),
            studyHeader: dialect.fromDbJson(r.study_header),
            numInstances: num(r.num_instances),
            totalBytes: num(r.total_bytes),
          })),
        };
      }
      case 'instance': {
        const rows = await selectInstances(db, dialect, q).execute();
        return {
          level: 'instance',
          rows: rows.map((r) => ({
            ...toInstanceRow(r),
            header: dialect.fromDbJson(r.header),
            seriesHeader: dialect.fromDbJson(r.series_header),
            studyHeader: dialect.fromDbJson(r.study_header),
          })),
        };
      }
    }
  }

  function instanceBase() {
    return db
      .selectFrom('instances as i')
      .innerJoin('series as se', 'se.id', 'i.series_fk')
      .innerJoin('studies as st', 'st.id', 'se.study_fk')
      .select([
        'i.id',
        'st.study_uid',
        'se.series_uid',
        'i.sop_uid',
        'i.sop_class_uid',
        'i.instance_number',
        'i.transfer_syntax',
        'i.blob_key',
        'i.size',
        'i.sha256',
        'i.received_at',
      ]);
  }

  type BaseRow = Awaited<ReturnType<ReturnType<typeof instanceBase>['executeTakeFirstOrThrow']>>;
  function toInstanceRow(r: BaseRow): InstanceRow {
    return {
      studyUid: r.study_uid,
      seriesUid: r.series_uid,
      sopUid: r.sop_uid,
      sopClassUid: r.sop_class_uid,
      instanceNumber: r.instance_number,
      transferSyntaxUid: r.transfer_syntax,
      blobKey: r.blob_key,
      size: num(r.size),
      sha256: r.sha256,
      receivedAt: dialect.fromDbTime(r.received_at),
    };
  }

  async function* listInstances(
    scope: InstanceScope,
    options: { withHeader?: boolean } = {},
  ): AsyncIterable<InstanceRow & { header?: DicomJsonDataset }> {
    let seriesQ = db
      .selectFrom('series as se')
      .innerJoin('studies as st', 'st.id', 'se.study_fk')
      .select(['se.id'])
      .where('st.study_uid', '=', scope.studyUid);
    if (scope.seriesUid !== undefined) seriesQ = seriesQ.where('se.series_uid', '=', scope.seriesUid);
    const seriesList = await seriesQ
      .orderBy(sql`se.series_number IS NULL`)
      .orderBy('se.series_number')
      .orderBy('se.id')
      .execute();
    for (const se of seriesList) {
      // Keyset paging in (instance_number IS NULL, instance_number, id) order.
      let after: { number: number | null; id: number } | undefined;
      for (;;) {
        let q = instanceBase().where('i.series_fk', '=', se.id);
        if (scope.sopUid !== undefined) q = q.where('i.sop_uid', '=', scope.sopUid);
        if (after) {
          const a = after;
          q =
            a.number === null
              ? q.where('i.instance_number', 'is', null).where('i.id', '>', a.id)
              : q.where((eb) =>
                  eb.or([
                    eb('i.instance_number', 'is', null),
                    eb('i.instance_number', '>', a.number as number),
                    eb.and([eb('i.instance_number', '=', a.number as number), eb('i.id', '>', a.id)]),
                  ]),
                );
        }
        const page = await q
          .$if(options.withHeader === true, (b) => b.select('i.header'))
          .orderBy(sql`i.instance_number IS NULL`)
          .orderBy('i.instance_number')
          .orderBy('i.id')
          .limit(LIST_PAGE)
          .execute();
        for (const r of page) {
          const row: InstanceRow & { header?: DicomJsonDataset } = toInstanceRow(r);
          if (options.withHeader === true) row.header = dialect.fromDbJson((r as { header?: unknown }).header);
          yield row;
        }
        const last = page[page.length - 1];
        if (page.length < LIST_PAGE || last === undefined) break;
        after = { number: last.instance_number, id: last.id };
      }
    }
  }

  return {
    dialect: dialect.name,
    migrate: () => driver.migrate(),
    ping: async () => {
      await sql`SELECT 1`.execute(db);
    },
    close: () => driver.close(),

    commitInstance: (record, options) => driver.writeTransaction((trx) => commitIn(trx, record, options)),

    query,
    count: async (q) => {
      const row = await countMatches(db, dialect, q).executeTakeFirst();
      return num(row?.n);
    },

    getInstance: async (sopUid, scope = {}) => {
      let q = instanceBase().where('i.sop_uid', '=', sopUid);
      if (scope.studyUid !== undefined) q = q.where('st.study_uid', '=', scope.studyUid);
      if (scope.seriesUid !== undefined) q = q.where('se.series_uid', '=', scope.seriesUid);
      const r = await q.executeTakeFirst();
      return r ? toInstanceRow(r) : undefined;
    },
    getInstanceHeader: async (sopUid) => {
      const r = await db.selectFrom('instances').select('header').where('sop_uid', '=', sopUid).executeTakeFirst();
      return r ? dialect.fromDbJson(r.header) : undefined;
    },
    listInstances,

    listStudies: (options) => listStudies(db, dialect, options),
    getStudy: (studyUid) => getStudy(db, dialect, studyUid),
    listSeries: (studyUid, page) => listSeries(db, dialect, studyUid, page),
    getSeries: (seriesUid) => getSeries(db, dialect, seriesUid),
    listSeriesInstances: (seriesUid, page) => listSeriesInstances(db, dialect, seriesUid, page),

    removeStudy: (studyUid) => driver.writeTransaction((trx) => removeStudyIn(trx, studyUid)),
    removeSeries: (seriesUid, studyUid) => driver.writeTransaction((trx) => removeSeriesIn(trx, seriesUid, studyUid)),
    removeInstance: (sopUid, scope) => driver.writeTransaction((trx) => removeInstanceIn(trx, sopUid, scope)),

    referencedBlobKeys: async (keys) => {
      const found = new Set<string>();
      const unique = [...new Set(keys)];
      for (let k = 0; k < unique.length; k += IN_CHUNK) {
        const rows = await db
          .selectFrom('instances')
          .select('blob_key')
          .where('blob_key', 'in', unique.slice(k, k + IN_CHUNK))
          .execute();
        for (const r of rows) found.add(r.blob_key);
      }
      return found;
    },

    changes: async ({ since, limit }) => {
      const rows = await db
        .selectFrom('changes')
        .selectAll()
        .where('seq', '>', since ?? 0)
        .orderBy('seq')
        .limit(limit !== undefined && limit > 0 ? Math.floor(limit) : DEFAULT_CHANGES_LIMIT)
        .execute();
      return rows.map((r) => ({
        seq: num(r.seq),
        kind: r.kind as ChangeKind,
        level: r.level as ChangeRow['level'],
        studyUid: r.study_uid,
        seriesUid: r.series_uid,
        sopUid: r.sop_uid,
        at: dialect.fromDbTime(r.at),
      }));
    },
    lastChangeSeq: async () => {
      const row = await db.selectFrom('changes').select(sql<number | string | null>`MAX(seq)`.as('seq')).executeTakeFirst();
      return num(row?.seq ?? 0);
    },

    countChangesSince: async (since, kinds) => {
      if (kinds.length === 0) return 0;
      const row = await statisticsQueries(db, dialect, { since, kinds }).changesSince.executeTakeFirst();
      return num(row?.n);
    },

    statistics: async (): Promise<StoreStatistics> => {
      // Counters, not scans of `instances`: studies carry their series/instance/byte totals.
      const queries = statisticsQueries(db, dialect, { since: new Date(), kinds: [] });
      const patients = await queries.patients.executeTakeFirst();
      const totals = await queries.totals.executeTakeFirst();
      const mods = await queries.byModality.execute();
      const byModality: Record<string, number> = {};
      for (const m of mods) {
        const key = m.modality ?? UNKNOWN_MODALITY;
        byModality[key] = (byModality[key] ?? 0) + num(m.n);
      }
      return {
        patients: num(patients?.n),
        studies: num(totals?.studies),
        series: num(totals?.series),
        instances: num(totals?.instances),
        bytes: num(totals?.bytes),
        byModality,
      };
    },
  };
}
