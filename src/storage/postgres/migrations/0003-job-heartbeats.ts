import type { Migration } from '../../sql/migrator.js';

/**
 * 0003 — job heartbeats (ADR 0015), as SQLite's 0003: `jobs.heartbeat_at` (timestamptz),
 * refreshed by the process running a job, so that a job whose process died can be told from a
 * live one and failed by the sweep. Existing rows start from their `updated_at`. Nullable, so a
 * row written by an older pacsnode during a rolling upgrade is still accepted (the sweep then
 * uses `updated_at`). The sweep finds active jobs through `jobs_state_seq`.
 */
export const migration0003: Migration = {
  version: 3,
  name: 'job-heartbeats',
  sql: `
ALTER TABLE jobs ADD COLUMN heartbeat_at timestamptz;
UPDATE jobs SET heartbeat_at = updated_at;
`,
};
