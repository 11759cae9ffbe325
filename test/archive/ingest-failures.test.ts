// archive.ingest with unusual input and failing storage: it always settles with an outcome, and
// values an index column cannot hold are left unindexed with a warning (B007) on SQLite and on
// PostgreSQL alike, instead of failing the whole instance.
import assert from 'node:assert/strict';
import { Writable, type Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { createArchive } from '../../src/archive/archive.js';
import { DEFAULT_ARCHIVE_SETTINGS, silentLogger, type CallContext } from '../../src/archive/context.js';
import { IngestFailure, IngestWarning } from '../../src/archive/ingest/outcome.js';
import { ANONYMOUS } from '../../src/archive/origin.js';
import { EXPLICIT_VR_LE } from '../../src/dicom/transfer-syntax.js';
import { generateUid } from '../../src/dicom/uids.js';
import { writePart10, type WriteElement } from '../../src/dicom/writer.js';
import type { BlobStore } from '../../src/storage/blobs.js';
import { createMemoryBlobStore } from '../../src/storage/memory/memory-blob-store.js';
import type { MetadataStore } from '../../src/storage/metadata.js';
import { createPostgresStores } from '../../src/storage/postgres/postgres-stores.js';
import { createSqliteMetadataStore } from '../../src/storage/sqlite/sqlite-metadata-store.js';
import { pumpInto } from '../../src/util/streams.js';
import { datasetElements, PATIENTS, SOP_CLASS } from '../helpers/corpus.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';

const ctx: CallContext = { principal: ANONYMOUS, origin: { protocol: 'internal' } };

function part10(edit: (els: WriteElement[]) => WriteElement[] = (e) => e, pixelBytes = 0): { bytes: Buffer; sopUid: string } {
  const sopUid = generateUid();
  const elements = datasetElements({
    patient: PATIENTS.doe,
    studyUid: generateUid(),
    seriesUid: generateUid(),
    sopUid,
    sopClassUid: SOP_CLASS.SC,
    modality: 'OT',
    studyDate: '20240101',
    accessionNumber: 'EDGE',
    studyDescription: 'edge cases',
    seriesNumber: 1,
    instanceNumber: 1,
    ...(pixelBytes > 0 ? { extra: [{ tag: '7FE00010', vr: 'OB' as const, value: Buffer.alloc(pixelBytes, 5) }] } : {}),
  });
  return { bytes: writePart10({ dataset: edit(elements), transferSyntaxUid: EXPLICIT_VR_LE, sopClassUid: SOP_CLASS.SC, sopInstanceUid: sopUid }), sopUid };
}

async function* chunks(bytes: Buffer, size = 64 * 1024): AsyncGenerator<Uint8Array> {
  for (let o = 0; o < bytes.length; o += size) yield bytes.subarray(o, o + size);
}

const replace = (tag: string, value: WriteElement['value']) => (els: WriteElement[]): WriteElement[] => els.map((e) => (e.tag === tag ? { ...e, value } : e));

describe('archive.ingest when the blob store fails mid-write', () => {
  it('settles with OUT_OF_RESOURCES (A700) while the rest of the upload still arrives, instead of waiting forever', { timeout: 20_000 }, async () => {
    const metadata = createSqliteMetadataStore({ path: ':memory:' });
    await metadata.migrate();
    // Like the filesystem store on a full disk: the copy fails after 1 MiB, the body is destroyed
    // at once, and put() rejects a little later (after closing and removing its temp file).
    const failing: BlobStore = {
      ...createMemoryBlobStore(),
      put: async (_key: string, body: Readable) => {
        let written = 0;
        const disk = new Writable({
          write(chunk: Buffer, _enc, cb) {
            written += chunk.length;
            cb(written > 1024 * 1024 ? Object.assign(new Error('no space left on device'), { code: 'ENOSPC' }) : undefined);
          },
        });
        await pumpInto(body, disk).catch(async (err: unknown) => {
          await new Promise((r) => setTimeout(r, 20));
          throw err;
        });
        throw new Error('unreachable: the write never fails');
      },
    };
    const archive = createArchive({ metadata, blobs: failing, settings: DEFAULT_ARCHIVE_SETTINGS, logger: silentLogger });
    try {
      const { bytes } = part10(undefined, 8 * 1024 * 1024);
      const outcome = await archive.ingest(ctx, { body: chunks(bytes) });
      assert.equal(outcome.ok, false);
      assert.equal(outcome.failure, IngestFailure.OUT_OF_RESOURCES);
    } finally {
      await metadata.close();
    }
  });
});

for (const dialect of ['sqlite', 'postgres'] as const) {
  describe(`archive.ingest: values an index cannot hold are left unindexed with B007 (${dialect})`, () => {
    let metadata: MetadataStore;
    let database: TestDatabase | undefined;
    let close: () => Promise<void>;
    before(async () => {
      if (dialect === 'postgres') {
        database = await createTestDatabase();
        const stores = createPostgresStores({ url: database.url, maxConnections: 2 });
        metadata = stores.metadata;
        close = async () => {
          await stores.close();
          await database?.drop();
        };
      } else {
        metadata = createSqliteMetadataStore({ path: ':memory:' });
        close = () => metadata.close();
      }
      await metadata.migrate();
    });
    after(async () => close());

    const cases: [string, (els: WriteElement[]) => WriteElement[]][] = [
      ['a NUL inside Patient ID', replace('00100020', Buffer.from('AB\0CD', 'latin1'))],
      ['an Instance Number past 32 bits', replace('00200013', '3000000000')],
      ['an Instance Number that is not a number', replace('00200013', 'abc')],
      ['a Study Description of 3000 characters', replace('00081030', 'x'.repeat(3000))],
    ];
    for (const [label, edit] of cases) {
      it(`stores an instance with ${label}, warning INVALID_INDEXED_VALUE`, async () => {
        const archive = createArchive({ metadata, blobs: createMemoryBlobStore(), settings: DEFAULT_ARCHIVE_SETTINGS, logger: silentLogger });
        const { bytes, sopUid } = part10(edit);
        const outcome = await archive.ingest(ctx, { body: chunks(bytes) });
        assert.equal(outcome.ok, true, outcome.message);
        assert.deepEqual(outcome.warnings, [IngestWarning.INVALID_INDEXED_VALUE]);
        assert.equal((await metadata.getInstance(sopUid))?.sopUid, sopUid);
      });
    }
  });
}
