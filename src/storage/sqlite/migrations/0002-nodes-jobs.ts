import type { Migration } from '../../sql/migrator.js';

/**
 * 0002 — remote DICOM nodes and persistent jobs (SPEC §5, §6). Booleans are INTEGER 0/1;
 * timestamps ISO-8601 UTC text; JSON as text. AE titles compare exactly (BINARY collation).
 * `jobs.seq` (the rowid) orders jobs newest first independently of clock resolution.
 */
export const migration0002: Migration = {
  version: 2,
  name: 'nodes-jobs',
  sql: `
CREATE TABLE dicom_nodes (
  ae_title         TEXT    NOT NULL PRIMARY KEY CHECK (length(ae_title) BETWEEN 1 AND 16),
  host             TEXT    NOT NULL CHECK (length(host) > 0),
  port             INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
  description      TEXT,
  allow_store      INTEGER NOT NULL DEFAULT 1 CHECK (allow_store IN (0, 1)),
  allow_find       INTEGER NOT NULL DEFAULT 1 CHECK (allow_find IN (0, 1)),
  allow_retrieve   INTEGER NOT NULL DEFAULT 1 CHECK (allow_retrieve IN (0, 1)),
  move_destination INTEGER NOT NULL DEFAULT 1 CHECK (move_destination IN (0, 1)),
  created_at       TEXT    NOT NULL,
  updated_at       TEXT    NOT NULL
);

CREATE TABLE jobs (
  seq              INTEGER PRIMARY KEY,
  id               TEXT    NOT NULL UNIQUE,
  kind             TEXT    NOT NULL,
  state            TEXT    NOT NULL CHECK (state IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
  request          TEXT    NOT NULL,
  remaining        INTEGER NOT NULL DEFAULT 0,
  completed        INTEGER NOT NULL DEFAULT 0,
  failed           INTEGER NOT NULL DEFAULT 0,
  warning          INTEGER NOT NULL DEFAULT 0,
  failed_uids      TEXT    NOT NULL DEFAULT '[]',
  error            TEXT,
  cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
  created_by       TEXT,
  created_at       TEXT    NOT NULL,
  started_at       TEXT,
  finished_at      TEXT,
  updated_at       TEXT    NOT NULL
);
CREATE INDEX jobs_state_seq ON jobs (state, seq);
CREATE INDEX jobs_kind_seq  ON jobs (kind, seq);
`,
};
