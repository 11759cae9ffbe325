import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSqliteStores } from '../../src/storage/sqlite/sqlite-metadata-store.js';
import { jobStoreContract } from './job-store.contract.js';

jobStoreContract('sqlite :memory:', async () => {
  const stores = createSqliteStores({ path: ':memory:' });
  await stores.migrate();
  return { jobs: stores.jobs, cleanup: () => stores.close() };
}, { peer: false });

// Two connections on one file: what two pacsnode processes on one database see.
jobStoreContract('sqlite file (two connections)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'pacsnode-jobs-'));
  const path = join(dir, 'nested', 'pacs.db');
  const a = createSqliteStores({ path });
  await a.migrate();
  const b = createSqliteStores({ path });
  await b.migrate();
  return {
    jobs: a.jobs,
    peer: b.jobs,
    cleanup: async () => {
      await a.close();
      await b.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}, { peer: true });
