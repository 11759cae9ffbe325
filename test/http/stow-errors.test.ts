// STOW-RS bodies that go wrong part-way: a part whose headers are broken, or a request crossing
// max_request_bytes between two parts, is reported as failed (never a 200 that silently drops
// it), and the connection is closed since the rest of the body is not read.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { DicomJsonDataset } from '../../src/dicom/types.js';
import { simpleInstance } from '../helpers/corpus.js';
import { multipartBody, newBoundary, request } from '../helpers/http.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

function sopUidsOf(out: DicomJsonDataset, seq: '00081199' | '00081198'): string[] {
  const items = (out[seq]?.Value ?? []) as DicomJsonDataset[];
  return items.map((i) => String(i['00081155']?.Value?.[0] ?? ''));
}

function failureReasons(out: DicomJsonDataset): number[] {
  const items = (out['00081198']?.Value ?? []) as DicomJsonDataset[];
  return items.map((i) => Number(i['00081197']?.Value?.[0]));
}

describe('STOW-RS: a body broken between parts', () => {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer();
  });
  after(async () => {
    await srv?.close();
  });

  it('a part with a malformed header: 202 with a failed item for what was lost (C000), the parts before it stored, Connection: close', async () => {
    const first = simpleInstance({});
    const lost = [simpleInstance({ studyUid: first.studyUid }), simpleInstance({ studyUid: first.studyUid })];
    const boundary = newBoundary();
    const body = Buffer.concat([
      multipartBody([{ body: first.bytes }], boundary, { close: false }),
      Buffer.from(`\r\n--${boundary}\r\nContent-Type: application/dicom\r\nBad Header: x\r\n\r\n`, 'latin1'),
      lost[0]?.bytes ?? Buffer.alloc(0),
      multipartBody([{ body: lost[1]?.bytes ?? Buffer.alloc(0) }], boundary).subarray(0),
    ]);
    const res = await request(`${srv.url}/wado/studies`, { method: 'POST', headers: { 'Content-Type': `multipart/related; type="application/dicom"; boundary=${boundary}`, 'Content-Length': body.length }, body });
    assert.equal(res.status, 202, res.text().slice(0, 300));
    const out = res.json<DicomJsonDataset>();
    assert.deepEqual(sopUidsOf(out, '00081199'), [first.sopUid]);
    assert.deepEqual(failureReasons(out), [0xc000]);
    assert.equal(res.headers.connection, 'close');
  });

  it('a chunked body crossing max_request_bytes inside the next part’s headers: 202, the first stored, A700 for the rest', async () => {
    const first = simpleInstance({});
    const second = simpleInstance({ studyUid: first.studyUid });
    const boundary = newBoundary();
    const head1 = Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`, 'latin1');
    const head2 = Buffer.from(`\r\n--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`, 'latin1');
    const body = Buffer.concat([head1, first.bytes, head2, second.bytes, Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1')]);
    // The limit falls 5 bytes before the end of the second part's header block.
    const limit = head1.length + first.bytes.length + head2.length - 5;
    const limited = await startTestServer({ PACS_SERVER__MAX_REQUEST_BYTES: String(limit) });
    try {
      const res = await request(`${limited.url}/wado/studies`, { method: 'POST', headers: { 'Content-Type': `multipart/related; type="application/dicom"; boundary=${boundary}`, 'Transfer-Encoding': 'chunked' }, body });
      assert.equal(res.status, 202, res.text().slice(0, 300));
      const out = res.json<DicomJsonDataset>();
      assert.deepEqual(sopUidsOf(out, '00081199'), [first.sopUid]);
      assert.deepEqual(failureReasons(out), [0xa700]);
      assert.equal(res.headers.connection, 'close');
    } finally {
      await limited.close();
    }
  });

  it('a body that is not multipart at all still answers 400, and closes the connection', async () => {
    const boundary = newBoundary();
    const body = Buffer.from(`--${boundary}\r\nBad Header: x\r\n\r\nxyz\r\n--${boundary}--\r\n`, 'latin1');
    const res = await request(`${srv.url}/wado/studies`, { method: 'POST', headers: { 'Content-Type': `multipart/related; type="application/dicom"; boundary=${boundary}`, 'Content-Length': body.length }, body });
    assert.equal(res.status, 400);
    assert.equal(res.headers.connection, 'close');
  });
});
