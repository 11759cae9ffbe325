// DELETE versus ingest, made deterministic: a BlobStore wrapper holds one side at the exact point
// where the race matters, the other side runs, then the first is released. Real SQLite file and
// filesystem blob store. Afterwards: no row without its blob, no blob without its row, exact counters.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { createArchive, type Archive } from '../../src/archive/archive.js';
import { DEFAULT_ARCHIVE_SETTINGS, silentLogger, type CallContext } from '../../src/archive/context.js';
import { ANONYMOUS } from '../../src/archive/origin.js';
import type { BlobStore } from '../../src/storage/blobs.js';
import { createFsBlobStore } from '../../src/storage/fs/fs-blob-store.js';
import type { MetadataStore } from '../../src/storage/metadata.js';
import { createSqliteMetadataStore } from '../../src/storage/sqlite/sqlite-metadata-store.js';
import { simpleInstance } from '../helpers/corpus.js';
import { countFiles } from '../helpers/server.js';

const ctx: CallContext = { principal: ANONYMOUS, origin: { protocol: 'internal' } };

/** A one-shot barrier: `reached` resolves when a caller arrives, the caller waits for `release()`. */
function gate() {
  let arrive!: () => void;
  let open!: () => void;
  const reached = new Promise<void>((r) => (arrive = r));
  const released = new Promise<void>((r) => (open = r));
  return {
    reached,
    release: () => open(),
    async pass(): Promise<void> {
      arrive();
      await released;
    },
  };
}

type Gate = ReturnType<typeof gate>;

/** Holds the next put *after* its blob is durably written (before the index commit), or the next delete before it runs. */
function gatedBlobs(inner: BlobStore): BlobStore & { holdNextPut(): Gate; holdNextDelete(): Gate } {
  let putGate: Gate | undefined;
  let deleteGate: Gate | undefined;
  return {
    ...inner,
    kind: inner.kind,
    async put(key, body, options) {
      const result = await inner.put(key, body, options);
      const g = putGate;
      putGate = undefined;
      if (g) await g.pass();
      return result;
    },
    async delete(key) {
      const g = deleteGate;
      deleteGate = undefined;
      if (g) await g.pass();
      return inner.delete(key);
    },
    holdNextPut() {
      putGate = gate();
      return putGate;
    },
    holdNextDelete() {
      deleteGate = gate();
      return deleteGate;
    },
  };
}

describe('archive.remove racing archive.ingest', () => {
  let dir: string;
  let root: string;
  let metadata: MetadataStore;
  let blobs: ReturnType<typeof gatedBlobs>;
  let archive: Archive;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'pacsnode-race-'));
    root = path.join(dir, 'blobs');
    metadata = createSqliteMetadataStore({ path: path.join(dir, 'pacs.db') });
    await metadata.migrate();
    blobs = gatedBlobs(createFsBlobStore({ root, fsync: false }));
    archive = createArchive({ metadata, blobs, settings: DEFAULT_ARCHIVE_SETTINGS, logger: silentLogger });
  });
  after(async () => {
    await metadata.close();
    await blobs.close();
    await rm(dir, { recursive: true, force: true });
  });

  const ingest = (bytes: Buffer) => archive.ingest(ctx, { body: Readable.from([bytes]) });

  /** Every blob on disk is referenced by a row and every row's blob exists; no temporaries are left. */
  async function assertConsistent(): Promise<void> {
    const keys: string[] = [];
    for await (const b of blobs.list()) keys.push(b.key);
    const referenced = await metadata.referencedBlobKeys(keys);
    assert.deepEqual(keys.filter((k) => !referenced.has(k)), [], 'unreferenced blobs');
    const studies = await archive.studies(ctx, { limit: 1000 });
    let rows = 0;
    for (const st of studies.items) {
      for await (const row of metadata.listInstances({ studyUid: st.studyUid })) {
        rows++;
        assert.ok(await blobs.stat(row.blobKey), `row ${row.sopUid} without its blob`);
      }
    }
    const files = await countFiles(root);
    assert.equal(files.blobs, keys.length);
    assert.equal(files.blobs, rows, 'one blob file per row');
    assert.equal(files.temporaries, 0);
  }

  it('an ingest held after its blob write, a DELETE of its study, then the ingest commits: the study holds only that instance', async () => {
    const a = simpleInstance({ fill: 1 });
    const b = simpleInstance({ studyUid: a.studyUid, fill: 2 });
    assert.equal((await ingest(a.bytes)).ok, true);
    const filesBefore = (await countFiles(root)).blobs;

    const held = blobs.holdNextPut();
    const pending = ingest(b.bytes);
    await held.reached; // b's blob is on disk, its row is not committed
    assert.equal((await countFiles(root)).blobs, filesBefore + 1);
    await archive.remove(ctx, { level: 'study', studyUid: a.studyUid });
    held.release();
    const outcome = await pending;
    assert.equal(outcome.ok, true);
    assert.equal(outcome.disposition, 'stored');

    const study = await archive.study(ctx, a.studyUid);
    assert.deepEqual([study.numSeries, study.numInstances, study.totalBytes], [1, 1, b.bytes.length]);
    assert.deepEqual(study.series.map((s) => s.seriesUid), [b.seriesUid]);
    await assert.rejects(archive.instanceRow(ctx, a.sopUid), { code: 'NOT_FOUND' });
    assert.equal((await archive.instanceRow(ctx, b.sopUid)).size, b.bytes.length);
    assert.equal((await countFiles(root)).blobs, filesBefore); // a's went, b's stayed
    await assertConsistent();
    await archive.remove(ctx, { level: 'study', studyUid: a.studyUid });
    await assertConsistent();
  });

  it('a re-send of the very instance being deleted, held after its blob write, is stored again under its new blob', async () => {
    const a = simpleInstance({ fill: 3 });
    assert.equal((await ingest(a.bytes)).ok, true);
    const held = blobs.holdNextPut();
    const pending = ingest(a.bytes);
    await held.reached;
    await archive.remove(ctx, { level: 'instance', sopUid: a.sopUid });
    held.release();
    const outcome = await pending;
    assert.equal(outcome.disposition, 'stored');
    const row = await archive.instanceRow(ctx, a.sopUid);
    const chunks: Buffer[] = [];
    for await (const c of await archive.openInstance(ctx, row)) chunks.push(c as Buffer);
    assert.deepEqual(Buffer.concat(chunks), a.bytes);
    await assertConsistent();
    await archive.remove(ctx, { level: 'study', studyUid: a.studyUid });
    await assertConsistent();
  });

  it('a DELETE held between its index commit and its blob deletion while instances of the same study arrive', async () => {
    const a = simpleInstance({ fill: 4 });
    const b = simpleInstance({ studyUid: a.studyUid, seriesUid: a.seriesUid, fill: 5 });
    const c = simpleInstance({ studyUid: a.studyUid, fill: 6 });
    for (const x of [a, b]) assert.equal((await ingest(x.bytes)).ok, true);
    const filesBefore = (await countFiles(root)).blobs;

    const held = blobs.holdNextDelete();
    const removal = archive.remove(ctx, { level: 'study', studyUid: a.studyUid });
    await held.reached; // rows are gone, both blobs still on disk
    await assert.rejects(archive.study(ctx, a.studyUid), { code: 'NOT_FOUND' });
    assert.equal((await countFiles(root)).blobs, filesBefore);
    // A new instance of the study and a re-send of a deleted one (same bytes) arrive meanwhile.
    assert.equal((await ingest(c.bytes)).disposition, 'stored');
    assert.equal((await ingest(a.bytes)).disposition, 'stored');
    held.release();
    const result = await removal;
    assert.deepEqual([result.studies, result.series, result.instances], [1, 1, 2]);

    const study = await archive.study(ctx, a.studyUid);
    assert.deepEqual([study.numSeries, study.numInstances, study.totalBytes], [2, 2, a.bytes.length + c.bytes.length]);
    assert.equal((await archive.series(ctx, a.seriesUid)).numInstances, 1);
    await assert.rejects(archive.instanceRow(ctx, b.sopUid), { code: 'NOT_FOUND' });
    // The delete removed only the old blobs: a's new blob is there and holds a's bytes.
    const row = await archive.instanceRow(ctx, a.sopUid);
    const chunks: Buffer[] = [];
    for await (const ch of await archive.openInstance(ctx, row)) chunks.push(ch as Buffer);
    assert.deepEqual(Buffer.concat(chunks), a.bytes);
    assert.equal((await countFiles(root)).blobs, filesBefore); // two old gone, two new
    await assertConsistent();
    await archive.remove(ctx, { level: 'study', studyUid: a.studyUid });
    await assertConsistent();
  });
});
