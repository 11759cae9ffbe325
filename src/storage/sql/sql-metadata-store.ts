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
  PatientColumns,
  QueryRows,
  RemoveResult,
  SeriesColumns,
  StoreStatistics,
  StudyColumns,
} from '../metadata.js';
import { prepared } from './prepared.js';
import { readInSnapshot } from './read-snapshot.js';
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

  const readSnapshot = <T>(fn: (trx: Db) => Promise<T>): Promise<T> => readInSnapshot(db, dialect, fn);

  // ---- counters and pruning (inside a write transaction) -------------------------------------

  async function adjustPatient(trx: Db, id: number, dStudies: number): Promise<void> {
    if (dStudies === 0) return;
    await stmt.adjustPatient(trx, { id, d: dStudies });
  }

  /** Counter deltas; with `touch`, the row's updated_at too (an ingest always touches its study and series). */
  async function adjustStudy(trx: Db, id: number, dSeries: number, dInstances: number, dBytes: number, touch?: string | Date): Promise<void> {
    if (touch !== undefined) await stmt.adjustStudyTouch(trx, { id, dSeries, dInstances, dBytes, now: touch });
    else if (dSeries !== 0 || dInstances !== 0 || dBytes !== 0) await stmt.adjustStudy(trx, { id, dSeries, dInstances, dBytes });
  }

  async function adjustSeries(trx: Db, id: number, dInstances: number, dBytes: number, touch?: string | Date): Promise<void> {
    if (touch !== undefined) await stmt.adjustSeriesTouch(trx, { id, dInstances, dBytes, now: touch });
    else if (dInstances !== 0 || dBytes !== 0) await stmt.adjustSeries(trx, { id, dInstances, dBytes });
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
    await stmt.appendChange(trx, {
      kind,
      level,
      study_uid: uids.studyUid,
      series_uid: uids.seriesUid ?? null,
      sop_uid: uids.sopUid ?? null,
      at: dialect.toDbTime(new Date()),
    });
  }

  /**
   * `table.column IS DISTINCT FROM value` for any of `cols` (NULL-safe, both dialects): the filter
   * of an attribute update, so that one changing nothing writes nothing — SQLite rewrites every
   * index whose column is in SET whatever the values, and PostgreSQL then keeps the update HOT.
   */
  function anyDistinct(table: 'patients' | 'studies' | 'series', cols: object): RawBuilder<SqlBool> {
    const terms = Object.entries(cols).map(([column, value]) => sql<SqlBool>`${sql.ref(`${table}.${column}`)} IS DISTINCT FROM ${value}`);
    return sql<SqlBool>`(${sql.join(terms, sql` OR `)})`;
  }

  // ---- the ingest statements, compiled once (prepared.ts) --------------------------------------
  // Value shapes: the record's column objects plus ids, JSON headers and timestamps.

  type Time = string | Date;
  type PatientAttrs = Pick<PatientColumns, 'patient_name' | 'patient_name_norm' | 'birth_date' | 'sex'> & { header: string };
  type StudyAttrs = StudyColumns & { header: string };
  type SeriesAttrs = SeriesColumns & { header: string };
  const patientAttrs = (v: PatientAttrs): PatientAttrs => ({
    patient_name: v.patient_name,
    patient_name_norm: v.patient_name_norm,
    birth_date: v.birth_date,
    sex: v.sex,
    header: v.header,
  });
  const studyAttrs = (v: StudyAttrs): StudyAttrs => ({
    study_date: v.study_date,
    study_time: v.study_time,
    accession_number: v.accession_number,
    referring_physician: v.referring_physician,
    referring_physician_norm: v.referring_physician_norm,
    study_description: v.study_description,
    study_id: v.study_id,
    header: v.header,
  });
  const seriesAttrs = (v: SeriesAttrs): SeriesAttrs => ({
    modality: v.modality,
    series_number: v.series_number,
    series_description: v.series_description,
    series_date: v.series_date,
    series_time: v.series_time,
    pps_start_date: v.pps_start_date,
    pps_start_time: v.pps_start_time,
    body_part: v.body_part,
    header: v.header,
  });

  interface InstanceValues {
    series_fk: number;
    sop_class_uid: string;
    instance_number: number | null;
    transfer_syntax: string;
    blob_key: string;
    size: number;
    sha256: string;
    received_at: Time;
    header: string;
  }
  const instanceValues = (v: InstanceValues): InstanceValues => ({
    series_fk: v.series_fk,
    sop_class_uid: v.sop_class_uid,
    instance_number: v.instance_number,
    transfer_syntax: v.transfer_syntax,
    blob_key: v.blob_key,
    size: v.size,
    sha256: v.sha256,
    received_at: v.received_at,
    header: v.header,
  });

  interface SeriesDeltas {
    id: number;
    dInstances: number;
    dBytes: number;
  }
  interface StudyDeltas extends SeriesDeltas {
    dSeries: number;
  }
  const seriesCounters = (v: SeriesDeltas) => ({
    num_instances: sql<number>`num_instances + ${v.dInstances}`,
    total_bytes: sql<number>`total_bytes + ${v.dBytes}`,
  });
  const studyCounters = (v: StudyDeltas) => ({ num_series: sql<number>`num_series + ${v.dSeries}`, ...seriesCounters(v) });

  const stmt = {
    instanceBySop: prepared((trx, v: { sop: string }) => {
      const q = trx.selectFrom('instances').select(['id', 'sha256', 'blob_key', 'size', 'series_fk']).where('sop_uid', '=', v.sop);
      return dialect.rowLocks ? q.forUpdate() : q;
    }),
    studyByUid: prepared((trx, v: { study: string }) => {
      const q = trx
        .selectFrom('studies as st')
        .innerJoin('patients as p', 'p.id', 'st.patient_fk')
        .select(['st.id', 'st.patient_fk', 'p.patient_id', 'p.issuer'])
        .where('st.study_uid', '=', v.study);
      return dialect.rowLocks ? q.forUpdate() : q;
    }),
    seriesByUid: prepared((trx, v: { series: string }) => {
      const q = trx.selectFrom('series').select(['id', 'study_fk', 'num_instances', 'total_bytes']).where('series_uid', '=', v.series);
      return dialect.rowLocks ? q.forUpdate() : q;
    }),
    updatePatient: prepared((trx, v: PatientAttrs & { id: number; now: Time }) =>
      trx.updateTable('patients').set({ ...patientAttrs(v), updated_at: v.now }).where('id', '=', v.id).where(anyDistinct('patients', patientAttrs(v))),
    ),
    upsertPatient: prepared((trx, v: PatientAttrs & { patient_id: string; issuer: string; now: Time }) =>
      trx
        .insertInto('patients')
        .values({ patient_id: v.patient_id, issuer: v.issuer, ...patientAttrs(v), num_studies: 0, created_at: v.now, updated_at: v.now })
        .onConflict((oc) => oc.columns(['patient_id', 'issuer']).doUpdateSet({ ...patientAttrs(v), updated_at: v.now }).where(anyDistinct('patients', patientAttrs(v))))
        .returning('id'),
    ),
    patientByKey: prepared((trx, v: { patient_id: string; issuer: string }) =>
      trx.selectFrom('patients').select('id').where('patient_id', '=', v.patient_id).where('issuer', '=', v.issuer),
    ),
    updateStudy: prepared((trx, v: StudyAttrs & { id: number; now: Time }) =>
      trx.updateTable('studies').set({ ...studyAttrs(v), updated_at: v.now }).where('id', '=', v.id).where(anyDistinct('studies', studyAttrs(v))),
    ),
    insertStudy: prepared((trx, v: StudyAttrs & { patient_fk: number; study_uid: string; received_at: Time; now: Time }) =>
      trx
        .insertInto('studies')
        .values({
          patient_fk: v.patient_fk,
          study_uid: v.study_uid,
          ...studyAttrs(v),
          num_series: 0,
          num_instances: 0,
          total_bytes: 0,
          received_at: v.received_at,
          updated_at: v.now,
        })
        .returning('id'),
    ),
    updateSeries: prepared((trx, v: SeriesAttrs & { id: number; now: Time }) =>
      trx.updateTable('series').set({ ...seriesAttrs(v), updated_at: v.now }).where('id', '=', v.id).where(anyDistinct('series', seriesAttrs(v))),
    ),
    insertSeries: prepared((trx, v: SeriesAttrs & { study_fk: number; series_uid: string; received_at: Time; now: Time }) =>
      trx
        .insertInto('series')
        .values({ study_fk: v.study_fk, series_uid: v.series_uid, ...seriesAttrs(v), num_instances: 0, total_bytes: 0, received_at: v.received_at, updated_at: v.now })
        .returning('id'),
    ),
    insertInstance: prepared((trx, v: InstanceValues & { sop_uid: string }) =>
      trx.insertInto('instances').values({ sop_uid: v.sop_uid, ...instanceValues(v) }),
    ),
    adjustPatient: prepared((trx, v: { id: number; d: number }) =>
      trx.updateTable('patients').set({ num_studies: sql<number>`num_studies + ${v.d}` }).where('id', '=', v.id),
    ),
    adjustStudy: prepared((trx, v: StudyDeltas) => trx.updateTable('studies').set(studyCounters(v)).where('id', '=', v.id)),
    adjustStudyTouch: prepared((trx, v: StudyDeltas & { now: Time }) =>
      trx.updateTable('studies').set({ ...studyCounters(v), updated_at: v.now }).where('id', '=', v.id),
    ),
    adjustSeries: prepared((trx, v: SeriesDeltas) => trx.updateTable('series').set(seriesCounters(v)).where('id', '=', v.id)),
    adjustSeriesTouch: prepared((trx, v: SeriesDeltas & { now: Time }) =>
      trx.updateTable('series').set({ ...seriesCounters(v), updated_at: v.now }).where('id', '=', v.id),
    ),
    appendChange: prepared((trx, v: { kind: ChangeKind; level: ChangeRow['level']; study_uid: string; series_uid: string | null; sop_uid: string | null; at: Time }) =>
      trx.insertInto('changes').values({ kind: v.kind, level: v.level, study_uid: v.study_uid, series_uid: v.series_uid, sop_uid: v.sop_uid, at: v.at }),
    ),
  };

  // ---- commit ----------------------------------------------------------------------------

  async function commitIn(trx: Db, r: InstanceRecord, options: CommitOptions): Promise<CommitResult> {
    const now = dialect.toDbTime(new Date());
    const receivedAt = dialect.toDbTime(r.receivedAt);

    const existing = (await stmt.instanceBySop(trx, { sop: r.sopUid })).rows[0];
    if (existing) {
      if (existing.sha256 === r.blob.sha256) return { kind: 'duplicate' };
      if (options.onDuplicate === 'reject') return { kind: 'rejected-duplicate' };
    }

    const study0 = (await stmt.studyByUid(trx, { study: r.studyUid })).rows[0];
    const patientMismatch =
      study0 !== undefined && (study0.patient_id !== r.patient.patient_id || study0.issuer !== r.patient.issuer);
    if (patientMismatch && options.onPatientMismatch === 'reject') return { kind: 'rejected-patient-mismatch' };

    // Patient: upsert by (patient_id, issuer); attributes follow the last stored instance. Every
    // attribute update below is filtered by anyDistinct(): an instance that changes nothing (the
    // usual case: the next instance of a known study) rewrites no row and no index entry.
    const p = r.patient;
    const patient = { ...p, header: dialect.toDbJson(r.levelHeaders.patient), now };
    let patientId: number;
    if (study0 && !patientMismatch) {
      patientId = study0.patient_fk;
      await stmt.updatePatient(trx, { ...patient, id: patientId });
    } else {
      const inserted = (await stmt.upsertPatient(trx, patient)).rows[0];
      // No row back: the patient exists and nothing changed.
      const id = inserted?.id ?? (await stmt.patientByKey(trx, { patient_id: p.patient_id, issuer: p.issuer })).rows[0]?.id;
      if (id === undefined) throw new Error('patient row vanished during the commit');
      patientId = id;
    }

    // Study.
    const study = { ...r.study, header: dialect.toDbJson(r.levelHeaders.study), now };
    let studyId: number;
    if (study0) {
      studyId = study0.id;
      if (study0.patient_fk !== patientId) {
        await trx.updateTable('studies').set({ patient_fk: patientId }).where('id', '=', studyId).execute();
        await adjustPatient(trx, study0.patient_fk, -1);
        await adjustPatient(trx, patientId, 1);
        await prunePatient(trx, study0.patient_fk);
      }
      await stmt.updateStudy(trx, { ...study, id: studyId });
    } else {
      const ins = (await stmt.insertStudy(trx, { ...study, patient_fk: patientId, study_uid: r.studyUid, received_at: receivedAt })).rows[0];
      if (!ins) throw new Error('study insert returned no row');
      studyId = ins.id;
      await adjustPatient(trx, patientId, 1);
    }

    // Series. A new series is counted in its study by the study's counter update below.
    const series0 = (await stmt.seriesByUid(trx, { series: r.seriesUid })).rows[0];
    const series = { ...r.series, header: dialect.toDbJson(r.levelHeaders.series), now };
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
      await stmt.updateSeries(trx, { ...series, id: seriesId });
    } else {
      const ins = (await stmt.insertSeries(trx, { ...series, study_fk: studyId, series_uid: r.seriesUid, received_at: receivedAt })).rows[0];
      if (!ins) throw new Error('series insert returned no row');
      seriesId = ins.id;
      newSeries = 1;
    }

    // Instance. The counters (and updated_at) of its series and study: one statement each.
    const instance: InstanceValues = {
      series_fk: seriesId,
      sop_class_uid: r.instance.sop_class_uid,
      instance_number: r.instance.instance_number,
      transfer_syntax: r.transferSyntaxUid,
      blob_key: r.blob.key,
      size: r.blob.size,
      sha256: r.blob.sha256,
      received_at: receivedAt,
      header: dialect.toDbJson(r.header),
    };
    const uids = { studyUid: r.studyUid, seriesUid: r.seriesUid, sopUid: r.sopUid };
    if (existing) {
      const oldSize = num(existing.size);
      await trx.updateTable('instances').set(instanceValues(instance)).where('id', '=', existing.id).execute();
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
    await stmt.insertInstance(trx, { ...instance, sop_uid: r.sopUid });
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

    // A page and its total (and a study's counters and modalities) come from one snapshot.
    listStudies: (options) => readSnapshot((trx) => listStudies(trx, dialect, options)),
    getStudy: (studyUid) => readSnapshot((trx) => getStudy(trx, dialect, studyUid)),
    listSeries: (studyUid, page) => readSnapshot((trx) => listSeries(trx, dialect, studyUid, page)),
    getSeries: (seriesUid) => getSeries(db, dialect, seriesUid),
    listSeriesInstances: (seriesUid, page) => readSnapshot((trx) => listSeriesInstances(trx, dialect, seriesUid, page)),

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

    statistics: (options = {}): Promise<StoreStatistics> =>
      // Counters, not scans of `instances`: studies carry their series/instance/byte totals. All
      // figures from one snapshot (sum(byModality) == instances, patients of those studies).
      readSnapshot(async (trx) => {
        const wanted = options.changesSince;
        const queries = statisticsQueries(trx, dialect, wanted ?? { since: new Date(), kinds: [] });
        const patients = await queries.patients.executeTakeFirst();
        const totals = await queries.totals.executeTakeFirst();
        const mods = await queries.byModality.execute();
        const byModality: Record<string, number> = {};
        for (const m of mods) {
          const key = m.modality ?? UNKNOWN_MODALITY;
          byModality[key] = (byModality[key] ?? 0) + num(m.n);
        }
        const stats: StoreStatistics = {
          patients: num(patients?.n),
          studies: num(totals?.studies),
          series: num(totals?.series),
          instances: num(totals?.instances),
          bytes: num(totals?.bytes),
          byModality,
        };
        if (wanted !== undefined) stats.changesSince = wanted.kinds.length === 0 ? 0 : num((await queries.changesSince.executeTakeFirst())?.n);
        return stats;
      }),
  };
}
