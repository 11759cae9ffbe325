import { after, before } from 'node:test';
import { createPostgresStores } from '../../src/storage/postgres/postgres-stores.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { metadataStoreContract } from './metadata-store.contract.js';

// PostgreSQL on 127.0.0.1:5432, a fresh database for this file.
let database: TestDatabase;
before(async () => {
  database = await createTestDatabase();
});
after(async () => {
  await database.drop();
});

metadataStoreContract('postgres', async () => ({
  store: createPostgresStores({ url: database.url, maxConnections: 8 }).metadata,
  cleanup: async () => {},
}));
