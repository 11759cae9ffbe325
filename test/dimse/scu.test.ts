// The DIMSE SCU (src/dimse/scu) against real peers: DCMTK storescp (bit-preserving, so the bytes
// it writes are the data set we sent) and dcmqrscp for C-FIND, and our own createDimseServer
// in-process for C-ECHO and C-STORE.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { ANONYMOUS } from '../../src/archive/origin.js';
import { DEFLATED_EXPLICIT_VR_LE, EXPLICIT_VR_BE, EXPLICIT_VR_LE, IMPLICIT_VR_LE, JPEG_BASELINE } from '../../src/dicom/transfer-syntax.js';
import type { DicomJsonDataset, PersonName } from '../../src/dicom/types.js';
import { generateUid } from '../../src/dicom/uids.js';
import { writePart10 } from '../../src/dicom/writer.js';
import { createScu, ScuError, type StoreItem, type StoreProgress } from '../../src/dimse/scu/index.js';
import { findIdentifier } from '../../src/dimse/scu/find.js';
import { openPart10 } from '../../src/dimse/scu/part10.js';
import { datasetElements, generateCorpus, PATIENTS, SOP_CLASS, type Corpus } from '../helpers/corpus.js';
import { AE, datasetOf, startDimse, type TestDimse } from './helpers.js';
import { fileDataset, freePort, startQrscp, startStorescp, type RunningPeer } from './scu-peers.js';

const CTX = { principal: ANONYMOUS, origin: { protocol: 'internal' as const } };

function instance(transferSyntaxUid: string, opts: { pixelBytes?: number; studyUid?: string } = {}): { bytes: Buffer; sopUid: string } {
  const sopUid = generateUid();
  const dataset = datasetElements({
    patient: PATIENTS.doe,
    studyUid: opts.studyUid ?? generateUid(),
    seriesUid: generateUid(),
    sopUid,
    sopClassUid: SOP_CLASS.SC,
    modality: 'OT',
    studyDate: '20230101',
    accessionNumber: 'SCU',
    studyDescription: 'scu',
    seriesNumber: 1,
    instanceNumber: 1,
    image: { rows: 16, cols: 16, bits: 16 },
    extra: [{ tag: '7FE00010', vr: 'OW', value: Buffer.alloc(opts.pixelBytes ?? 512, 7) }],
  });
  return { bytes: writePart10({ dataset, transferSyntaxUid, sopClassUid: SOP_CLASS.SC, sopInstanceUid: sopUid }), sopUid };
}

function pn(ds: DicomJsonDataset, tag: string): string | undefined {
  const v = ds[tag]?.Value?.[0];
  return v && typeof v === 'object' ? (v as PersonName).Alphabetic : typeof v === 'string' ? v : undefined;
}

function str(ds: DicomJsonDataset, tag: string): string | undefined {
  const v = ds[tag]?.Value?.[0];
  return typeof v === 'string' ? v : undefined;
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe('SCU', () => {
  let dir: string;
  let corpus: Corpus;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'pacsnode-scu-'));
    corpus = await generateCorpus();
  });
  after(async () => {
    await corpus.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  const scu = createScu({ callingAe: 'PACSNODE_SCU', timeoutSecs: 5 });

  describe('part10', () => {
    it('splits File Meta from the data set, whatever the chunking', async () => {
      const f = instance(EXPLICIT_VR_LE);
      for (const size of [1, 7, 131, 132, 200, f.bytes.length]) {
        const chunks: Buffer[] = [];
        for (let o = 0; o < f.bytes.length; o += size) chunks.push(f.bytes.subarray(o, o + size));
        const opened = await openPart10(Readable.from(chunks));
        assert.equal(opened.meta.sopInstanceUid, f.sopUid);
        assert.equal(opened.meta.transferSyntaxUid, EXPLICIT_VR_LE);
        const parts: Buffer[] = [];
        for await (const c of opened.dataset) parts.push(Buffer.from(c));
        assert.ok(Buffer.concat(parts).equals(datasetOf(f.bytes)), `chunk size ${size}`);
      }
    });

    it('refuses a file that is not Part-10', async () => {
      await assert.rejects(openPart10(Readable.from([Buffer.alloc(300)])), /DICM/);
    });
  });

  describe('against DCMTK storescp', () => {
    let peer: RunningPeer;
    before(async () => {
      peer = await startStorescp();
    });
    after(async () => peer.stop());

    const target = (): { host: string; port: number; calledAe: string } => ({ host: '127.0.0.1', port: peer.port, calledAe: peer.aeTitle });

    it('echoes', async () => {
      const r = await scu.echo(target());
      assert.equal(r.status, 0);
      assert.ok(r.durationMs >= 0 && r.durationMs < 5000);
    });

    it('stores files of several transfer syntaxes in one association, data set bytes unchanged', async () => {
      const files: { file: string; sopUid: string; bytes: Buffer }[] = [];
      for (const ts of [IMPLICIT_VR_LE, EXPLICIT_VR_LE, EXPLICIT_VR_BE, EXPLICIT_VR_LE]) {
        const f = instance(ts);
        const file = path.join(dir, `${f.sopUid}.dcm`);
        await writeFile(file, f.bytes);
        files.push({ file, ...f });
      }
      const progress: StoreProgress[] = [];
      const r = await scu.store(target(), files.map((f) => f.file), { onProgress: (p) => progress.push(p) });
      assert.equal(r.total, 4);
      assert.equal(r.completed, 4, JSON.stringify(r.results));
      assert.equal(r.failed, 0);
      assert.equal(r.cancelled, false);
      assert.deepEqual(r.results.map((x) => x.status), [0, 0, 0, 0]);
      assert.equal(progress.filter((p) => p.result).length, 4);
      assert.equal(progress.at(-1)?.remaining, 0);
      const written = await peer.files();
      for (const f of files) {
        const out = written.find((w) => w.endsWith(f.sopUid));
        assert.ok(out, `storescp wrote no file for ${f.sopUid}`);
        assert.ok((await fileDataset(out)).equals(datasetOf(f.bytes)), 'data set bytes differ');
      }
    });

    it('fails only the instance whose transfer syntax the peer refuses, and reports files that are not DICOM', async () => {
      const jpeg = corpus.files.find((x) => x.transferSyntax === JPEG_BASELINE);
      assert.ok(jpeg);
      const ok = instance(EXPLICIT_VR_LE);
      const okFile = path.join(dir, 'ok.dcm');
      await writeFile(okFile, ok.bytes);
      const junk = path.join(dir, 'junk.txt');
      await writeFile(junk, 'not dicom');
      const r = await scu.store(target(), [jpeg.path, okFile, junk]);
      assert.deepEqual(r.results.map((x) => x.outcome), ['failure', 'success', 'failure']);
      // The peer refused the JPEG context: the syntaxes it did accept for the class are named, not one of them as its 'choice'.
      assert.match(r.results[0]?.error ?? '', /^transfer syntax 1\.2\.840\.10008\.1\.2\.4\.50 not accepted by the peer for this SOP class \(it accepted only [0-9., ]+; no transcoding/);
      assert.match(r.results[2]?.error ?? '', /not sent/);
      assert.equal(r.completed, 1);
      assert.equal(r.failed, 2);
    });

    it('does not send a truncated file (cut inside Pixel Data, or inside the header): it fails alone, the others go', async () => {
      const whole = instance(EXPLICIT_VR_LE, { pixelBytes: 2048 });
      const cutPixels = path.join(dir, 'cut-pixels.dcm');
      const cutHeader = path.join(dir, 'cut-header.dcm');
      await writeFile(cutPixels, whole.bytes.subarray(0, whole.bytes.length - 100));
      await writeFile(cutHeader, whole.bytes.subarray(0, 400));
      const a = instance(EXPLICIT_VR_LE);
      const b = instance(EXPLICIT_VR_LE);
      const aFile = path.join(dir, 'before-cut.dcm');
      const bFile = path.join(dir, 'after-cut.dcm');
      await writeFile(aFile, a.bytes);
      await writeFile(bFile, b.bytes);
      const r = await scu.store(target(), [aFile, cutPixels, cutHeader, bFile]);
      assert.deepEqual(r.results.map((x) => x.outcome), ['success', 'failure', 'failure', 'success'], JSON.stringify(r.results));
      assert.match(r.results[1]?.error ?? '', /^not sent: the file ends inside Pixel Data \(7FE0,0010\): truncated/);
      assert.match(r.results[2]?.error ?? '', /^not sent: the data set cannot be read \(TRUNCATED\)/);
      const written = await peer.files();
      for (const uid of [a.sopUid, b.sopUid]) assert.ok(written.some((w) => w.endsWith(uid)), `storescp wrote ${uid}`);
    });

    it('pads a deflated data set of odd length (PS3.5 A.5) so that storescp takes it and the association goes on', async () => {
      // Files written without the pad exist (DCMTK's own dcmconv +td writes them); storescp aborts
      // the association on an odd fragment, so every instance after it failed too.
      // The data set after the File Meta (its group length), deflated.
      const deflatedLength = (part10: Buffer): number => part10.length - 144 - part10.readUInt32LE(140);
      let odd: { bytes: Buffer; sopUid: string } | undefined;
      for (let px = 512; odd === undefined && px < 600; px += 2) {
        const f = instance(DEFLATED_EXPLICIT_VR_LE, { pixelBytes: px });
        if (deflatedLength(f.bytes) % 2 === 1) odd = f;
      }
      assert.ok(odd, 'an odd-length deflated data set');
      const next = instance(EXPLICIT_VR_LE);
      const oddFile = path.join(dir, 'odd-deflated.dcm');
      const nextFile = path.join(dir, 'after-deflated.dcm');
      await writeFile(oddFile, odd.bytes);
      await writeFile(nextFile, next.bytes);
      // +xa: storescp accepts Deflated (else the SCU re-encodes the instance to Explicit VR LE).
      const deflating = await startStorescp({ aeTitle: 'DEFLATING', acceptAll: true });
      try {
        const r = await scu.store({ host: '127.0.0.1', port: deflating.port, calledAe: deflating.aeTitle }, [oddFile, nextFile]);
        assert.deepEqual(r.results.map((x) => [x.outcome, x.status, x.sentTransferSyntaxUid]), [['success', 0, undefined], ['success', 0, undefined]], JSON.stringify(r.results));
        // storescp inflates a deflated data set as it writes it: both instances arrived whole.
        const written = await deflating.files();
        for (const uid of [odd.sopUid, next.sopUid]) assert.ok(written.some((w) => w.endsWith(uid)), `storescp wrote ${uid}`);
      } finally {
        await deflating.stop();
      }
    });

    it('streams a large instance from an item source (many PDUs) unchanged', async () => {
      const big = instance(EXPLICIT_VR_LE, { pixelBytes: 3 * 1024 * 1024 + 17 });
      const item: StoreItem = {
        sopClassUid: SOP_CLASS.SC,
        sopInstanceUid: big.sopUid,
        transferSyntaxUid: EXPLICIT_VR_LE,
        open: async () => Readable.from((function* () {
          for (let o = 0; o < big.bytes.length; o += 100_000) yield big.bytes.subarray(o, o + 100_000);
        })()),
      };
      const r = await scu.store(target(), [item]);
      assert.equal(r.completed, 1, JSON.stringify(r.results));
      assert.equal(r.bytesSent, datasetOf(big.bytes).length);
      const out = (await peer.files()).find((w) => w.endsWith(big.sopUid));
      assert.ok(out);
      assert.ok((await fileDataset(out)).equals(datasetOf(big.bytes)));
    });

    it('stops between instances when the signal fires', async () => {
      const files: string[] = [];
      for (let i = 0; i < 5; i++) {
        const f = instance(EXPLICIT_VR_LE);
        const file = path.join(dir, `cancel-${i}.dcm`);
        await writeFile(file, f.bytes);
        files.push(file);
      }
      const controller = new AbortController();
      const r = await scu.store(target(), files, {
        signal: controller.signal,
        onProgress: (p) => {
          if (p.result && p.completed === 2) controller.abort();
        },
      });
      assert.equal(r.cancelled, true);
      assert.equal(r.completed, 2);
      assert.equal(r.results.length, 2);
    });

    it('reports a refused connection as CONNECT_FAILED', async () => {
      const port = await freePort();
      await assert.rejects(scu.echo({ host: '127.0.0.1', port, calledAe: 'NOBODY' }), (err: unknown) => err instanceof ScuError && err.code === 'CONNECT_FAILED');
    });
  });

  describe('against DCMTK dcmqrscp (C-FIND)', () => {
    let peer: RunningPeer;
    // storescu (the loader) sends uncompressed files only; the others go in through our SCU below.
    const NATIVE = new Set([IMPLICIT_VR_LE, EXPLICIT_VR_LE, EXPLICIT_VR_BE]);
    let loaded: Corpus['files'];
    before(async () => {
      loaded = corpus.files.filter((f) => NATIVE.has(f.transferSyntax));
      peer = await startQrscp(loaded.map((f) => f.path));
    });
    after(async () => peer.stop());
    const target = (): { host: string; port: number; calledAe: string } => ({ host: '127.0.0.1', port: peer.port, calledAe: peer.aeTitle });

    it('finds studies by patient name wildcard (Study Root)', async () => {
      // dcmqrscp matches names case-sensitively
      const prefix = PATIENTS.doe.alphabetic.slice(0, 3);
      const results = await collect(scu.find(target(), { level: 'STUDY', keys: { PatientName: `${prefix}*` } }));
      const expected = new Set(loaded.filter((f) => f.patient.alphabetic.startsWith(prefix)).map((f) => f.studyUid));
      assert.ok(expected.size > 0);
      assert.deepEqual(new Set(results.map((r) => str(r, '0020000D'))), expected);
      for (const r of results) assert.ok(pn(r, '00100010')?.startsWith(prefix));
    });

    it('finds every study with universal matching, and series of one study', async () => {
      const studies = await collect(scu.find(target(), { level: 'STUDY' }));
      assert.deepEqual(new Set(studies.map((r) => str(r, '0020000D'))), new Set(loaded.map((f) => f.studyUid)));
      const study = loaded[0]?.studyUid as string;
      const series = await collect(scu.find(target(), { level: 'SERIES', keys: { StudyInstanceUID: study } }));
      assert.deepEqual(new Set(series.map((r) => str(r, '0020000E'))), new Set(loaded.filter((f) => f.studyUid === study).map((f) => f.seriesUid)));
    });

    it('finds patients with Patient Root', async () => {
      const patients = await collect(scu.find(target(), { level: 'PATIENT', model: 'patient' }));
      assert.deepEqual(new Set(patients.map((r) => str(r, '00100020'))), new Set(loaded.map((f) => f.patient.patientId)));
    });

    it('takes what our SCU stores, and finds it by SOP Instance UID', async () => {
      const f = instance(EXPLICIT_VR_LE);
      const file = path.join(dir, 'qr.dcm');
      await writeFile(file, f.bytes);
      const r = await scu.store(target(), [file]);
      assert.equal(r.completed, 1, JSON.stringify(r.results));
      const study = (await collect(scu.find(target(), { level: 'IMAGE', keys: { SOPInstanceUID: f.sopUid }, returnKeys: ['StudyInstanceUID', 'SeriesInstanceUID'] })))[0];
      assert.ok(study);
      const found = await collect(
        scu.find(target(), { level: 'IMAGE', keys: { StudyInstanceUID: str(study, '0020000D') ?? '', SeriesInstanceUID: str(study, '0020000E') ?? '', SOPInstanceUID: f.sopUid } }),
      );
      assert.deepEqual(found.map((x) => str(x, '00080018')), [f.sopUid]);
    });

    it('matches non-ASCII names sent as UTF-8 (ISO_IR 192)', async () => {
      const mueller = loaded.filter((f) => f.patient.alphabetic.startsWith('Müller'));
      assert.ok(mueller.length > 0);
      const results = await collect(scu.find(target(), { level: 'STUDY', keys: { PatientName: 'Müller*' } }));
      assert.deepEqual(new Set(results.map((r) => str(r, '0020000D'))), new Set(mueller.map((f) => f.studyUid)));
      for (const r of results) assert.equal(pn(r, '00100010'), 'Müller^Jürgen');
    });

    it('sends C-CANCEL when the consumer stops early and leaves the peer usable', async () => {
      let n = 0;
      for await (const _ of scu.find(target(), { level: 'IMAGE', model: 'patient', keys: { PatientID: '', StudyInstanceUID: '', SeriesInstanceUID: '' }, noDefaultReturnKeys: true })) {
        n++;
        break;
      }
      assert.equal(n, 1);
      assert.equal((await scu.echo(target())).status, 0);
    });

    it('refuses a Study Root PATIENT query and an unknown key before connecting', () => {
      assert.throws(() => findIdentifier({ level: 'PATIENT' }), /Study Root/);
      assert.throws(() => findIdentifier({ level: 'STUDY', keys: { NoSuchKeyword: 'x' } }), /unknown attribute/);
    });
  });

  describe('against our own server', () => {
    let d: TestDimse;
    before(async () => {
      d = await startDimse();
    });
    after(async () => d.close());
    const target = (): { host: string; port: number; calledAe: string } => ({ host: '127.0.0.1', port: d.port, calledAe: AE });

    it('echoes', async () => {
      assert.equal((await scu.echo(target())).status, 0);
    });

    it('stores the corpus, every transfer syntax as it is, bytes unchanged', async () => {
      const r = await scu.store(target(), corpus.files.map((f) => f.path));
      assert.equal(r.failed, 0, JSON.stringify(r.results.filter((x) => x.outcome === 'failure')));
      assert.equal(r.completed + r.warning, corpus.files.length);
      for (const f of corpus.files) {
        const row = await d.metadata.getInstance(f.sopUid);
        assert.ok(row, `${f.label} not stored`);
        assert.equal(row.transferSyntaxUid, f.transferSyntax);
        const chunks: Buffer[] = [];
        for await (const c of await d.archive.openInstance(CTX, row)) chunks.push(c as Buffer);
        assert.ok(datasetOf(Buffer.concat(chunks)).equals(datasetOf(f.bytes)), `${f.label}: data set differs`);
      }
    });

    it('is rejected with 1/1/7 for a wrong called AE', async () => {
      await assert.rejects(scu.echo({ ...target(), calledAe: 'SOMEONE' }), (err: unknown) => {
        assert.ok(err instanceof ScuError);
        assert.equal(err.code, 'ASSOCIATION_REJECTED');
        assert.deepEqual(err.details, { result: 1, source: 1, reason: 7 });
        return true;
      });
    });
  });

  describe('timeouts', () => {
    let server: Server;
    let port: number;
    const sockets: Socket[] = [];
    before(async () => {
      // Accepts the connection and never answers.
      server = createServer((s) => {
        sockets.push(s);
        s.on('error', () => {});
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      port = (server.address() as { port: number }).port;
    });
    after(async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    });

    it('gives up on a peer that never answers the A-ASSOCIATE-RQ', async () => {
      const quick = createScu({ callingAe: 'PACSNODE', timeoutSecs: 1 });
      const started = Date.now();
      await assert.rejects(quick.echo({ host: '127.0.0.1', port, calledAe: 'SILENT' }), (err: unknown) => err instanceof ScuError && err.code === 'TIMEOUT');
      assert.ok(Date.now() - started < 4000);
    });
  });
});
