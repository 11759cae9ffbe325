// List pages (nodes, jobs) agree with their totals under concurrent writes (one read snapshot).
// NodeStore.upsert is one INSERT … ON CONFLICT DO UPDATE: racing deletes and other upserts of the
// same AE title it never fails (it used to give up with DATABASE_UNAVAILABLE on PostgreSQL after
// three insert-then-update attempts), and it still tells created from updated — on both profiles.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { JobStore } from '../../src/storage/jobs.js';
import type { NodeFields, NodeStore } from '../../src/storage/nodes.js';
import { createPostgresStores } from '../../src/storage/postgres/postgres-stores.js';
import { createSqliteStores } from '../../src/storage/sqlite/sqlite-metadata-store.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';

function fields(aeTitle: string, port: number): NodeFields {
  return { aeTitle, host: '127.0.0.1', port, description: null, allowStore: true, allowFind: true, allowRetrieve: true, moveDestination: true };
}

/**
 * Three writers run `write(writer, i)` for 2 s while one reader lists whole pages (limit above the
 * total): every page must hold exactly `total` items. Each step yields to the event loop (SQLite
 * runs on it), so the reader and the timer get their turn.
 */
async function assertPagesAgree(write: (writer: number, i: number) => Promise<void>, list: () => Promise<{ items: readonly unknown[]; total: number }>): Promise<void> {
  let stop = false;
  let bad = 0;
  let polls = 0;
  const yieldNow = (): Promise<void> => new Promise((r) => setImmediate(r));
  const writer = async (w: number): Promise<void> => {
    for (let i = 0; !stop; i++) {
      await write(w, i);
      await yieldNow();
    }
  };
  const reader = async (): Promise<void> => {
    while (!stop) {
      const page = await list();
      polls++;
      if (page.items.length !== page.total) bad++;
      await yieldNow();
    }
  };
  const running = [writer(0), writer(1), writer(2), reader()];
  await new Promise((r) => setTimeout(r, 2000));
  stop = true;
  await Promise.all(running);
  assert.ok(polls > 10, `only ${polls} reads`);
  assert.equal(bad, 0, `${bad} of ${polls} pages disagreed with their total`);
}

for (const profile of ['sqlite', 'postgres'] as const) {
  describe(`node upsert (${profile})`, () => {
    let database: TestDatabase | undefined;
    let nodes: NodeStore;
    let jobs: JobStore;
    let close: () => Promise<void>;

    before(async () => {
      if (profile === 'postgres') {
        database = await createTestDatabase('pacsnode_node_upsert');
        const stores = createPostgresStores({ url: database.url, maxConnections: 10 });
        await stores.migrate();
        nodes = stores.nodes;
        jobs = stores.jobs;
        close = () => stores.close();
      } else {
        const stores = createSqliteStores({ path: ':memory:' });
        await stores.migrate();
        nodes = stores.nodes;
        jobs = stores.jobs;
        close = () => stores.close();
      }
    });
    after(async () => {
      try {
        await close?.();
      } finally {
        await database?.drop();
      }
    });

    it('a node list page agrees with its total while nodes are created and deleted', { timeout: 30_000 }, async () => {
      await assertPagesAgree(
        async (w, i) => {
          const ae = `LIST${w}_${i % 7}`;
          if (i % 2 === 0) await nodes.upsert(fields(ae, 104), { at: new Date() });
          else await nodes.delete(ae);
        },
        () => nodes.list({ limit: 1000, offset: 0 }),
      );
    });

    it('a job list page filtered by state agrees with its total while jobs are created and started', { timeout: 30_000 }, async () => {
      await assertPagesAgree(
        async () => {
          const job = await jobs.create({ kind: 'race', request: {} });
          await jobs.markRunning(job.id);
        },
        () => jobs.list({ states: ['pending'], kind: 'race', limit: 1000, offset: 0 }),
      );
    });

    it('tells created from updated, also at the same instant, and keeps created_at', async () => {
      const at = new Date('2026-05-01T00:00:00.000Z');
      const first = await nodes.upsert(fields('SAME', 104), { at });
      assert.equal(first.created, true);
      const second = await nodes.upsert({ ...fields('SAME', 105), description: 'again', allowFind: false }, { at });
      assert.equal(second.created, false);
      assert.equal(second.node.port, 105);
      assert.equal(second.node.description, 'again');
      assert.equal(second.node.allowFind, false);
      const later = new Date('2026-05-02T00:00:00.000Z');
      const third = await nodes.upsert(fields('SAME', 106), { at: later });
      assert.equal(third.created, false);
      assert.equal(third.node.createdAt.toISOString(), at.toISOString());
      assert.equal(third.node.updatedAt.toISOString(), later.toISOString());
      assert.equal(third.node.allowFind, true);
      assert.equal(await nodes.delete('SAME'), true);
      assert.equal((await nodes.upsert(fields('SAME', 107), { at: later })).created, true);
    });

    it('concurrent upserts of a new AE title: exactly one creates it, every one succeeds', async () => {
      for (let round = 0; round < 10; round++) {
        const ae = `NEW${round}`;
        const results = await Promise.all(Array.from({ length: 8 }, (_, i) => nodes.upsert(fields(ae, 1000 + i))));
        assert.equal(results.filter((r) => r.created).length, 1, `round ${round}`);
        assert.ok(results.every((r, i) => r.node.aeTitle === ae && r.node.port === 1000 + i));
      }
    });

    it('upserts racing deletes of the same AE title never fail', async () => {
      let deleted = 0;
      let created = 0;
      // 15 upserts and 5 deletes at a time (the old insert-then-update gave up in ~10% of rounds).
      for (let round = 0; round < 60; round++) {
        const outcomes = await Promise.allSettled(
          Array.from({ length: 20 }, (_, i) => (i % 4 === 1 ? nodes.delete('RACE').then((d) => void (deleted += d ? 1 : 0)) : nodes.upsert(fields('RACE', 100 + i)).then((r) => void (created += r.created ? 1 : 0)))),
        );
        const failures = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
        assert.deepEqual(failures.map((f) => String(f.reason)), [], `round ${round}`);
      }
      // Every creation but the first follows a delete; a delete removes what one creation made.
      const exists = (await nodes.get('RACE')) !== undefined;
      assert.equal(created, deleted + (exists ? 1 : 0));
    });
  });
}
