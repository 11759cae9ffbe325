import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSqliteMetadataStore } from '../../src/storage/sqlite/sqlite-metadata-store.js';
import { metadataStoreContract } from './metadata-store.contract.js';

metadataStoreContract('sqlite :memory:', async () => ({
  store: createSqliteMetadataStore({ path: ':memory:' }),
  cleanup: async () => {},
}));

metadataStoreContract('sqlite file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'pacsnode-sqlite-'));
  return {
    store: createSqliteMetadataStore({ path: join(dir, 'nested', 'pacs.db') }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});
