import { after, before } from 'node:test';
import { createPostgresStores } from '../../src/storage/postgres/postgres-stores.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { jobStoreContract } from './job-store.contract.js';

// PostgreSQL on 127.0.0.1:5432, a fresh database for this file.
let database: TestDatabase;
before(async () => {
  database = await createTestDatabase();
});
after(async () => {
  await database.drop();
});

// The peer is a second pool on the same database: what a second pacsnode process sees.
jobStoreContract('postgres (two pools)', async () => {
  const a = createPostgresStores({ url: database.url, maxConnections: 4 });
  await a.migrate();
  const b = createPostgresStores({ url: database.url, maxConnections: 4 });
  await b.migrate();
  return {
    jobs: a.jobs,
    peer: b.jobs,
    cleanup: async () => {
      await a.close();
      await b.close();
    },
  };
}, { peer: true });
