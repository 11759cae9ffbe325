// Large headers (ADR 0021): a header with megabytes of values costs ~10x as much as JS values and
// JSON, and blocks the event loop for ~0.5 s per step. Such ingests hold one of
// LARGE_HEADER_PERMITS permits until they finish; the others wait at the threshold, their input
// paused. Ordinary headers never wait.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { createArchive } from '../../src/archive/archive.js';
import { DEFAULT_ARCHIVE_SETTINGS, silentLogger, type CallContext } from '../../src/archive/context.js';
import { LARGE_HEADER_PERMITS } from '../../src/archive/ingest/ingest.js';
import type { IngestOutcome } from '../../src/archive/ingest/outcome.js';
import { ANONYMOUS } from '../../src/archive/origin.js';
import { LARGE_HEADER_BYTES, readPart10Header } from '../../src/dicom/header-reader.js';
import { IMPLICIT_VR_LE } from '../../src/dicom/transfer-syntax.js';
import { generateUid } from '../../src/dicom/uids.js';
import { writePart10, type WriteElement } from '../../src/dicom/writer.js';
import { createMemoryBlobStore } from '../../src/storage/memory/memory-blob-store.js';
import { createSqliteMetadataStore } from '../../src/storage/sqlite/sqlite-metadata-store.js';
import { createSemaphore } from '../../src/util/semaphore.js';
import { datasetElements, PATIENTS, SOP_CLASS } from '../helpers/corpus.js';

const ctx: CallContext = { principal: ANONYMOUS, origin: { protocol: 'internal' } };

/** An SC instance; `contourValues` adds a DS value of that many values (~2 bytes each) in a sequence item. */
function instance(contourValues = 0, pixelBytes = 0): { bytes: Buffer; sopUid: string } {
  const sopUid = generateUid();
  const extra: WriteElement[] =
    contourValues > 0
      ? [{ tag: '30060039', vr: 'SQ', value: [[{ tag: '30060050', vr: 'DS', value: Array.from({ length: contourValues }, (_, i) => String(i % 10)) }]] }]
      : [];
  if (pixelBytes > 0) extra.push({ tag: '7FE00010', vr: 'OB', value: Buffer.alloc(pixelBytes, 7) });
  const elements = datasetElements({
    patient: PATIENTS.doe,
    studyUid: generateUid(),
    seriesUid: generateUid(),
    sopUid,
    sopClassUid: SOP_CLASS.SC,
    modality: 'OT',
    studyDate: '20240101',
    accessionNumber: 'LARGE',
    studyDescription: 'large header',
    seriesNumber: 1,
    instanceNumber: 1,
    extra,
  });
  return { bytes: writePart10({ dataset: elements, transferSyntaxUid: IMPLICIT_VR_LE, sopClassUid: SOP_CLASS.SC, sopInstanceUid: sopUid }), sopUid };
}

async function* chunks(bytes: Buffer, size = 64 * 1024): AsyncGenerator<Uint8Array> {
  for (let o = 0; o < bytes.length; o += size) yield bytes.subarray(o, o + size);
}

const settledWithin = async (p: Promise<unknown>, ms: number): Promise<boolean> =>
  Promise.race([p.then(() => true, () => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);

describe('header reader: admission of a large header', () => {
  it('asks once, before retaining more than LARGE_HEADER_BYTES, and parses on only once admitted', { timeout: 20_000 }, async () => {
    const big = instance(LARGE_HEADER_BYTES); // ~2 MiB of DS values
    let asked = 0;
    let admit: (() => void) | undefined;
    const reading = readPart10Header(chunks(big.bytes), {
      bulkdataThreshold: 1024,
      admitLargeHeader: () => {
        asked++;
        return new Promise<void>((r) => (admit = r));
      },
    });
    assert.equal(await settledWithin(reading, 200), false, 'parsed past the threshold without admission');
    assert.equal(asked, 1);
    admit?.();
    const h = await reading;
    assert.equal(asked, 1);
    assert.equal((h.dataset['30060039']?.Value?.[0] as Record<string, { Value?: unknown[] }>)['30060050']?.Value?.length, LARGE_HEADER_BYTES);
  });

  it('never asks for an ordinary header', async () => {
    let asked = 0;
    await readPart10Header(chunks(instance(1000).bytes), { bulkdataThreshold: 1024, admitLargeHeader: async () => void asked++ });
    assert.equal(asked, 0);
  });
});

describe('semaphore', () => {
  it('grants at most its permits, in arrival order, and a release counts once', async () => {
    const s = createSemaphore(2);
    const a = await s.acquire();
    const b = await s.acquire();
    const order: string[] = [];
    const c = s.acquire().then((r) => (order.push('c'), r));
    const d = s.acquire().then((r) => (order.push('d'), r));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual([s.held, s.waiting, order.length], [2, 2, 0]);
    a();
    a();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual([s.held, s.waiting, order], [2, 1, ['c']]);
    b();
    (await c)();
    (await d)();
    assert.deepEqual([s.held, s.waiting, order], [0, 0, ['c', 'd']]);
  });
});

describe('archive.ingest: large headers at once', () => {
  it(`runs at most ${LARGE_HEADER_PERMITS} at once; the next waits until one finishes; small ones never wait`, { timeout: 60_000 }, async () => {
    const metadata = createSqliteMetadataStore({ path: ':memory:' });
    await metadata.migrate();
    const largeHeaders = createSemaphore(LARGE_HEADER_PERMITS);
    const archive = createArchive({ metadata, blobs: createMemoryBlobStore(), settings: DEFAULT_ARCHIVE_SETTINGS, logger: silentLogger, largeHeaders });
    try {
      // Holders: all of their header but the last bytes sent, so they stay in their ingest.
      const holders = Array.from({ length: LARGE_HEADER_PERMITS }, () => {
        const big = instance(LARGE_HEADER_BYTES);
        const body = new PassThrough();
        body.write(big.bytes.subarray(0, big.bytes.length - 10));
        return { big, body, outcome: archive.ingest(ctx, { body }) };
      });
      // Both reach the threshold and hold their permit.
      while (largeHeaders.held < LARGE_HEADER_PERMITS) await new Promise((r) => setTimeout(r, 10));
      // The waiting instance carries 16 MiB of pixel data after its large header: while it waits for
      // a permit, its input stops after ~1 MiB queued (not the usual 8 MiB).
      const next = instance(LARGE_HEADER_BYTES, 16 * 1024 * 1024);
      let pulled = 0;
      async function* counted(bytes: Buffer): AsyncGenerator<Uint8Array> {
        for await (const c of chunks(bytes)) {
          pulled += c.length;
          yield c;
        }
      }
      const waiting = archive.ingest(ctx, { body: counted(next.bytes) });
      assert.equal(await settledWithin(waiting, 1000), false, 'a large header ran beyond the permits');
      assert.equal(largeHeaders.waiting, 1);
      assert.ok(pulled < 4 * 1024 * 1024, `read ${pulled} bytes of input while waiting for a permit`);
      // An ordinary instance is not held up meanwhile.
      const small = instance(100);
      const smallOutcome: IngestOutcome = await archive.ingest(ctx, { body: chunks(small.bytes) });
      assert.equal(smallOutcome.ok, true);
      // One holder finishes: the waiting ingest goes on.
      const first = holders[0];
      assert.ok(first);
      first.body.end(first.big.bytes.subarray(first.big.bytes.length - 10));
      assert.equal((await first.outcome).ok, true);
      assert.equal((await waiting).ok, true);
      for (const h of holders.slice(1)) {
        h.body.end(h.big.bytes.subarray(h.big.bytes.length - 10));
        assert.equal((await h.outcome).ok, true);
      }
      assert.ok(await metadata.getInstance(next.sopUid));
    } finally {
      await metadata.close();
    }
  });
});
