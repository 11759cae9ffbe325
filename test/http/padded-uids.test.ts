// A UID in a URL path with DICOM padding (a trailing NUL or space) names nothing stored (stored
// UIDs carry no padding): 400 INVALID_UID on every route, before any database sees it — on
// PostgreSQL a NUL made the query itself fail (500).
import { after, before, describe, it } from 'node:test';
import { assertJsonError, get, request } from '../helpers/http.js';
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

    for (const pad of ['%00', '%20']) {
      it(`GET and DELETE of REST resources, WADO-RS, QIDO-RS and STOW-RS paths with 1.2.3${pad}: 400 INVALID_UID`, async () => {
        const uid = `1.2.3${pad}`;
        for (const path of [`/api/studies/${uid}`, `/api/series/${uid}`, `/api/instances/${uid}`, `/wado/studies/${uid}/metadata`, `/wado/studies/${uid}/series`, `/wado/studies/1.2.3/series/${uid}/instances`]) {
          assertJsonError(await get(`${srv.url}${path}`), 400, 'INVALID_UID');
        }
        assertJsonError(await request(`${srv.url}/api/studies/${uid}`, { method: 'DELETE' }), 400, 'INVALID_UID');
        const stow = await request(`${srv.url}/wado/studies/${uid}`, { method: 'POST', headers: { 'Content-Type': 'application/dicom', 'Content-Length': 4 }, body: Buffer.from('DICM') });
        assertJsonError(stow, 400, 'INVALID_UID');
      });
    }
  });
}
