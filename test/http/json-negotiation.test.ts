// QIDO-RS and WADO-RS metadata answer with the media type negotiated from Accept (RFC 9110 12.5.1):
// a client refusing application/dicom+json with q=0 but accepting application/json gets
// application/json, and nothing acceptable is 406. If-None-Match on metadata uses the weak
// comparison (RFC 9110 13.1.2): W/"x" matches the ETag "x", lists and * too.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as wado from '../../src/http/dicomweb/wado.js';
import { simpleInstance } from '../helpers/corpus.js';
import { assertJsonError, get, stow } from '../helpers/http.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

describe('ifNoneMatchHits (weak comparison)', () => {
  const etag = '"abc"';
  const cases: [string, boolean][] = [
    ['"abc"', true],
    ['W/"abc"', true],
    ['*', true],
    [' "x", W/"abc" ', true],
    ['"x",W/"y", "abc"', true],
    ['"x", *', true],
    ['"abcd"', false],
    ['W/"ab"', false],
    ['"a,bc", "x"', false],
    ['abc', false],
    ['"x", garbage, "abc"', true],
    ['"abc', false],
    ['', false],
  ];
  for (const [header, expected] of cases) {
    it(`${JSON.stringify(header)} → ${expected}`, () => assert.equal(wado.ifNoneMatchHits(header, etag), expected));
  }
  it('a weak ETag of ours is compared weakly too', () => assert.equal(wado.ifNoneMatchHits('"abc"', 'W/"abc"'), true));
  it('commas inside a quoted tag do not split it', () => assert.equal(wado.ifNoneMatchHits('"x", "a,b"', '"a,b"'), true));
});

describe('QIDO-RS and metadata: negotiated JSON type, weak If-None-Match', () => {
  let srv: TestServer;
  let qidoUrl: string;
  let metadataUrl: string;

  before(async () => {
    srv = await startTestServer();
    const a = simpleInstance({});
    const res = await stow(`${srv.url}/wado/studies`, [a.bytes]);
    assert.equal(res.status, 200, res.text());
    qidoUrl = `${srv.url}/wado/studies?StudyInstanceUID=${a.studyUid}`;
    metadataUrl = `${srv.url}/wado/studies/${a.studyUid}/series/${a.seriesUid}/instances/${a.sopUid}/metadata`;
  });
  after(async () => {
    await srv?.close();
  });

  const accepts: { accept: string; type: string | undefined }[] = [
    { accept: 'application/dicom+json;q=0, application/json', type: 'application/json' },
    { accept: 'application/json', type: 'application/dicom+json' }, // SPEC §3: dicom+json also for Accept: application/json
    { accept: 'application/json;q=0.5, application/dicom+json', type: 'application/dicom+json' },
    { accept: 'application/json;q=0, */*', type: 'application/dicom+json' },
    { accept: 'application/dicom+json;q=0, */*', type: 'application/json' },
    { accept: 'application/dicom+json;q=0', type: undefined },
    { accept: 'application/dicom+json;q=0, application/json;q=0, */*', type: undefined },
  ];
  for (const resource of ['QIDO-RS', 'metadata'] as const) {
    for (const { accept, type } of accepts) {
      it(`${resource} with Accept: ${accept} → ${type ?? '406'}`, async () => {
        const res = await get(resource === 'QIDO-RS' ? qidoUrl : metadataUrl, { Accept: accept });
        if (type === undefined) {
          assertJsonError(res, 406, 'NOT_ACCEPTABLE');
          return;
        }
        assert.equal(res.status, 200, res.text().slice(0, 300));
        assert.equal(String(res.headers['content-type']).split(';')[0], type);
        assert.equal(res.json<unknown[]>().length, 1);
      });
    }
  }

  it('the accept query parameter is negotiated the same way', async () => {
    const res = await get(`${metadataUrl}?accept=${encodeURIComponent('application/dicom+json;q=0,application/json')}`);
    assert.equal(res.status, 200);
    assert.equal(String(res.headers['content-type']).split(';')[0], 'application/json');
  });

  it('metadata If-None-Match: weak, listed and * forms of the ETag give 304; others 200', async () => {
    const first = await get(metadataUrl);
    assert.equal(first.status, 200);
    const etag = String(first.headers['etag']);
    assert.match(etag, /^"[^"]+"$/);
    for (const inm of [etag, `W/${etag}`, `"other", W/${etag}`, `W/"other",${etag}`, '*']) {
      const res = await get(metadataUrl, { 'If-None-Match': inm });
      assert.equal(res.status, 304, `If-None-Match: ${inm}`);
      assert.equal(res.body.length, 0);
      assert.equal(res.headers['etag'], etag);
    }
    for (const inm of ['W/"other"', `"other", W/"x${etag.slice(1)}`]) {
      const res = await get(metadataUrl, { 'If-None-Match': inm });
      assert.equal(res.status, 200, `If-None-Match: ${inm}`);
    }
  });
});
