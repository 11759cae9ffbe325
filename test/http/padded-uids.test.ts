// A UID in a URL path with DICOM padding (a trailing NUL or space) is the stored UID without it
// (SPEC §3: trailing NUL/space stripped): it finds and deletes the study, on both profiles. On
// PostgreSQL the NUL used to reach the query and fail it (500).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { simpleInstance } from '../helpers/corpus.js';
import { assertJsonError, get, request, stow } from '../helpers/http.js';
import { startTestServer, type TestProfile, type TestServer } from '../helpers/server.js';

for (const profile of ['standalone', 'production'] as TestProfile[]) {
  describe(`padded UIDs in URL paths (${profile})`, () => {
    let srv: TestServer;
    before(async () => {
      srv = await startTestServer({}, { profile });
    });
    after(async () => {
      await srv?.close();
    });

    it('REST, WADO-RS and QIDO-RS paths with %00 or %20 after the UID address the stored study; DELETE too', async () => {
      const inst = simpleInstance({});
      assert.equal((await stow(`${srv.url}/wado/studies`, [inst.bytes])).status, 200);
      for (const pad of ['%00', '%20', '%00%00']) {
        const study = `${inst.studyUid}${pad}`;
        assert.equal((await get(`${srv.url}/api/studies/${study}`)).status, 200, `GET /api/studies/${study}`);
        assert.equal((await get(`${srv.url}/api/series/${inst.seriesUid}${pad}`)).status, 200);
        assert.equal((await get(`${srv.url}/api/instances/${inst.sopUid}${pad}`)).status, 200);
        assert.equal((await get(`${srv.url}/wado/studies/${study}/metadata`)).status, 200);
        const series = JSON.parse((await get(`${srv.url}/wado/studies/${study}/series`)).text()) as unknown[];
        assert.equal(series.length, 1);
      }
      assertJsonError(await get(`${srv.url}/api/studies/1.2.3%00`), 404, 'NOT_FOUND');
      assertJsonError(await get(`${srv.url}/api/studies/1.2.3%00x`), 400, 'INVALID_UID');
      assert.equal((await request(`${srv.url}/api/studies/${inst.studyUid}%00`, { method: 'DELETE' })).status, 204);
      assertJsonError(await get(`${srv.url}/api/studies/${inst.studyUid}`), 404, 'NOT_FOUND');
    });
  });
}
