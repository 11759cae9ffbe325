// Streaming and robustness of STOW-RS on a real server: (b) a 64 MiB part is on disk while it is
// still arriving; (c) truncated and garbage uploads leave no blobs, temporaries or rows behind;
// multipart abuse is answered (400 or per-part failure) and the server keeps serving.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import type { DicomJsonDataset } from '../../src/dicom/types.js';
import { generateUid } from '../../src/dicom/uids.js';
import { encodeElement, writePart10 } from '../../src/dicom/writer.js';
import { datasetElements, PATIENTS, patternBytes, simpleInstance, SOP_CLASS, TS } from '../helpers/corpus.js';
import { assertJsonError, firstValue, get, items, multipartBody, newBoundary, request, stow, type HttpResponse } from '../helpers/http.js';
import { countFiles, startTestServer, type TestServer } from '../helpers/server.js';

const MiB = 1024 * 1024;

interface BigInstance {
  studyUid: string;
  seriesUid: string;
  sopUid: string;
  /** Everything before the pixel bytes (Part-10 header and the Pixel Data element header). */
  head: Buffer;
  pixelBytes: number;
  /** The pixel bytes, 1 MiB at a time (deterministic). */
  chunk: Buffer;
}

/** A Part-10 instance whose 16-bit Pixel Data makes it `totalPixelBytes` long (streamed, never built whole). */
function bigInstance(totalPixelBytes: number): BigInstance {
  const studyUid = generateUid();
  const seriesUid = generateUid();
  const sopUid = generateUid();
  const side = 2048;
  const frames = totalPixelBytes / (side * side * 2);
  assert.ok(Number.isInteger(frames));
  const header = writePart10({
    dataset: datasetElements({
      patient: PATIENTS.doe,
      studyUid,
      seriesUid,
      sopUid,
      sopClassUid: SOP_CLASS.MF_WORD_SC,
      modality: 'OT',
      studyDate: '20240101',
      accessionNumber: 'BIG',
      studyDescription: 'BIG STREAM',
      seriesNumber: 1,
      instanceNumber: 1,
      image: { rows: side, cols: side, bits: 16, frames },
    }),
    transferSyntaxUid: TS.EXPLICIT_LE,
    sopClassUid: SOP_CLASS.MF_WORD_SC,
    sopInstanceUid: sopUid,
  });
  // Pixel Data header only: OW, reserved, 32-bit length; the value follows in chunks
  const pdHeader = encodeElement({ tag: '7FE00010', vr: 'OW', value: Buffer.alloc(0) }, { explicitVr: true }).subarray(0, 8);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(totalPixelBytes, 0);
  return { studyUid, seriesUid, sopUid, head: Buffer.concat([header, pdHeader, len]), pixelBytes: totalPixelBytes, chunk: patternBytes(MiB, 42) };
}

function write(req: http.ClientRequest, b: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error): void => reject(e);
    req.once('error', onError);
    if (req.write(b)) {
      req.off('error', onError);
      resolve();
    } else {
      req.once('drain', () => {
        req.off('error', onError);
        resolve();
      });
    }
  });
}

function responseOf(req: http.ClientRequest, timeoutMs = 30_000): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no response within ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        const body = Buffer.concat(chunks);
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body,
          json<T>(): T {
            return JSON.parse(body.toString('utf8')) as T;
          },
          text: () => body.toString('utf8'),
        });
      });
    });
  });
}

async function waitFor<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = await probe();
  while (!ok(last)) {
    if (Date.now() > deadline) assert.fail(`${what}: still ${JSON.stringify(last)} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
    last = await probe();
  }
  return last;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Snapshot {
  blobs: number;
  temporaries: number;
  studies: number;
}

describe('STOW-RS streaming on a real server', () => {
  let srv: TestServer;
  let root: string;

  async function snapshot(): Promise<Snapshot> {
    const files = await countFiles(root);
    const q = await get(`${srv.url}/wado/studies`);
    assert.equal(q.status, 200);
    return { blobs: files.blobs, temporaries: files.temporaries, studies: q.json<unknown[]>().length };
  }

  before(async () => {
    // Watches temporary files under the blob folder: the filesystem store, whatever the run's profile
    srv = await startTestServer({}, { profile: 'standalone' });
    root = srv.config.filesystem_storage.root;
  });
  after(async () => {
    await srv?.close();
  });

  it('(c) a garbage body as the very first upload fails C000 (409), leaves nothing behind, and the server keeps answering', async () => {
    const before0 = await snapshot();
    const res = await stow(`${srv.url}/wado/studies`, [Buffer.from('GARBAGE '.repeat(64))]);
    assert.equal(res.status, 409);
    assert.deepEqual(items(res.json<DicomJsonDataset>(), '00081198').map((i) => Number(firstValue(i, '00081197'))), [0xc000]);
    // a burst of them, concurrently and of several shapes (a failing header read once raced the blob
    // store's open() and crashed the process with an unhandled 'error' event)
    const bodies = Array.from({ length: 24 }, (_, i) => (i % 3 === 0 ? Buffer.alloc(300, 0x41) : i % 3 === 1 ? patternBytes(100 + i * 37, i + 1) : Buffer.from('DICM'.repeat(i + 1))));
    const burst = await Promise.all(bodies.map((b) => stow(`${srv.url}/wado/studies`, [b])));
    assert.deepEqual(burst.map((r) => r.status), bodies.map(() => 409));
    const settled = await waitFor('temporaries after garbage', snapshot, (s) => s.temporaries === before0.temporaries, 3000);
    assert.deepEqual(settled, before0);
    assert.equal((await get(`${srv.url}/health`)).status, 200);
  });

  it('(b) a 64 MiB part is streamed: the temporary blob holds >= 32 MiB before the body ends; then 200 and identical SHA-256', async () => {
    const big = bigInstance(64 * MiB);
    const boundary = newBoundary();
    const open = Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`, 'latin1');
    const close = Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1');
    const total = open.length + big.head.length + big.pixelBytes + close.length;
    const req = http.request(`${srv.url}/wado/studies`, {
      method: 'POST',
      agent: false,
      headers: { 'Content-Type': `multipart/related; type="application/dicom"; boundary=${boundary}`, 'Content-Length': total },
    });
    const response = responseOf(req, 60_000);
    response.catch(() => undefined);
    const sha = createHash('sha256');
    await write(req, open);
    await write(req, big.head);
    sha.update(big.head);
    let sent = 0;
    // 40 MiB, then pause
    while (sent < 40 * MiB) {
      await write(req, big.chunk);
      sha.update(big.chunk);
      sent += big.chunk.length;
    }
    const during = await waitFor('temporary bytes while the body is paused', () => countFiles(root), (c) => c.tempBytes >= 32 * MiB, 20_000);
    assert.ok(during.tempBytes >= 32 * MiB, `temp holds ${during.tempBytes} bytes`);
    assert.ok(during.temporaries >= 1);
    // the rest
    while (sent < big.pixelBytes) {
      await write(req, big.chunk);
      sha.update(big.chunk);
      sent += big.chunk.length;
    }
    req.end(close);
    const res = await response;
    assert.equal(res.status, 200, res.text().slice(0, 300));
    const expected = sha.digest('hex');
    // retrieve streamed and hash
    const got = await new Promise<{ status: number; digest: string; length: number }>((resolve, reject) => {
      http
        .get(`${srv.url}/wado/studies/${big.studyUid}/series/${big.seriesUid}/instances/${big.sopUid}`, { headers: { Accept: 'application/dicom' }, agent: false }, (r) => {
          const h = createHash('sha256');
          let length = 0;
          r.on('data', (c: Buffer) => {
            h.update(c);
            length += c.length;
          });
          r.on('end', () => resolve({ status: r.statusCode ?? 0, digest: h.digest('hex'), length }));
          r.on('error', reject);
        })
        .on('error', reject);
    });
    assert.equal(got.status, 200);
    assert.equal(got.length, big.head.length + big.pixelBytes);
    assert.equal(got.digest, expected);
    const after1 = await waitFor('temporaries after the big upload', () => countFiles(root), (c) => c.temporaries === 0, 3000);
    assert.equal(after1.tempBytes, 0);
  });

  it('(c) a truncated upload (socket destroyed mid-part) leaves blob files, temporaries and QIDO results unchanged', async () => {
    const before1 = await snapshot();
    const big = bigInstance(16 * MiB);
    const boundary = newBoundary();
    const req = http.request(`${srv.url}/wado/studies`, {
      method: 'POST',
      agent: false,
      headers: { 'Content-Type': `multipart/related; type="application/dicom"; boundary=${boundary}`, 'Content-Length': 20 * MiB },
    });
    req.on('error', () => undefined);
    await write(req, Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`, 'latin1'));
    await write(req, big.head);
    for (let i = 0; i < 6; i++) await write(req, big.chunk);
    // the server has started a temporary for it
    await waitFor('a temporary for the truncated upload', () => countFiles(root), (c) => c.tempBytes > 0, 10_000);
    req.destroy();
    const settled = await waitFor('state after the truncated upload', snapshot, (s) => s.temporaries === before1.temporaries && s.blobs === before1.blobs, 5000);
    assert.deepEqual(settled, before1);
    const q = await get(`${srv.url}/wado/studies?StudyInstanceUID=${big.studyUid}`);
    assert.equal(q.text(), '[]');
    assert.equal((await get(`${srv.url}/health`)).status, 200);
  });

  it('(c) a garbage part after a good one: 202, only the good one is kept; counts otherwise unchanged', async () => {
    const before2 = await snapshot();
    const good = simpleInstance({});
    const res = await stow(`${srv.url}/wado/studies`, [good.bytes, patternBytes(5000, 9)]);
    assert.equal(res.status, 202);
    await sleep(200);
    const after2 = await waitFor('temporaries after garbage', snapshot, (s) => s.temporaries === before2.temporaries, 3000);
    assert.deepEqual(after2, { blobs: before2.blobs + 1, temporaries: before2.temporaries, studies: before2.studies + 1 });
  });

  it('multipart abuse: a part header line beginning with a space is a 400 (BAD_HEADER), nothing stored', async () => {
    const before3 = await snapshot();
    const inst = simpleInstance({});
    const boundary = newBoundary();
    const body = Buffer.concat([Buffer.from(`--${boundary}\r\n Content-Type: application/dicom\r\n\r\n`, 'latin1'), inst.bytes, Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1')]);
    const res = await request(`${srv.url}/wado/studies`, { method: 'POST', headers: { 'Content-Type': `multipart/related; type="application/dicom"; boundary=${boundary}` }, body });
    const err = assertJsonError(res, 400, 'BAD_REQUEST');
    assert.equal(err.error.details['reason'], 'BAD_HEADER');
    assert.deepEqual(await snapshot(), before3);
    assert.equal((await get(`${srv.url}/health`)).status, 200);
  });

  it('multipart abuse: a missing closing delimiter fails that part (409, C000), nothing stored', async () => {
    const before4 = await snapshot();
    const inst = simpleInstance({});
    const boundary = newBoundary();
    const body = multipartBody([{ body: inst.bytes }], boundary, { close: false });
    const res = await request(`${srv.url}/wado/studies`, { method: 'POST', headers: { 'Content-Type': `multipart/related; type="application/dicom"; boundary=${boundary}` }, body });
    assert.equal(res.status, 409, res.text().slice(0, 300));
    assert.deepEqual(items(res.json<DicomJsonDataset>(), '00081198').map((i) => Number(firstValue(i, '00081197'))), [0xc000]);
    const settled = await waitFor('state after a missing close', snapshot, (s) => s.temporaries === before4.temporaries, 3000);
    assert.deepEqual(settled, before4);
    assert.equal((await get(`${srv.url}/health`)).status, 200);
  });

  it('multipart abuse: 10,000 empty parts are answered (409, one C000 per part) and the server stays healthy', async () => {
    const before5 = await snapshot();
    const boundary = newBoundary();
    // each part: no header lines, an empty body
    const body = multipartBody(Array.from({ length: 10_000 }, () => ({ contentType: null, body: Buffer.alloc(0) })), boundary);
    const res = await request(`${srv.url}/wado/studies`, {
      method: 'POST',
      headers: { 'Content-Type': `multipart/related; type="application/dicom"; boundary=${boundary}` },
      body,
      timeoutMs: 40_000,
    });
    assert.equal(res.status, 409, res.text().slice(0, 300));
    const failed = items(res.json<DicomJsonDataset>(), '00081198');
    assert.equal(failed.length, 10_000);
    assert.ok(failed.every((i) => Number(firstValue(i, '00081197')) === 0xc000));
    const settled = await waitFor('state after 10,000 empty parts', snapshot, (s) => s.temporaries === before5.temporaries, 5000);
    assert.deepEqual(settled, before5);
    assert.equal((await get(`${srv.url}/health`)).status, 200);
    // and real work still works
    assert.equal((await stow(`${srv.url}/wado/studies`, [simpleInstance({}).bytes])).status, 200);
  });
});
