import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSqliteStores } from '../../src/storage/sqlite/sqlite-metadata-store.js';
import { nodeStoreContract } from './node-store.contract.js';

nodeStoreContract('sqlite :memory:', async () => {
  const stores = createSqliteStores({ path: ':memory:' });
  await stores.migrate();
  return { nodes: stores.nodes, cleanup: () => stores.close() };
});

nodeStoreContract('sqlite file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'pacsnode-nodes-'));
  const stores = createSqliteStores({ path: join(dir, 'nested', 'pacs.db') });
  await stores.migrate();
  return {
    nodes: stores.nodes,
    cleanup: async () => {
      await stores.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
