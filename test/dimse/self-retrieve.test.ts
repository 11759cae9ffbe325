// Our C-MOVE/C-GET SCU against our own C-MOVE/C-GET SCP: two real pacsnode servers (startTestServer),
// NODE_A and NODE_B, each registered as a node (and move destination) of the other. B holds the test
// corpus (several patients and multi-series studies: Explicit VR LE, Implicit VR LE, Explicit VR BE,
// RLE, JPEG baseline) and a few generated studies, stored by STOW-RS; A retrieves them through
// POST /api/nodes/NODE_B/get|move and the CLI gets them into a directory.
//
// What "the same instance" means here: C-GET and C-MOVE carry the data set only; the receiver builds
// its own File Meta. So the data set bytes after the File Meta must be identical on both sides
// (test/dimse/helpers.ts datasetOf), and so must the transfer syntax — except where the negotiated
// context forces our SCP to re-encode (C-GET of Implicit VR LE / Big Endian instances: our SCU's
// native storage context is {Explicit, Implicit VR LE}, and B accepts Explicit VR LE on it), where
// the elements must be equal instead.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCli, type CliIo } from '../../src/cli/index.js';
import { generateUid } from '../../src/dicom/uids.js';
import { HTJ2K_LOSSLESS, JPEG_2000_LOSSLESS, JPEG_LS_LOSSLESS, transferSyntax } from '../../src/dicom/transfer-syntax.js';
import { encapsulatedPixelData, writePart10 } from '../../src/dicom/writer.js';
import type { JobJson } from '../../src/http/api/jobs.js';
import { createScu } from '../../src/dimse/scu/index.js';
import { datasetElements, generateCorpus, PATIENTS, patternBytes, SOP_CLASS, TS, type Corpus, type CorpusFile } from '../helpers/corpus.js';
import { get, parseMultipartResponse, request, stow, type HttpResponse } from '../helpers/http.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { datasetOf, elementsOf } from './helpers.js';

const A_AE = 'NODE_A';
const B_AE = 'NODE_B';
const C_AE = 'NODE_C';
const TIMEOUT = { timeout: 90_000 };

/** One instance held by B: its identity and the Part-10 bytes stored there. */
interface Held {
  label: string;
  sopUid: string;
  seriesUid: string;
  studyUid: string;
  transferSyntax: string;
  bytes: Buffer;
}

/** A generated instance: 16-bit pixels of about `pixelBytes` bytes, in `ts`. */
function makeInstance(o: { label: string; studyUid: string; seriesUid: string; seriesNumber: number; n: number; ts: string; sopClassUid: string; modality: string; pixelBytes: number }): Held {
  const sopUid = generateUid();
  const side = Math.max(2, Math.round(Math.sqrt(o.pixelBytes / 2)));
  const dataset = datasetElements({
    patient: PATIENTS.doe,
    studyUid: o.studyUid,
    seriesUid: o.seriesUid,
    sopUid,
    sopClassUid: o.sopClassUid,
    modality: o.modality,
    studyDate: '20240301',
    accessionNumber: 'SELFRET',
    studyDescription: `self retrieve ${o.label.replace(/-.*/, '')}`,
    seriesNumber: o.seriesNumber,
    instanceNumber: o.n,
    image: { rows: side, cols: side, bits: 16 },
    extra: [
      { tag: '00181030', vr: 'LO', value: `protocol ${o.label}` },
      // In an encapsulated syntax: one fragment of pattern bytes (a stand-in for a codestream; neither side decodes it).
      transferSyntax(o.ts)?.encapsulated === true
        ? { tag: '7FE00010', vr: 'OB', undefinedLength: true, value: encapsulatedPixelData([patternBytes(side * side, o.n * 31 + o.seriesNumber)]) }
        : { tag: '7FE00010', vr: 'OW', value: patternBytes(side * side * 2, o.n * 31 + o.seriesNumber) },
    ],
  });
  const bytes = writePart10({ dataset, transferSyntaxUid: o.ts, sopClassUid: o.sopClassUid, sopInstanceUid: sopUid });
  return { label: o.label, sopUid, seriesUid: o.seriesUid, studyUid: o.studyUid, transferSyntax: o.ts, bytes };
}

/** A generated study: `series` lists, per series, [count, transfer syntax, SOP class, modality]. */
function makeStudy(label: string, series: [number, string, string, string][], pixelBytes = 2048): { studyUid: string; seriesUids: string[]; instances: Held[] } {
  const studyUid = generateUid();
  const seriesUids: string[] = [];
  const instances: Held[] = [];
  series.forEach(([count, ts, sopClassUid, modality], s) => {
    const seriesUid = generateUid();
    seriesUids.push(seriesUid);
    for (let n = 1; n <= count; n++) instances.push(makeInstance({ label: `${label}-${s + 1}-${n}`, studyUid, seriesUid, seriesNumber: s + 1, n, ts, sopClassUid, modality, pixelBytes }));
  });
  return { studyUid, seriesUids, instances };
}

/** The File Meta elements (group 0002, always Explicit VR LE) of a Part-10 file, as text. */
function fileMeta(part10: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let o = 132;
  while (o + 8 <= part10.length && part10.readUInt16LE(o) === 0x0002) {
    const tag = `0002${part10.readUInt16LE(o + 2).toString(16).padStart(4, '0').toUpperCase()}`;
    const vr = part10.toString('latin1', o + 4, o + 6);
    const long = ['OB', 'OW', 'OF', 'SQ', 'UT', 'UN', 'UC', 'UR', 'OD', 'OL', 'OV', 'SV', 'UV'].includes(vr);
    const len = long ? part10.readUInt32LE(o + 8) : part10.readUInt16LE(o + 6);
    const start = o + (long ? 12 : 8);
    if (vr !== 'OB') out.set(tag, part10.toString('latin1', start, start + len).replace(/[\0 ]+$/, ''));
    o = start + len;
  }
  return out;
}

const TRANSFER_SYNTAX = '00020010';
const ENHANCED_MR = '1.2.840.10008.5.1.4.1.1.4.1';
const SOURCE_AE = '00020016';

describe('our SCU against our SCP: two pacsnode servers retrieving from each other', () => {
  let a: TestServer;
  let b: TestServer;
  let corpus: Corpus;
  let scratch: string;
  /** Everything B holds, by label. */
  const held = new Map<string, Held>();
  let mixed: ReturnType<typeof makeStudy>;
  let levels: ReturnType<typeof makeStudy>;
  let bigMove: ReturnType<typeof makeStudy>;
  let bigGet: ReturnType<typeof makeStudy>;
  /** Syntaxes and SOP classes the default storage contexts have no context for (so only the C-FIND's plan brings them). */
  let exotic: ReturnType<typeof makeStudy>;

  const post = (srv: TestServer, url: string, body?: object): Promise<HttpResponse> =>
    request(`${srv.url}${url}`, { method: 'POST', timeoutMs: 60_000, ...(body ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}) });

  /** POST /api/nodes/{node}/{action}?wait=true on A: the finished job. */
  async function retrieve(action: 'get' | 'move', body: object, node = B_AE): Promise<JobJson> {
    const res = await post(a, `/api/nodes/${node}/${action}?wait=true`, body);
    assert.equal(res.status, 200, res.text());
    const job = res.json<JobJson & { job_id: string }>();
    assert.equal(job.kind, action);
    return job;
  }

  async function waitForJob(id: string, done: (j: JobJson) => boolean, ms = 30_000): Promise<JobJson> {
    const start = Date.now();
    for (;;) {
      const res = await get(`${a.url}/api/jobs/${id}`);
      assert.equal(res.status, 200, res.text());
      const job = res.json<JobJson>();
      if (done(job)) return job;
      if (Date.now() - start > ms) throw new Error(`job ${id} still ${job.state} after ${ms} ms: ${JSON.stringify(job)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  const counts = (j: JobJson): object => ({ remaining: j.remaining, completed: j.completed, failed: j.failed, warning: j.warning });

  /** The stored Part-10 bytes of an instance on a server, through WADO-RS (stored bytes, no transcoding). */
  async function wado(srv: TestServer, f: { studyUid: string; seriesUid: string; sopUid: string }): Promise<Buffer> {
    const res = await get(`${srv.url}/wado/studies/${f.studyUid}/series/${f.seriesUid}/instances/${f.sopUid}`, { accept: 'multipart/related; type="application/dicom"' });
    assert.equal(res.status, 200, `${f.sopUid} on ${srv.config.server.ae_title}: ${res.status} ${res.text().slice(0, 200)}`);
    const parts = await parseMultipartResponse(res);
    assert.equal(parts.length, 1);
    return (parts[0] as { body: Buffer }).body;
  }

  async function onA(sopUid: string): Promise<boolean> {
    const res = await get(`${a.url}/api/instances/${sopUid}`);
    assert.ok(res.status === 200 || res.status === 404, `GET /api/instances/${sopUid}: ${res.status}`);
    return res.status === 200;
  }

  /** NumberOfStudyRelatedInstances of a study on A (0 when A does not have it). */
  async function instancesOnA(studyUid: string): Promise<number> {
    const res = await get(`${a.url}/wado/studies?StudyInstanceUID=${studyUid}&includefield=00201208`);
    if (res.status === 204) return 0;
    assert.equal(res.status, 200, res.text());
    const found = res.json<Record<string, { Value?: unknown[] }>[]>();
    return found.length === 0 ? 0 : Number(found[0]?.['00201208']?.Value?.[0] ?? 0);
  }

  /** Asserts A holds each instance with B's data set bytes and transfer syntax, behind its own File Meta naming B. */
  async function assertSameOnA(instances: readonly Held[]): Promise<void> {
    for (const f of instances) {
      const fromA = await wado(a, f);
      const fromB = await wado(b, f);
      assert.ok(datasetOf(fromB).equals(datasetOf(f.bytes)), `${f.label}: B holds what was stored`);
      assert.ok(datasetOf(fromA).equals(datasetOf(fromB)), `${f.label}: data set bytes on A differ from B's`);
      const meta = fileMeta(fromA);
      assert.equal(meta.get(TRANSFER_SYNTAX), f.transferSyntax, `${f.label}: transfer syntax on A`);
      assert.equal(meta.get(SOURCE_AE), B_AE, `${f.label}: Source AE of A's File Meta`);
    }
  }

  const asHeld = (f: CorpusFile): Held => ({ label: f.label, sopUid: f.sopUid, seriesUid: f.seriesUid, studyUid: f.studyUid, transferSyntax: f.transferSyntax, bytes: f.bytes });
  const ofStudy = (studyUid: string): Held[] => [...held.values()].filter((h) => h.studyUid === studyUid);
  const ofSeries = (seriesUid: string): Held[] => [...held.values()].filter((h) => h.seriesUid === seriesUid);
  const study = (key: string): string => corpus.study(key).studyUid;

  /** `pacsnode ARGV` in `cwd` (its own database and blobs there). */
  function cli(argv: string[], cwd: string): Promise<{ code: number | void; out: string; err: string }> {
    let out = '';
    let err = '';
    const io: Partial<CliIo> = {
      stdout: (t) => void (out += t),
      stderr: (t) => void (err += t),
      env: {
        PACS_DATABASE__URL: `sqlite://${path.join(cwd, 'pacs.db')}`,
        PACS_FILESYSTEM_STORAGE__ROOT: path.join(cwd, 'blobs'),
        PACS_SERVER__AE_TITLE: 'CLITEST',
        PACS_SERVER__DIMSE_TIMEOUT_SECS: '10',
      },
      cwd,
      packageRoot: path.join(cwd, 'pkg'),
    };
    return runCli(argv, io).then((code) => ({ code, out, err }));
  }
  const peer = (): string[] => ['--host', '127.0.0.1', '--port', String(b.server.dicomPort), '--aec', B_AE];

  before(async () => {
    scratch = await mkdtemp(path.join(tmpdir(), 'pacsnode-self-retrieve-'));
    corpus = await generateCorpus();
    for (const f of corpus.files) held.set(f.label, asHeld(f));
    mixed = makeStudy('mixed', [
      [2, TS.EXPLICIT_LE, SOP_CLASS.CT, 'CT'],
      [1, TS.IMPLICIT_LE, SOP_CLASS.MR, 'MR'],
    ]);
    levels = makeStudy('levels', [
      [3, TS.EXPLICIT_LE, SOP_CLASS.CT, 'CT'],
      [2, TS.EXPLICIT_LE, SOP_CLASS.MR, 'MR'],
    ]);
    // Large enough that a cancel can land while sub-operations are still to do.
    bigMove = makeStudy('bigMove', [[20, TS.EXPLICIT_LE, SOP_CLASS.CT, 'CT'], [20, TS.EXPLICIT_LE, SOP_CLASS.CT, 'CT']], 256 * 1024);
    bigGet = makeStudy('bigGet', [[20, TS.EXPLICIT_LE, SOP_CLASS.CT, 'CT'], [20, TS.EXPLICIT_LE, SOP_CLASS.CT, 'CT']], 256 * 1024);
    exotic = makeStudy('exotic', [
      [1, JPEG_LS_LOSSLESS, ENHANCED_MR, 'MR'],
      [2, JPEG_2000_LOSSLESS, SOP_CLASS.MF_WORD_SC, 'OT'],
      [1, HTJ2K_LOSSLESS, SOP_CLASS.CT, 'CT'],
      [1, TS.EXPLICIT_LE, SOP_CLASS.CT, 'CT'],
    ]);
    for (const s of [mixed, levels, bigMove, bigGet, exotic]) for (const i of s.instances) held.set(i.label, i);

    const env = { PACS_SERVER__DIMSE_TIMEOUT_SECS: '10' };
    a = await startTestServer({ ...env, PACS_SERVER__AE_TITLE: A_AE });
    b = await startTestServer({ ...env, PACS_SERVER__AE_TITLE: B_AE });
    const registered = [
      await post(a, '/api/nodes', { ae_title: B_AE, host: '127.0.0.1', port: b.server.dicomPort, move_destination: true }),
      await post(b, '/api/nodes', { ae_title: A_AE, host: '127.0.0.1', port: a.server.dicomPort, move_destination: true }),
    ];
    for (const r of registered) assert.equal(r.status, 201, r.text());
    const all = [...held.values()];
    for (let i = 0; i < all.length; i += 20) {
      const res = await stow(`${b.url}/wado/studies`, all.slice(i, i + 20).map((h) => h.bytes));
      assert.equal(res.status, 200, res.text().slice(0, 2000));
    }
  });

  after(async () => {
    await a?.close();
    await b?.close();
    await corpus?.cleanup();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  describe('C-GET: POST /api/nodes/NODE_B/get', () => {
    it('STUDY level, three series: completed with the counts; every data set on A byte for byte as on B', TIMEOUT, async () => {
      const uid = study('mueller');
      const files = ofStudy(uid);
      assert.equal(files.length, 3);
      assert.equal(new Set(files.map((f) => f.seriesUid)).size, 3);
      const job = await retrieve('get', { level: 'STUDY', study_uid: uid });
      assert.equal(job.state, 'completed', job.error ?? '');
      assert.deepEqual(counts(job), { remaining: 0, completed: 3, failed: 0, warning: 0 });
      assert.deepEqual(job.failed_uids, []);
      assert.equal(await instancesOnA(uid), 3);
      await assertSameOnA(files);
    });

    it('STUDY level: the Implicit VR LE and Explicit VR BE instances arrive re-encoded to Explicit VR LE, elements unchanged', TIMEOUT, async () => {
      const uid = study('yamada');
      const job = await retrieve('get', { level: 'STUDY', study_uid: uid });
      assert.equal(job.state, 'completed', job.error ?? '');
      assert.deepEqual(counts(job), { remaining: 0, completed: 2, failed: 0, warning: 0 });
      for (const label of ['implicit', 'bigEndian']) {
        const f = corpus.file(label);
        const fromA = await wado(a, f);
        const fromB = await wado(b, f);
        assert.equal(fileMeta(fromB).get(TRANSFER_SYNTAX), f.transferSyntax);
        assert.equal(fileMeta(fromA).get(TRANSFER_SYNTAX), TS.EXPLICIT_LE, `${label}: the syntax B accepted on our native context`);
        const ea = await elementsOf(fromA);
        const eb = await elementsOf(fromB);
        const { pixels: pa, ...restA } = ea.elements as Record<string, unknown>;
        const { pixels: pb, ...restB } = eb.elements as Record<string, unknown>;
        assert.deepEqual(restA, restB, `${label}: elements differ after re-encoding`);
        // Pixel Data: the little-endian values (swapped from big endian).
        assert.equal(pa, Buffer.concat(f.frames ?? []).toString('hex'), `${label}: pixel data`);
        if (label === 'implicit') assert.equal(pa, pb);
      }
    });

    it('compressed instances (JPEG baseline with and without offset table, RLE) arrive byte for byte, transfer syntax kept, from a node without preferred syntaxes', TIMEOUT, async () => {
      // B accepts one transfer syntax per storage context and never transcodes compressed data: the
      // route's C-FIND tells our SCU the SOP classes that will come (CR; SC and Multi-frame Grayscale
      // Byte SC), and the C-GET proposes for each a native context plus one context per compressed
      // syntax, so each instance finds the context of its own syntax.
      assert.equal(b.config.server.preferred_transfer_syntaxes.length, 0);
      const keys = ['hong', 'wangUtf8'];
      const files = keys.flatMap((key) => ofStudy(study(key)));
      assert.deepEqual(new Set(files.map((f) => f.transferSyntax)), new Set([TS.RLE, TS.JPEG_BASELINE]));
      for (const label of ['rle', 'jpeg', 'jpegMultiBot', 'jpegMultiNoBot']) assert.ok(files.some((f) => f.label === label), label);
      for (const key of keys) {
        const n = ofStudy(study(key)).length;
        const job = await retrieve('get', { level: 'STUDY', study_uid: study(key) });
        assert.equal(job.state, 'completed', job.error ?? '');
        assert.deepEqual(counts(job), { remaining: 0, completed: n, failed: 0, warning: 0 }, key);
        assert.deepEqual(job.failed_uids, []);
      }
      await assertSameOnA(files);
      // Not left on A: the move tests below retrieve these studies from B.
      for (const key of keys) await request(`${a.url}/api/studies/${study(key)}`, { method: 'DELETE' });
      for (const key of keys) assert.equal(await instancesOnA(study(key)), 0);
    });

    it('JPEG-LS, JPEG 2000 and HTJ2K instances of classes the default contexts give no compressed context (Enhanced MR, Multi-frame Word SC, CT) arrive unchanged too', TIMEOUT, async () => {
      // Only the plan from the C-FIND has contexts for these (class, syntax) pairs.
      const job = await retrieve('get', { level: 'STUDY', study_uid: exotic.studyUid });
      assert.equal(job.state, 'completed', job.error ?? '');
      assert.deepEqual(counts(job), { remaining: 0, completed: exotic.instances.length, failed: 0, warning: 0 });
      await assertSameOnA(exotic.instances);
      // And the CLI, through the same plan.
      const cwd = await mkdtemp(path.join(scratch, 'cli-'));
      const r = await cli(['get', ...peer(), '--level', 'STUDY', '--study', exotic.studyUid, '--output', 'out'], cwd);
      assert.equal(r.code, undefined, r.err);
      assert.match(r.out, /^Retrieved 5 of 5 .*: 5 completed, 0 warnings, 0 failed \(status 0x0000\)/);
      for (const f of exotic.instances) {
        const bytes = await readFile(path.join(cwd, 'out', `${f.sopUid}.dcm`));
        assert.ok(datasetOf(bytes).equals(datasetOf(f.bytes)), `${f.label}: data set differs`);
        assert.equal(fileMeta(bytes).get(TRANSFER_SYNTAX), f.transferSyntax, f.label);
      }
    });

    it('a node refusing our C-FIND: the default storage contexts still carry JPEG baseline and RLE instances unchanged', TIMEOUT, async () => {
      // C answers C-GET but not C-FIND from A (AE whitelist, allow_find false): no SOP classes are
      // known, so the C-GET proposes the default list, which has contexts of their own for JPEG
      // baseline and RLE for CR and SC, and for JPEG baseline for Multi-frame Grayscale Byte SC.
      const c = await startTestServer({ PACS_SERVER__AE_TITLE: C_AE, PACS_SERVER__DIMSE_TIMEOUT_SECS: '10', PACS_SERVER__AE_WHITELIST_ENABLED: 'true' });
      const keys = ['hong', 'wangUtf8'];
      try {
        const files = keys.flatMap((key) => ofStudy(study(key)));
        assert.equal((await stow(`${c.url}/wado/studies`, files.map((f) => f.bytes))).status, 200);
        const onC = await post(c, '/api/nodes', { ae_title: A_AE, host: '127.0.0.1', port: a.server.dicomPort, allow_find: false, allow_retrieve: true, allow_store: false });
        assert.equal(onC.status, 201, onC.text());
        assert.equal((await post(a, '/api/nodes', { ae_title: C_AE, host: '127.0.0.1', port: c.server.dicomPort })).status, 201);
        const find = await post(a, `/api/nodes/${C_AE}/find`, { level: 'IMAGE', keys: { StudyInstanceUID: study('hong') } });
        assert.notEqual(find.status, 200, `C must refuse our C-FIND: ${find.text().slice(0, 300)}`);
        for (const key of keys) {
          const n = ofStudy(study(key)).length;
          const job = await retrieve('get', { level: 'STUDY', study_uid: study(key) }, C_AE);
          assert.equal(job.state, 'completed', job.error ?? '');
          assert.deepEqual(counts(job), { remaining: 0, completed: n, failed: 0, warning: 0 }, key);
        }
        for (const f of files) {
          const fromA = await wado(a, f);
          assert.ok(datasetOf(fromA).equals(datasetOf(await wado(c, f))), `${f.label}: data set differs`);
          assert.ok(datasetOf(fromA).equals(datasetOf(f.bytes)), `${f.label}: data set differs from the stored file`);
          assert.equal(fileMeta(fromA).get(TRANSFER_SYNTAX), f.transferSyntax, `${f.label}: transfer syntax`);
          assert.equal(fileMeta(fromA).get(SOURCE_AE), C_AE);
        }
      } finally {
        await request(`${a.url}/api/nodes/${C_AE}`, { method: 'DELETE' }).catch(() => undefined);
        // Not left on A: the move tests below retrieve these studies from B.
        for (const key of keys) await request(`${a.url}/api/studies/${study(key)}`, { method: 'DELETE' }).catch(() => undefined);
        await c.close();
      }
      for (const key of keys) assert.equal(await instancesOnA(study(key)), 0);
    });

    it('SERIES level, and IMAGE level with sop_uids: exactly those instances', TIMEOUT, async () => {
      const [series1, series2] = levels.seriesUids as [string, string];
      const s2 = ofSeries(series2);
      const job = await retrieve('get', { level: 'SERIES', study_uid: levels.studyUid, series_uid: series2 });
      assert.equal(job.state, 'completed', job.error ?? '');
      assert.deepEqual(counts(job), { remaining: 0, completed: 2, failed: 0, warning: 0 });
      await assertSameOnA(s2);
      assert.equal(await instancesOnA(levels.studyUid), 2);

      const s1 = ofSeries(series1);
      const picked = [s1[0], s1[2]] as Held[];
      const img = await retrieve('get', { level: 'IMAGE', study_uid: levels.studyUid, series_uid: series1, sop_uids: picked.map((p) => p.sopUid) });
      assert.equal(img.state, 'completed', img.error ?? '');
      assert.deepEqual(counts(img), { remaining: 0, completed: 2, failed: 0, warning: 0 });
      await assertSameOnA(picked);
      assert.equal(await onA((s1[1] as Held).sopUid), false, 'the instance not named stays on B');
      assert.equal(await instancesOnA(levels.studyUid), 4);
    });
  });

  describe('C-MOVE: POST /api/nodes/NODE_B/move', () => {
    it('SERIES level to NODE_A: RLE, JPEG baseline (with and without BOT) and Implicit VR LE series arrive byte for byte, transfer syntax kept', TIMEOUT, async () => {
      const rle = corpus.file('rle');
      const jpegMulti = corpus.file('jpegMultiBot');
      const implicitSeries = mixed.seriesUids[1] as string;
      for (const [studyUid, seriesUid, n] of [[rle.studyUid, rle.seriesUid, 1], [jpegMulti.studyUid, jpegMulti.seriesUid, 2], [mixed.studyUid, implicitSeries, 1]] as const) {
        const files = ofSeries(seriesUid);
        assert.equal(files.length, n);
        const job = await retrieve('move', { level: 'SERIES', study_uid: studyUid, series_uid: seriesUid, destination: A_AE });
        assert.equal(job.state, 'completed', job.error ?? '');
        assert.deepEqual(counts(job), { remaining: 0, completed: n, failed: 0, warning: 0 });
        assert.equal(job.request['destination'], A_AE);
        await assertSameOnA(files);
      }
      // Only the series asked for: the other series of these studies stay on B.
      assert.equal(await onA(corpus.file('jpeg').sopUid), false);
      assert.equal(await instancesOnA(mixed.studyUid), 1);
    });

    it('IMAGE level with sop_uids; the destination defaults to our own AE title', TIMEOUT, async () => {
      const [first, second] = ofSeries(mixed.seriesUids[0] as string) as [Held, Held];
      const job = await retrieve('move', { level: 'IMAGE', study_uid: mixed.studyUid, series_uid: first.seriesUid, sop_uids: [second.sopUid] });
      assert.equal(job.state, 'completed', job.error ?? '');
      assert.equal(job.request['destination'], A_AE);
      assert.deepEqual(counts(job), { remaining: 0, completed: 1, failed: 0, warning: 0 });
      await assertSameOnA([second]);
      assert.equal(await onA(first.sopUid), false);
    });

    it('STUDY level of JPEG baseline instances: all arrive unchanged', TIMEOUT, async () => {
      const uid = study('wangUtf8');
      const files = ofStudy(uid);
      const job = await retrieve('move', { level: 'STUDY', study_uid: uid, destination: A_AE });
      assert.equal(job.state, 'completed', job.error ?? '');
      // jpegMulti* are on A already (test above): A takes them again (archive.on_duplicate = replace).
      assert.deepEqual(counts(job), { remaining: 0, completed: 3, failed: 0, warning: 0 });
      await assertSameOnA(files);
    });

    it('to an AE B does not know: the job fails with 0xA801 and nothing moves', TIMEOUT, async () => {
      const uid = study('doe');
      const job = await retrieve('move', { level: 'STUDY', study_uid: uid, destination: 'NOWHERE' });
      assert.equal(job.state, 'failed');
      assert.match(job.error ?? '', /0xa801 \(move destination unknown\)/);
      assert.equal(job.completed, 0);
      assert.equal(await instancesOnA(uid), 0);
    });
  });

  describe('nothing to retrieve', () => {
    it('a study B does not have: get and move complete with 0 sub-operations (final status 0000), nothing transferred', TIMEOUT, async () => {
      const missing = generateUid();
      for (const action of ['get', 'move'] as const) {
        const job = await retrieve(action, { level: 'STUDY', study_uid: missing, ...(action === 'move' ? { destination: A_AE } : {}) });
        assert.equal(job.state, 'completed', `${action}: ${job.error ?? ''}`);
        assert.deepEqual(counts(job), { remaining: 0, completed: 0, failed: 0, warning: 0 });
        assert.deepEqual(job.failed_uids, []);
      }
      assert.equal(await instancesOnA(missing), 0);
      // The status itself, through the SCU of the REST routes.
      const scu = createScu({ callingAe: A_AE, timeoutSecs: 10 });
      const target = { host: '127.0.0.1', port: b.server.dicomPort, calledAe: B_AE };
      let sunk = 0;
      const got = await scu.get(target, { level: 'STUDY', studyUid: missing }, { sink: async () => ({ status: sunk++ }) });
      assert.deepEqual({ status: got.status, completed: got.completed, failed: got.failed, warning: got.warning, remaining: got.remaining, received: got.received }, { status: 0, completed: 0, failed: 0, warning: 0, remaining: 0, received: 0 });
      assert.equal(sunk, 0);
      const moved = await scu.move(target, { level: 'SERIES', studyUid: missing, seriesUid: generateUid() }, { destination: A_AE });
      assert.deepEqual({ status: moved.status, completed: moved.completed, failed: moved.failed }, { status: 0, completed: 0, failed: 0 });
    });
  });

  describe('cancel: DELETE /api/jobs/{id} sends C-CANCEL', () => {
    /**
     * Starts the job, cancels it once the first sub-operation is done, and checks where it ended:
     * cancelled with FE00-consistent counts (completed + failed + warning + remaining = total) and
     * exactly the completed instances on A, or — when the retrieve outran the cancel — completed.
     */
    async function cancelDuring(action: 'get' | 'move', s: ReturnType<typeof makeStudy>): Promise<JobJson> {
      const total = s.instances.length;
      const res = await post(a, `/api/nodes/${B_AE}/${action}`, { level: 'STUDY', study_uid: s.studyUid, ...(action === 'move' ? { destination: A_AE } : {}) });
      assert.equal(res.status, 202, res.text());
      const { job_id } = res.json<{ job_id: string }>();
      await waitForJob(job_id, (j) => j.completed >= 1 || j.state !== 'running');
      const cancel = await request(`${a.url}/api/jobs/${job_id}`, { method: 'DELETE' });
      assert.ok(cancel.status === 202 || cancel.status === 409, `DELETE: ${cancel.status} ${cancel.text()}`);
      const job = await waitForJob(job_id, (j) => j.state !== 'running' && j.state !== 'pending');
      assert.ok(job.state === 'cancelled' || job.state === 'completed', `${action} ended ${job.state}: ${job.error ?? ''}`);
      assert.equal(job.failed, 0);
      assert.equal(job.warning, 0);
      if (job.state === 'completed' || job.remaining === 0) {
        assert.equal(job.completed, total);
      } else {
        assert.ok(job.completed >= 1 && job.completed < total, `completed ${job.completed}`);
        assert.equal(job.completed + job.remaining, total, `FE00 counts: ${JSON.stringify(counts(job))}`);
      }
      assert.equal(await instancesOnA(s.studyUid), job.completed, 'A holds exactly the completed sub-operations');
      const arrived: Held[] = [];
      for (const i of s.instances) if (await onA(i.sopUid)) arrived.push(i);
      assert.equal(arrived.length, job.completed);
      await assertSameOnA(arrived);
      return job;
    }

    it('a C-MOVE of 40 instances: ends cancelled (FE00 counts) or completed, nothing hangs; both sides take the next request', TIMEOUT, async () => {
      await cancelDuring('move', bigMove);
      const echo = await post(a, `/api/nodes/${B_AE}/echo`);
      assert.equal(echo.status, 200, echo.text());
      const back = await post(b, `/api/nodes/${A_AE}/echo`);
      assert.equal(back.status, 200, back.text());
    });

    it('a C-GET of 40 instances: likewise', TIMEOUT, async () => {
      await cancelDuring('get', bigGet);
      const next = await retrieve('get', { level: 'IMAGE', study_uid: levels.studyUid, series_uid: levels.seriesUids[0], sop_uids: [(ofSeries(levels.seriesUids[0] as string)[1] as Held).sopUid] });
      assert.equal(next.state, 'completed', next.error ?? '');
      assert.equal(next.completed, 1);
    });
  });

  describe('CLI: pacsnode get against NODE_B', () => {

    it('get --output writes one Part-10 file per instance whose data set is B\'s, byte for byte', TIMEOUT, async () => {
      const cwd = await mkdtemp(path.join(scratch, 'cli-'));
      const uid = study('mueller');
      const files = ofStudy(uid);
      const r = await cli(['get', ...peer(), '--level', 'STUDY', '--study', uid, '--output', 'out'], cwd);
      assert.equal(r.code, undefined, r.err);
      assert.match(r.out, new RegExp(`^Retrieved 3 of 3 from ${B_AE} at 127\\.0\\.0\\.1:\\d+ into .*: 3 completed, 0 warnings, 0 failed \\(status 0x0000\\)`));
      const out = path.join(cwd, 'out');
      assert.deepEqual((await readdir(out)).sort(), files.map((f) => `${f.sopUid}.dcm`).sort(), 'one file per instance, no leftovers');
      for (const f of files) {
        const bytes = await readFile(path.join(out, `${f.sopUid}.dcm`));
        assert.equal(bytes.toString('latin1', 128, 132), 'DICM');
        assert.ok(datasetOf(bytes).equals(datasetOf(await wado(b, f))), `${f.label}: data set differs from B's`);
        assert.equal(fileMeta(bytes).get(TRANSFER_SYNTAX), f.transferSyntax);
        assert.equal(fileMeta(bytes).get(SOURCE_AE), B_AE);
      }
    });

    it('get at IMAGE level with --sop, and of a study B does not have (0 of 0, status 0x0000)', TIMEOUT, async () => {
      const cwd = await mkdtemp(path.join(scratch, 'cli-'));
      const f = ofSeries(mixed.seriesUids[1] as string)[0] as Held;
      const r = await cli(['get', ...peer(), '--level', 'IMAGE', '--study', f.studyUid, '--series', f.seriesUid, '--sop', f.sopUid, '--output', 'one'], cwd);
      assert.equal(r.code, undefined, r.err);
      assert.deepEqual(await readdir(path.join(cwd, 'one')), [`${f.sopUid}.dcm`]);
      const bytes = await readFile(path.join(cwd, 'one', `${f.sopUid}.dcm`));
      // Implicit VR LE on B: the CLI's native context was accepted as Explicit VR LE, so B re-encoded it.
      assert.equal(fileMeta(bytes).get(TRANSFER_SYNTAX), TS.EXPLICIT_LE);
      assert.deepEqual((await elementsOf(bytes)).elements, (await elementsOf(await wado(b, f))).elements);

      const none = await cli(['get', ...peer(), '--level', 'STUDY', '--study', generateUid(), '--output', 'none'], cwd);
      assert.equal(none.code, undefined, none.err);
      assert.match(none.out, /^Retrieved 0 of 0 from NODE_B at .*: 0 completed, 0 warnings, 0 failed \(status 0x0000\)/);
      assert.deepEqual(await readdir(path.join(cwd, 'none')), []);
    });
  });
});
