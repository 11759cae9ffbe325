// The REST API of SPEC §5 on the running server (SQLite file + filesystem blobs): studies, series
// and instances lists and details, every DELETE with the blob files counted on disk, statistics,
// and the error shapes (400 naming the field, 404). Response bodies are checked against the very
// schemas the routes declare.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { z } from 'zod';
import { instanceSchema, seriesSchema, studyDetailSchema, studySchema } from '../../src/http/api/resources.js';
import { instanceListSchema } from '../../src/http/api/series.js';
import { statisticsSchema } from '../../src/http/api/statistics.js';
import { seriesListSchema, studyListSchema } from '../../src/http/api/studies.js';
import { generateUid } from '../../src/dicom/uids.js';
import { writePart10 } from '../../src/dicom/writer.js';
import { datasetElements, SOP_CLASS, TS, type CorpusPatient } from '../helpers/corpus.js';
import { assertJsonError, get, request, stow, type HttpResponse } from '../helpers/http.js';
import { countFiles, startTestServer, type TestServer } from '../helpers/server.js';
import { token } from '../contract/records.js';

type StudyJson = z.output<typeof studySchema>;
type StudyList = z.output<typeof studyListSchema>;

/** Parses with the route's schema and checks that no key is missing or extra (zod objects strip extras). */
function shaped<T extends z.ZodType>(schema: T, value: unknown): z.output<T> {
  const parsed = schema.parse(value);
  assert.deepEqual(value, JSON.parse(JSON.stringify(parsed)), 'response has keys the schema does not declare');
  return parsed;
}

function patient(idPrefix: string, n: number, name: string, birthDate = '19700101', sex = 'F'): CorpusPatient {
  return { key: `${idPrefix}-${n}`, patientId: `${idPrefix}-${n}`, charset: 'ISO_IR 192', nameBytes: Buffer.from(name, 'utf8'), name, alphabetic: name, birthDate, sex };
}

interface Made {
  bytes: Buffer;
  studyUid: string;
  seriesUid: string;
  sopUid: string;
}

function instance(opts: { patient: CorpusPatient; studyUid?: string; seriesUid?: string; modality?: string; studyDate?: string; accession?: string; seriesNumber?: number; instanceNumber?: number; description?: string; pixels?: number }): Made {
  const studyUid = opts.studyUid ?? generateUid();
  const seriesUid = opts.seriesUid ?? generateUid();
  const sopUid = generateUid();
  const dataset = datasetElements({
    patient: opts.patient,
    studyUid,
    seriesUid,
    sopUid,
    sopClassUid: SOP_CLASS.SC,
    modality: opts.modality ?? 'OT',
    studyDate: opts.studyDate ?? '20240101',
    accessionNumber: opts.accession ?? 'ACC',
    studyDescription: opts.description ?? 'REST test',
    seriesNumber: opts.seriesNumber ?? 1,
    instanceNumber: opts.instanceNumber ?? 1,
    image: { rows: 8, cols: 8, bits: 8 },
    extra: [{ tag: '7FE00010', vr: 'OB', value: Buffer.alloc(opts.pixels ?? 64, 9) }],
  });
  const bytes = writePart10({ dataset, transferSyntaxUid: TS.EXPLICIT_LE, sopClassUid: SOP_CLASS.SC, sopInstanceUid: sopUid });
  return { bytes, studyUid, seriesUid, sopUid };
}

describe('REST API /api', () => {
  let srv: TestServer;
  let blobRoot: string;
  before(async () => {
    // Blob and temporary-file counts on the blob folder: the filesystem store, whatever the run's profile
    srv = await startTestServer({}, { profile: 'standalone' });
    blobRoot = srv.config.filesystem_storage.root;
  });
  after(async () => srv?.close());

  const api = (p: string): Promise<HttpResponse> => get(`${srv.url}${p}`);
  const del = (p: string): Promise<HttpResponse> => request(`${srv.url}${p}`, { method: 'DELETE' });
  async function store(...made: Made[]): Promise<void> {
    // One request each, in order, so received_at follows the array order.
    for (const m of made) assert.equal((await stow(`${srv.url}/wado/studies`, [m.bytes])).status, 200);
  }
  async function list(query: string): Promise<StudyList> {
    const res = await api(`/api/studies?${query}`);
    assert.equal(res.status, 200, res.text());
    assert.match(String(res.headers['content-type']), /^application\/json/);
    return shaped(studyListSchema, res.json());
  }
  const uids = (l: StudyList): string[] => l.items.map((s) => s.study_uid);

  it('lists studies in the envelope, newest first by default, filtered, sorted and paged', async () => {
    const p = token('R');
    const s = [
      instance({ patient: patient(p, 1, 'Müller^Jürgen'), studyDate: '20240301', modality: 'CT', accession: `${p}A` }),
      instance({ patient: patient(p, 2, 'Doe^Jane'), studyDate: '20230615', modality: 'MR', accession: `${p}B` }),
      instance({ patient: patient(p, 3, 'MÜLLER^Anna'), studyDate: '20240115', modality: 'CT', accession: `${p}C` }),
      instance({ patient: patient(p, 4, 'Smith^Al'), studyDate: '20220101', modality: 'US', accession: `${p}D` }),
    ];
    const extraSeries = instance({ patient: patient(p, 2, 'Doe^Jane'), studyUid: s[1]?.studyUid, studyDate: '20230615', modality: 'SR', accession: `${p}B`, seriesNumber: 2 });
    await store(...s, extraSeries);
    const [a, b, c, d] = s.map((m) => m.studyUid) as [string, string, string, string];
    const mine = `patient_id=${p}-*`;

    const all = await list(mine);
    assert.deepEqual({ ...all, items: undefined }, { items: undefined, total: 4, limit: 100, offset: 0 });
    assert.deepEqual(uids(all), [d, c, b, a]);
    const rowB = all.items.find((x) => x.study_uid === b) as StudyJson;
    assert.deepEqual({ ...rowB, received_at: undefined, updated_at: undefined, study_time: undefined }, {
      study_uid: b,
      patient_name: 'Doe^Jane',
      patient_id: `${p}-2`,
      patient_birth_date: '19700101',
      patient_sex: 'F',
      study_date: '20230615',
      study_time: undefined,
      study_description: 'REST test',
      accession_number: `${p}B`,
      modalities: ['MR', 'SR'],
      num_series: 2,
      num_instances: 2,
      total_bytes: (s[1] as Made).bytes.length + extraSeries.bytes.length,
      received_at: undefined,
      updated_at: undefined,
    });
    assert.ok(!Number.isNaN(Date.parse(rowB.received_at)) && rowB.received_at.endsWith('Z'));

    assert.deepEqual(uids(await list(`${mine}&sort=received_at`)), [a, b, c, d]);
    assert.deepEqual(uids(await list(`${mine}&sort=-received_at`)), [d, c, b, a]);
    assert.deepEqual(uids(await list(`${mine}&sort=study_date`)), [d, b, c, a]);
    assert.deepEqual(uids(await list(`${mine}&sort=-study_date`)), [a, c, b, d]);

    // Filters: PN wildcards case-insensitive (non-ASCII too), patient ID, date and ranges, modality of any series, accession.
    assert.deepEqual(uids(await list(`${mine}&patient_name=${encodeURIComponent('müller*')}`)).sort(), [a, c].sort());
    assert.deepEqual(uids(await list(`${mine}&patient_name=${encodeURIComponent('doe^jane')}`)), [b]);
    assert.deepEqual(uids(await list(`${mine}&patient_name=${encodeURIComponent('*^?nna')}`)), [c]);
    assert.deepEqual(uids(await list(`patient_id=${p}-4`)), [d]);
    assert.deepEqual(uids(await list(`${mine}&study_date=20240115`)), [c]);
    assert.deepEqual(uids(await list(`${mine}&study_date=20240101-20241231&sort=study_date`)), [c, a]);
    assert.deepEqual(uids(await list(`${mine}&study_date=-20231231&sort=study_date`)), [d, b]);
    assert.deepEqual(uids(await list(`${mine}&study_date=20240201-`)), [a]);
    assert.deepEqual(uids(await list(`${mine}&modality=CT&sort=received_at`)), [a, c]);
    assert.deepEqual(uids(await list(`${mine}&modality=SR`)), [b]);
    assert.deepEqual(uids(await list(`accession_number=${p}D`)), [d]);
    assert.deepEqual(uids(await list(`${mine}&modality=CT&patient_name=${encodeURIComponent('MÜLLER^J*')}`)), [a]);
    const none = await list(`${mine}&modality=XA`);
    assert.deepEqual(none, { items: [], total: 0, limit: 100, offset: 0 });

    // Pages concatenate to the whole, each with the exact total.
    const paged: string[] = [];
    for (let offset = 0; offset < 4; offset += 3) {
      const page = await list(`${mine}&sort=study_date&limit=3&offset=${offset}`);
      assert.deepEqual([page.total, page.limit, page.offset], [4, 3, offset]);
      paged.push(...uids(page));
    }
    assert.deepEqual(paged, [d, b, c, a]);
    assert.deepEqual(await list(`${mine}&offset=10`), { items: [], total: 4, limit: 100, offset: 10 });
  });

  it('answers study detail with its series, the series and instance lists, and instance details', async () => {
    const p = token('D');
    const pat = patient(p, 1, 'Detail^Dora', '19800202', 'F');
    const first = instance({ patient: pat, modality: 'MR', seriesNumber: 2, instanceNumber: 1 });
    const i1 = instance({ patient: pat, studyUid: first.studyUid, modality: 'CT', seriesNumber: 1, instanceNumber: 2, pixels: 100 });
    const i2 = instance({ patient: pat, studyUid: first.studyUid, seriesUid: i1.seriesUid, modality: 'CT', seriesNumber: 1, instanceNumber: 1, pixels: 200 });
    await store(first, i1, i2);
    const S = first.studyUid;

    const detailRes = await api(`/api/studies/${S}`);
    assert.equal(detailRes.status, 200);
    const detail = shaped(studyDetailSchema, detailRes.json());
    assert.deepEqual([detail.num_series, detail.num_instances, detail.total_bytes], [2, 3, first.bytes.length + i1.bytes.length + i2.bytes.length]);
    assert.deepEqual(detail.modalities, ['CT', 'MR']);
    assert.deepEqual([detail.patient_name, detail.patient_birth_date, detail.patient_sex], ['Detail^Dora', '19800202', 'F']);
    assert.deepEqual(detail.series.map((x) => [x.series_uid, x.series_number, x.modality, x.num_instances]), [
      [i1.seriesUid, 1, 'CT', 2],
      [first.seriesUid, 2, 'MR', 1],
    ]);

    const seriesList = shaped(seriesListSchema, (await api(`/api/studies/${S}/series`)).json());
    assert.deepEqual({ ...seriesList, items: undefined }, { items: undefined, total: 2, limit: 100, offset: 0 });
    assert.deepEqual(seriesList.items, detail.series);
    const page2 = shaped(seriesListSchema, (await api(`/api/studies/${S}/series?limit=1&offset=1`)).json());
    assert.deepEqual([page2.total, page2.items.map((x) => x.series_uid)], [2, [first.seriesUid]]);

    const series = shaped(seriesSchema, (await api(`/api/series/${i1.seriesUid}`)).json());
    assert.deepEqual(series, detail.series[0]);
    assert.equal(series.total_bytes, i1.bytes.length + i2.bytes.length);
    assert.equal(series.study_uid, S);

    const instances = shaped(instanceListSchema, (await api(`/api/series/${i1.seriesUid}/instances`)).json());
    assert.deepEqual([instances.total, instances.items.map((x) => [x.sop_uid, x.instance_number])], [2, [[i2.sopUid, 1], [i1.sopUid, 2]]]);

    const one = shaped(instanceSchema, (await api(`/api/instances/${i1.sopUid}`)).json());
    assert.deepEqual({ ...one, received_at: undefined }, {
      sop_uid: i1.sopUid,
      series_uid: i1.seriesUid,
      study_uid: S,
      sop_class_uid: SOP_CLASS.SC,
      transfer_syntax_uid: TS.EXPLICIT_LE,
      instance_number: 2,
      size: i1.bytes.length,
      received_at: undefined,
    });
    assert.deepEqual(instances.items[1], one);
  });

  it('DELETE instance, series and study: rows and blob files go, parents keep exact counters, QIDO no longer finds them', async () => {
    const p = token('X');
    const pat = patient(p, 1, 'Delete^Dan');
    const a = instance({ patient: pat, seriesNumber: 1, instanceNumber: 1, modality: 'CT' });
    const b = instance({ patient: pat, studyUid: a.studyUid, seriesUid: a.seriesUid, seriesNumber: 1, instanceNumber: 2, modality: 'CT', pixels: 128 });
    const c = instance({ patient: pat, studyUid: a.studyUid, seriesNumber: 2, modality: 'MR', pixels: 256 });
    const d = instance({ patient: pat, studyUid: a.studyUid, seriesUid: c.seriesUid, seriesNumber: 2, instanceNumber: 2, modality: 'MR' });
    await store(a, b, c, d);
    const S = a.studyUid;
    const files0 = await countFiles(blobRoot);
    const qido = async (path: string): Promise<unknown[]> => (await get(`${srv.url}/wado${path}`, { Accept: 'application/dicom+json' })).json<unknown[]>();
    assert.equal((await qido(`/studies/${S}/instances`)).length, 4);

    // Instance.
    const r1 = await del(`/api/instances/${a.sopUid}`);
    assert.equal(r1.status, 204);
    assert.equal(r1.body.length, 0);
    assert.equal((await countFiles(blobRoot)).blobs, files0.blobs - 1);
    assertJsonError(await api(`/api/instances/${a.sopUid}`), 404, 'NOT_FOUND');
    const se1 = shaped(seriesSchema, (await api(`/api/series/${a.seriesUid}`)).json());
    assert.deepEqual([se1.num_instances, se1.total_bytes], [1, b.bytes.length]);
    let st = shaped(studyDetailSchema, (await api(`/api/studies/${S}`)).json());
    assert.deepEqual([st.num_series, st.num_instances, st.total_bytes], [2, 3, b.bytes.length + c.bytes.length + d.bytes.length]);
    assert.deepEqual((await qido(`/instances?SOPInstanceUID=${a.sopUid}`)), []);
    assertJsonError(await del(`/api/instances/${a.sopUid}`), 404, 'NOT_FOUND');

    // Series.
    const r2 = await del(`/api/series/${c.seriesUid}`);
    assert.equal(r2.status, 204);
    assert.equal((await countFiles(blobRoot)).blobs, files0.blobs - 3);
    assertJsonError(await api(`/api/series/${c.seriesUid}`), 404, 'NOT_FOUND');
    assertJsonError(await api(`/api/series/${c.seriesUid}/instances`), 404, 'NOT_FOUND');
    st = shaped(studyDetailSchema, (await api(`/api/studies/${S}`)).json());
    assert.deepEqual([st.num_series, st.num_instances, st.total_bytes, st.modalities], [1, 1, b.bytes.length, ['CT']]);
    assert.deepEqual(await qido(`/studies/${S}/series?SeriesInstanceUID=${c.seriesUid}`), []);
    assert.equal((await qido(`/studies/${S}/instances`)).length, 1);

    // Study (with what is left).
    const r3 = await del(`/api/studies/${S}`);
    assert.equal(r3.status, 204);
    const files3 = await countFiles(blobRoot);
    assert.equal(files3.blobs, files0.blobs - 4);
    assert.equal(files3.temporaries, 0);
    assertJsonError(await api(`/api/studies/${S}`), 404, 'NOT_FOUND');
    assertJsonError(await api(`/api/studies/${S}/series`), 404, 'NOT_FOUND');
    assertJsonError(await api(`/api/instances/${b.sopUid}`), 404, 'NOT_FOUND');
    assert.deepEqual(await qido(`/studies?StudyInstanceUID=${S}`), []);
    assert.equal((await list(`patient_id=${p}-*`)).total, 0);
    assertJsonError(await del(`/api/studies/${S}`), 404, 'NOT_FOUND');
    assertJsonError(await del(`/api/series/${c.seriesUid}`), 404, 'NOT_FOUND');
  });

  it('deleting the last instance of a series and study removes them too', async () => {
    const m = instance({ patient: patient(token('L'), 1, 'Last^One') });
    await store(m);
    const files0 = await countFiles(blobRoot);
    assert.equal((await del(`/api/instances/${m.sopUid}`)).status, 204);
    assert.equal((await countFiles(blobRoot)).blobs, files0.blobs - 1);
    assertJsonError(await api(`/api/series/${m.seriesUid}`), 404, 'NOT_FOUND');
    assertJsonError(await api(`/api/studies/${m.studyUid}`), 404, 'NOT_FOUND');
  });

  it('statistics follow ingest and delete', async () => {
    const stats = async () => shaped(statisticsSchema, (await api('/api/statistics')).json());
    const s0 = await stats();
    const p = token('S');
    const x = instance({ patient: patient(p, 1, 'Stat^A'), modality: 'NM' });
    const y = instance({ patient: patient(p, 1, 'Stat^A'), studyUid: x.studyUid, modality: 'PT', seriesNumber: 2 });
    const z = instance({ patient: patient(p, 2, 'Stat^B'), modality: 'NM' });
    await store(x, y, z);
    const s1 = await stats();
    const bytes = x.bytes.length + y.bytes.length + z.bytes.length;
    assert.deepEqual(
      [s1.patients - s0.patients, s1.studies - s0.studies, s1.series - s0.series, s1.instances - s0.instances, s1.bytes - s0.bytes, s1.received_last_24h - s0.received_last_24h],
      [2, 2, 3, 3, bytes, 3],
    );
    assert.equal((s1.by_modality['NM'] ?? 0) - (s0.by_modality['NM'] ?? 0), 2);
    assert.equal((s1.by_modality['PT'] ?? 0) - (s0.by_modality['PT'] ?? 0), 1);
    assert.equal(Object.values(s1.by_modality).reduce((t, n) => t + n, 0), s1.instances);

    assert.equal((await del(`/api/studies/${x.studyUid}`)).status, 204);
    const s2 = await stats();
    assert.deepEqual(
      [s2.patients - s0.patients, s2.studies - s0.studies, s2.series - s0.series, s2.instances - s0.instances, s2.bytes - s0.bytes],
      [1, 1, 1, 1, z.bytes.length],
    );
    assert.equal((s2.by_modality['PT'] ?? 0) - (s0.by_modality['PT'] ?? 0), 0);
    // "Received in the last 24 h" counts arrivals; a deletion does not undo them.
    assert.equal(s2.received_last_24h - s0.received_last_24h, 3);
  });

  it('bad parameters are 400 naming the field', async () => {
    const S = generateUid();
    const cases: [string, string, string][] = [
      ['/api/studies?limit=abc', 'limit', 'INVALID_PARAMETER'],
      ['/api/studies?limit=0', 'limit', 'INVALID_PARAMETER'],
      ['/api/studies?limit=1001', 'limit', 'INVALID_PARAMETER'],
      ['/api/studies?offset=-1', 'offset', 'INVALID_PARAMETER'],
      ['/api/studies?sort=bogus', 'sort', 'INVALID_PARAMETER'],
      ['/api/studies?sort=patient_name', 'sort', 'INVALID_PARAMETER'],
      ['/api/studies?study_date=2024', 'study_date', 'INVALID_PARAMETER'],
      ['/api/studies?study_date=20240101-2024', 'study_date', 'INVALID_PARAMETER'],
      ['/api/studies?study_date=-', 'study_date', 'INVALID_PARAMETER'],
      [`/api/studies/${S}/series?limit=x`, 'limit', 'INVALID_PARAMETER'],
      ['/api/series/1.2.3/instances?offset=1.5', 'offset', 'INVALID_PARAMETER'],
      ['/api/studies/1..2', 'study', 'INVALID_UID'],
      ['/api/series/abc', 'series', 'INVALID_UID'],
      ['/api/instances/1.2.x', 'instance', 'INVALID_UID'],
    ];
    for (const [path, field, code] of cases) {
      const body = assertJsonError(await api(path), 400, code);
      assert.equal(body.error.details['field'], field, path);
      assert.ok(body.error.message.includes(field), `${path}: ${body.error.message}`);
    }
    const body = assertJsonError(await del('/api/studies/1..2'), 400, 'INVALID_UID');
    assert.equal(body.error.details['field'], 'study');
  });

  it('unknown resources are 404 in the error shape', async () => {
    for (const path of [`/api/studies/${generateUid()}`, `/api/studies/${generateUid()}/series`, `/api/series/${generateUid()}`, `/api/series/${generateUid()}/instances`, `/api/instances/${generateUid()}`]) {
      assertJsonError(await api(path), 404, 'NOT_FOUND');
    }
    for (const path of [`/api/studies/${generateUid()}`, `/api/series/${generateUid()}`, `/api/instances/${generateUid()}`]) {
      assertJsonError(await del(path), 404, 'NOT_FOUND');
    }
    assertJsonError(await api('/api/nothing-here'), 404, 'ROUTE_NOT_FOUND');
  });
});
