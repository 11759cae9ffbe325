// The Warning-299 count memo (archive/query/count-memo.ts): exact counts, reused only while the
// index has not changed, over a real SQLite store.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createCountMemo } from '../../src/archive/query/count-memo.js';
import type { Query } from '../../src/dicom/query-model.js';
import type { MetadataStore } from '../../src/storage/metadata.js';
import { createSqliteMetadataStore } from '../../src/storage/sqlite/sqlite-metadata-store.js';
import { makeRecord, token } from '../contract/records.js';

const OPTIONS = { onDuplicate: 'replace', onPatientMismatch: 'accept' } as const;

describe('count memo (Warning 299 counts)', () => {
  let store: MetadataStore;
  let counted = 0;
  let clock = 0;
  const issuer = token('ISS');
  const query = (offset = 0): Query => ({
    level: 'study',
    constraints: [{ kind: 'single', tag: '00100021', value: issuer }],
    includeFields: [],
    fuzzy: false,
    limit: 2,
    offset,
  });

  before(async () => {
    store = createSqliteMetadataStore({ path: ':memory:' });
    await store.migrate();
  });
  after(async () => {
    await store.close();
  });

  const memo = () =>
    createCountMemo(
      {
        lastChangeSeq: () => store.lastChangeSeq(),
        count: async (q) => {
          counted++;
          return store.count(q);
        },
      },
      () => clock,
    );

  it('counts once while nothing changes, whatever the page; again after a store, a replace or a delete', async () => {
    const m = memo();
    const a = makeRecord({ issuer });
    for (const r of [a, makeRecord({ issuer }), makeRecord({ issuer })]) await store.commitInstance(r, OPTIONS);
    counted = 0;
    assert.equal(await m.count(query()), 3);
    assert.equal(await m.count(query(2)), 3);
    assert.equal(counted, 1, 'second page reuses the count');

    await store.commitInstance(makeRecord({ issuer }), OPTIONS);
    assert.equal(await m.count(query()), 4, 'a store invalidates');
    assert.equal(counted, 2);

    await store.removeStudy(a.studyUid);
    assert.equal(await m.count(query()), 3, 'a delete invalidates');
    assert.equal(counted, 3);

    // A commit elsewhere in the index (another patient) also advances the seq: recounted, still exact.
    await store.commitInstance(makeRecord(), OPTIONS);
    assert.equal(await m.count(query()), 3);
    assert.equal(counted, 4);
  });

  it('an entry older than its age bound is recounted even with no change', async () => {
    const m = memo();
    counted = 0;
    clock = 0;
    await m.count(query());
    clock = 5_000;
    await m.count(query());
    assert.equal(counted, 1);
    clock = 20_000;
    await m.count(query());
    assert.equal(counted, 2);
  });

  it('lastChangeSeq grows with every commit that changes the index and equals the last changes row', async () => {
    const before = await store.lastChangeSeq();
    const r = makeRecord({ issuer });
    await store.commitInstance(r, OPTIONS);
    const afterStore = await store.lastChangeSeq();
    assert.ok(afterStore > before);
    assert.equal(await store.commitInstance(r, OPTIONS).then((x) => x.kind), 'duplicate');
    assert.equal(await store.lastChangeSeq(), afterStore, 'a duplicate changes nothing');
    const rows = await store.changes({ since: before });
    assert.equal(rows[rows.length - 1]?.seq, afterStore);
  });
});
