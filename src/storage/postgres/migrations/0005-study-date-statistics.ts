import type { Migration } from '../../sql/migrator.js';

/**
 * 0005 — a finer StudyDate histogram. A study search with a StudyDate range and the default order
 * (newest first, `ORDER BY id DESC LIMIT n`) has two plans: fetch the range's matches through
 * `studies_study_date` and sort them, or walk the primary key backwards and filter until the page
 * is full. Which is cheaper turns on how many studies the range holds, and with the default 100
 * histogram buckets (a month of dates is a fraction of one) the estimate for a one-month range of
 * 100,000 studies ranged from a third to 1.15 × the truth, so ranges near the crossover (~800
 * matches) went either way. 1000 buckets keep it within a few per cent (ADR 0016). ANALYZE of
 * `studies` already samples 300,000 rows for the 1000-target trigram index of 0004, so this costs
 * no extra reads.
 */
export const migration0005: Migration = {
  version: 5,
  name: 'study-date-statistics',
  sql: `
ALTER TABLE studies ALTER COLUMN study_date SET STATISTICS 1000;
`,
};
