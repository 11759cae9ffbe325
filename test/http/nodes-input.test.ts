// REST input that PostgreSQL cannot store (a NUL, other control characters, unpaired surrogates)
// answers the same on both profiles, never 500: an AE title that cannot be valid is simply not
// found (404 NOT_FOUND, the database is not asked), free text with control characters is
// 400 INVALID_PARAMETER naming the field. Also: POST /api/nodes racing DELETE of the same AE title
// only ever answers 200/201 and 204/404; DELETE of an unknown study/series/instance names the UID.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertJsonError, request, type HttpResponse } from '../helpers/http.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const STUDY = '1.2.826.0.1.3680043.8.498.1';
const SERIES = '1.2.826.0.1.3680043.8.498.2';
const SOP = '1.2.826.0.1.3680043.8.498.3';

/** Path forms of AE titles no node can have: NUL, other controls, too long, non-ASCII, backslash, blank. */
const IMPOSSIBLE_AE_PATHS = ['%00', 'A%00B', 'A%1BB', 'A%7FB', 'ABCDEFGHIJKLMNOPQ', '%C3%89', 'A%5CB', '%20'];

/** Free text that is refused: C0 (NUL, TAB, LF, ESC, US), DEL, C1, an unpaired surrogate. */
const BAD_TEXT = ['a\u0000b', '\u0000', 'a\tb', 'a\nb', 'a\u001bb', '\u001f', 'a\u007fb', 'a\u0085b', 'a\ud800b', '\udc00'];

for (const profile of ['sqlite', 'postgres'] as const) {
  describe(`REST input the database cannot hold (${profile})`, () => {
    let srv: TestServer;
    let database: TestDatabase | undefined;
    let ae: string;

    const call = (method: string, path: string, body?: unknown): Promise<HttpResponse> =>
      request(`${srv.url}${path}`, {
        method,
        timeoutMs: 30_000,
        ...(body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}),
      });

    before(async () => {
      if (profile === 'postgres') database = await createTestDatabase('pacsnode_nodes_input');
      try {
        srv = await startTestServer(database ? { PACS_DATABASE__URL: database.url, PACS_DATABASE__MAX_CONNECTIONS: '10' } : {}, { profile: 'standalone' });
      } catch (err) {
        await database?.drop();
        throw err;
      }
      // A registered node (ourselves): the action routes get past the node lookup to the body.
      ae = srv.config.server.ae_title;
      assert.equal((await call('POST', '/api/nodes', { ae_title: ae, host: '127.0.0.1', port: srv.server.dicomPort })).status, 201);
    });
    after(async () => {
      try {
        await srv?.close();
      } finally {
        await database?.drop();
      }
    });

    it('an AE title that cannot be valid is 404 NOT_FOUND on every node route', async () => {
      const routes: [string, string, unknown][] = [
        ['GET', '', undefined],
        ['DELETE', '', undefined],
        ['POST', '/echo', undefined],
        ['POST', '/find', { level: 'STUDY' }],
        ['POST', '/store', { level: 'STUDY', study_uid: STUDY }],
        ['POST', '/move', { level: 'STUDY', study_uid: STUDY }],
        ['POST', '/get', { level: 'STUDY', study_uid: STUDY }],
      ];
      for (const aePath of IMPOSSIBLE_AE_PATHS) {
        for (const [method, suffix, body] of routes) {
          const res = await call(method, `/api/nodes/${aePath}${suffix}`, body);
          const err = assertJsonError(res, 404, 'NOT_FOUND');
          assert.equal(err.error.details['ae_title'], decodeURIComponent(aePath), `${method} ${aePath}${suffix}`);
        }
      }
      assert.equal((await call('GET', '/api/jobs')).json<{ total: number }>().total, 0);
    });

    it('a description with control characters or an unpaired surrogate is 400 naming description', async () => {
      for (const description of BAD_TEXT) {
        const res = await call('POST', '/api/nodes', { ae_title: 'TEXTNODE', host: '127.0.0.1', port: 104, description });
        const err = assertJsonError(res, 400, 'INVALID_PARAMETER');
        assert.deepEqual(err.error.details, { field: 'description' }, JSON.stringify(description));
      }
      assertJsonError(await call('GET', '/api/nodes/TEXTNODE'), 404, 'NOT_FOUND');
      // Printable text, non-ASCII included, is kept.
      const ok = await call('POST', '/api/nodes', { ae_title: 'TEXTNODE', host: '127.0.0.1', port: 104, description: ' Müller – Röntgen 東京 ' });
      assert.equal(ok.status, 201, ok.text());
      assert.equal(ok.json<{ description: string }>().description, 'Müller – Röntgen 東京');
      assert.equal((await call('DELETE', '/api/nodes/TEXTNODE')).status, 204);
    });

    it('a patient_id with control characters is 400 naming patient_id on /move and /get, and starts no job', async () => {
      for (const action of ['move', 'get']) {
        for (const patientId of BAD_TEXT) {
          for (const body of [
            { level: 'PATIENT', patient_id: patientId },
            { level: 'STUDY', model: 'patient', patient_id: patientId, study_uid: STUDY },
            // Stored with the job even where the Study Root model does not send it.
            { level: 'STUDY', patient_id: patientId, study_uid: STUDY },
          ]) {
            const err = assertJsonError(await call('POST', `/api/nodes/${ae}/${action}`, body), 400, 'INVALID_PARAMETER');
            assert.deepEqual(err.error.details, { field: 'patient_id' }, `${action} ${JSON.stringify(body)}`);
          }
        }
      }
      assert.equal((await call('GET', '/api/jobs')).json<{ total: number }>().total, 0);
    });

    it('a /move destination that cannot be an AE title is 400 naming destination', async () => {
      for (const destination of ['A\u0000B', 'A\ud800', 'ABCDEFGHIJKLMNOPQ']) {
        const err = assertJsonError(await call('POST', `/api/nodes/${ae}/move`, { level: 'STUDY', study_uid: STUDY, destination }), 400, 'INVALID_PARAMETER');
        assert.equal(err.error.details['field'], 'destination');
      }
      assert.equal((await call('GET', '/api/jobs')).json<{ total: number }>().total, 0);
    });

    it('UIDs of /store, /move and /get bodies with a NUL (padding included) are 400 INVALID_UID naming the field', async () => {
      for (const action of ['store', 'move', 'get']) {
        for (const [body, field] of [
          [{ level: 'STUDY', study_uid: '1.2\u00003' }, 'study_uid'],
          [{ level: 'STUDY', study_uid: `${STUDY}\u0000` }, 'study_uid'],
          [{ level: 'STUDY', study_uid: `${STUDY} ` }, 'study_uid'],
          [{ level: 'SERIES', study_uid: STUDY, series_uid: '\u0000' }, 'series_uid'],
          [{ level: 'SERIES', study_uid: STUDY, series_uid: `${SERIES}\u0000` }, 'series_uid'],
          [{ level: 'IMAGE', study_uid: STUDY, series_uid: SERIES, sop_uids: [SOP, `${SOP}\u0000`] }, 'sop_uids.1'],
        ] as const) {
          const err = assertJsonError(await call('POST', `/api/nodes/${ae}/${action}`, body), 400, 'INVALID_UID');
          assert.equal(err.error.details['field'], field, `${action} ${JSON.stringify(body)}`);
        }
      }
      assert.equal((await call('GET', '/api/jobs')).json<{ total: number }>().total, 0);
    });

    it('C-FIND keys and includefield with control characters are 400 naming the key', async () => {
      for (const value of BAD_TEXT) {
        const err = assertJsonError(await call('POST', `/api/nodes/${ae}/find`, { level: 'STUDY', keys: { PatientName: value } }), 400, 'INVALID_PARAMETER');
        assert.deepEqual(err.error.details, { field: 'keys.PatientName' }, JSON.stringify(value));
      }
      const named = assertJsonError(await call('POST', `/api/nodes/${ae}/find`, { level: 'STUDY', keys: { 'Patient\u0000Name': 'X' } }), 400, 'INVALID_PARAMETER');
      assert.deepEqual(named.error.details, { field: 'keys' });
      const included = assertJsonError(await call('POST', `/api/nodes/${ae}/find`, { level: 'STUDY', includefield: ['StudyDate', 'Modality\u0000'] }), 400, 'INVALID_PARAMETER');
      assert.deepEqual(included.error.details, { field: 'includefield.1' });
    });

    it('POST /api/nodes racing DELETE of the same AE title answers 200/201 and 204/404 only', async () => {
      const statuses: Record<number, number> = {};
      let failure = '';
      for (let round = 0; round < 15; round++) {
        const responses = await Promise.all(
          Array.from({ length: 12 }, (_, i) =>
            i % 4 === 3 ? call('DELETE', '/api/nodes/RACE') : call('POST', '/api/nodes', { ae_title: 'RACE', host: '127.0.0.1', port: 100 + i }),
          ),
        );
        responses.forEach((res, i) => {
          statuses[res.status] = (statuses[res.status] ?? 0) + 1;
          const allowed = i % 4 === 3 ? [204, 404] : [200, 201];
          if (!allowed.includes(res.status)) failure = `${res.status} ${res.text()}`;
        });
      }
      assert.equal(failure, '', JSON.stringify(statuses));
    });

    it('DELETE of an unknown study, series or instance is 404 with the UID in details, as the GET', async () => {
      for (const [resource, key] of [
        ['studies', 'studyUid'],
        ['series', 'seriesUid'],
        ['instances', 'sopUid'],
      ] as const) {
        const uid = `${STUDY}.99`;
        const got = assertJsonError(await call('GET', `/api/${resource}/${uid}`), 404, 'NOT_FOUND');
        const deleted = assertJsonError(await call('DELETE', `/api/${resource}/${uid}`), 404, 'NOT_FOUND');
        assert.deepEqual(deleted.error.details, { [key]: uid });
        assert.deepEqual(deleted.error.details, got.error.details);
      }
    });
  });
}
