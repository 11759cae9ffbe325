// Several instances, one archive (issue 5, ARCHITECTURE rule 11): two pacsnode PROCESSES on
// different ports share one PostgreSQL database and one s3rver bucket. What one stores the other
// finds, retrieves and deletes; the same study ingested through both at once loses nothing and
// duplicates no row; a job running in one process is read and cancelled through the other.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import type { DicomJsonDataset } from '../../src/dicom/types.js';
import { generateUid } from '../../src/dicom/uids.js';
import { createS3BlobStore } from '../../src/storage/s3/s3-blob-store.js';
import { PATIENTS, simpleInstance, type CorpusPatient } from '../helpers/corpus.js';
import { firstValue, get, items, parseMultipartResponse, request, stow, stringValue, type HttpResponse } from '../helpers/http.js';
import { startPacsnodeProcess, type PacsnodeProcess } from '../helpers/pacsnode-process.js';
import { startProductionBackends, type ProductionBackends } from '../helpers/server.js';

interface Statistics {
  patients: number;
  studies: number;
  series: number;
  instances: number;
  bytes: number;
}

interface JobJson {
  id: string;
  state: string;
  remaining: number;
  completed: number;
  cancel_requested: boolean;
}

async function json<T>(res: HttpResponse, status = 200): Promise<T> {
  assert.equal(res.status, status, `${res.status} ${res.text().slice(0, 300)}`);
  return res.json<T>();
}

async function qido(base: string, pathAndQuery: string): Promise<DicomJsonDataset[]> {
  return json<DicomJsonDataset[]>(await get(`${base}/dicom-web${pathAndQuery}`, { Accept: 'application/dicom+json' }));
}

async function statistics(base: string): Promise<Statistics> {
  return json<Statistics>(await get(`${base}/api/statistics`));
}

/** Polls `read` until `done` holds (bounded). */
async function waitFor<T>(what: string, read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = await read();
  while (!done(last)) {
    if (Date.now() > deadline) assert.fail(`${what}: still ${JSON.stringify(last)} after ${timeoutMs} ms`);
    await delay(50);
    last = await read();
  }
  return last;
}

/** A patient nobody else in this file uses, so that the patient count is exact. */
function freshPatient(): CorpusPatient {
  const id = `TWO-${generateUid().slice(-12)}`;
  return { ...PATIENTS.doe, key: id, patientId: id };
}

describe('two pacsnode processes on one PostgreSQL database and one S3 bucket', () => {
  let backends: ProductionBackends;
  let a: PacsnodeProcess;
  let b: PacsnodeProcess;

  before(async () => {
    backends = await startProductionBackends();
    // Both at once: their migrations meet under the advisory lock.
    [a, b] = await Promise.all([startPacsnodeProcess({ env: backends.env, hooks: true }), startPacsnodeProcess({ env: backends.env })]);
    assert.notEqual(new URL(a.url).port, new URL(b.url).port);
  });

  after(async () => {
    await Promise.allSettled([a?.close(), b?.close()]);
    await backends?.close();
  });

  async function bucketObjects(): Promise<number> {
    const store = createS3BlobStore(backends.s3.storeOptions());
    try {
      let n = 0;
      for await (const _ of store.list()) n++;
      return n;
    } finally {
      await store.close();
    }
  }

  it('stored on A: B finds it, retrieves identical bytes and deletes it; then A no longer finds it', async () => {
    const inst = simpleInstance({ patient: freshPatient() });
    assert.equal((await stow(`${a.url}/dicom-web/studies`, [inst.bytes])).status, 200);

    const found = await qido(b.url, `/studies?StudyInstanceUID=${inst.studyUid}`);
    assert.equal(found.length, 1);
    assert.equal(Number(firstValue(found[0] as DicomJsonDataset, '00201208')), 1);
    const instances = await qido(b.url, `/studies/${inst.studyUid}/instances`);
    assert.deepEqual(instances.map((d) => stringValue(d, '00080018')), [inst.sopUid]);

    const single = await get(`${b.url}/dicom-web/studies/${inst.studyUid}/series/${inst.seriesUid}/instances/${inst.sopUid}`, { Accept: 'application/dicom' });
    assert.equal(single.status, 200);
    assert.ok(single.body.equals(inst.bytes), 'single part from B is byte-identical');
    const study = await get(`${b.url}/wado/studies/${inst.studyUid}`, { Accept: 'multipart/related; type="application/dicom"' });
    assert.equal(study.status, 200);
    const parts = await parseMultipartResponse(study);
    assert.equal(parts.length, 1);
    assert.ok(parts[0]?.body.equals(inst.bytes), 'study multipart from B is byte-identical');

    assert.equal((await request(`${b.url}/api/studies/${inst.studyUid}`, { method: 'DELETE' })).status, 204);
    assert.deepEqual(await qido(a.url, `/studies?StudyInstanceUID=${inst.studyUid}`), []);
    assert.deepEqual(await qido(b.url, `/studies?StudyInstanceUID=${inst.studyUid}`), []);
    assert.equal((await get(`${a.url}/dicom-web/studies/${inst.studyUid}/series/${inst.seriesUid}/instances/${inst.sopUid}`, { Accept: 'application/dicom' })).status, 404);
    assert.equal((await get(`${a.url}/api/studies/${inst.studyUid}`)).status, 404);
    await waitFor('objects left in the bucket', bucketObjects, (n) => n === 0, 5000);
  });

  it('one study ingested through both at once (20 split across A and B, 5 sent to both): no loss, no duplicate rows', async () => {
    const before0 = await statistics(a.url);
    const blobs0 = await bucketObjects();
    const patient = freshPatient();
    const studyUid = generateUid();
    // Four series, each created concurrently by both processes
    const seriesUids = [generateUid(), generateUid(), generateUid(), generateUid()];
    const split = Array.from({ length: 20 }, (_, i) => simpleInstance({ studyUid, seriesUid: seriesUids[i % 4], patient, fill: i }));
    const shared = Array.from({ length: 5 }, (_, i) => simpleInstance({ studyUid, seriesUid: seriesUids[i % 4], patient, fill: 100 + i }));
    const sends = [
      ...split.map((inst, i) => ({ to: i % 2 === 0 ? a : b, inst })),
      ...shared.flatMap((inst) => [{ to: a, inst }, { to: b, inst }]),
    ];
    const results = await Promise.all(sends.map(({ to, inst }) => stow(`${to.url}/dicom-web/studies`, [inst.bytes])));
    results.forEach((r, i) => assert.equal(r.status, 200, `send ${i}: ${r.status} ${r.text().slice(0, 300)}`));
    for (const r of results) assert.equal(items(r.json<DicomJsonDataset>(), '00081199').length, 1);

    const expected = [...split, ...shared].map((x) => x.sopUid).sort();
    for (const srv of [a, b]) {
      const [study] = await qido(srv.url, `/studies?StudyInstanceUID=${studyUid}`);
      assert.ok(study, 'the study is found');
      assert.equal(Number(firstValue(study, '00201206')), 4, 'NumberOfStudyRelatedSeries');
      assert.equal(Number(firstValue(study, '00201208')), 25, 'NumberOfStudyRelatedInstances');
      const rows = await qido(srv.url, `/studies/${studyUid}/instances`);
      assert.deepEqual(rows.map((d) => stringValue(d, '00080018') ?? '').sort(), expected, 'every instance once');
      const series = await qido(srv.url, `/studies/${studyUid}/series`);
      assert.deepEqual(series.map((d) => stringValue(d, '0020000E') ?? '').sort(), [...seriesUids].sort());
      const perSeries = new Map<string, number>();
      for (const x of [...split, ...shared]) perSeries.set(x.seriesUid, (perSeries.get(x.seriesUid) ?? 0) + 1);
      for (const se of series) assert.equal(Number(firstValue(se, '00201209')), perSeries.get(stringValue(se, '0020000E') ?? ''), 'NumberOfSeriesRelatedInstances');
      const patients = await qido(srv.url, `/studies?PatientID=${patient.patientId}`);
      assert.equal(patients.length, 1);
    }
    const after0 = await statistics(b.url);
    assert.deepEqual(
      { patients: after0.patients - before0.patients, studies: after0.studies - before0.studies, series: after0.series - before0.series, instances: after0.instances - before0.instances },
      { patients: 1, studies: 1, series: 4, instances: 25 },
    );
    assert.equal(after0.bytes - before0.bytes, [...split, ...shared].reduce((n, x) => n + x.bytes.length, 0));
    // The loser of each shared pair deleted its own blob: one object per instance
    assert.equal(await bucketObjects(), blobs0 + 25);
  });

  it('a job started on A: B reads its progress and cancels it; a short job ends completed as seen from B', async () => {
    const start = async (steps: number, stepMs: number): Promise<string> => {
      assert.ok(a.hooksUrl, 'A runs with test hooks');
      const res = await request(`${a.hooksUrl}/__test/job`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ steps, stepMs }) });
      return (await json<{ id: string }>(res, 201)).id;
    };
    const readOn = (srv: PacsnodeProcess, id: string) => async (): Promise<JobJson> => json<JobJson>(await get(`${srv.url}/api/jobs/${id}`));

    const long = await start(400, 50);
    const progressing = await waitFor('progress of the job on A, read on B', readOn(b, long), (j) => j.state === 'running' && j.completed >= 3);
    assert.equal(progressing.completed + progressing.remaining, 400);
    const cancel = await json<JobJson>(await request(`${b.url}/api/jobs/${long}`, { method: 'DELETE' }), 202);
    assert.equal(cancel.id, long);
    assert.equal(cancel.cancel_requested, true);
    const cancelled = await waitFor('the job cancelled through B', readOn(b, long), (j) => j.state === 'cancelled', 10_000);
    assert.ok(cancelled.completed < 400, 'it stopped early');
    const onA = await readOn(a, long)();
    assert.equal(onA.state, 'cancelled');
    assert.equal(onA.completed, cancelled.completed);

    const short = await start(3, 20);
    const done = await waitFor('the short job, read on B', readOn(b, short), (j) => j.state === 'completed');
    assert.deepEqual({ completed: done.completed, remaining: done.remaining }, { completed: 3, remaining: 0 });
  });
});
