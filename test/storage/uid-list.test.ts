// List matching of any length on both engines (review: a C-FIND whose StudyInstanceUID carried
// ~33,000 UIDs failed with SQLite's "too many SQL variables", one bound parameter per value; a
// SOPInstanceUID list of 120,000 exceeds PostgreSQL's 65,535 as well). Each engine's store, fresh,
// holds a few studies; lists of 40,000 (and 70,000) values, a few of them stored, must find exactly
// the stored ones — through `query` and `count`, at the list's own level and through EXISTS from a
// higher level — and a list of each matching kind (UID, text, person name, number) must agree with
// the short list of only its stored values.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Constraint, Query, QueryLevel } from '../../src/dicom/query-model.js';
import type { CommitOptions, MetadataStore, QueryRows } from '../../src/storage/metadata.js';
import { createPostgresStores } from '../../src/storage/postgres/postgres-stores.js';
import { SHORT_LIST } from '../../src/storage/sql/dialect.js';
import { createSqliteMetadataStore } from '../../src/storage/sqlite/sqlite-metadata-store.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { makeRecord, newUid, token } from '../contract/records.js';

const REPLACE: CommitOptions = { onDuplicate: 'replace', onPatientMismatch: 'accept' };
const TIMEOUT = 20_000;

interface Stored {
  studyUid: string;
  seriesUid: string;
  sopUid: string;
  patientId: string;
  patientName: string;
  seriesNumber: number;
}

function q(level: QueryLevel, constraints: Constraint[]): Query {
  return { level, constraints, includeFields: [], fuzzy: false, limit: 1000, offset: 0 };
}

function list(tag: string, values: string[]): Constraint {
  return { kind: 'list', tag, values };
}

/** `n` values: `stored` spread among fresh UIDs that nothing has (deterministic positions). */
function withStored(stored: string[], n: number, filler: (k: number) => string = () => newUid()): string[] {
  const out = Array.from({ length: n - stored.length }, (_, k) => filler(k));
  stored.forEach((v, k) => out.splice(Math.floor(((k + 1) * out.length) / (stored.length + 1)), 0, v));
  assert.equal(out.length, n);
  return out;
}

function uidsOf(r: QueryRows): string[] {
  switch (r.level) {
    case 'patient':
      return r.rows.map((x) => x.patientId).sort();
    case 'study':
      return r.rows.map((x) => x.studyUid).sort();
    case 'series':
      return r.rows.map((x) => x.seriesUid).sort();
    case 'instance':
      return r.rows.map((x) => x.sopUid).sort();
  }
}

function uidListChecks(engine: string, open: () => Promise<{ store: MetadataStore; close(): Promise<void> }>): void {
  describe(`list matching of any length (${engine})`, { timeout: 60_000 }, () => {
    let store: MetadataStore;
    let close: () => Promise<void>;
    const stored: Stored[] = [];

    before(async () => {
      ({ store, close } = await open());
      await store.migrate();
      // Eight studies of one instance each, and two more instances in the first study's series.
      for (let k = 0; k < 8; k++) {
        const s: Stored = { studyUid: newUid(), seriesUid: newUid(), sopUid: newUid(), patientId: token('PID'), patientName: `Listed^Patient${k}`, seriesNumber: 1000 + k };
        await store.commitInstance(makeRecord({ ...s }), REPLACE);
        stored.push(s);
      }
      const first = stored[0] as Stored;
      for (let k = 0; k < 2; k++) {
        const s: Stored = { ...first, sopUid: newUid() };
        await store.commitInstance(makeRecord({ ...s, instanceNumber: k + 2 }), REPLACE);
        stored.push(s);
      }
    });
    after(async () => {
      await close();
    });

    async function both(query: Query): Promise<{ uids: string[]; count: number }> {
      const rows = await store.query(query);
      return { uids: uidsOf(rows), count: await store.count(query) };
    }

    it('a StudyInstanceUID list of 40,000 values finds exactly its stored studies', { timeout: TIMEOUT }, async () => {
      const want = [stored[0], stored[3], stored[5], stored[7]].map((s) => (s as Stored).studyUid);
      const values = withStored(want, 40_000);
      assert.deepEqual(await both(q('study', [list('0020000D', values)])), { uids: [...want].sort(), count: 4 });
      // The instances of those studies (the first has three).
      const sops = stored.filter((s) => want.includes(s.studyUid)).map((s) => s.sopUid);
      assert.deepEqual(await both(q('instance', [list('0020000D', values)])), { uids: [...sops].sort(), count: 6 });
    });

    it('a SOPInstanceUID list of 40,000 values finds exactly its stored instances, and their studies', { timeout: TIMEOUT }, async () => {
      const picked = [stored[1], stored[4], stored[8], stored[9]] as Stored[];
      const values = withStored(
        picked.map((s) => s.sopUid),
        40_000,
      );
      assert.deepEqual(await both(q('instance', [list('00080018', values)])), { uids: picked.map((s) => s.sopUid).sort(), count: 4 });
      // From the study level the instance key is an EXISTS over the studies' instances.
      const studies = [...new Set(picked.map((s) => s.studyUid))].sort();
      assert.deepEqual(await both(q('study', [list('00080018', values)])), { uids: studies, count: studies.length });
    });

    it('a SOPInstanceUID list of 70,000 values (more than PostgreSQL binds) works too', { timeout: TIMEOUT }, async () => {
      const picked = [stored[2], stored[6]] as Stored[];
      const values = withStored(
        picked.map((s) => s.sopUid),
        70_000,
        (k) => `1.2.826.0.1.${k}`,
      );
      assert.deepEqual(await both(q('instance', [list('00080018', values)])), { uids: picked.map((s) => s.sopUid).sort(), count: 2 });
    });

    it('long lists of every matching kind agree with the short list of their stored values', { timeout: TIMEOUT }, async () => {
      const picked = [stored[1], stored[2], stored[6]] as Stored[];
      const cases: [QueryLevel, string, string[], (k: number) => string][] = [
        ['patient', '00100020', picked.map((s) => s.patientId), (k) => `NOPID${k}`],
        ['patient', '00100010', picked.map((s) => s.patientName), (k) => `Nobody^Number${k}`],
        ['series', '0020000E', picked.map((s) => s.seriesUid), () => newUid()],
        ['series', '00200011', picked.map((s) => String(s.seriesNumber)), (k) => String(5000 + k)],
      ];
      for (const [level, tag, want, filler] of cases) {
        const short = await both(q(level, [list(tag, want)]));
        assert.equal(short.count, 3, `${tag} short list`);
        for (const n of [SHORT_LIST + 1, 40_000]) {
          assert.deepEqual(await both(q(level, [list(tag, withStored(want, n, filler))])), short, `${tag}: ${n} values`);
        }
      }
    });

    it('a long list combines with other keys (AND) and pages like any query', { timeout: TIMEOUT }, async () => {
      const want = stored.slice(0, 8).map((s) => s.studyUid);
      const values = withStored(want, 40_000);
      const inOrder = (r: QueryRows): string[] => (r.level === 'study' ? r.rows.map((x) => x.studyUid) : []);
      const all = inOrder(await store.query(q('study', [list('0020000D', values)])));
      assert.deepEqual([...all].sort(), [...want].sort());
      assert.deepEqual(inOrder(await store.query({ ...q('study', [list('0020000D', values)]), limit: 3, offset: 2 })), all.slice(2, 5));
      const one = stored[3] as Stored;
      assert.deepEqual(await both(q('study', [list('0020000D', values), { kind: 'single', tag: '00100020', value: one.patientId }])), { uids: [one.studyUid], count: 1 });
    });
  });
}

let dir: string;
let database: TestDatabase;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'pacsnode-uid-list-'));
  database = await createTestDatabase();
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
  await database.drop();
});

uidListChecks('sqlite', async () => {
  const store = createSqliteMetadataStore({ path: path.join(dir, 'pacs.db') });
  return { store, close: () => store.close() };
});

uidListChecks('postgres', async () => {
  const stores = createPostgresStores({ url: database.url, maxConnections: 4 });
  return { store: stores.metadata, close: () => stores.close() };
});
