// The archive core with real adapters in memory (SQLite :memory:, memory BlobStore): ingest
// outcomes, duplicates/replace, gc racing an ingest, remove cascade.
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { createArchive, type Archive } from '../../src/archive/archive.js';
import { DEFAULT_ARCHIVE_SETTINGS, silentLogger, type ArchiveSettings, type CallContext } from '../../src/archive/context.js';
import { ANONYMOUS } from '../../src/archive/origin.js';
import { generateUid } from '../../src/dicom/uids.js';
import { writePart10, type WriteElement } from '../../src/dicom/writer.js';
import type { BlobStore } from '../../src/storage/blobs.js';
import { createFsBlobStore } from '../../src/storage/fs/fs-blob-store.js';
import { createMemoryBlobStore } from '../../src/storage/memory/memory-blob-store.js';
import type { InstanceRecord, MetadataStore } from '../../src/storage/metadata.js';
import { createSqliteMetadataStore } from '../../src/storage/sqlite/sqlite-metadata-store.js';

const ctx: CallContext = { principal: ANONYMOUS, origin: { protocol: 'internal' } };

interface Ids {
  study: string;
  series: string;
  sop: string;
}

function newIds(): Ids {
  return { study: generateUid(), series: generateUid(), sop: generateUid() };
}

function instance(ids: Ids, extra: WriteElement[] = [], opts: { omit?: string[]; pixelBytes?: number; patientId?: string } = {}): Buffer {
  const all: WriteElement[] = [
    { tag: '00080005', vr: 'CS', value: 'ISO_IR 100' },
    { tag: '00080016', vr: 'UI', value: '1.2.840.10008.5.1.4.1.1.7' },
    { tag: '00080018', vr: 'UI', value: ids.sop },
    { tag: '00080020', vr: 'DA', value: '20240102' },
    { tag: '00080060', vr: 'CS', value: 'OT' },
    { tag: '00100010', vr: 'PN', value: 'Test^Patient' },
    { tag: '00100020', vr: 'LO', value: opts.patientId ?? 'P1' },
    { tag: '0020000D', vr: 'UI', value: ids.study },
    { tag: '0020000E', vr: 'UI', value: ids.series },
    { tag: '00280010', vr: 'US', value: [1] },
    { tag: '00280011', vr: 'US', value: [Math.max(1, (opts.pixelBytes ?? 2) / 2)] },
    { tag: '00280100', vr: 'US', value: [16] },
    { tag: '7FE00010', vr: 'OW', value: Buffer.alloc(opts.pixelBytes ?? 2, 7) },
    ...extra,
  ];
  const els = all.filter((e) => !(opts.omit ?? []).includes(e.tag));
  return writePart10({ dataset: els, transferSyntaxUid: '1.2.840.10008.1.2.1', sopClassUid: '1.2.840.10008.5.1.4.1.1.7', sopInstanceUid: ids.sop });
}

function body(buf: Buffer, chunk = 4096): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < buf.length; i += chunk) parts.push(buf.subarray(i, i + chunk));
  return Readable.from(parts);
}

async function blobCount(blobs: BlobStore): Promise<number> {
  let n = 0;
  for await (const _ of blobs.list()) n++;
  return n;
}

function setup(settings: Partial<ArchiveSettings> = {}, wrap?: (m: MetadataStore) => MetadataStore, blobs: BlobStore = createMemoryBlobStore()) {
  const metadata = createSqliteMetadataStore({ path: ':memory:' });
  const archive = createArchive({ metadata: wrap ? wrap(metadata) : metadata, blobs, settings: { ...DEFAULT_ARCHIVE_SETTINGS, ...settings }, logger: silentLogger });
  return { metadata, blobs, archive };
}

describe('archive.ingest', () => {
  let env: ReturnType<typeof setup>;
  let archive: Archive;
  before(async () => {
    env = setup();
    await env.metadata.migrate();
    archive = env.archive;
  });
  after(async () => env.metadata.close());

  it('stores a valid instance and indexes it', async () => {
    const ids = newIds();
    const out = await archive.ingest(ctx, { body: body(instance(ids)) });
    assert.equal(out.ok, true, out.message);
    assert.equal(out.disposition, 'stored');
    assert.equal(out.sopInstanceUid, ids.sop);
    const q = await archive.query(ctx, { level: 'study', params: [['StudyInstanceUID', ids.study]] });
    assert.equal(q.datasets.length, 1);
  });

  it('treats the same bytes again as a duplicate without a new blob', async () => {
    const ids = newIds();
    const file = instance(ids);
    await archive.ingest(ctx, { body: body(file) });
    const before = await blobCount(env.blobs);
    const out = await archive.ingest(ctx, { body: body(file) });
    assert.equal(out.disposition, 'duplicate');
    assert.equal(await blobCount(env.blobs), before);
  });

  it('replaces an instance sent again with other bytes and deletes the old blob', async () => {
    const ids = newIds();
    await archive.ingest(ctx, { body: body(instance(ids)) });
    const before = await blobCount(env.blobs);
    const out = await archive.ingest(ctx, { body: body(instance(ids, [{ tag: '00081030', vr: 'LO', value: 'changed' }])) });
    assert.equal(out.disposition, 'replaced');
    assert.equal(await blobCount(env.blobs), before);
  });

  it('fails MISSING_ATTRIBUTE without SOPInstanceUID and keeps no blob', async () => {
    const before = await blobCount(env.blobs);
    const out = await archive.ingest(ctx, { body: body(instance(newIds(), [], { omit: ['00080018'] })) });
    assert.equal(out.ok, false);
    assert.equal(out.failure, 'MISSING_ATTRIBUTE');
    assert.equal(await blobCount(env.blobs), before);
  });

  it('fails NOT_PARSEABLE for garbage and for a truncated file, keeping no blob', async () => {
    const before = await blobCount(env.blobs);
    const garbage = await archive.ingest(ctx, { body: body(Buffer.alloc(5000, 0x41)) });
    assert.equal(garbage.failure, 'NOT_PARSEABLE');
    const file = instance(newIds(), [], { pixelBytes: 20000 });
    const truncated = await archive.ingest(ctx, { body: body(file.subarray(0, 300)) });
    assert.equal(truncated.failure, 'NOT_PARSEABLE');
    assert.equal(await blobCount(env.blobs), before);
  });

  it('fails STUDY_MISMATCH when the instance is outside the expected study', async () => {
    const out = await archive.ingest(ctx, { body: body(instance(newIds())), expectedStudyUid: generateUid() });
    assert.equal(out.failure, 'STUDY_MISMATCH');
  });

  it('warns INVALID_INDEXED_VALUE for a leading-zero UID component and stores it', async () => {
    const ids = { ...newIds(), sop: `1.2.3.04.${Date.now()}` };
    const out = await archive.ingest(ctx, { body: body(instance(ids)) });
    assert.equal(out.ok, true);
    assert.deepEqual(out.warnings, ['INVALID_INDEXED_VALUE']);
  });

  it('warns INVALID_INDEXED_VALUE for a date or time no calendar or clock has, stored but not indexed (a search could not name it)', async () => {
    for (const [tag, vr, value] of [
      ['00100030', 'DA', '19011331'],
      ['00080021', 'DA', '20230229'],
      ['00080030', 'TM', '2500'],
      ['00080030', 'TM', '1261'],
    ] as const) {
      const ids = newIds();
      const els: WriteElement[] = [{ tag, vr, value }];
      const out = await archive.ingest(ctx, { body: body(instance(ids, els)) });
      assert.equal(out.ok, true, value);
      assert.deepEqual(out.warnings, ['INVALID_INDEXED_VALUE'], value);
    }
    const ok = await archive.ingest(ctx, { body: body(instance(newIds(), [{ tag: '00080030', vr: 'TM', value: '235960' }])) });
    assert.deepEqual(ok.warnings, [], 'a leap second is a time');
  });

  it('stores the pixel data location so frames can be sliced', async () => {
    const ids = newIds();
    await archive.ingest(ctx, { body: body(instance(ids, [], { pixelBytes: 64 })) });
    const frames = await archive.frames(ctx, { studyUid: ids.study, seriesUid: ids.series, sopUid: ids.sop }, [1]);
    assert.equal(frames.length, 1);
    const chunks: Buffer[] = [];
    for await (const c of await (frames[0] as { open(): Promise<Readable> }).open()) chunks.push(c as Buffer);
    assert.deepEqual(Buffer.concat(chunks), Buffer.alloc(64, 7));
  });
});

describe('archive limits and policies', () => {
  it('fails OUT_OF_RESOURCES over max_instance_bytes and keeps no blob', async () => {
    const env = setup({ maxInstanceBytes: 10_000 });
    await env.metadata.migrate();
    const out = await env.archive.ingest(ctx, { body: body(instance(newIds(), [], { pixelBytes: 50_000 })) });
    assert.equal(out.failure, 'OUT_OF_RESOURCES');
    assert.equal(await blobCount(env.blobs), 0);
    await env.metadata.close();
  });

  it('rejects a duplicate with on_duplicate = reject', async () => {
    const env = setup({ onDuplicate: 'reject' });
    await env.metadata.migrate();
    const ids = newIds();
    assert.equal((await env.archive.ingest(ctx, { body: body(instance(ids)) })).ok, true);
    const out = await env.archive.ingest(ctx, { body: body(instance(ids, [{ tag: '00081030', vr: 'LO', value: 'x' }])) });
    assert.equal(out.failure, 'DUPLICATE');
    assert.equal(await blobCount(env.blobs), 1);
    await env.metadata.close();
  });

  it('rejects or accepts a patient mismatch per on_patient_mismatch', async () => {
    const reject = setup({ onPatientMismatch: 'reject' });
    await reject.metadata.migrate();
    const ids = newIds();
    await reject.archive.ingest(ctx, { body: body(instance(ids)) });
    const out = await reject.archive.ingest(ctx, { body: body(instance({ ...ids, sop: generateUid() }, [], { patientId: 'OTHER' })) });
    assert.equal(out.failure, 'PATIENT_MISMATCH');
    await reject.metadata.close();

    const accept = setup({ onPatientMismatch: 'accept' });
    await accept.metadata.migrate();
    await accept.archive.ingest(ctx, { body: body(instance(ids)) });
    const ok = await accept.archive.ingest(ctx, { body: body(instance({ ...ids, sop: generateUid() }, [], { patientId: 'OTHER' })) });
    assert.equal(ok.ok, true);
    assert.deepEqual(ok.warnings, ['COERCED']);
    await accept.metadata.close();
  });
});

const blobFactories: [string, () => Promise<BlobStore>][] = [
  ['memory', async () => createMemoryBlobStore()],
  ['filesystem', async () => createFsBlobStore({ root: await mkdtemp(path.join(tmpdir(), 'pacsnode-gc-')), fsync: false })],
];

for (const [blobName, makeBlobs] of blobFactories) describe(`gc (${blobName} blobs)`, () => {
  it('never collects the blob of an ingest paused between blob write and commit', async () => {
    let release!: () => void;
    let paused!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const reachedCommit = new Promise<void>((r) => (paused = r));
    const env = setup({ gcGraceSecs: 3600 }, (m) => ({
      ...m,
      migrate: () => m.migrate(),
      close: () => m.close(),
      async commitInstance(record: InstanceRecord, options) {
        paused();
        await gate;
        return m.commitInstance(record, options);
      },
    }), await makeBlobs());
    await env.metadata.migrate();
    const ids = newIds();
    const pending = env.archive.ingest(ctx, { body: body(instance(ids)) });
    await reachedCommit;
    assert.equal(await blobCount(env.blobs), 1, 'the blob is written before the commit');
    const gc = await env.archive.gc(ctx);
    assert.equal(gc.deleted, 0);
    release();
    const out = await pending;
    assert.equal(out.ok, true);
    const rows = await env.archive.locate(ctx, { studyUid: ids.study });
    for await (const row of rows) {
      const s = await env.archive.openInstance(ctx, row);
      let n = 0;
      for await (const c of s) n += (c as Buffer).length;
      assert.equal(n, row.size);
    }
    await env.metadata.close();
  });

  it('deletes unreferenced blobs older than the grace period only', async () => {
    const env = setup({ gcGraceSecs: 60 }, undefined, await makeBlobs());
    await env.metadata.migrate();
    const ids = newIds();
    await env.archive.ingest(ctx, { body: body(instance(ids)) });
    await env.blobs.put('2000/01/orphan.dcm', Readable.from([Buffer.from('x')]));
    const young = await env.archive.gc(ctx);
    assert.equal(young.deleted, 0, 'the orphan is younger than the grace period');
    const later = await env.archive.gc(ctx, { now: new Date(Date.now() + 120_000) });
    assert.equal(later.deleted, 1, 'only the orphan goes');
    assert.equal(await blobCount(env.blobs), 1);
    await env.metadata.close();
  });
});

describe('archive.remove', () => {
  it('cascades a study delete to rows and blobs', async () => {
    const env = setup();
    await env.metadata.migrate();
    const ids = newIds();
    await env.archive.ingest(ctx, { body: body(instance(ids)) });
    await env.archive.ingest(ctx, { body: body(instance({ ...ids, sop: generateUid() })) });
    assert.equal(await blobCount(env.blobs), 2);
    const r = await env.archive.remove(ctx, { level: 'study', studyUid: ids.study });
    assert.equal(r.instances, 2);
    assert.equal(await blobCount(env.blobs), 0);
    await assert.rejects(env.archive.remove(ctx, { level: 'study', studyUid: ids.study }), { code: 'NOT_FOUND' });
    await env.metadata.close();
  });
});

async function read(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** An instance with native pixel data in the given transfer syntax: `frames` frames of 8×8 at `bits` bits. */
function pixelInstance(ids: Ids, transferSyntaxUid: string, o: { frames: number; bits: number; pixels: Buffer; extra?: WriteElement[]; rows?: number; columns?: number }): Buffer {
  return writePart10({
    dataset: [
      { tag: '00080016', vr: 'UI', value: '1.2.840.10008.5.1.4.1.1.7' },
      { tag: '00080018', vr: 'UI', value: ids.sop },
      { tag: '0020000D', vr: 'UI', value: ids.study },
      { tag: '0020000E', vr: 'UI', value: ids.series },
      { tag: '00280002', vr: 'US', value: [1] },
      { tag: '00280008', vr: 'IS', value: [String(o.frames)] },
      { tag: '00280010', vr: 'US', value: [o.rows ?? 8] },
      { tag: '00280011', vr: 'US', value: [o.columns ?? 8] },
      { tag: '00280100', vr: 'US', value: [o.bits] },
      ...(o.extra ?? []),
      { tag: '7FE00010', vr: 'OW', value: o.pixels },
    ],
    transferSyntaxUid,
    sopClassUid: '1.2.840.10008.5.1.4.1.1.7',
    sopInstanceUid: ids.sop,
  });
}

describe('retrieve from deflated instances', () => {
  it('serves frames and bulk data of a Deflated Explicit VR LE instance from the inflated dataset', async () => {
    const env = setup({ bulkdataThreshold: 16 });
    await env.metadata.migrate();
    const ids = newIds();
    const pixels = Buffer.alloc(2 * 8 * 8 * 3);
    for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 7) & 0xff;
    const privateValue = Buffer.alloc(300, 0x5a);
    const file = pixelInstance(ids, '1.2.840.10008.1.2.1.99', {
      frames: 3,
      bits: 16,
      pixels,
      extra: [
        { tag: '00090010', vr: 'LO', value: 'PACSNODE TEST' },
        { tag: '00091001', vr: 'OB', value: privateValue },
      ],
    });
    const out = await env.archive.ingest(ctx, { body: body(file, 100) });
    assert.equal(out.ok, true, out.message);
    const scope = { studyUid: ids.study, seriesUid: ids.series, sopUid: ids.sop };
    const frames = await env.archive.frames(ctx, scope, [2, 3]);
    assert.deepEqual(await read(await (frames[0] as { open(): Promise<Readable> }).open()), pixels.subarray(128, 256));
    assert.deepEqual(await read(await (frames[1] as { open(): Promise<Readable> }).open()), pixels.subarray(256, 384));
    const bulk = await env.archive.bulkdata(ctx, scope, ['00091001']);
    assert.deepEqual(await read(bulk.stream), privateValue);
    await env.metadata.close();
  });
});

describe('retrieve from big endian instances', () => {
  it('serves frames of 8-bit pixels held in OW swapped back by 16-bit word, as bulk data is (not as stored)', async () => {
    const env = setup({ bulkdataThreshold: 16 });
    await env.metadata.migrate();
    const ids = newIds();
    const pixels = Buffer.alloc(8 * 8 * 2);
    for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 7) & 0xff;
    // Explicit VR Big Endian: an OW value is 16-bit words, each byte-swapped (the writer takes the
    // value's bytes as they are: they are given swapped).
    const file = pixelInstance(ids, '1.2.840.10008.1.2.2', { frames: 2, bits: 8, pixels: Buffer.from(pixels).swap16() });
    const out = await env.archive.ingest(ctx, { body: body(file) });
    assert.equal(out.ok, true, out.message);
    const scope = { studyUid: ids.study, seriesUid: ids.series, sopUid: ids.sop };
    const frames = await env.archive.frames(ctx, scope, [1, 2]);
    assert.deepEqual(await read(await (frames[0] as { open(): Promise<Readable> }).open()), pixels.subarray(0, 64));
    assert.deepEqual(await read(await (frames[1] as { open(): Promise<Readable> }).open()), pixels.subarray(64, 128));
    const bulk = await env.archive.bulkdata(ctx, scope, ['7FE00010']);
    assert.deepEqual(await read(bulk.stream), pixels);
    await env.metadata.close();
  });

  it('refuses (406) frames that would not start on a word of the OW value (8-bit frames of odd size)', async () => {
    const env = setup({ bulkdataThreshold: 16 });
    await env.metadata.migrate();
    const ids = newIds();
    // 3 frames of 3×3 8-bit pixels (27 bytes, padded to 28 in the value).
    const file = pixelInstance(ids, '1.2.840.10008.1.2.2', { frames: 3, bits: 8, pixels: Buffer.alloc(28, 1), rows: 3, columns: 3 });
    assert.equal((await env.archive.ingest(ctx, { body: body(file) })).ok, true);
    await assert.rejects(env.archive.frames(ctx, { studyUid: ids.study, seriesUid: ids.series, sopUid: ids.sop }, [2]), { code: 'NOT_ACCEPTABLE' });
    await env.metadata.close();
  });
});
