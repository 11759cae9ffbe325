import type { LevelHeaders } from '../dicom/levels.js';
import type { Constraint, Query } from '../dicom/query-model.js';
import type { DicomJsonDataset } from '../dicom/types.js';

/**
 * MetadataStore port: the index (patients, studies, series, instances, changes).
 * Every adapter (SQLite file, SQLite :memory:, PostgreSQL) passes
 * test/contract/metadata-store.contract.ts unchanged.
 *
 * Column values are produced by archive/ingest (validated, normalised); the store never
 * interprets DICOM beyond what is given here.
 */
export interface PatientColumns {
  patient_id: string;
  /** IssuerOfPatientID; '' when absent. */
  issuer: string;
  patient_name: string | null;
  /** dicom/matching normalizePersonName(patient_name) */
  patient_name_norm: string | null;
  birth_date: string | null;
  sex: string | null;
}

export interface StudyColumns {
  study_date: string | null;
  study_time: string | null;
  accession_number: string | null;
  referring_physician: string | null;
  referring_physician_norm: string | null;
  study_description: string | null;
  study_id: string | null;
}

export interface SeriesColumns {
  modality: string | null;
  series_number: number | null;
  series_description: string | null;
  series_date: string | null;
  series_time: string | null;
  pps_start_date: string | null;
  pps_start_time: string | null;
  body_part: string | null;
}

export interface InstanceColumns {
  sop_class_uid: string;
  instance_number: number | null;
}

export interface InstanceRecord {
  studyUid: string;
  seriesUid: string;
  sopUid: string;
  patient: PatientColumns;
  study: StudyColumns;
  series: SeriesColumns;
  instance: InstanceColumns;
  /** The instance's full header as DICOM JSON (binary values over the threshold as `_bulk` refs). */
  header: DicomJsonDataset;
  /** What the patient, study and series rows keep (dicom/levels.ts: only their own levels' attributes). */
  levelHeaders: LevelHeaders;
  transferSyntaxUid: string;
  blob: { key: string; size: number; sha256: string };
  receivedAt: Date;
}

export interface CommitOptions {
  onDuplicate: 'replace' | 'reject';
  onPatientMismatch: 'accept' | 'reject';
}

/**
 * Outcome of committing one instance (one short transaction):
 * - stored: new instance row.
 * - duplicate: same SOP Instance UID with the same SHA-256 — nothing changed (caller deletes its new blob).
 * - replaced: same SOP Instance UID, other bytes — row now points at the new blob; caller deletes oldBlobKey.
 * - rejected-duplicate: same SOP Instance UID exists and onDuplicate = reject (caller deletes its new blob).
 * - rejected-patient-mismatch: the study belongs to another patient and onPatientMismatch = reject.
 * `patientMismatch` is true when the study existed under another patient and was accepted
 * (the study then follows the new instance's patient).
 */
export type CommitResult =
  | { kind: 'stored'; patientMismatch: boolean }
  | { kind: 'duplicate' }
  | { kind: 'replaced'; oldBlobKey: string; patientMismatch: boolean }
  | { kind: 'rejected-duplicate' }
  | { kind: 'rejected-patient-mismatch' };

export interface StudyRow {
  studyUid: string;
  /** Header of the last instance stored in this study. */
  header: DicomJsonDataset;
  numSeries: number;
  numInstances: number;
  totalBytes: number;
  /** Distinct series modalities, sorted. */
  modalities: string[];
  receivedAt: Date;
  updatedAt: Date;
}

export interface SeriesRow {
  studyUid: string;
  seriesUid: string;
  /** Header of the last instance stored in this series. */
  header: DicomJsonDataset;
  /** Header of the last instance stored in the study (study-level attributes follow it). */
  studyHeader: DicomJsonDataset;
  numInstances: number;
  totalBytes: number;
}

export interface InstanceRow {
  studyUid: string;
  seriesUid: string;
  sopUid: string;
  sopClassUid: string;
  instanceNumber: number | null;
  transferSyntaxUid: string;
  blobKey: string;
  size: number;
  sha256: string;
  receivedAt: Date;
}

export interface InstanceQueryRow extends InstanceRow {
  header: DicomJsonDataset;
  seriesHeader: DicomJsonDataset;
  studyHeader: DicomJsonDataset;
}

export interface PatientRow {
  patientId: string;
  issuer: string;
  header: DicomJsonDataset;
  numStudies: number;
}

export type QueryRows =
  | { level: 'patient'; rows: PatientRow[] }
  | { level: 'study'; rows: StudyRow[] }
  | { level: 'series'; rows: SeriesRow[] }
  | { level: 'instance'; rows: InstanceQueryRow[] };

export interface InstanceScope {
  studyUid: string;
  seriesUid?: string;
  sopUid?: string;
}

export interface RemoveResult {
  /** Blob keys no longer referenced by any row; the caller deletes them after commit. */
  blobKeys: string[];
  studies: number;
  series: number;
  instances: number;
}

export type ChangeKind = 'stored' | 'replaced' | 'deleted';
export interface ChangeRow {
  seq: number;
  kind: ChangeKind;
  /** 'instance' | 'series' | 'study' — what the change is about. */
  level: 'instance' | 'series' | 'study';
  studyUid: string;
  seriesUid: string | null;
  sopUid: string | null;
  at: Date;
}

export interface StoreStatistics {
  patients: number;
  studies: number;
  series: number;
  instances: number;
  bytes: number;
  byModality: Record<string, number>;
  /** With statistics({ changesSince }): countChangesSince(since, kinds), read in the same snapshot. */
  changesSince?: number;
}

/** A study as the REST API lists it (SPEC §5): indexed columns and counters, no header. */
export interface StudySummary {
  studyUid: string;
  patientId: string;
  patientName: string | null;
  patientBirthDate: string | null;
  patientSex: string | null;
  studyDate: string | null;
  studyTime: string | null;
  studyDescription: string | null;
  accessionNumber: string | null;
  /** Distinct series modalities, sorted. */
  modalities: string[];
  numSeries: number;
  numInstances: number;
  totalBytes: number;
  receivedAt: Date;
  updatedAt: Date;
}

export interface SeriesSummary {
  studyUid: string;
  seriesUid: string;
  modality: string | null;
  seriesNumber: number | null;
  seriesDescription: string | null;
  seriesDate: string | null;
  bodyPart: string | null;
  numInstances: number;
  totalBytes: number;
  receivedAt: Date;
  updatedAt: Date;
}

export type StudySortKey = 'study_date' | 'received_at';

export interface PageOptions {
  /** > 0 */
  limit: number;
  /** >= 0 */
  offset: number;
}

export interface StudyListOptions extends PageOptions {
  /**
   * Study-level matching (same semantics as QIDO: PatientName, PatientID, StudyDate,
   * AccessionNumber, ModalitiesInStudy …), ANDed.
   */
  constraints: Constraint[];
  /** Rows without a value of the sort key come last in both directions; ties in arrival order. */
  sort: { key: StudySortKey; descending: boolean };
}

/** One page of a list and the number of matches ignoring limit/offset. */
export interface Page<T> {
  items: T[];
  total: number;
}

export interface MetadataStore {
  readonly dialect: 'sqlite' | 'postgres';
  /** Applies pending numbered migrations (idempotent). */
  migrate(): Promise<void>;
  /** Throws when the database cannot be used (used by /health). */
  ping(): Promise<void>;
  close(): Promise<void>;

  /** Inserts or replaces one instance, its parents, counters and a `changes` row in one transaction. */
  commitInstance(record: InstanceRecord, options: CommitOptions): Promise<CommitResult>;

  /** QIDO-RS / C-FIND. Rows in a stable order, `limit`/`offset` applied. */
  query(query: Query): Promise<QueryRows>;
  /** Number of matches of `query` ignoring limit/offset. */
  count(query: Query): Promise<number>;

  /** One instance by SOP Instance UID (optionally constrained to a study/series). */
  getInstance(sopUid: string, scope?: { studyUid?: string; seriesUid?: string }): Promise<InstanceRow | undefined>;
  /** Instance header (DICOM JSON with `_bulk` refs) or undefined. */
  getInstanceHeader(sopUid: string): Promise<DicomJsonDataset | undefined>;
  /**
   * Instances in scope, in series then instance order, fetched in pages (never the whole study at once).
   * Yields nothing when the scope does not exist.
   */
  listInstances(scope: InstanceScope, options?: { withHeader?: boolean }): AsyncIterable<InstanceRow & { header?: DicomJsonDataset }>;

  // ---- browsing (REST API) ----
  /** Studies matching the constraints, sorted and paged, with the total. */
  listStudies(options: StudyListOptions): Promise<Page<StudySummary>>;
  getStudy(studyUid: string): Promise<StudySummary | undefined>;
  /** Series of a study by series number (absent last), then arrival; undefined when the study does not exist. */
  listSeries(studyUid: string, page: PageOptions): Promise<Page<SeriesSummary> | undefined>;
  getSeries(seriesUid: string): Promise<SeriesSummary | undefined>;
  /** Instances of a series by instance number (absent last), then arrival; undefined when the series does not exist. */
  listSeriesInstances(seriesUid: string, page: PageOptions): Promise<Page<InstanceRow> | undefined>;

  removeStudy(studyUid: string): Promise<RemoveResult | undefined>;
  removeSeries(seriesUid: string, studyUid?: string): Promise<RemoveResult | undefined>;
  removeInstance(sopUid: string, scope?: { studyUid?: string; seriesUid?: string }): Promise<RemoveResult | undefined>;

  /** The subset of `keys` referenced by an instance row. */
  referencedBlobKeys(keys: string[]): Promise<Set<string>>;
  changes(options: { since?: number; limit?: number }): Promise<ChangeRow[]>;
  /** The highest `changes` seq (0 when none): it grows with every commit that changes the index. */
  lastChangeSeq(): Promise<number>;
  /** Number of `changes` rows of kind `stored`/`replaced` at or after `since`. */
  countChangesSince(since: Date, kinds: ChangeKind[]): Promise<number>;
  /**
   * Every figure from one snapshot of the index (they agree with each other under concurrent
   * writes); with `changesSince`, that count too.
   */
  statistics(options?: { changesSince?: { since: Date; kinds: ChangeKind[] } }): Promise<StoreStatistics>;
}
