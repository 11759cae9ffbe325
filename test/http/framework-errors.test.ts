// Errors raised before any route runs (SPEC §3: every 4xx body is {"error":{"code","message","details"}}):
// a path segment over the router's maxParamLength (414 URI_TOO_LONG), a request line or header over
// Node's maxHeaderSize (431 HEADERS_TOO_LARGE), malformed percent-encoding in the path (400
// BAD_REQUEST), and a request Node cannot parse at all (400 BAD_REQUEST, written to the socket by
// hand). Also the URL limits themselves: a WADO-RS frame list of thousands of frame numbers and a
// QIDO-RS URL over Node's default 16 KiB are served (docs/errors.md "URL limits").
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { generateUid } from '../../src/dicom/uids.js';
import { writePart10 } from '../../src/dicom/writer.js';
import * as app from '../../src/http/app.js';
import { datasetElements, PATIENTS, SOP_CLASS, TS } from '../helpers/corpus.js';
import { assertJsonError, get, parseMultipartResponse, request, stow } from '../helpers/http.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

// The documented limits (docs/errors.md "URL limits"), spelled out so each test fails on its own without them.
const MAX_PARAM_LENGTH = 64 * 1024;
const MAX_HEADER_BYTES = 80 * 1024;
const FRAMES = 3000;
/** 2x2 8-bit pixels: frame n (1-based) is four bytes of n & 0xff, n >> 8, 0xAA, 0x55. */
function framePixels(n: number): Buffer {
  return Buffer.from([n & 0xff, n >> 8, 0xaa, 0x55]);
}

function multiFrameInstance(): { bytes: Buffer; studyUid: string; seriesUid: string; sopUid: string } {
  const studyUid = generateUid();
  const seriesUid = generateUid();
  const sopUid = generateUid();
  const dataset = datasetElements({
    patient: PATIENTS.doe,
    studyUid,
    seriesUid,
    sopUid,
    sopClassUid: SOP_CLASS.MF_BYTE_SC,
    modality: 'OT',
    studyDate: '20240101',
    accessionNumber: 'FRAMES',
    studyDescription: 'many frames',
    seriesNumber: 1,
    instanceNumber: 1,
    image: { rows: 2, cols: 2, bits: 8, frames: FRAMES },
    extra: [{ tag: '7FE00010', vr: 'OB', value: Buffer.concat(Array.from({ length: FRAMES }, (_, i) => framePixels(i + 1))) }],
  });
  const bytes = writePart10({ dataset, transferSyntaxUid: TS.EXPLICIT_LE, sopClassUid: SOP_CLASS.MF_BYTE_SC, sopInstanceUid: sopUid });
  return { bytes, studyUid, seriesUid, sopUid };
}

/** Raw bytes over a socket: what the server answers before it closes (or 5 s pass). */
function rawExchange(url: string, data: string): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect(Number(u.port), u.hostname);
    const chunks: Buffer[] = [];
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(Buffer.concat(chunks).toString('utf8'));
    };
    const timer = setTimeout(done, 5000);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('close', done);
    socket.on('error', done);
    socket.on('connect', () => socket.write(data));
  });
}

function assertRawJsonError(raw: string, status: number, code: string): void {
  const [head = '', body = ''] = raw.split('\r\n\r\n');
  assert.match(head, new RegExp(`^HTTP/1\\.1 ${status} `), raw.slice(0, 300));
  assert.match(head, /\r\nContent-Type: application\/json/i);
  assert.match(head, /\r\nContent-Length: \d+/i);
  const parsed = JSON.parse(body) as { error: { code: string; message: string; details: unknown } };
  assert.deepEqual(Object.keys(parsed), ['error']);
  assert.deepEqual(Object.keys(parsed.error).sort(), ['code', 'details', 'message']);
  assert.equal(parsed.error.code, code);
  assert.equal(typeof parsed.error.details, 'object');
}

describe('framework-level errors use the SPEC §3 error shape; URL limits', () => {
  let srv: TestServer;
  let mf: ReturnType<typeof multiFrameInstance>;
  let instanceUrl: string;

  before(async () => {
    srv = await startTestServer();
    mf = multiFrameInstance();
    const res = await stow(`${srv.url}/wado/studies`, [mf.bytes]);
    assert.equal(res.status, 200, res.text());
    instanceUrl = `${srv.url}/wado/studies/${mf.studyUid}/series/${mf.seriesUid}/instances/${mf.sopUid}`;
  });
  after(async () => {
    await srv?.close();
  });

  it('the limits are the documented ones: 64 KiB per path segment, 80 KiB of request line and headers', () => {
    assert.equal(app.MAX_PARAM_LENGTH, MAX_PARAM_LENGTH);
    assert.equal(app.MAX_HEADER_BYTES, MAX_HEADER_BYTES);
  });

  it(`an explicit frame list of ${FRAMES} frame numbers is served, in the order asked`, async () => {
    const list = Array.from({ length: FRAMES }, (_, i) => FRAMES - i);
    const res = await get(`${instanceUrl}/frames/${list.join(',')}`, { Accept: 'multipart/related; type="application/octet-stream"' });
    assert.equal(res.status, 200, res.text().slice(0, 300));
    const parts = await parseMultipartResponse(res);
    assert.equal(parts.length, FRAMES);
    parts.forEach((p, i) => assert.deepEqual(p.body, framePixels(list[i] as number), `part ${i}`));
  });

  it('a frame list longer than 64 KiB is 414 URI_TOO_LONG in the error shape', async () => {
    const list = Array.from({ length: 33_000 }, () => '1').join(',');
    assert.ok(list.length > MAX_PARAM_LENGTH);
    const res = await get(`${instanceUrl}/frames/${list}`);
    const body = assertJsonError(res, 414, 'URI_TOO_LONG');
    assert.equal(body.error.details['maxParamLength'], MAX_PARAM_LENGTH);
    // The offending URL is not echoed back.
    assert.ok(res.body.length < 1000);
  });

  it('a QIDO-RS URL over Node’s default 16 KiB (400 UIDs) is served', async () => {
    const url = `${srv.url}/wado/studies?StudyInstanceUID=${[...Array.from({ length: 399 }, () => generateUid()), mf.studyUid].join(',')}`;
    assert.ok(url.length > 16 * 1024);
    const res = await get(url);
    assert.equal(res.status, 200, res.text().slice(0, 300));
    assert.equal(res.json<unknown[]>().length, 1);
  });

  it('a QIDO-RS URL over 80 KiB is 431 HEADERS_TOO_LARGE in the error shape', async () => {
    const url = `${srv.url}/wado/studies?StudyInstanceUID=${Array.from({ length: 2000 }, () => mf.studyUid).join(',')}`;
    assert.ok(url.length > MAX_HEADER_BYTES);
    const res = await get(url);
    const body = assertJsonError(res, 431, 'HEADERS_TOO_LARGE');
    assert.equal(body.error.details['maxHeaderBytes'], MAX_HEADER_BYTES);
  });

  it('a header field over 80 KiB is 431 HEADERS_TOO_LARGE in the error shape', async () => {
    const res = await request(`${srv.url}/health`, { headers: { 'X-Filler': 'x'.repeat(MAX_HEADER_BYTES + 1) } });
    assertJsonError(res, 431, 'HEADERS_TOO_LARGE');
  });

  it('malformed percent-encoding in a path parameter is 400 BAD_REQUEST in the error shape', async () => {
    const res = await get(`${srv.url}/wado/studies/1.2%E0%A4%A/metadata`);
    const body = assertJsonError(res, 400, 'BAD_REQUEST');
    assert.equal(body.error.details['reason'], 'BAD_URL');
  });

  it('a request Node cannot parse is answered 400 BAD_REQUEST in the error shape', async () => {
    const raw = await rawExchange(srv.url, 'GET /health HTTP/1.1\r\nHost: x\r\nthis is not a header\r\n\r\n');
    assertRawJsonError(raw, 400, 'BAD_REQUEST');
  });

  it('a request line over 80 KiB sent raw is 431 HEADERS_TOO_LARGE in the error shape', async () => {
    const raw = await rawExchange(srv.url, `GET /wado/studies?PatientID=${'9'.repeat(MAX_HEADER_BYTES)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    assertRawJsonError(raw, 431, 'HEADERS_TOO_LARGE');
  });

  it('an unknown route is still 404 ROUTE_NOT_FOUND, quoting at most 200 characters of the path', async () => {
    const res = await get(`${srv.url}/wado/${'x'.repeat(5000)}/nowhere`);
    const body = assertJsonError(res, 404, 'ROUTE_NOT_FOUND');
    assert.ok(body.error.message.length < 300, body.error.message);
  });
});
