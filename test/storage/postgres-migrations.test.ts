// PostgreSQL migrations (ARCHITECTURE rule 12): applied once, recorded with their checksum, a second
// run (also from another pool, as another process) is a no-op, and two processes migrating at once
// apply each migration once under the advisory lock. The checks are in postgres-migrations.checks.ts
// (postgres16.test.ts runs them on PostgreSQL 16 too).
import { createTestDatabase } from '../helpers/postgres.js';
import { postgresMigrationChecks } from './postgres-migrations.checks.js';

postgresMigrationChecks('PostgreSQL migrations', () => createTestDatabase());
