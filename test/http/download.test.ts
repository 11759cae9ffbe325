// ZIP downloads of studies and series over real HTTP (SPEC §5 /api/{studies|series}/…/archive and
// SPEC §3 WADO-RS `accept=application/zip`): the archive unpacked by unzip and python3 and compared
// byte for byte with the originals; 404/400 before any byte; a client that disconnects mid-download
// leaves no open blob stream and a healthy server.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { crc32 } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { createArchive, type Archive } from '../../src/archive/archive.js';
import { ArchiveError } from '../../src/archive/errors.js';
import { createJobService } from '../../src/archive/jobs.js';
import { createNodeService } from '../../src/archive/nodes.js';
import { loadConfig } from '../../src/config/load.js';
import { generateUid } from '../../src/dicom/uids.js';
import { writePart10 } from '../../src/dicom/writer.js';
import { buildHttpApp } from '../../src/http/app.js';
import { archiveSettings, openStores, type Stores } from '../../src/main.js';
import { datasetElements, generateCorpus, PATIENTS, patternBytes, SOP_CLASS, TS, type Corpus, type CorpusFile } from '../helpers/corpus.js';
import { assertJsonError, get, parseMultipartResponse, request, stow, type HttpResponse } from '../helpers/http.js';
import { pythonZipInfo, unzipList, unzipRead, unzipTest } from '../helpers/zip.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const entryName = (f: { studyUid: string; seriesUid: string; sopUid: string }): string => `${f.studyUid}/${f.seriesUid}/${f.sopUid}.dcm`;

/** A large instance (pixel data of `bytes` pattern bytes) so that a download outlasts socket buffers. */
function bigInstance(studyUid: string, seriesUid: string, instanceNumber: number, bytes: number): { sopUid: string; bytes: Buffer } {
  const sopUid = generateUid();
  const dataset = datasetElements({
    patient: PATIENTS.doe,
    studyUid,
    seriesUid,
    sopUid,
    sopClassUid: SOP_CLASS.SC,
    modality: 'OT',
    studyDate: '20240101',
    accessionNumber: 'BIG',
    studyDescription: 'big',
    seriesNumber: 1,
    instanceNumber,
    image: { rows: 1024, cols: bytes / 1024, bits: 8 },
    extra: [{ tag: '7FE00010', vr: 'OB', value: patternBytes(bytes, instanceNumber) }],
  });
  return { sopUid, bytes: writePart10({ dataset, transferSyntaxUid: TS.EXPLICIT_LE, sopClassUid: SOP_CLASS.SC, sopInstanceUid: sopUid }) };
}

describe('ZIP download of studies and series', () => {
  let dir: string;
  let stores: Stores;
  let app: FastifyInstance;
  let base: string;
  let corpus: Corpus;
  /** Every blob stream the archive handed out. */
  const opened: Readable[] = [];
  /** SOP UIDs whose blob cannot be read (a storage outage in the middle of a download). */
  const failing = new Set<string>();
  const big = { studyUid: generateUid(), seriesUid: generateUid(), files: [] as { sopUid: string; bytes: Buffer }[] };

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'pacsnode-download-'));
    const config = loadConfig({
      env: { PACS_SERVER__HTTP_PORT: '0', PACS_SERVER__DICOM_PORT: '0', PACS_STORAGE__GC_INTERVAL_SECS: '0', PACS_FILESYSTEM_STORAGE__FSYNC: 'false' },
      cwd: dir,
      packageRoot: dir,
    });
    const logger = pino({ level: process.env['PACS_TEST_LOG'] ?? 'silent' });
    stores = await openStores(config, logger);
    const core = createArchive({ ...stores, settings: archiveSettings(config), logger });
    const archive: Archive = {
      ...core,
      async openInstance(ctx, row) {
        if (failing.has(row.sopUid)) throw new ArchiveError('STORAGE_UNAVAILABLE', 'blob store unavailable');
        const stream = await core.openInstance(ctx, row);
        opened.push(stream);
        return stream;
      },
    };
    app = await buildHttpApp({
      archive,
      config,
      logger,
      nodes: createNodeService({ store: stores.nodes }),
      jobs: createJobService({ store: stores.jobs }),
    });
    assert.ok(app.hasRoute({ method: 'GET', url: '/api/studies/:study/archive' }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address();
    assert.ok(address !== null && typeof address === 'object');
    base = `http://127.0.0.1:${address.port}`;

    corpus = await generateCorpus();
    const res = await stow(`${base}/wado/studies`, corpus.files.map((f) => f.bytes));
    assert.equal(res.status, 200, res.text().slice(0, 500));
    for (let i = 1; i <= 4; i++) big.files.push(bigInstance(big.studyUid, big.seriesUid, i, 8 * 1024 * 1024));
    const resBig = await stow(`${base}/wado/studies`, big.files.map((f) => f.bytes));
    assert.equal(resBig.status, 200, resBig.text().slice(0, 500));
  });

  after(async () => {
    await app?.close();
    await stores?.close();
    await corpus?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function saveZip(res: HttpResponse): Promise<string> {
    const file = path.join(dir, `${generateUid()}.zip`);
    await writeFile(file, res.body);
    return file;
  }

  /** The archive holds exactly `files`, named {Study}/{Series}/{SOP}.dcm, byte for byte. */
  async function assertZipOf(res: HttpResponse, files: CorpusFile[]): Promise<void> {
    assert.equal(res.status, 200, res.text().slice(0, 300));
    assert.equal(res.headers['content-type'], 'application/zip');
    assert.equal(res.headers['content-length'], undefined, 'streamed: no Content-Length');
    assert.equal(res.headers['transfer-encoding'], 'chunked');
    const file = await saveZip(res);
    await unzipTest(file); // reads every entry and checks its CRC-32
    const expected = files.map(entryName).sort();
    assert.deepEqual([...(await unzipList(file))].sort(), expected);
    for (const f of files) assert.ok((await unzipRead(file, entryName(f))).equals(f.bytes), `${f.label}: bytes differ`);
    const py = await pythonZipInfo(file);
    assert.equal(py.bad, null);
    for (const e of py.entries) {
      const f = files.find((x) => entryName(x) === e.name);
      assert.ok(f, e.name);
      assert.equal(e.compressType, 0, 'stored, not deflated');
      assert.equal(e.size, f.bytes.length);
      assert.equal(e.crc, crc32(f.bytes));
      assert.equal(e.sha256, sha(f.bytes));
    }
  }

  it('GET /api/studies/{study}/archive streams every instance of the study, byte for byte', async () => {
    for (const study of corpus.studies) {
      const files = corpus.files.filter((f) => f.studyUid === study.studyUid);
      assert.ok(files.length > 0);
      const res = await get(`${base}/api/studies/${study.studyUid}/archive`);
      await assertZipOf(res, files);
      assert.equal(res.headers['content-disposition'], `attachment; filename="${study.studyUid}.zip"`);
    }
  });

  it('GET /api/series/{series}/archive streams only that series', async () => {
    const studyUid = corpus.files.find((f) => corpus.files.some((g) => g.studyUid === f.studyUid && g.seriesUid !== f.seriesUid))?.studyUid;
    assert.ok(studyUid, 'the corpus has a study with several series');
    const seriesUids = [...new Set(corpus.files.filter((f) => f.studyUid === studyUid).map((f) => f.seriesUid))];
    for (const seriesUid of seriesUids) {
      const res = await get(`${base}/api/series/${seriesUid}/archive`);
      await assertZipOf(res, corpus.files.filter((f) => f.seriesUid === seriesUid));
      assert.equal(res.headers['content-disposition'], `attachment; filename="${seriesUid}.zip"`);
    }
  });

  it('answers 404 JSON (before any ZIP byte) for an unknown study or series, 400 for an invalid UID', async () => {
    assertJsonError(await get(`${base}/api/studies/${generateUid()}/archive`), 404, 'NOT_FOUND');
    assertJsonError(await get(`${base}/api/series/${generateUid()}/archive`), 404, 'NOT_FOUND');
    assertJsonError(await get(`${base}/api/studies/1.2.abc/archive`), 400, 'INVALID_UID');
    assertJsonError(await get(`${base}/api/series/1..2/archive`), 400, 'INVALID_UID');
    assertJsonError(await get(`${base}/wado/studies/${generateUid()}?accept=application/zip`), 404, 'NOT_FOUND');
  });

  it('WADO-RS ?accept=application/zip (and Accept: application/zip) answers the same ZIP on study and series level', async () => {
    const study = corpus.studies[0];
    assert.ok(study);
    const files = corpus.files.filter((f) => f.studyUid === study.studyUid);
    for (const root of ['/wado', '/dicom-web']) {
      await assertZipOf(await get(`${base}${root}/studies/${study.studyUid}?accept=application/zip`), files);
      await assertZipOf(await get(`${base}${root}/studies/${study.studyUid}`, { Accept: 'application/zip' }), files);
    }
    const one = files[0] as CorpusFile;
    const res = await get(`${base}/wado/studies/${one.studyUid}/series/${one.seriesUid}?accept=application%2Fzip`);
    await assertZipOf(res, corpus.files.filter((f) => f.seriesUid === one.seriesUid));
    assert.equal(res.headers['content-disposition'], `attachment; filename="${one.seriesUid}.zip"`);
  });

  it('WADO-RS keeps multipart as the default and 406 for a ZIP of one instance', async () => {
    const one = corpus.files[0] as CorpusFile;
    const res = await get(`${base}/wado/studies/${one.studyUid}`);
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^multipart\/related/);
    assert.ok((await parseMultipartResponse(res)).length > 0);
    const both = await get(`${base}/wado/studies/${one.studyUid}`, { Accept: 'multipart/related; type="application/dicom", application/zip;q=0.5' });
    assert.match(String(both.headers['content-type']), /^multipart\/related/);
    assertJsonError(await get(`${base}/wado/studies/${one.studyUid}/series/${one.seriesUid}/instances/${one.sopUid}?accept=application/zip`), 406, 'NOT_ACCEPTABLE');
  });

  it('streams a large study with the right bytes (32 MiB over four instances)', async () => {
    const res = await get(`${base}/api/studies/${big.studyUid}/archive`);
    const file = await saveZip(res);
    await unzipTest(file);
    for (const f of big.files) {
      assert.ok((await unzipRead(file, `${big.studyUid}/${big.seriesUid}/${f.sopUid}.dcm`)).equals(f.bytes));
    }
  });

  it('answers HEAD with the ZIP headers without reading any blob', async () => {
    const before = opened.length;
    const res = await request(`${base}/api/studies/${big.studyUid}/archive`, { method: 'HEAD' });
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-type'], 'application/zip');
    assert.equal(res.body.length, 0);
    assert.equal(opened.length, before);
  });

  it('cuts the connection when a blob fails mid-download (never a complete-looking archive)', async () => {
    const before = opened.length;
    failing.add((big.files[1] as { sopUid: string }).sopUid);
    try {
      await assert.rejects(get(`${base}/api/studies/${big.studyUid}/archive`));
    } finally {
      failing.clear();
    }
    const mine = opened.slice(before);
    assert.equal(mine.length, 1);
    for (let i = 0; i < 100 && !mine.every((s) => s.destroyed); i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(mine.every((s) => s.destroyed));
    assert.equal((await get(`${base}/health`)).status, 200);
  });

  it('survives a client that disconnects mid-download and closes the blob streams', async () => {
    const before = opened.length;
    let received = 0;
    await new Promise<void>((resolve, reject) => {
      const req = http.get(`${base}/api/studies/${big.studyUid}/archive`, { agent: false }, (res) => {
        assert.equal(res.statusCode, 200);
        res.on('data', (c: Buffer) => {
          received += c.length;
          if (received > 1024 * 1024) {
            req.destroy(); // the user closed the browser tab
            resolve();
          }
        });
        res.on('end', () => reject(new Error('the download completed before the client hung up')));
      });
      req.on('error', () => undefined);
    });
    // The server notices the closed socket and tears the ZIP stream down.
    const deadline = Date.now() + 10_000;
    const mine = (): Readable[] => opened.slice(before);
    while (Date.now() < deadline && !(mine().length > 0 && mine().every((s) => s.destroyed))) await new Promise((r) => setTimeout(r, 20));
    assert.ok(mine().length >= 1 && mine().length < big.files.length, `opened ${mine().length} of ${big.files.length} blobs: lazily, one at a time`);
    assert.ok(mine().every((s) => s.destroyed), 'every blob stream is closed');
    // And the server goes on serving.
    const health = await get(`${base}/health`);
    assert.equal(health.status, 200);
    const again = await get(`${base}/api/series/${big.seriesUid}/archive`);
    assert.equal(again.status, 200);
    await unzipTest(await saveZip(again));
  });
});
