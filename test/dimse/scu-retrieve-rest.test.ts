// POST /api/nodes/{ae}/move and /get (SPEC §5) on a real pacsnode server (startTestServer: the SCU
// of main.ts's createScu behind the routes) against DCMTK dcmqrscp, whose HostTable names a
// storescp, a slow storescp and our own server as move destinations.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateUid } from '../../src/dicom/uids.js';
import type { JobJson } from '../../src/http/api/jobs.js';
import { generateCorpus, simpleInstance, type Corpus, type CorpusFile } from '../helpers/corpus.js';
import { get, parseMultipartResponse, request, type HttpResponse } from '../helpers/http.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { datasetOf } from './helpers.js';
import { startRetrieveScp, type RetrieveScp } from './retrieve-peers.js';
import { fileDataset, freePort, startStorescp, type RunningPeer } from './scu-peers.js';

const NATIVE = new Set(['1.2.840.10008.1.2', '1.2.840.10008.1.2.1', '1.2.840.10008.1.2.2']);
/** DCMTK sends sequences of explicit length with undefined length: that file is not sent unchanged (see scu-retrieve.test.ts). */
const REENCODED_BY_DCMTK = new Set(['seqPrivate']);

interface ErrorJson {
  error: { code: string; message: string; details: Record<string, unknown> };
}

interface Generated {
  sopUid: string;
  seriesUid: string;
  studyUid: string;
  path: string;
  bytes: Buffer;
}

describe('POST /api/nodes/{ae}/move and /get', () => {
  let dir: string;
  let corpus: Corpus;
  let many: Generated[];
  let srv: TestServer;
  let dest: RunningPeer;
  let slow: RunningPeer;
  let qr: RetrieveScp;
  let held: CorpusFile[];

  const post = (url: string, body?: object): Promise<HttpResponse> =>
    request(`${srv.url}${url}`, { method: 'POST', ...(body ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}) });

  async function waitForJob(id: string, done: (j: JobJson) => boolean, ms = 20_000): Promise<JobJson> {
    const start = Date.now();
    for (;;) {
      const res = await get(`${srv.url}/api/jobs/${id}`);
      assert.equal(res.status, 200, res.text());
      const job = res.json<JobJson>();
      if (done(job)) return job;
      if (Date.now() - start > ms) throw new Error(`job ${id} still ${job.state}: ${JSON.stringify(job)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** The stored Part-10 bytes of an instance, through WADO-RS. */
  async function stored(f: { studyUid: string; seriesUid: string; sopUid: string }): Promise<Buffer> {
    const res = await get(`${srv.url}/wado/studies/${f.studyUid}/series/${f.seriesUid}/instances/${f.sopUid}`, { accept: 'multipart/related; type="application/dicom"' });
    assert.equal(res.status, 200, `${f.sopUid}: ${res.status}`);
    const parts = await parseMultipartResponse(res);
    assert.equal(parts.length, 1);
    return (parts[0] as { body: Buffer }).body;
  }

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'pacsnode-retrieve-rest-'));
    corpus = await generateCorpus();
    const studyUid = generateUid();
    const seriesA = generateUid();
    const seriesB = generateUid();
    many = [];
    for (let i = 0; i < 12; i++) {
      const seriesUid = i < 10 ? seriesA : seriesB;
      const x = simpleInstance({ studyUid, seriesUid, fill: i });
      const file = path.join(dir, `many-${i}.dcm`);
      await writeFile(file, x.bytes);
      many.push({ path: file, sopUid: x.sopUid, seriesUid, studyUid, bytes: x.bytes });
    }
    srv = await startTestServer({ PACS_SERVER__AE_TITLE: 'PACSNODE', PACS_SERVER__DIMSE_TIMEOUT_SECS: '10' });
    dest = await startStorescp({ aeTitle: 'MOVEDEST' });
    slow = await startStorescp({ aeTitle: 'SLOWDEST', extra: ['--sleep-after', '1'] });
    held = corpus.files.filter((f) => NATIVE.has(f.transferSyntax));
    qr = await startRetrieveScp({
      files: [...held, ...many],
      destinations: [
        { aeTitle: dest.aeTitle, port: dest.port },
        { aeTitle: slow.aeTitle, port: slow.port },
        { aeTitle: 'PACSNODE', port: srv.server.dicomPort },
      ],
    });
    for (const [ae, port] of [[qr.aeTitle, qr.port], [dest.aeTitle, dest.port], ['GONE', await freePort()]] as const) {
      const res = await post('/api/nodes', { ae_title: ae, host: '127.0.0.1', port });
      assert.equal(res.status, 201, res.text());
    }
  });
  after(async () => {
    await qr?.stop();
    await dest?.stop();
    await slow?.stop();
    await srv?.close();
    await corpus?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  describe('get', () => {
    it('?wait=true retrieves a study into our archive: counts recorded, bytes as dcmqrscp holds them', async () => {
      const study = corpus.study('mueller').studyUid;
      const files = held.filter((f) => f.studyUid === study);
      const res = await post(`/api/nodes/${qr.aeTitle}/get?wait=true`, { level: 'STUDY', study_uid: study });
      assert.equal(res.status, 200, res.text());
      const job = res.json<JobJson & { job_id: string }>();
      assert.equal(job.job_id, job.id);
      assert.equal(job.kind, 'get');
      assert.equal(job.state, 'completed', job.error ?? '');
      assert.deepEqual({ remaining: job.remaining, completed: job.completed, failed: job.failed, warning: job.warning }, { remaining: 0, completed: files.length, failed: 0, warning: 0 });
      assert.deepEqual(job.failed_uids, []);
      assert.deepEqual(job.request, { ae_title: qr.aeTitle, level: 'STUDY', study_uid: study });
      const qido = await get(`${srv.url}/wado/studies?StudyInstanceUID=${study}`);
      assert.equal(qido.status, 200);
      const found = qido.json<Record<string, { Value?: unknown[] }>[]>();
      assert.equal(found.length, 1);
      assert.equal(found[0]?.['00201208']?.Value?.[0], files.length);
      for (const f of files) {
        const bytes = await stored(f);
        if (!REENCODED_BY_DCMTK.has(f.label)) assert.ok(datasetOf(bytes).equals(datasetOf(await readFile(qr.fileOf(f.sopUid)))), `${f.label}: data set differs`);
        // Our File Meta: the sender as Source AE (0002,0016).
        assert.ok(bytes.subarray(0, 400).includes(Buffer.from(qr.aeTitle, 'latin1')), `${f.label}: Source AE`);
      }
    });

    it('answers 202 with a job id and runs it; a series at a time', async () => {
      const seriesB = many.filter((m) => m.seriesUid !== many[0]?.seriesUid);
      const res = await post(`/api/nodes/${qr.aeTitle}/get`, { level: 'SERIES', study_uid: seriesB[0]?.studyUid, series_uid: seriesB[0]?.seriesUid });
      assert.equal(res.status, 202, res.text());
      const { job_id } = res.json<{ job_id: string }>();
      const job = await waitForJob(job_id, (j) => j.state !== 'running');
      assert.equal(job.state, 'completed', job.error ?? '');
      assert.equal(job.completed, 2);
      for (const m of seriesB) assert.ok(datasetOf(await stored(m)).equals(datasetOf(m.bytes)));
    });

    it('fails the job when the node cannot be reached', async () => {
      const res = await post('/api/nodes/GONE/get?wait=true', { level: 'STUDY', study_uid: many[0]?.studyUid });
      assert.equal(res.status, 200, res.text());
      const job = res.json<JobJson>();
      assert.equal(job.state, 'failed');
      assert.match(job.error ?? '', /cannot connect/);
    });
  });

  describe('move', () => {
    it('?wait=true moves a series to a storescp node: counts recorded, files arrive', async () => {
      const seriesA = many.filter((m) => m.seriesUid === many[0]?.seriesUid);
      const res = await post(`/api/nodes/${qr.aeTitle}/move?wait=true`, { level: 'SERIES', study_uid: seriesA[0]?.studyUid, series_uid: seriesA[0]?.seriesUid, destination: dest.aeTitle });
      assert.equal(res.status, 200, res.text());
      const job = res.json<JobJson>();
      assert.equal(job.kind, 'move');
      assert.equal(job.state, 'completed', job.error ?? '');
      assert.deepEqual({ remaining: job.remaining, completed: job.completed, failed: job.failed, warning: job.warning }, { remaining: 0, completed: seriesA.length, failed: 0, warning: 0 });
      assert.equal(job.request['destination'], dest.aeTitle);
      const written = await dest.files();
      for (const m of seriesA) {
        const out = written.find((w) => w.endsWith(m.sopUid));
        assert.ok(out, `${m.sopUid} not received`);
        assert.ok((await fileDataset(out)).equals(datasetOf(m.bytes)));
      }
    });

    it('moves to our own AE title by default: the instances land in our archive', async () => {
      const f = held.find((x) => x.label === 'implicit') as CorpusFile;
      const res = await post(`/api/nodes/${qr.aeTitle}/move?wait=true`, { level: 'IMAGE', study_uid: f.studyUid, series_uid: f.seriesUid, sop_uids: [f.sopUid] });
      assert.equal(res.status, 200, res.text());
      const job = res.json<JobJson>();
      assert.equal(job.state, 'completed', job.error ?? '');
      assert.equal(job.completed, 1);
      assert.equal(job.request['destination'], 'PACSNODE');
      const inst = await get(`${srv.url}/api/instances/${f.sopUid}`);
      assert.equal(inst.status, 200, inst.text());
    });

    it('fails the job with the status when the destination is unknown to the node (A801)', async () => {
      const res = await post(`/api/nodes/${qr.aeTitle}/move?wait=true`, { level: 'STUDY', study_uid: many[0]?.studyUid, destination: 'NOWHERE' });
      assert.equal(res.status, 200, res.text());
      const job = res.json<JobJson>();
      assert.equal(job.state, 'failed');
      assert.match(job.error ?? '', /0xa801 \(move destination unknown\)/);
    });

    it('DELETE /api/jobs/{id} sends C-CANCEL: the job ends cancelled with the counts so far', async () => {
      const seriesA = many.filter((m) => m.seriesUid === many[0]?.seriesUid);
      const res = await post(`/api/nodes/${qr.aeTitle}/move`, { level: 'SERIES', study_uid: seriesA[0]?.studyUid, series_uid: seriesA[0]?.seriesUid, destination: slow.aeTitle });
      assert.equal(res.status, 202, res.text());
      const { job_id } = res.json<{ job_id: string }>();
      // The slow destination takes a second per instance: cancel once the first one is done.
      await waitForJob(job_id, (j) => j.completed >= 1 || j.state !== 'running');
      const cancel = await request(`${srv.url}/api/jobs/${job_id}`, { method: 'DELETE' });
      assert.equal(cancel.status, 202, cancel.text());
      const job = await waitForJob(job_id, (j) => j.state !== 'running');
      assert.equal(job.state, 'cancelled');
      assert.ok(job.completed >= 1 && job.completed < seriesA.length, `completed ${job.completed}`);
    });
  });

  describe('validation', () => {
    it('answers 400 with the error shape for a key missing at its level, a bad UID or a bad destination', async () => {
      const cases: [string, object, string][] = [
        ['move', { level: 'SERIES', study_uid: '1.2.3' }, 'series_uid'],
        ['get', { level: 'IMAGE', study_uid: '1.2.3', series_uid: '1.2.3.4' }, 'sop_uids'],
        ['get', { level: 'STUDY' }, 'study_uid'],
        ['move', { level: 'PATIENT' }, 'patient_id'],
        ['move', { level: 'STUDY', study_uid: '1.2.3', destination: 'A\\B' }, 'destination'],
      ];
      for (const [action, body, field] of cases) {
        const res = await post(`/api/nodes/${qr.aeTitle}/${action}`, body);
        assert.equal(res.status, 400, `${action} ${JSON.stringify(body)}: ${res.text()}`);
        const e = res.json<ErrorJson>();
        assert.equal(e.error.code, 'INVALID_PARAMETER');
        assert.equal(e.error.details['field'], field);
      }
      const badUid = await post(`/api/nodes/${qr.aeTitle}/get`, { level: 'STUDY', study_uid: '1..2' });
      assert.equal(badUid.status, 400);
      assert.equal(badUid.json<ErrorJson>().error.code, 'INVALID_UID');
      const badLevel = await post(`/api/nodes/${qr.aeTitle}/move`, { level: 'FRAME', study_uid: '1.2.3' });
      assert.equal(badLevel.status, 400);
    });

    it('answers 404 for an unknown node', async () => {
      for (const action of ['move', 'get']) {
        const res = await post(`/api/nodes/NOBODY/${action}`, { level: 'STUDY', study_uid: '1.2.3' });
        assert.equal(res.status, 404);
        assert.equal(res.json<ErrorJson>().error.code, 'NOT_FOUND');
      }
    });

    it('documents both routes in the OpenAPI document', async () => {
      const doc = (await get(`${srv.url}/api/openapi.json`)).json<{ paths: Record<string, Record<string, { operationId?: string }>> }>();
      assert.equal(doc.paths['/api/nodes/{ae_title}/move']?.['post']?.operationId, 'moveFromNode');
      assert.equal(doc.paths['/api/nodes/{ae_title}/get']?.['post']?.operationId, 'getFromNode');
    });
  });
});
