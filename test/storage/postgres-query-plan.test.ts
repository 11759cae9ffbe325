// QIDO on PostgreSQL uses indexes (issue 5, "how it is proven"): after ~2,000 studies and ANALYZE,
// with enable_seqscan = off, EXPLAIN of the exact SQL the shared compiler emits shows no Seq Scan on
// patients/studies/series/instances, and each key is served by the index meant for it — PN
// wildcards (prefix and infix) by the pg_trgm index on the framed normalised name. The checks are in
// postgres-query-plan.checks.ts (postgres16.test.ts runs them on PostgreSQL 16 too).
import { createTestDatabase } from '../helpers/postgres.js';
import { postgresQueryPlanChecks } from './postgres-query-plan.checks.js';

postgresQueryPlanChecks('PostgreSQL QIDO plans (EXPLAIN, enable_seqscan = off)', () => createTestDatabase());
