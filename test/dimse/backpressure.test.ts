// Backpressure of the Storage SCP (issue 4, SPEC §4): while storage does not read, the server stops
// reading the socket and its memory stays flat; once storage reads again the instance is stored
// byte-identically. DCMTK storescu (TCP_NODELAY=1) sends one 64 MiB native instance to a server whose
// BlobStore stops consuming after a few MiB until a gate opens. The server-side socket is observed
// through the 'net.server.socket' diagnostics channel (no hook in src/ needed).
import assert from 'node:assert/strict';
import diagnosticsChannel from 'node:diagnostics_channel';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { ANONYMOUS } from '../../src/archive/origin.js';
import { EXPLICIT_VR_LE } from '../../src/dicom/transfer-syntax.js';
import { generateUid } from '../../src/dicom/uids.js';
import { writePart10 } from '../../src/dicom/writer.js';
import type { BlobPutOptions, BlobPutResult, BlobStore } from '../../src/storage/blobs.js';
import { datasetElements, PATIENTS, SOP_CLASS } from '../helpers/corpus.js';
import { AE, dcmtk, datasetOf, startDimse, type TestDimse, type ToolResult } from './helpers.js';

const MiB = 1024 * 1024;
const PIXEL_BYTES = 64 * MiB;
/** The wrapper stops reading once this much of the blob has arrived. */
const GATE_AT = 4 * MiB;
/** Allowed growth of server memory while 64 MiB are pending. */
const MEMORY_BOUND = 48 * MiB;
/** Allowed bytes between what the socket delivered and what storage consumed (stream buffers). */
const IN_FLIGHT_BOUND = 16 * MiB;
const CTX = { principal: ANONYMOUS, origin: { protocol: 'internal' as const } };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resolves when `cond` holds, rejects after `ms`. */
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

interface Gate {
  /** Bytes of blob body the wrapper has taken from ingest. */
  readonly received: number;
  /** True once a put is blocked at the gate. */
  readonly blocked: boolean;
  open(): void;
}

/** A BlobStore that stops consuming a put's body after `limit` bytes until the gate opens. */
function gatedBlobStore(inner: BlobStore, limit: number): { store: BlobStore; gate: Gate } {
  let received = 0;
  let blocked = false;
  let opened = false;
  let release: () => void = () => {};
  const openedPromise = new Promise<void>((resolve) => {
    release = resolve;
  });
  const gate: Gate = {
    get received() {
      return received;
    },
    get blocked() {
      return blocked;
    },
    open() {
      opened = true;
      release();
    },
  };
  const store: BlobStore = {
    kind: `gated-${inner.kind}`,
    put(key: string, body: Readable, options?: BlobPutOptions): Promise<BlobPutResult> {
      async function* gated(): AsyncGenerator<Buffer> {
        for await (const chunk of body as AsyncIterable<Buffer>) {
          received += chunk.length;
          yield chunk;
          if (!opened && received >= limit) {
            blocked = true;
            await openedPromise;
            blocked = false;
          }
        }
      }
      return inner.put(key, Readable.from(gated(), { objectMode: false }), options);
    },
    get: (key, options) => inner.get(key, options),
    delete: (key) => inner.delete(key),
    stat: (key) => inner.stat(key),
    list: (options) => inner.list(options),
    cleanupTemporary: (olderThan) => inner.cleanupTemporary(olderThan),
    check: () => inner.check(),
    close: () => inner.close(),
  };
  return { store, gate };
}

/** One native Explicit VR LE instance with PIXEL_BYTES of patterned 16-bit pixel data. */
function largeInstance(): { bytes: Buffer; sopUid: string } {
  const sopUid = generateUid();
  const pixels = Buffer.allocUnsafe(PIXEL_BYTES);
  for (let i = 0; i < PIXEL_BYTES; i += 4) pixels.writeUInt32LE((i * 2654435761) >>> 0, i);
  const dataset = datasetElements({
    patient: PATIENTS.doe,
    studyUid: generateUid(),
    seriesUid: generateUid(),
    sopUid,
    sopClassUid: SOP_CLASS.SC,
    modality: 'OT',
    studyDate: '20230101',
    accessionNumber: 'BACKPRES',
    studyDescription: 'backpressure',
    seriesNumber: 1,
    instanceNumber: 1,
    image: { rows: 4096, cols: 8192, bits: 16 },
    extra: [{ tag: '7FE00010', vr: 'OW', value: pixels }],
  });
  return { bytes: writePart10({ dataset, transferSyntaxUid: EXPLICIT_VR_LE, sopClassUid: SOP_CLASS.SC, sopInstanceUid: sopUid }), sopUid };
}

describe('C-STORE backpressure with a slow BlobStore', () => {
  let d: TestDimse;
  let gate: Gate;
  let dir: string;
  const serverSockets: Socket[] = [];
  const onSocket = (message: unknown): void => {
    const socket = (message as { socket?: unknown }).socket;
    if (socket && typeof socket === 'object' && 'bytesRead' in socket) serverSockets.push(socket as Socket);
  };

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'pacsnode-backpressure-'));
    diagnosticsChannel.subscribe('net.server.socket', onSocket);
    d = await startDimse({
      // long enough that no idle or ARTIM timer fires while the gate is closed
      policy: { timeoutSecs: 60 },
      wrapBlobs: (inner) => {
        const g = gatedBlobStore(inner, GATE_AT);
        gate = g.gate;
        return g.store;
      },
    });
  });

  after(async () => {
    gate.open();
    diagnosticsChannel.unsubscribe('net.server.socket', onSocket);
    await d.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('pauses the socket and keeps memory flat while storage is blocked, then stores the instance unchanged', async () => {
    const file = path.join(dir, 'large.dcm');
    let sopUid: string;
    let fileSize: number;
    {
      const f = largeInstance();
      sopUid = f.sopUid;
      fileSize = f.bytes.length;
      await writeFile(file, f.bytes);
    }
    await sleep(200);
    const baseline = process.memoryUsage();

    let done: ToolResult | undefined;
    const sending = dcmtk('storescu', ['-v', '-aet', 'STORESCU', '-aec', AE, '127.0.0.1', String(d.port), file], 60_000).then((r) => {
      done = r;
      return r;
    });
    try {
      await until(() => gate.blocked, 15_000, 'the BlobStore to block at its gate');
      const socket = serverSockets.find((s) => s.localPort === d.port);
      assert.ok(socket, 'server-side socket not observed');

      // Buffers between socket and storage fill, then reading stops: find two equal samples 500 ms apart.
      let a = socket.bytesRead;
      const start = Date.now();
      for (;;) {
        await sleep(500);
        const b = socket.bytesRead;
        if (b === a) break;
        assert.ok(Date.now() - start < 10_000, `socket kept being read while storage was blocked (${a} -> ${b})`);
        a = b;
      }
      // ... and it stays paused.
      const samples: number[] = [];
      const peak = { rss: 0, arrayBuffers: 0 };
      for (let i = 0; i < 4; i++) {
        await sleep(250);
        samples.push(socket.bytesRead);
        const m = process.memoryUsage();
        peak.rss = Math.max(peak.rss, m.rss);
        peak.arrayBuffers = Math.max(peak.arrayBuffers, m.arrayBuffers);
      }
      assert.deepEqual(samples, samples.map(() => a), `bytes read grew while storage was blocked: ${a} then ${samples.join(', ')}`);
      assert.equal(done, undefined, 'storescu finished although storage was blocked');
      assert.ok(gate.blocked, 'gate no longer blocking');

      // Most of the instance is still pending at the sender; what was read is bounded by the stream buffers.
      const read = a;
      assert.ok(read < fileSize - 32 * MiB, `server read ${read} of ${fileSize} bytes while storage was blocked`);
      assert.ok(read - gate.received < IN_FLIGHT_BOUND, `${read - gate.received} bytes read but not consumed by storage`);
      assert.ok(peak.arrayBuffers - baseline.arrayBuffers < MEMORY_BOUND, `arrayBuffers grew by ${(peak.arrayBuffers - baseline.arrayBuffers) / MiB} MiB`);
      assert.ok(peak.rss - baseline.rss < MEMORY_BOUND, `rss grew by ${(peak.rss - baseline.rss) / MiB} MiB`);
    } finally {
      gate.open();
    }

    const r = await sending;
    assert.equal(r.code, 0, r.stderr);
    assert.match(`${r.stdout}\n${r.stderr}`, /Received Store Response \(Success\)/);
    assert.ok(gate.received >= fileSize - 1024, `storage received ${gate.received} bytes`);

    const row = await d.metadata.getInstance(sopUid);
    assert.ok(row, 'instance not stored');
    const chunks: Buffer[] = [];
    for await (const c of await d.archive.openInstance(CTX, row)) chunks.push(c as Buffer);
    const stored = Buffer.concat(chunks);
    assert.ok(datasetOf(stored).equals(datasetOf(await readFile(file))), 'stored dataset bytes differ from those sent');
  });
});
