// WADO-RS retrieve of stored instances over real HTTP (SPEC §3): multipart/related and
// application/dicom bodies carry an exact Content-Length and the stored bytes unchanged; parts
// whose length is not known up front (frames) stay chunked; HEAD opens no blob; a client that
// disconnects mid-download leaves no open blob stream or file descriptor and a healthy server; a
// blob whose length differs from the index cuts the connection instead of sending a wrong body.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { createArchive, type Archive } from '../../src/archive/archive.js';
import { createJobService } from '../../src/archive/jobs.js';
import { createNodeService } from '../../src/archive/nodes.js';
import { loadConfig } from '../../src/config/load.js';
import { generateUid } from '../../src/dicom/uids.js';
import { writePart10 } from '../../src/dicom/writer.js';
import { buildHttpApp } from '../../src/http/app.js';
import { archiveSettings, openStores, type Stores } from '../../src/main.js';
import { datasetElements, PATIENTS, patternBytes, SOP_CLASS, TS } from '../helpers/corpus.js';
import { assertJsonError, get, parseMultipartResponse, request, stow } from '../helpers/http.js';

const MULTIPART_DICOM = 'multipart/related; type="application/dicom"';

function instance(studyUid: string, seriesUid: string, instanceNumber: number, bytes: number): { sopUid: string; bytes: Buffer } {
  const sopUid = generateUid();
  const dataset = datasetElements({
    patient: PATIENTS.doe,
    studyUid,
    seriesUid,
    sopUid,
    sopClassUid: SOP_CLASS.SC,
    modality: 'OT',
    studyDate: '20240101',
    accessionNumber: 'WADO',
    studyDescription: 'wado',
    seriesNumber: 1,
    instanceNumber,
    image: { rows: 1024, cols: bytes / 1024, bits: 8 },
    extra: [{ tag: '7FE00010', vr: 'OB', value: patternBytes(bytes, instanceNumber) }],
  });
  return { sopUid, bytes: writePart10({ dataset, transferSyntaxUid: TS.EXPLICIT_LE, sopClassUid: SOP_CLASS.SC, sopInstanceUid: sopUid }) };
}

async function openFds(): Promise<number> {
  return (await readdir('/proc/self/fd')).length;
}

async function until(cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !(await cond())) await new Promise((r) => setTimeout(r, 20));
}

describe('WADO-RS retrieve of stored instances', () => {
  let dir: string;
  let stores: Stores;
  let app: FastifyInstance;
  let base: string;
  const opened: Readable[] = [];
  /** SOP UIDs served with a body of the wrong length (an index that disagrees with its blob). */
  const lying = new Set<string>();
  // Sizes from 1 KiB to 3 MiB: several parts per reused buffer, and parts spanning buffers.
  const study = { studyUid: generateUid(), seriesUid: generateUid(), files: [] as { sopUid: string; bytes: Buffer }[] };
  const large = { studyUid: generateUid(), seriesUid: generateUid(), files: [] as { sopUid: string; bytes: Buffer }[] };

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'pacsnode-wado-'));
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
        if (lying.has(row.sopUid)) return Readable.from([Buffer.alloc(row.size - 1)]);
        const stream = await core.openInstance(ctx, row);
        opened.push(stream);
        return stream;
      },
    };
    app = await buildHttpApp({ archive, config, logger, nodes: createNodeService({ store: stores.nodes }), jobs: createJobService({ store: stores.jobs }) });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address();
    assert.ok(address !== null && typeof address === 'object');
    base = `http://127.0.0.1:${address.port}`;
    [1, 300, 500, 700, 3072, 2, 1000, 4].forEach((kib, i) => study.files.push(instance(study.studyUid, study.seriesUid, i + 1, kib * 1024)));
    const res = await stow(`${base}/wado/studies`, study.files.map((f) => f.bytes));
    assert.equal(res.status, 200, res.text().slice(0, 500));
    // 40 MiB: more than loopback socket buffers and the writer's buffers hold, so a client that
    // hangs up after 1 MiB always leaves blobs unopened.
    for (let i = 0; i < 10; i++) large.files.push(instance(large.studyUid, large.seriesUid, i + 1, 4096 * 1024));
    const resLarge = await stow(`${base}/wado/studies`, large.files.map((f) => f.bytes));
    assert.equal(resLarge.status, 200, resLarge.text().slice(0, 500));
  });

  after(async () => {
    await app?.close();
    await stores?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('sends a study as multipart/related with Content-Length equal to the body, every part byte for byte', async () => {
    const res = await get(`${base}/wado/studies/${study.studyUid}`, { Accept: MULTIPART_DICOM });
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^multipart\/related; type="application\/dicom"; boundary=/);
    assert.equal(res.headers['transfer-encoding'], undefined, 'not chunked');
    assert.equal(Number(res.headers['content-length']), res.body.length);
    const parts = await parseMultipartResponse(res);
    assert.equal(parts.length, study.files.length);
    const byBytes = new Map(study.files.map((f) => [f.bytes.toString('base64'), f]));
    for (const p of parts) {
      assert.ok(byBytes.has(p.body.toString('base64')), 'a part is one stored instance, unchanged');
      assert.equal(p.headers['content-type'], `application/dicom; transfer-syntax=${TS.EXPLICIT_LE}`);
      assert.equal(p.headers['content-length'], String(p.body.length));
    }
    // Exact spelling of the part header block (OHIF and dicomweb-client parse it).
    const text = res.body.toString('latin1');
    assert.match(text, /^--pacsnode-[0-9a-f]+\r\nContent-Type: application\/dicom; transfer-syntax=1\.2\.840\.10008\.1\.2\.1\r\nContent-Length: \d+\r\n\r\n/);
    assert.match(text, /\r\n--pacsnode-[0-9a-f]+--\r\n$/);
  });

  it('sends a series and a single instance (multipart and application/dicom) with exact lengths', async () => {
    const series = await get(`${base}/dicom-web/studies/${study.studyUid}/series/${study.seriesUid}`);
    assert.equal(Number(series.headers['content-length']), series.body.length);
    assert.equal((await parseMultipartResponse(series)).length, study.files.length);
    for (const f of study.files) {
      const url = `${base}/wado/studies/${study.studyUid}/series/${study.seriesUid}/instances/${f.sopUid}`;
      const one = await get(url, { Accept: 'application/dicom' });
      assert.equal(one.status, 200);
      assert.equal(one.headers['content-type'], 'application/dicom');
      assert.equal(Number(one.headers['content-length']), f.bytes.length);
      assert.ok(one.body.equals(f.bytes));
      const multi = await get(url);
      assert.equal(Number(multi.headers['content-length']), multi.body.length);
      const [part] = await parseMultipartResponse(multi);
      assert.ok(part?.body.equals(f.bytes));
    }
  });

  it('answers HEAD with the length and opens no blob', async () => {
    const before = opened.length;
    const full = await get(`${base}/wado/studies/${study.studyUid}`);
    const head = await request(`${base}/wado/studies/${study.studyUid}`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    assert.equal(head.headers['content-length'], String(full.body.length));
    assert.equal(opened.length, before + study.files.length, 'only the GET opened blobs');
  });

  it('keeps chunked transfer encoding for frames (lengths not sent up front)', async () => {
    const f = study.files[1] as { sopUid: string; bytes: Buffer };
    const res = await get(`${base}/wado/studies/${study.studyUid}/series/${study.seriesUid}/instances/${f.sopUid}/frames/1`, {
      Accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*',
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers['transfer-encoding'], 'chunked');
    assert.equal(res.headers['content-length'], undefined);
    const [part] = await parseMultipartResponse(res);
    assert.ok(part?.body.equals(patternBytes(300 * 1024, 2)));
  });

  it('many parts of unknown length (frames) add no listener per part: no MaxListenersExceededWarning', async () => {
    const f = study.files[1] as { sopUid: string; bytes: Buffer };
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(w.name);
    process.on('warning', onWarning);
    try {
      const list = Array.from({ length: 24 }, () => '1').join(',');
      const res = await get(`${base}/wado/studies/${study.studyUid}/series/${study.seriesUid}/instances/${f.sopUid}/frames/${list}`, {
        Accept: 'multipart/related; type="application/octet-stream"; transfer-syntax=*',
      });
      assert.equal(res.status, 200, res.text().slice(0, 300));
      const parts = await parseMultipartResponse(res);
      assert.equal(parts.length, 24);
      for (const part of parts) assert.ok(part.body.equals(patternBytes(300 * 1024, 2)));
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('warning', onWarning);
    }
    assert.deepEqual(warnings.filter((n) => n === 'MaxListenersExceededWarning'), []);
  });

  it('still answers errors before the first byte as JSON', async () => {
    assertJsonError(await get(`${base}/wado/studies/${generateUid()}`), 404, 'NOT_FOUND');
    assertJsonError(await get(`${base}/wado/studies/${study.studyUid}`, { Accept: 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50' }), 406, 'NOT_ACCEPTABLE');
  });

  it('survives a client that disconnects mid-download: every blob stream and descriptor closed', async () => {
    const fdsBefore = await openFds();
    for (let round = 0; round < 5; round++) {
      const before = opened.length;
      await new Promise<void>((resolve, reject) => {
        let received = 0;
        const req = http.get(`${base}/wado/studies/${large.studyUid}`, { agent: false }, (res) => {
          assert.equal(res.statusCode, 200);
          res.on('data', (c: Buffer) => {
            received += c.length;
            if (received > 1024 * 1024) {
              req.destroy();
              resolve();
            }
          });
          res.on('end', () => reject(new Error('the download completed before the client hung up')));
        });
        req.on('error', () => undefined);
      });
      const mine = (): Readable[] => opened.slice(before);
      await until(() => mine().length > 0 && mine().every((s) => s.destroyed));
      assert.ok(mine().length < large.files.length, 'blobs are opened one at a time');
      assert.ok(mine().every((s) => s.destroyed), 'every blob stream is closed');
    }
    await until(async () => (await openFds()) <= fdsBefore);
    assert.ok((await openFds()) <= fdsBefore, 'no file descriptor left open');
    const again = await get(`${base}/wado/studies/${large.studyUid}`);
    assert.equal(again.status, 200);
    assert.equal(Number(again.headers['content-length']), again.body.length);
  });

  it('cuts the connection when a blob does not have the length of the index (never a wrong body)', async () => {
    lying.add((study.files[2] as { sopUid: string }).sopUid);
    try {
      await assert.rejects(get(`${base}/wado/studies/${study.studyUid}`));
    } finally {
      lying.clear();
    }
    assert.equal((await get(`${base}/health`)).status, 200);
  });
});
