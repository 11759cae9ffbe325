import type { ColumnType, Generated } from 'kysely';

/**
 * The index schema (SPEC §6) as kysely sees it, shared by the SQLite and PostgreSQL adapters.
 * Timestamps and JSON are dialect-specific on the wire (SQLite: ISO-8601 UTC text and JSON text;
 * PostgreSQL: timestamptz and jsonb), so they are read as `unknown` and converted by the Dialect.
 */
export type DbTime = ColumnType<unknown, string | Date, string | Date>;
export type DbJson = ColumnType<unknown, string, string>;
/** Counters and sizes: PostgreSQL bigint comes back as a string, hence `number | string`. */
export type DbInt = ColumnType<number | string, number, number>;

export interface PatientsTable {
  id: Generated<number>;
  patient_id: string;
  issuer: string;
  patient_name: string | null;
  patient_name_norm: string | null;
  birth_date: string | null;
  sex: string | null;
  num_studies: DbInt;
  header: DbJson;
  created_at: DbTime;
  updated_at: DbTime;
}

export interface StudiesTable {
  id: Generated<number>;
  patient_fk: number;
  study_uid: string;
  study_date: string | null;
  study_time: string | null;
  accession_number: string | null;
  referring_physician: string | null;
  referring_physician_norm: string | null;
  study_description: string | null;
  study_id: string | null;
  num_series: DbInt;
  num_instances: DbInt;
  total_bytes: DbInt;
  header: DbJson;
  received_at: DbTime;
  updated_at: DbTime;
}

export interface SeriesTable {
  id: Generated<number>;
  study_fk: number;
  series_uid: string;
  modality: string | null;
  series_number: number | null;
  series_description: string | null;
  series_date: string | null;
  series_time: string | null;
  pps_start_date: string | null;
  pps_start_time: string | null;
  body_part: string | null;
  num_instances: DbInt;
  total_bytes: DbInt;
  header: DbJson;
  received_at: DbTime;
  updated_at: DbTime;
}

export interface InstancesTable {
  id: Generated<number>;
  series_fk: number;
  sop_uid: string;
  sop_class_uid: string;
  instance_number: number | null;
  transfer_syntax: string;
  blob_key: string;
  size: DbInt;
  sha256: string;
  received_at: DbTime;
  header: DbJson;
}

export interface ChangesTable {
  seq: Generated<number>;
  kind: string;
  level: string;
  study_uid: string;
  series_uid: string | null;
  sop_uid: string | null;
  at: DbTime;
}

/** A nullable timestamp (same wire forms as DbTime). */
export type DbTimeOrNull = ColumnType<unknown, string | Date | null, string | Date | null>;
/**
 * Booleans are written as 1/0 in both dialects (better-sqlite3 cannot bind JS booleans; PostgreSQL
 * accepts '1'/'0' as boolean input) and read as number (SQLite) or boolean (PostgreSQL).
 */
export type DbBool = ColumnType<number | boolean, number, number>;

/** Remote DICOM nodes (SPEC §5): the AE whitelist and the move-destination catalogue. */
export interface DicomNodesTable {
  /** Case-sensitive, trimmed. */
  ae_title: string;
  host: string;
  port: number;
  description: string | null;
  allow_store: DbBool;
  allow_find: DbBool;
  allow_retrieve: DbBool;
  move_destination: DbBool;
  created_at: DbTime;
  updated_at: DbTime;
}

/** Persistent jobs (SCU store/move/get…), readable by every instance (ARCHITECTURE rule 11). */
export interface JobsTable {
  /** Insertion order: newest first without relying on timestamp resolution. */
  seq: Generated<number | string>;
  id: string;
  kind: string;
  state: string;
  request: DbJson;
  remaining: DbInt;
  completed: DbInt;
  failed: DbInt;
  warning: DbInt;
  failed_uids: DbJson;
  error: string | null;
  cancel_requested: DbBool;
  created_by: string | null;
  created_at: DbTime;
  started_at: DbTimeOrNull;
  finished_at: DbTimeOrNull;
  updated_at: DbTime;
  /** Migration 0003: last sign of life of the running process (NULL on rows older than 0003). */
  heartbeat_at: DbTimeOrNull;
}

export interface SchemaMigrationsTable {
  version: number;
  name: string;
  checksum: string;
  applied_at: DbTime;
}

export interface IndexDatabase {
  patients: PatientsTable;
  studies: StudiesTable;
  series: SeriesTable;
  instances: InstancesTable;
  changes: ChangesTable;
  dicom_nodes: DicomNodesTable;
  jobs: JobsTable;
  schema_migrations: SchemaMigrationsTable;
}
