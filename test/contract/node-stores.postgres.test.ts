import { after, before } from 'node:test';
import { createPostgresStores } from '../../src/storage/postgres/postgres-stores.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { nodeStoreContract } from './node-store.contract.js';

// PostgreSQL on 127.0.0.1:5432, a fresh database for this file.
let database: TestDatabase;
before(async () => {
  database = await createTestDatabase();
});
after(async () => {
  await database.drop();
});

nodeStoreContract('postgres', async () => {
  const stores = createPostgresStores({ url: database.url, maxConnections: 4 });
  await stores.migrate();
  return { nodes: stores.nodes, cleanup: () => stores.close() };
});
