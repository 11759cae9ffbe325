import type { Migration } from '../../sql/migrator.js';

/**
 * 0001 — the index (SPEC §6). Plain SQL kept in a TS module so tsc ships it to dist/.
 * Released migrations are immutable: their SHA-256 is checked on every start.
 * Timestamps are ISO-8601 UTC text (Date.toISOString()); headers are DICOM JSON text.
 */
export const migration0001: Migration = {
  version: 1,
  name: 'initial',
  sql: `
CREATE TABLE patients (
  id                INTEGER PRIMARY KEY,
  patient_id        TEXT    NOT NULL,
  issuer            TEXT    NOT NULL DEFAULT '',
  patient_name      TEXT,
  patient_name_norm TEXT,
  birth_date        TEXT,
  sex               TEXT,
  num_studies       INTEGER NOT NULL DEFAULT 0,
  header            TEXT    NOT NULL,
  created_at        TEXT    NOT NULL,
  updated_at        TEXT    NOT NULL,
  UNIQUE (patient_id, issuer)
);
CREATE INDEX patients_patient_name_norm ON patients (patient_name_norm);
CREATE INDEX patients_birth_date        ON patients (birth_date);
CREATE INDEX patients_sex               ON patients (sex);
CREATE INDEX patients_issuer            ON patients (issuer);

CREATE TABLE studies (
  id                       INTEGER PRIMARY KEY,
  patient_fk               INTEGER NOT NULL REFERENCES patients (id),
  study_uid                TEXT    NOT NULL UNIQUE,
  study_date               TEXT,
  study_time               TEXT,
  accession_number         TEXT,
  referring_physician      TEXT,
  referring_physician_norm TEXT,
  study_description        TEXT,
  study_id                 TEXT,
  num_series               INTEGER NOT NULL DEFAULT 0,
  num_instances            INTEGER NOT NULL DEFAULT 0,
  total_bytes              INTEGER NOT NULL DEFAULT 0,
  header                   TEXT    NOT NULL,
  received_at              TEXT    NOT NULL,
  updated_at               TEXT    NOT NULL
);
CREATE INDEX studies_patient_fk               ON studies (patient_fk);
CREATE INDEX studies_study_date               ON studies (study_date);
CREATE INDEX studies_study_time               ON studies (study_time);
CREATE INDEX studies_accession_number         ON studies (accession_number);
CREATE INDEX studies_referring_physician_norm ON studies (referring_physician_norm);
CREATE INDEX studies_study_description        ON studies (study_description);
CREATE INDEX studies_study_id                 ON studies (study_id);
CREATE INDEX studies_received_at              ON studies (received_at);

CREATE TABLE series (
  id                 INTEGER PRIMARY KEY,
  study_fk           INTEGER NOT NULL REFERENCES studies (id),
  series_uid         TEXT    NOT NULL UNIQUE,
  modality           TEXT,
  series_number      INTEGER,
  series_description TEXT,
  series_date        TEXT,
  series_time        TEXT,
  pps_start_date     TEXT,
  pps_start_time     TEXT,
  body_part          TEXT,
  num_instances      INTEGER NOT NULL DEFAULT 0,
  total_bytes        INTEGER NOT NULL DEFAULT 0,
  header             TEXT    NOT NULL,
  received_at        TEXT    NOT NULL,
  updated_at         TEXT    NOT NULL
);
CREATE INDEX series_study_fk_modality   ON series (study_fk, modality);
CREATE INDEX series_modality            ON series (modality);
CREATE INDEX series_series_number       ON series (series_number);
CREATE INDEX series_series_description  ON series (series_description);
CREATE INDEX series_series_date         ON series (series_date);
CREATE INDEX series_series_time         ON series (series_time);
CREATE INDEX series_pps_start_date      ON series (pps_start_date);
CREATE INDEX series_pps_start_time      ON series (pps_start_time);
CREATE INDEX series_body_part           ON series (body_part);

CREATE TABLE instances (
  id              INTEGER PRIMARY KEY,
  series_fk       INTEGER NOT NULL REFERENCES series (id),
  sop_uid         TEXT    NOT NULL UNIQUE,
  sop_class_uid   TEXT    NOT NULL,
  instance_number INTEGER,
  transfer_syntax TEXT    NOT NULL,
  blob_key        TEXT    NOT NULL UNIQUE,
  size            INTEGER NOT NULL,
  sha256          TEXT    NOT NULL,
  received_at     TEXT    NOT NULL,
  header          TEXT    NOT NULL
);
CREATE INDEX instances_series_fk_number ON instances (series_fk, instance_number, id);
CREATE INDEX instances_sop_class_uid    ON instances (sop_class_uid);
CREATE INDEX instances_instance_number  ON instances (instance_number);
CREATE INDEX instances_received_at      ON instances (received_at);

CREATE TABLE changes (
  seq        INTEGER PRIMARY KEY AUTOINCREMENT,
  kind       TEXT NOT NULL CHECK (kind IN ('stored', 'replaced', 'deleted')),
  level      TEXT NOT NULL CHECK (level IN ('instance', 'series', 'study')),
  study_uid  TEXT NOT NULL,
  series_uid TEXT,
  sop_uid    TEXT,
  at         TEXT NOT NULL
);
CREATE INDEX changes_at ON changes (at);
`,
};
