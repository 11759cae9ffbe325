// SPEC §6 "blob → index commit → acknowledge": with the WAL fsync taken off the event loop
// (ADR 0012), a writer is answered only after the fsync that follows its COMMIT has completed.
import assert from 'node:assert/strict';
import type { FileHandle } from 'node:fs/promises';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { createSqliteStores } from '../../src/storage/sqlite/sqlite-metadata-store.js';
import { makeRecord } from '../contract/records.js';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'pacsnode-durable-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function countInstances(path: string): number {
  const db = new Database(path, { readonly: true });
  try {
    return (db.prepare('SELECT COUNT(*) AS n FROM instances').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

const OPTIONS = { onDuplicate: 'replace', onPatientMismatch: 'accept' } as const;
const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 20));

describe('SQLite durability (WAL fsync before the answer)', () => {
  it('a commit is answered only after the WAL file is synced, and the sync is of the -wal file after COMMIT', async () => {
    await withDir(async (dir) => {
      const path = join(dir, 'pacs.db');
      const synced: { ino: number; visible: number }[] = [];
      let release: (() => void) | undefined;
      let gate: Promise<void> | undefined;
      const stores = createSqliteStores({
        path,
        walFsync: async (fh: FileHandle) => {
          // The COMMIT has happened: another connection already sees the row.
          synced.push({ ino: (await fh.stat()).ino, visible: countInstances(path) });
          if (gate) await gate;
          await fh.sync();
        },
      });
      try {
        await stores.migrate();
        synced.length = 0;
        gate = new Promise((r) => {
          release = r;
        });
        let answered = false;
        const commit = stores.metadata.commitInstance(makeRecord(), OPTIONS).then((r) => {
          answered = true;
          return r;
        });
        commit.catch(() => undefined);
        for (let i = 0; i < 10 && synced.length === 0; i++) await tick();
        assert.ok(synced.length >= 1, 'the WAL is synced after the commit');
        const last = synced[synced.length - 1];
        assert.equal(last?.visible, 1, 'the sync follows the COMMIT');
        assert.equal(last?.ino, (await stat(`${path}-wal`)).ino, 'the file synced is the WAL');
        await tick();
        assert.equal(answered, false, 'no answer while the fsync is pending');
        release?.();
        const result = await commit;
        assert.equal(answered, true);
        assert.equal(result.kind, 'stored');
      } finally {
        release?.();
        await stores.close();
      }
    });
  });

  it('a failing fsync fails the writers of that batch (nobody is told "stored")', async () => {
    await withDir(async (dir) => {
      const path = join(dir, 'pacs.db');
      let fail = false;
      const stores = createSqliteStores({
        path,
        walFsync: async (fh) => {
          if (fail) throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
          await fh.sync();
        },
      });
      try {
        await stores.migrate();
        fail = true;
        await assert.rejects(stores.metadata.commitInstance(makeRecord(), OPTIONS), /EIO/);
        fail = false;
        const ok = await stores.metadata.commitInstance(makeRecord(), OPTIONS);
        assert.equal(ok.kind, 'stored');
      } finally {
        await stores.close();
      }
    });
  });

  it('concurrent writers share syncs: every one answered, every row stored', async () => {
    await withDir(async (dir) => {
      const path = join(dir, 'pacs.db');
      let syncs = 0;
      const stores = createSqliteStores({
        path,
        walFsync: async (fh) => {
          syncs++;
          await fh.sync();
        },
      });
      try {
        await stores.migrate();
        const before = syncs;
        const results = await Promise.all(Array.from({ length: 50 }, () => stores.metadata.commitInstance(makeRecord(), OPTIONS)));
        assert.equal(results.filter((r) => r.kind === 'stored').length, 50);
        assert.equal(countInstances(path), 50);
        assert.ok(syncs - before >= 1 && syncs - before < 50, `syncs shared (${syncs - before} for 50 commits)`);
      } finally {
        await stores.close();
      }
    });
  });
});
