import type { Migration } from '../../sql/migrator.js';
import { migration0001 } from './0001-initial.js';
import { migration0002 } from './0002-nodes-jobs.js';
import { migration0003 } from './0003-job-heartbeats.js';
import { migration0004 } from './0004-name-trigram-statistics.js';
import { migration0005 } from './0005-study-date-statistics.js';

/** PostgreSQL migrations in order. Append only; never edit a released one. */
export const POSTGRES_MIGRATIONS: readonly Migration[] = [migration0001, migration0002, migration0003, migration0004, migration0005];
