import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { NodeFields, NodeStore } from '../../src/storage/nodes.js';

/**
 * The NodeStore contract: every adapter (SQLite file, SQLite :memory:, PostgreSQL) passes it
 * unchanged. Tests make their own AE titles and check lists as deltas or by their own titles, so
 * the suite also runs against a database holding other nodes.
 */
export interface NodeStoreFixture {
  /** A migrated store. */
  nodes: NodeStore;
  /** Closes the store and removes what the factory created. */
  cleanup: () => Promise<void>;
}

/** A fresh AE title (≤ 16 characters) with a recognisable prefix. */
function ae(prefix = 'N'): string {
  return `${prefix}${randomBytes(5).toString('hex').toUpperCase()}`.slice(0, 16);
}

function node(aeTitle: string, extra: Partial<NodeFields> = {}): NodeFields {
  return {
    aeTitle,
    host: 'pacs.example.org',
    port: 104,
    description: 'a remote archive',
    allowStore: true,
    allowFind: true,
    allowRetrieve: true,
    moveDestination: true,
    ...extra,
  };
}

export function nodeStoreContract(name: string, factory: () => Promise<NodeStoreFixture>): void {
  describe(`NodeStore contract: ${name}`, () => {
    let fx: NodeStoreFixture;
    let nodes: NodeStore;
    before(async () => {
      fx = await factory();
      nodes = fx.nodes;
    });
    after(async () => {
      await fx.cleanup();
    });

    it('creates a node and reads every field back', async () => {
      const at = new Date('2026-03-01T10:00:00.123Z');
      const fields = node(ae(), { host: '10.0.0.7', port: 11112, allowFind: false, moveDestination: false });
      const { node: stored, created } = await nodes.upsert(fields, { at });
      assert.equal(created, true);
      assert.deepEqual(stored, { ...fields, createdAt: at, updatedAt: at });
      assert.deepEqual(await nodes.get(fields.aeTitle), stored);
    });

    it('upsert of an existing AE title replaces every field, keeps createdAt and reports an update', async () => {
      const title = ae();
      const t0 = new Date('2026-03-01T10:00:00.000Z');
      const t1 = new Date('2026-03-02T11:30:00.500Z');
      await nodes.upsert(node(title), { at: t0 });
      const replacement = node(title, { host: '::1', port: 4242, description: null, allowStore: false, allowRetrieve: false });
      const { node: updated, created } = await nodes.upsert(replacement, { at: t1 });
      assert.equal(created, false);
      assert.deepEqual(updated, { ...replacement, createdAt: t0, updatedAt: t1 });
      assert.deepEqual(await nodes.get(title), updated);
    });

    it('AE titles are case-sensitive and matched exactly', async () => {
      const upper = ae('CS');
      const lower = upper.toLowerCase();
      await nodes.upsert(node(upper, { port: 1 }));
      assert.equal(await nodes.get(lower), undefined);
      await nodes.upsert(node(lower, { port: 2 }));
      assert.equal((await nodes.get(upper))?.port, 1);
      assert.equal((await nodes.get(lower))?.port, 2);
      assert.equal(await nodes.get(`${upper} `), undefined);
      assert.equal(await nodes.get(upper.slice(0, -1)), undefined);
    });

    it('keeps AE titles with inner spaces and descriptions with any character', async () => {
      const title = `A ${ae('').slice(0, 8)}`;
      const description = 'Radiologie Süd — 放射線科 "quoted" \'single\' 100%_';
      await nodes.upsert(node(title, { description }));
      const got = await nodes.get(title);
      assert.equal(got?.aeTitle, title);
      assert.equal(got?.description, description);
    });

    it('get of an unknown AE title is undefined', async () => {
      assert.equal(await nodes.get(ae('NONE')), undefined);
    });

    it('lists ordered by AE title with limit, offset and total', async () => {
      const before = await nodes.list({ limit: 1, offset: 0 });
      const prefix = `L${randomBytes(3).toString('hex').toUpperCase()}`;
      const titles = ['C', 'A', 'B', 'E', 'D'].map((s) => `${prefix}${s}`);
      for (const t of titles) await nodes.upsert(node(t));
      const all = await nodes.list({ limit: 100_000, offset: 0 });
      assert.equal(all.total, before.total + titles.length);
      assert.equal(all.items.length, all.total);
      const ordered = all.items.map((n) => n.aeTitle);
      assert.deepEqual(ordered, [...ordered].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
      const mine = ordered.filter((t) => t.startsWith(prefix));
      assert.deepEqual(mine, [...titles].sort());
      const start = ordered.indexOf(`${prefix}A`);
      const page = await nodes.list({ limit: 2, offset: start + 1 });
      assert.deepEqual(page.items.map((n) => n.aeTitle), [`${prefix}B`, `${prefix}C`]);
      assert.equal(page.total, all.total);
      const beyond = await nodes.list({ limit: 10, offset: all.total });
      assert.deepEqual(beyond.items, []);
      assert.equal(beyond.total, all.total);
    });

    it('lists move destinations (and filters the list by the flag)', async () => {
      const yes = ae('MY');
      const no = ae('MN');
      await nodes.upsert(node(yes, { moveDestination: true }));
      await nodes.upsert(node(no, { moveDestination: false }));
      const destinations = await nodes.listMoveDestinations();
      assert.ok(destinations.some((n) => n.aeTitle === yes));
      assert.ok(!destinations.some((n) => n.aeTitle === no));
      assert.ok(destinations.every((n) => n.moveDestination));
      const flagged = await nodes.list({ limit: 100_000, offset: 0, moveDestination: true });
      assert.deepEqual(flagged.items.map((n) => n.aeTitle), destinations.map((n) => n.aeTitle));
      assert.equal(flagged.total, destinations.length);
      const unflagged = await nodes.list({ limit: 100_000, offset: 0, moveDestination: false });
      assert.ok(unflagged.items.some((n) => n.aeTitle === no));
      assert.ok(unflagged.items.every((n) => !n.moveDestination));
      // Turning the flag off removes it from the destinations.
      await nodes.upsert(node(yes, { moveDestination: false }));
      assert.ok(!(await nodes.listMoveDestinations()).some((n) => n.aeTitle === yes));
    });

    it('deletes a node once', async () => {
      const title = ae('D');
      await nodes.upsert(node(title));
      assert.equal(await nodes.delete(title), true);
      assert.equal(await nodes.get(title), undefined);
      assert.equal(await nodes.delete(title), false);
      assert.equal(await nodes.delete(title.toLowerCase()), false);
    });

    it('concurrent upserts of one new AE title create it exactly once', async () => {
      const title = ae('R');
      const results = await Promise.all(Array.from({ length: 8 }, (_, i) => nodes.upsert(node(title, { port: 1000 + i }))));
      assert.equal(results.filter((r) => r.created).length, 1);
      const got = await nodes.get(title);
      assert.ok(got);
      assert.ok(results.some((r) => r.node.port === got.port));
    });
  });
}
