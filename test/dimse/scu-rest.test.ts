// The node actions of SPEC §5 (POST /api/nodes/{ae}/echo|find|store) through inject(), with the
// real SCU (createScu) against DCMTK storescp and dcmqrscp; the instances sent come from a real
// archive (SQLite + filesystem blobs) filled over DIMSE.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { createJobService, type JobService } from '../../src/archive/jobs.js';
import { createNodeService, type NodeService } from '../../src/archive/nodes.js';
import { ANONYMOUS } from '../../src/archive/origin.js';
import { JPEG_BASELINE } from '../../src/dicom/transfer-syntax.js';
import { createScu } from '../../src/dimse/scu/index.js';
import { registerNodeRoutes, type NodeScu } from '../../src/http/api/nodes.js';
import type { JobJson } from '../../src/http/api/jobs.js';
import { errorHandler, notFoundHandler } from '../../src/http/errors.js';
import { createSqliteStores, type SqliteStores } from '../../src/storage/sqlite/sqlite-metadata-store.js';
import { generateCorpus, type Corpus } from '../helpers/corpus.js';
import { AE, datasetOf, startDimse, type TestDimse } from './helpers.js';
import { fileDataset, freePort, startQrscp, startStorescp, type RunningPeer } from './scu-peers.js';

const CTX = { principal: ANONYMOUS, origin: { protocol: 'internal' as const } };

interface ErrorJson {
  error: { code: string; message: string; details: Record<string, unknown> };
}

describe('/api/nodes/{ae}/echo|find|store', () => {
  let corpus: Corpus;
  let source: TestDimse;
  let stores: SqliteStores;
  let nodes: NodeService;
  let jobs: JobService;
  let app: FastifyInstance;
  let storescp: RunningPeer;
  let strict: RunningPeer;
  let qr: RunningPeer;

  before(async () => {
    corpus = await generateCorpus();
    source = await startDimse();
    const scu = createScu({ callingAe: AE, timeoutSecs: 5 });
    const loaded = await scu.store({ host: '127.0.0.1', port: source.port, calledAe: AE }, corpus.files.map((f) => f.path));
    assert.equal(loaded.failed, 0);
    storescp = await startStorescp({ acceptAll: true });
    strict = await startStorescp({ aeTitle: 'STRICTSCP' });
    qr = await startQrscp(corpus.files.filter((f) => !/^1\.2\.840\.10008\.1\.2\.(4|5)/.test(f.transferSyntax)).map((f) => f.path));
    stores = createSqliteStores({ path: ':memory:' });
    await stores.migrate();
    nodes = createNodeService({ store: stores.nodes });
    jobs = createJobService({ store: stores.jobs, progressIntervalMs: 0 });
    for (const [ae, port] of [[storescp.aeTitle, storescp.port], [strict.aeTitle, strict.port], [qr.aeTitle, qr.port], ['GONE', await freePort()], ['WRONGAE', source.port]] as const) {
      await nodes.upsert(CTX, { aeTitle: ae, host: '127.0.0.1', port });
    }
    app = Fastify();
    app.setValidatorCompiler(validatorCompiler);
    app.setSerializerCompiler(serializerCompiler);
    app.setErrorHandler(errorHandler);
    app.setNotFoundHandler(notFoundHandler);
    app.decorateRequest('principal', null);
    // The SCU of dimse/scu is what main.ts hands to the routes: it must satisfy their port.
    const port: NodeScu = scu;
    registerNodeRoutes(app, { nodes, jobs, scu: port, archive: source.archive });
    await app.ready();
  });
  after(async () => {
    await app?.close();
    await jobs?.close();
    await stores?.close();
    await storescp?.stop();
    await strict?.stop();
    await qr?.stop();
    await source?.close();
    await corpus?.cleanup();
  });

  const post = (url: string, payload?: object) => app.inject({ method: 'POST', url, ...(payload ? { payload } : {}) });

  describe('echo', () => {
    it('answers ok with the duration', async () => {
      const res = await post('/api/nodes/STORESCP/echo');
      assert.equal(res.statusCode, 200, res.body);
      const body = res.json<{ ok: boolean; ae_title: string; duration_ms: number }>();
      assert.equal(body.ok, true);
      assert.equal(body.ae_title, 'STORESCP');
      assert.ok(body.duration_ms >= 0);
    });

    it('answers 502 DIMSE_ECHO_FAILED when the node cannot be reached', async () => {
      const res = await post('/api/nodes/GONE/echo');
      assert.equal(res.statusCode, 502, res.body);
      const body = res.json<ErrorJson>();
      assert.equal(body.error.code, 'DIMSE_ECHO_FAILED');
      assert.equal(body.error.details['reason'], 'CONNECT_FAILED');
      assert.equal(body.error.details['ae_title'], 'GONE');
    });

    it('answers 502 with details.reason ASSOCIATION_REJECTED (and the A-ASSOCIATE-RJ fields) when the node rejects', async () => {
      // WRONGAE is our own SCP under another called AE title: rejected 1/1/7.
      const res = await post('/api/nodes/WRONGAE/echo');
      assert.equal(res.statusCode, 502, res.body);
      const details = res.json<ErrorJson>().error.details;
      assert.equal(details['reason'], 'ASSOCIATION_REJECTED');
      assert.equal(details['ae_title'], 'WRONGAE');
      assert.deepEqual([details['result'], details['source'], details['dicom_reason']], [1, 1, 7]);
    });

    it('answers 404 for an unknown node', async () => {
      const res = await post('/api/nodes/NOBODY/echo');
      assert.equal(res.statusCode, 404);
      assert.equal(res.json<ErrorJson>().error.code, 'NOT_FOUND');
    });
  });

  describe('find', () => {
    it('answers the matches as a DICOM JSON array', async () => {
      const res = await post('/api/nodes/QRSCP/find', { level: 'STUDY', keys: { PatientName: 'DOE*' }, includefield: ['StudyDescription'] });
      assert.equal(res.statusCode, 200, res.body);
      const results = res.json<Record<string, { vr: string; Value?: unknown[] }>[]>();
      assert.ok(results.length > 0);
      for (const r of results) {
        assert.ok(r['0020000D']?.Value?.[0]);
        assert.equal(r['00100010']?.vr, 'PN');
        assert.ok(r['00081030']);
      }
    });

    it('stops at limit', async () => {
      const res = await post('/api/nodes/QRSCP/find', { level: 'IMAGE', model: 'patient', keys: { PatientID: '', StudyInstanceUID: '', SeriesInstanceUID: '' }, limit: 1 });
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.json<unknown[]>().length, 1);
    });

    it('answers 400 for an unknown key and for a bad level', async () => {
      const unknownKey = await post('/api/nodes/QRSCP/find', { level: 'STUDY', keys: { NoSuchKeyword: 'x' } });
      assert.equal(unknownKey.statusCode, 400, unknownKey.body);
      assert.equal(unknownKey.json<ErrorJson>().error.code, 'INVALID_PARAMETER');
      const badLevel = await post('/api/nodes/QRSCP/find', { level: 'FRAME' });
      assert.equal(badLevel.statusCode, 400);
    });

    it('answers 502 DIMSE_FIND_FAILED when the node does not do C-FIND', async () => {
      const res = await post('/api/nodes/STORESCP/find', { level: 'STUDY' });
      assert.equal(res.statusCode, 502, res.body);
      assert.equal(res.json<ErrorJson>().error.code, 'DIMSE_FIND_FAILED');
    });
  });

  describe('store', () => {
    it('sends a study as a job; ?wait=true answers with the finished job', async () => {
      const study = corpus.files[0]?.studyUid as string;
      const files = corpus.files.filter((f) => f.studyUid === study);
      const res = await post('/api/nodes/STORESCP/store?wait=true', { level: 'STUDY', study_uid: study });
      assert.equal(res.statusCode, 200, res.body);
      const job = res.json<JobJson & { job_id: string }>();
      assert.equal(job.job_id, job.id);
      assert.equal(job.kind, 'store');
      assert.equal(job.state, 'completed');
      assert.deepEqual({ remaining: job.remaining, completed: job.completed, failed: job.failed }, { remaining: 0, completed: files.length, failed: 0 });
      assert.deepEqual(job.request, { ae_title: 'STORESCP', level: 'STUDY', study_uid: study });
      const written = await storescp.files();
      for (const f of files) {
        const out = written.find((w) => w.endsWith(f.sopUid));
        assert.ok(out, `${f.label} not received`);
        assert.ok((await fileDataset(out)).equals(datasetOf(f.bytes)), `${f.label}: data set differs`);
      }
    });

    it('answers 202 with a job id and runs the job', async () => {
      const f = corpus.files[1];
      assert.ok(f);
      const res = await post('/api/nodes/STORESCP/store', { level: 'IMAGE', study_uid: f.studyUid, sop_uids: [f.sopUid] });
      assert.equal(res.statusCode, 202, res.body);
      const { job_id } = res.json<{ job_id: string }>();
      let job = await jobs.get(CTX, job_id);
      for (let i = 0; i < 100 && job.state === 'running'; i++) {
        await new Promise((r) => setTimeout(r, 50));
        job = await jobs.get(CTX, job_id);
      }
      assert.equal(job.state, 'completed');
      assert.equal(job.completed, 1);
    });

    it('counts instances the node refuses as failed, with their UIDs; when it takes none, the job fails saying why', async () => {
      const jpeg = corpus.files.find((f) => f.transferSyntax === JPEG_BASELINE);
      assert.ok(jpeg);
      const inSeries = corpus.files.filter((f) => f.seriesUid === jpeg.seriesUid);
      assert.ok(inSeries.every((f) => f.transferSyntax === JPEG_BASELINE), 'a series the node refuses whole');
      const res = await post('/api/nodes/STRICTSCP/store?wait=true', { level: 'SERIES', study_uid: jpeg.studyUid, series_uid: jpeg.seriesUid });
      assert.equal(res.statusCode, 200, res.body);
      const job = res.json<JobJson>();
      assert.equal(job.state, 'failed');
      assert.equal(job.failed, inSeries.length);
      assert.equal(job.completed, 0);
      assert.ok(job.failed_uids.includes(jpeg.sopUid));
      assert.match(job.error ?? '', /^STRICTSCP stored none of the \d+ instances; the first: [0-9.]+: transfer syntax 1\.2\.840\.10008\.1\.2\.4\.50 not accepted/);
    });

    it('fails the job when the node cannot be reached', async () => {
      const f = corpus.files[0];
      assert.ok(f);
      const res = await post('/api/nodes/GONE/store?wait=true', { level: 'STUDY', study_uid: f.studyUid });
      assert.equal(res.statusCode, 200, res.body);
      const job = res.json<JobJson>();
      assert.equal(job.state, 'failed');
      assert.match(job.error ?? '', /cannot connect/);
    });

    it('answers 400 for a SERIES request without series_uid and 404 for an unknown study or instance', async () => {
      const f = corpus.files[0];
      assert.ok(f);
      const noSeries = await post('/api/nodes/STORESCP/store', { level: 'SERIES', study_uid: f.studyUid });
      assert.equal(noSeries.statusCode, 400);
      assert.equal(noSeries.json<ErrorJson>().error.details['field'], 'series_uid');
      const unknownStudy = await post('/api/nodes/STORESCP/store', { level: 'STUDY', study_uid: '1.2.3.4.5' });
      assert.equal(unknownStudy.statusCode, 404);
      const unknownSop = await post('/api/nodes/STORESCP/store', { level: 'IMAGE', study_uid: f.studyUid, sop_uids: [f.sopUid, '1.2.3'] });
      assert.equal(unknownSop.statusCode, 404);
      assert.deepEqual(unknownSop.json<ErrorJson>().error.details['sop_uids'], ['1.2.3']);
      const badUid = await post('/api/nodes/STORESCP/store', { level: 'STUDY', study_uid: '1..2' });
      assert.equal(badUid.statusCode, 400);
    });
  });
});
