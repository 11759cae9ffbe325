// NOT_FOUND details of the archive's remove (REST DELETE of a study, series or instance) name the
// UID(s) asked for, with the same keys as the GETs (docs/errors.md) — on both database profiles.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createArchive, type Archive, type RemoveTarget } from '../../src/archive/archive.js';
import { DEFAULT_ARCHIVE_SETTINGS, silentLogger, type CallContext } from '../../src/archive/context.js';
import { isArchiveError } from '../../src/archive/errors.js';
import { ANONYMOUS } from '../../src/archive/origin.js';
import { createMemoryBlobStore } from '../../src/storage/memory/memory-blob-store.js';
import { createPostgresStores } from '../../src/storage/postgres/postgres-stores.js';
import { createSqliteStores } from '../../src/storage/sqlite/sqlite-metadata-store.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';

const ctx: CallContext = { principal: ANONYMOUS, origin: { protocol: 'rest' } };
const STUDY = '1.2.826.0.1.3680043.8.498.10';
const SERIES = '1.2.826.0.1.3680043.8.498.11';
const SOP = '1.2.826.0.1.3680043.8.498.12';

async function notFoundDetails(promise: Promise<unknown>): Promise<Record<string, unknown>> {
  let details: Record<string, unknown> | undefined;
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(isArchiveError(e) && e.code === 'NOT_FOUND', String(e));
    details = { ...e.details };
    return true;
  });
  return details ?? {};
}

for (const profile of ['sqlite', 'postgres'] as const) {
  describe(`remove of an unknown UID names it in details (${profile})`, () => {
    let database: TestDatabase | undefined;
    let archive: Archive;
    let close: () => Promise<void>;
    before(async () => {
      const stores = profile === 'postgres'
        ? createPostgresStores({ url: (database = await createTestDatabase('pacsnode_not_found')).url, maxConnections: 2 })
        : createSqliteStores({ path: ':memory:' });
      await stores.migrate();
      close = () => stores.close();
      archive = createArchive({ metadata: stores.metadata, blobs: createMemoryBlobStore(), settings: DEFAULT_ARCHIVE_SETTINGS, logger: silentLogger });
    });
    after(async () => {
      try {
        await close?.();
      } finally {
        await database?.drop();
      }
    });

    it('study, series and instance: the same details as the GET', async () => {
      assert.deepEqual(await notFoundDetails(archive.remove(ctx, { level: 'study', studyUid: STUDY })), { studyUid: STUDY });
      assert.deepEqual(await notFoundDetails(archive.remove(ctx, { level: 'series', seriesUid: SERIES })), { seriesUid: SERIES });
      assert.deepEqual(await notFoundDetails(archive.remove(ctx, { level: 'instance', sopUid: SOP })), { sopUid: SOP });
      assert.deepEqual(await notFoundDetails(archive.study(ctx, STUDY)), await notFoundDetails(archive.remove(ctx, { level: 'study', studyUid: STUDY })));
      assert.deepEqual(await notFoundDetails(archive.series(ctx, SERIES)), await notFoundDetails(archive.remove(ctx, { level: 'series', seriesUid: SERIES })));
    });

    it('scoped removes name every UID given, and no absent one', async () => {
      const targets: [RemoveTarget, Record<string, string>][] = [
        [{ level: 'series', seriesUid: SERIES, studyUid: STUDY }, { seriesUid: SERIES, studyUid: STUDY }],
        [{ level: 'instance', sopUid: SOP, studyUid: STUDY, seriesUid: SERIES }, { sopUid: SOP, studyUid: STUDY, seriesUid: SERIES }],
        [{ level: 'instance', sopUid: SOP, studyUid: undefined, seriesUid: SERIES } as RemoveTarget, { sopUid: SOP, seriesUid: SERIES }],
      ];
      for (const [target, details] of targets) assert.deepEqual(await notFoundDetails(archive.remove(ctx, target)), details);
    });
  });
}
