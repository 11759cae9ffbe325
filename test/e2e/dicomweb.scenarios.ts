// The DICOMweb end-to-end scenarios, run on a real server over loopback by dicomweb.test.ts (the
// run's default profile, PACS_TEST_PROFILE) and dicomweb.production.test.ts (PostgreSQL + S3):
// STOW-RS (dicomweb-client and raw multipart, both roots), WADO-RS byte identity at every level,
// metadata / bulk data / ETag, frames, QIDO-RS on the Annex H/I/J names and the matching rules,
// and the STOW-RS status and reason codes. Blob counts list the BlobStore, so they hold on both.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { api } from 'dicomweb-client';
import type { DicomJsonDataset } from '../../src/dicom/types.js';
import { generateUid } from '../../src/dicom/uids.js';
import { writePart10 } from '../../src/dicom/writer.js';
import { generateCorpus, simpleInstance, TS, type Corpus, type CorpusFile, type CorpusStudy } from '../helpers/corpus.js';
import {
  assertJsonError,
  element,
  firstValue,
  get,
  installXhr,
  items,
  multipartBody,
  newBoundary,
  parseMultipartResponse,
  personName,
  request,
  stow,
  stringValue,
  values,
  type HttpResponse,
} from '../helpers/http.js';
import { defaultTestProfile, startTestServer, type TestProfile, type TestServer } from '../helpers/server.js';

const DICOM_JSON = /^application\/dicom\+json\b/;
const MULTIPART_DICOM = 'multipart/related; type="application/dicom"';
const FRAMES_ANY_TS = 'multipart/related; type="application/octet-stream"; transfer-syntax=*';

function toArrayBuffer(b: Buffer): ArrayBuffer {
  const ab = new ArrayBuffer(b.length);
  new Uint8Array(ab).set(b);
  return ab;
}

function instancePath(f: CorpusFile): string {
  return `/studies/${f.studyUid}/series/${f.seriesUid}/instances/${f.sopUid}`;
}

async function qido(base: string, pathAndQuery: string): Promise<{ res: HttpResponse; results: DicomJsonDataset[] }> {
  const res = await get(`${base}${pathAndQuery}`, { Accept: 'application/dicom+json' });
  assert.equal(res.status, 200, `${pathAndQuery}: ${res.status} ${res.text().slice(0, 300)}`);
  assert.match(String(res.headers['content-type']), DICOM_JSON);
  const results = res.json<DicomJsonDataset[]>();
  assert.ok(Array.isArray(results));
  return { res, results };
}

function studyUids(results: DicomJsonDataset[]): string[] {
  return results.map((r) => stringValue(r, '0020000D') ?? '').sort();
}

function uidsOf(...studies: CorpusStudy[]): string[] {
  return studies.map((s) => s.studyUid).sort();
}

// -------------------------------------------------------------------------------------------------

function failedReasons(body: DicomJsonDataset): number[] {
  return items(body, '00081198').map((i) => Number(firstValue(i, '00081197')));
}

/**
 * Registers the DICOMweb end-to-end suites on `profile` (default: the run's, PACS_TEST_PROFILE).
 */
export function describeDicomweb(profile: TestProfile = defaultTestProfile()): void {
  describe(`DICOMweb over a real server (${profile}): corpus round trip`, () => {
    let srv: TestServer;
    let corpus: Corpus;
    const storeResponses: { how: string; res: { status: number; body: DicomJsonDataset }; files: CorpusFile[]; root: string }[] = [];

    before(async () => {
      corpus = await generateCorpus();
      srv = await startTestServer({}, { profile });
      installXhr();
      const byStudy = (key: string): CorpusFile[] => corpus.files.filter((f) => f.studyUid === corpus.study(key).studyUid);

      // 1. dicomweb-client storeInstances on /dicom-web: Müller's study (to /studies/{study}) and Hong's
      // the client resolves on 200 and 202 alike: a request hook keeps the XHR to read its status
      const xhrs: { status: number }[] = [];
      const hook = (xhr: unknown, _metadata: unknown): unknown => {
        xhrs.push(xhr as { status: number });
        return xhr;
      };
      const client = new api.DICOMwebClient({ url: `${srv.url}/dicom-web`, singlepart: false, verbose: false, requestHooks: [hook] });
      const lastStatus = (): number => xhrs[xhrs.length - 1]?.status ?? 0;
      const mueller = byStudy('mueller');
      const r1: unknown = await client.storeInstances({ datasets: mueller.map((f) => toArrayBuffer(f.bytes)), studyInstanceUID: corpus.study('mueller').studyUid });
      storeResponses.push({ how: 'dicomweb-client /studies/{study}', res: { status: lastStatus(), body: JSON.parse(String(r1)) as DicomJsonDataset }, files: mueller, root: '/dicom-web' });
      const hong = byStudy('hong');
      const r2: unknown = await client.storeInstances({ datasets: hong.map((f) => toArrayBuffer(f.bytes)) });
      storeResponses.push({ how: 'dicomweb-client /studies', res: { status: lastStatus(), body: JSON.parse(String(r2)) as DicomJsonDataset }, files: hong, root: '/dicom-web' });
      assert.equal(xhrs.length, 2);

      // 2. raw multipart (quoted type) on /wado/studies: Yamada's and Wang's (UTF-8) studies in one body
      const raw = [...byStudy('yamada'), ...byStudy('wangUtf8')];
      const r3 = await stow(`${srv.url}/wado/studies`, raw.map((f) => f.bytes));
      storeResponses.push({ how: 'raw multipart /wado/studies', res: { status: r3.status, body: r3.json<DicomJsonDataset>() }, files: raw, root: '/wado' });

      // 3. raw multipart, unquoted type, preamble and epilogue, extra parameter, /dicom-web/studies/{study}
      const doe = byStudy('doe');
      const boundary = newBoundary();
      const body = multipartBody(doe.map((f) => ({ body: f.bytes })), boundary, { preamble: 'this is a preamble', epilogue: 'and an epilogue\r\n' });
      const r4 = await request(`${srv.url}/dicom-web/studies/${corpus.study('doe').studyUid}`, {
        method: 'POST',
        headers: { 'Content-Type': `multipart/related; type=application/dicom; start="<x@y>"; boundary=${boundary}`, Accept: 'application/dicom+json' },
        body,
      });
      storeResponses.push({ how: 'raw multipart unquoted /dicom-web/studies/{study}', res: { status: r4.status, body: r4.json<DicomJsonDataset>() }, files: doe, root: '/dicom-web' });

      // 4. a single application/dicom body: the GB18030 instance
      const gb = byStudy('wangGb');
      assert.equal(gb.length, 1);
      const r5 = await request(`${srv.url}/wado/studies`, { method: 'POST', headers: { 'Content-Type': 'application/dicom' }, body: gb[0]?.bytes });
      storeResponses.push({ how: 'single application/dicom', res: { status: r5.status, body: r5.json<DicomJsonDataset>() }, files: gb, root: '/wado' });
    });

    after(async () => {
      await srv?.close();
      await corpus?.cleanup();
    });

    it('stored every corpus instance: 200, one ReferencedSOPSequence item per instance, RetrieveURLs on the root used', () => {
      const stored = new Set<string>();
      for (const { how, res, files, root } of storeResponses) {
        assert.equal(res.status, 200, `${how}: status ${res.status} ${JSON.stringify(res.body).slice(0, 400)}`);
        assert.equal(element(res.body, '00081198'), undefined, `${how}: no FailedSOPSequence`);
        const refs = items(res.body, '00081199');
        assert.equal(refs.length, files.length, how);
        for (const f of files) {
          const item = refs.find((i) => stringValue(i, '00081155') === f.sopUid);
          assert.ok(item, `${how}: ${f.label} referenced`);
          assert.equal(stringValue(item, '00081150'), f.sopClassUid);
          assert.equal(stringValue(item, '00081190'), `${srv.url}${root}${instancePath(f)}`);
          assert.equal(element(item, '00081196'), undefined, `${how}: ${f.label} has no WarningReason`);
          stored.add(f.sopUid);
        }
      }
      assert.equal(stored.size, corpus.files.length);
      // RetrieveURL of the study when the body held one study
      const one = storeResponses[0];
      assert.ok(one);
      assert.equal(stringValue(one.res.body, '00081190'), `${srv.url}/dicom-web/studies/${corpus.study('mueller').studyUid}`);
    });

    // ---------------------------------------------------------------------------------------------
    // (a) byte identity

    it('(a) study-level multipart retrieve: every part byte-identical, Content-Type names the stored transfer syntax', async () => {
      for (const s of corpus.studies) {
        const files = corpus.files.filter((f) => f.studyUid === s.studyUid);
        for (const root of ['/wado', '/dicom-web']) {
          const res = await get(`${srv.url}${root}/studies/${s.studyUid}`, { Accept: MULTIPART_DICOM });
          assert.equal(res.status, 200);
          assert.match(String(res.headers['content-type']), /^multipart\/related;/);
          assert.match(String(res.headers['content-type']), /type="?application\/dicom"?/);
          const parts = await parseMultipartResponse(res);
          assert.equal(parts.length, files.length, `${s.key}: part count`);
          for (const f of files) {
            const part = parts.find((p) => p.body.equals(f.bytes));
            assert.ok(part, `${s.key}/${f.label}: a part byte-identical to the sent file`);
            assert.equal(part.headers['content-type'], `application/dicom; transfer-syntax=${f.transferSyntax}`);
          }
        }
      }
    });

    it('(a) series-level multipart retrieve is byte-identical', async () => {
      const seriesUids = [...new Set(corpus.files.map((f) => f.seriesUid))];
      for (const se of seriesUids) {
        const files = corpus.files.filter((f) => f.seriesUid === se);
        const first = files[0] as CorpusFile;
        const res = await get(`${srv.url}/wado/studies/${first.studyUid}/series/${se}`, { Accept: `${MULTIPART_DICOM}; transfer-syntax=*` });
        assert.equal(res.status, 200);
        const parts = await parseMultipartResponse(res);
        assert.equal(parts.length, files.length);
        for (const f of files) {
          const part = parts.find((p) => p.body.equals(f.bytes));
          assert.ok(part, `${f.label}: byte-identical in its series`);
          assert.equal(part.headers['content-type'], `application/dicom; transfer-syntax=${f.transferSyntax}`);
        }
      }
    });

    it('(a) instance-level retrieve, multipart and single part, is byte-identical on both roots', async () => {
      for (const f of corpus.files) {
        for (const root of ['/wado', '/dicom-web']) {
          const url = `${srv.url}${root}${instancePath(f)}`;
          const mp = await get(url, { Accept: MULTIPART_DICOM });
          assert.equal(mp.status, 200);
          const parts = await parseMultipartResponse(mp);
          assert.equal(parts.length, 1);
          assert.ok(parts[0]?.body.equals(f.bytes), `${f.label}: multipart instance identical`);
          assert.equal(parts[0]?.headers['content-type'], `application/dicom; transfer-syntax=${f.transferSyntax}`);

          const single = await get(url, { Accept: 'application/dicom' });
          assert.equal(single.status, 200);
          assert.match(String(single.headers['content-type']), /^application\/dicom\b/);
          assert.ok(single.body.equals(f.bytes), `${f.label}: single part identical`);
          assert.equal(Number(single.headers['content-length']), f.bytes.length);
        }
      }
      // ?accept= decides too, and the stored transfer syntax asked by name is honoured
      const jpeg = corpus.file('jpeg');
      const q = await get(`${srv.url}/wado${instancePath(jpeg)}?accept=${encodeURIComponent('application/dicom')}`);
      assert.equal(q.status, 200);
      assert.ok(q.body.equals(jpeg.bytes));
      const named = await get(`${srv.url}/wado${instancePath(jpeg)}`, { Accept: `${MULTIPART_DICOM}; transfer-syntax=${TS.JPEG_BASELINE}` });
      assert.equal(named.status, 200);
      const namedParts = await parseMultipartResponse(named);
      assert.ok(namedParts[0]?.body.equals(jpeg.bytes));
    });

    it('(a) Accept parsing is tolerant: several ranges, q-values, quoted or unquoted parameters', async () => {
      const f = corpus.file('rle');
      const url = `${srv.url}/wado${instancePath(f)}`;
      const cases: [string, 'multipart' | 'single'][] = [
        ['multipart/related; type=application/dicom', 'multipart'],
        ['multipart/related;type="application/dicom";transfer-syntax=*', 'multipart'],
        ['application/dicom;q=0.4, multipart/related; type="application/dicom"; q=0.9', 'multipart'],
        ['multipart/related; type="application/dicom"; q=0.1, application/dicom', 'single'],
        ['text/html;q=1, application/dicom;q=0.5', 'single'],
      ];
      for (const [accept, kind] of cases) {
        const res = await get(url, { Accept: accept });
        assert.equal(res.status, 200, accept);
        if (kind === 'single') {
          assert.match(String(res.headers['content-type']), /^application\/dicom\b/, accept);
          assert.ok(res.body.equals(f.bytes), accept);
        } else {
          const parts = await parseMultipartResponse(res);
          assert.ok(parts[0]?.body.equals(f.bytes), accept);
          assert.equal(parts[0]?.headers['content-type'], `application/dicom; transfer-syntax=${TS.RLE}`);
        }
      }
      // another transfer syntax than the stored one cannot be transcoded yet: 406
      assertJsonError(await get(url, { Accept: `${MULTIPART_DICOM}; transfer-syntax=${TS.JPEG_BASELINE}` }), 406);
    });

    it('(a) retrieve of unknown UIDs is 404 and a malformed UID in the path is 400, both in the JSON error shape', async () => {
      const f = corpus.file('ct512');
      assertJsonError(await get(`${srv.url}/wado/studies/${generateUid()}`, { Accept: MULTIPART_DICOM }), 404);
      assertJsonError(await get(`${srv.url}/wado/studies/${f.studyUid}/series/${f.seriesUid}/instances/${generateUid()}`, { Accept: 'application/dicom' }), 404);
      assertJsonError(await get(`${srv.url}/wado/studies/1.2.abc/metadata`), 400);
    });

    // ---------------------------------------------------------------------------------------------
    // (d) QIDO-RS on the Annex H / I / J names

    it('(d) QIDO finds the Annex H name by its alphabetic and ideographic groups and returns all three groups', async () => {
      const yamada = corpus.study('yamada');
      for (const q of ['PatientName=Yamada^Tarou', `PatientName=${encodeURIComponent('山田^太郎')}`, 'PatientName=yamada^tarou', 'PatientName=Yamada*', `PatientName=${encodeURIComponent('山田*')}`]) {
        const { results } = await qido(`${srv.url}/wado`, `/studies?${q}`);
        assert.deepEqual(studyUids(results), uidsOf(yamada), q);
        assert.deepEqual(personName(results[0] as DicomJsonDataset), { Alphabetic: 'Yamada^Tarou', Ideographic: '山田^太郎', Phonetic: 'やまだ^たろう' });
      }
    });

    it('(d) QIDO finds the Annex I name (ISO 2022 IR 149) by either group', async () => {
      const hong = corpus.study('hong');
      for (const q of ['PatientName=Hong^Gildong', `PatientName=${encodeURIComponent('洪^吉洞')}`, 'PatientName=HONG*']) {
        const { results } = await qido(`${srv.url}/dicom-web`, `/studies?${q}`);
        assert.deepEqual(studyUids(results), uidsOf(hong), q);
        assert.deepEqual(personName(results[0] as DicomJsonDataset), { Alphabetic: 'Hong^Gildong', Ideographic: '洪^吉洞', Phonetic: '홍^길동' });
      }
    });

    it('(d) QIDO finds the Annex J names: UTF-8 and GB18030 apart by their ideographic groups, together by the alphabetic one', async () => {
      const utf8 = corpus.study('wangUtf8');
      const gb = corpus.study('wangGb');
      let r = await qido(`${srv.url}/wado`, '/studies?PatientName=Wang^XiaoDong');
      assert.deepEqual(studyUids(r.results), uidsOf(utf8, gb));
      r = await qido(`${srv.url}/wado`, `/studies?PatientName=${encodeURIComponent('王^小東')}`);
      assert.deepEqual(studyUids(r.results), uidsOf(utf8));
      assert.equal(personName(r.results[0] as DicomJsonDataset)?.Ideographic, '王^小東');
      r = await qido(`${srv.url}/wado`, `/studies?PatientName=${encodeURIComponent('王^小东')}`);
      assert.deepEqual(studyUids(r.results), uidsOf(gb));
      assert.deepEqual(personName(r.results[0] as DicomJsonDataset)?.Alphabetic, 'Wang^XiaoDong');
      assert.equal(personName(r.results[0] as DicomJsonDataset)?.Ideographic, '王^小东');
      // case-insensitive wildcard on the alphabetic group
      r = await qido(`${srv.url}/wado`, '/studies?PatientName=*xiao*');
      assert.deepEqual(studyUids(r.results), uidsOf(utf8, gb));
      r = await qido(`${srv.url}/wado`, '/studies?PatientName=*XIAODONG');
      assert.deepEqual(studyUids(r.results), uidsOf(utf8, gb));
    });

    it('(d) PN matching is case-insensitive beyond ASCII and accent-sensitive (ISO_IR 100 Müller)', async () => {
      const m = corpus.study('mueller');
      for (const q of ['müller*', 'MÜLLER*', 'Müller^Jürgen', 'müller^jürgen', '*JÜRGEN']) {
        const { results } = await qido(`${srv.url}/wado`, `/studies?PatientName=${encodeURIComponent(q)}`);
        assert.deepEqual(studyUids(results), uidsOf(m), q);
      }
      const { results } = await qido(`${srv.url}/wado`, '/studies?PatientName=muller*');
      assert.deepEqual(results, [], 'accent-sensitive: muller does not match Müller');
      const first = (await qido(`${srv.url}/wado`, `/studies?StudyInstanceUID=${m.studyUid}`)).results[0] as DicomJsonDataset;
      assert.deepEqual(personName(first), { Alphabetic: 'Müller^Jürgen' });
    });

    // ---------------------------------------------------------------------------------------------
    // QIDO matching rules

    it('QIDO: UID lists with "," and "\\", single values, numeric tag keys', async () => {
      const [a, b] = [corpus.study('mueller'), corpus.study('hong')];
      let r = await qido(`${srv.url}/wado`, `/studies?StudyInstanceUID=${a.studyUid},${b.studyUid}`);
      assert.deepEqual(studyUids(r.results), uidsOf(a, b));
      r = await qido(`${srv.url}/wado`, `/studies?StudyInstanceUID=${a.studyUid}${encodeURIComponent('\\')}${b.studyUid}`);
      assert.deepEqual(studyUids(r.results), uidsOf(a, b));
      r = await qido(`${srv.url}/wado`, `/studies?0020000D=${a.studyUid}`);
      assert.deepEqual(studyUids(r.results), uidsOf(a));
      r = await qido(`${srv.url}/wado`, '/studies?00100020=JP-0087');
      assert.deepEqual(studyUids(r.results), uidsOf(corpus.study('yamada')));
      r = await qido(`${srv.url}/wado`, '/studies?PatientID=JP-0087');
      assert.deepEqual(studyUids(r.results), uidsOf(corpus.study('yamada')));
      r = await qido(`${srv.url}/wado`, '/studies?AccessionNumber=ACC-KR-0003');
      assert.deepEqual(studyUids(r.results), uidsOf(b));
      // an invalid UID as a query key is 400
      assertJsonError(await get(`${srv.url}/wado/studies?StudyInstanceUID=1..2`), 400);
    });

    it('QIDO: StudyDate ranges a-b, a-, -b, exact; "-" alone is a 400 JSON error', async () => {
      const s = (k: string): CorpusStudy => corpus.study(k);
      let r = await qido(`${srv.url}/wado`, '/studies?StudyDate=20200101-20201231');
      assert.deepEqual(studyUids(r.results), uidsOf(s('mueller'), s('wangUtf8'), s('doe')));
      r = await qido(`${srv.url}/wado`, '/studies?StudyDate=20210101-');
      assert.deepEqual(studyUids(r.results), uidsOf(s('hong'), s('wangGb')));
      r = await qido(`${srv.url}/wado`, '/studies?StudyDate=-20191231');
      assert.deepEqual(studyUids(r.results), uidsOf(s('yamada')));
      r = await qido(`${srv.url}/wado`, '/studies?StudyDate=20200315');
      assert.deepEqual(studyUids(r.results), uidsOf(s('mueller')));
      const bad = await get(`${srv.url}/wado/studies?StudyDate=-`);
      assertJsonError(bad, 400);
    });

    it('QIDO: includefield comma-separated, repeated and "all"', async () => {
      const m = corpus.study('mueller');
      // SeriesDescription and StudyID are not study defaults... PatientBirthDate is; use series-level keys to see a difference
      let r = await qido(`${srv.url}/wado`, `/studies/${m.studyUid}/series?includefield=00080021,00080031`);
      assert.equal(r.results.length, 3);
      for (const ds of r.results) {
        assert.equal(stringValue(ds, '00080021'), m.studyDate);
        assert.equal(stringValue(ds, '00080031'), '101600');
      }
      r = await qido(`${srv.url}/wado`, `/studies/${m.studyUid}/series?includefield=00080021&includefield=SeriesTime`);
      for (const ds of r.results) {
        assert.equal(stringValue(ds, '00080021'), m.studyDate);
        assert.equal(stringValue(ds, '00080031'), '101600');
      }
      // without includefield these are not returned
      r = await qido(`${srv.url}/wado`, `/studies/${m.studyUid}/series`);
      for (const ds of r.results) assert.equal(element(ds, '00080021'), undefined);
      // all: attributes that no default list has (PixelSpacing of the CT)
      const ct = corpus.file('ct512');
      r = await qido(`${srv.url}/wado`, `/studies/${ct.studyUid}/series/${ct.seriesUid}/instances?includefield=all`);
      assert.equal(r.results.length, 1);
      assert.deepEqual(values(r.results[0] as DicomJsonDataset, '00280030').map(Number), [0.7, 0.7]);
      r = await qido(`${srv.url}/wado`, `/studies/${ct.studyUid}/series/${ct.seriesUid}/instances`);
      assert.equal(element(r.results[0] as DicomJsonDataset, '00280030'), undefined);
    });

    it('QIDO: limit/offset pages with the exact 299 Warning, stable order; no Warning on the last page', async () => {
      const total = corpus.studies.length;
      const seen: string[] = [];
      for (let offset = 0; offset < total; offset += 2) {
        const { res, results } = await qido(`${srv.url}/wado`, `/studies?limit=2&offset=${offset}`);
        assert.equal(results.length, 2);
        const remaining = total - offset - 2;
        if (remaining > 0) assert.equal(res.headers['warning'], `299 pacsnode: "There are ${remaining} additional results that can be requested"`);
        else assert.equal(res.headers['warning'], undefined);
        seen.push(...results.map((d) => stringValue(d, '0020000D') ?? ''));
      }
      assert.deepEqual([...seen].sort(), uidsOf(...corpus.studies));
      // the same pages again give the same order
      const again = await qido(`${srv.url}/wado`, '/studies?limit=2&offset=2');
      assert.deepEqual(again.results.map((d) => stringValue(d, '0020000D')), seen.slice(2, 4));
      const all = await qido(`${srv.url}/wado`, '/studies');
      assert.equal(all.results.length, total);
      assert.equal(all.res.headers['warning'], undefined);
    });

    it('QIDO: no match is 200 with exactly []', async () => {
      const res = await get(`${srv.url}/wado/studies?PatientName=Nobody^Here`, { Accept: 'application/dicom+json' });
      assert.equal(res.status, 200);
      assert.match(String(res.headers['content-type']), DICOM_JSON);
      assert.equal(res.text(), '[]');
      const res2 = await get(`${srv.url}/dicom-web/studies/${generateUid()}/series`);
      assert.equal(res2.status, 200);
      assert.equal(res2.text(), '[]');
    });

    it('QIDO: fuzzymatching=true matches a prefix of any name component; false does not', async () => {
      const y = corpus.study('yamada');
      let r = await qido(`${srv.url}/wado`, '/studies?PatientName=yam&fuzzymatching=true');
      assert.deepEqual(studyUids(r.results), uidsOf(y));
      r = await qido(`${srv.url}/wado`, '/studies?PatientName=tar&fuzzymatching=true');
      assert.deepEqual(studyUids(r.results), uidsOf(y));
      r = await qido(`${srv.url}/wado`, '/studies?PatientName=yam&fuzzymatching=false');
      assert.deepEqual(r.results, []);
      r = await qido(`${srv.url}/wado`, '/studies?PatientName=yam');
      assert.deepEqual(r.results, []);
    });

    it('QIDO: study return attributes (counts, ModalitiesInStudy, availability, RetrieveURL on the root used)', async () => {
      const m = corpus.study('mueller');
      for (const root of ['/wado', '/dicom-web']) {
        const { results } = await qido(`${srv.url}${root}`, `/studies?StudyInstanceUID=${m.studyUid}`);
        assert.equal(results.length, 1);
        const ds = results[0] as DicomJsonDataset;
        assert.equal(Number(firstValue(ds, '00201206')), 3, 'NumberOfStudyRelatedSeries');
        assert.equal(Number(firstValue(ds, '00201208')), 3, 'NumberOfStudyRelatedInstances');
        assert.deepEqual(values(ds, '00080061'), ['CT'], 'ModalitiesInStudy');
        assert.equal(stringValue(ds, '00080056'), 'ONLINE');
        assert.equal(stringValue(ds, '00081190'), `${srv.url}${root}/studies/${m.studyUid}`);
        assert.equal(stringValue(ds, '00100020'), m.patient.patientId);
        assert.equal(stringValue(ds, '00080020'), m.studyDate);
        assert.equal(stringValue(ds, '00080050'), m.accessionNumber);
        assert.equal(stringValue(ds, '00081030'), m.description);
      }
      const r = await qido(`${srv.url}/wado`, '/studies?ModalitiesInStudy=CT');
      assert.deepEqual(studyUids(r.results), uidsOf(m, corpus.study('doe')));
      const w = await qido(`${srv.url}/wado`, `/studies?StudyInstanceUID=${corpus.study('wangUtf8').studyUid}`);
      assert.equal(Number(firstValue(w.results[0] as DicomJsonDataset, '00201206')), 2);
      assert.equal(Number(firstValue(w.results[0] as DicomJsonDataset, '00201208')), 3);
    });

    it('QIDO: series and instance return attributes; "all series" and "all instances" add study (and series) attributes', async () => {
      const mf = corpus.file('multiframe');
      const series = await qido(`${srv.url}/dicom-web`, `/studies/${mf.studyUid}/series`);
      assert.equal(series.results.length, 3);
      const s2 = series.results.find((d) => stringValue(d, '0020000E') === mf.seriesUid);
      assert.ok(s2);
      assert.equal(stringValue(s2, '00080060'), 'CT');
      assert.equal(Number(firstValue(s2, '00200011')), 2);
      assert.equal(Number(firstValue(s2, '00201209')), 1, 'NumberOfSeriesRelatedInstances');
      assert.equal(stringValue(s2, '00081190'), `${srv.url}/dicom-web/studies/${mf.studyUid}/series/${mf.seriesUid}`);

      const allSeries = await qido(`${srv.url}/wado`, '/series?PatientID=JP-0087');
      assert.equal(allSeries.results.length, 2);
      for (const ds of allSeries.results) {
        assert.equal(stringValue(ds, '0020000D'), corpus.study('yamada').studyUid);
        assert.equal(personName(ds)?.Ideographic, '山田^太郎');
      }

      const inst = await qido(`${srv.url}/wado`, `/studies/${mf.studyUid}/series/${mf.seriesUid}/instances`);
      assert.equal(inst.results.length, 1);
      const i = inst.results[0] as DicomJsonDataset;
      assert.equal(stringValue(i, '00080016'), mf.sopClassUid);
      assert.equal(stringValue(i, '00080018'), mf.sopUid);
      assert.equal(Number(firstValue(i, '00280008')), 10);
      assert.equal(Number(firstValue(i, '00280010')), 64);
      assert.equal(Number(firstValue(i, '00280011')), 64);
      assert.equal(stringValue(i, '00081190'), `${srv.url}/wado${instancePath(mf)}`);

      const allInstances = await qido(`${srv.url}/wado`, `/instances?SOPInstanceUID=${mf.sopUid}`);
      assert.equal(allInstances.results.length, 1);
      const ai = allInstances.results[0] as DicomJsonDataset;
      assert.equal(stringValue(ai, '0020000D'), mf.studyUid);
      assert.equal(stringValue(ai, '0020000E'), mf.seriesUid);
      assert.equal(stringValue(ai, '00100020'), mf.patient.patientId);
      assert.equal(stringValue(ai, '00080060'), 'CT');

      const studyInstances = await qido(`${srv.url}/wado`, `/studies/${mf.studyUid}/instances`);
      assert.equal(studyInstances.results.length, 3);
      for (const ds of studyInstances.results) assert.ok(element(ds, '0020000E'), 'study instances carry SeriesInstanceUID');
    });

    // ---------------------------------------------------------------------------------------------
    // metadata, bulk data, ETag

    it('metadata at study, series and instance level: BulkDataURI for pixel data and the big private value, InlineBinary for short binary', async () => {
      const m = corpus.study('mueller');
      const sp = corpus.file('seqPrivate');
      for (const root of ['/wado', '/dicom-web']) {
        const study = await get(`${srv.url}${root}/studies/${m.studyUid}/metadata`, { Accept: 'application/dicom+json' });
        assert.equal(study.status, 200);
        assert.match(String(study.headers['content-type']), DICOM_JSON);
        const list = study.json<DicomJsonDataset[]>();
        assert.equal(list.length, 3);
        const ds = list.find((d) => stringValue(d, '00080018') === sp.sopUid);
        assert.ok(ds);
        const base = `${srv.url}${root}${instancePath(sp)}`;
        assert.equal(element(ds, '00091001')?.BulkDataURI, `${base}/bulkdata/00091001`);
        assert.equal(element(ds, '00091001')?.InlineBinary, undefined);
        assert.equal(element(ds, '00091002')?.InlineBinary, (sp.inline['00091002'] as Buffer).toString('base64'));
        assert.equal(stringValue(ds, '00091003'), 'private text');
        // the sequence and its items
        const refs = items(ds, '00081140');
        assert.deepEqual(refs.map((i) => stringValue(i, '00081155')), [corpus.file('ct512').sopUid, corpus.file('multiframe').sopUid]);
        const req = items(ds, '00400275');
        assert.equal(req.length, 1);
        assert.equal(stringValue(req[0] as DicomJsonDataset, '00401001'), 'RP-1');
        const icon = items(ds, '00880200')[0];
        assert.ok(icon);
        assert.equal(element(icon, '7FE00010')?.BulkDataURI, `${base}/bulkdata/00880200/0/7FE00010`);
        const ct = list.find((d) => stringValue(d, '00080018') === corpus.file('ct512').sopUid);
        assert.ok(ct);
        assert.equal(element(ct, '7FE00010')?.BulkDataURI, `${srv.url}${root}${instancePath(corpus.file('ct512'))}/bulkdata/7FE00010`);
        assert.equal(stringValue(ct, '00020010'), TS.EXPLICIT_LE);
      }
      const series = await get(`${srv.url}/wado/studies/${sp.studyUid}/series/${sp.seriesUid}/metadata`);
      assert.equal(series.status, 200);
      assert.equal(series.json<DicomJsonDataset[]>().length, 1);
      const inst = await get(`${srv.url}/wado${instancePath(corpus.file('implicit'))}/metadata`);
      assert.equal(inst.status, 200);
      const [imd] = inst.json<DicomJsonDataset[]>();
      assert.ok(imd);
      assert.deepEqual(personName(imd), { Alphabetic: 'Yamada^Tarou', Ideographic: '山田^太郎', Phonetic: 'やまだ^たろう' });
      assert.equal(Number(firstValue(imd, '00280010')), 32);
      assert.equal(stringValue(imd, '00020010'), TS.IMPLICIT_LE);
    });

    it('every BulkDataURI returns exactly the bytes of that value in the file (single part and multipart)', async () => {
      let checked = 0;
      for (const f of corpus.files) {
        for (const [tagPath, expected] of Object.entries(f.bulk)) {
          const url = `${srv.url}/wado${instancePath(f)}/bulkdata/${tagPath}`;
          const single = await get(url, { Accept: 'application/octet-stream' });
          assert.equal(single.status, 200, `${f.label} ${tagPath}`);
          assert.ok(single.body.equals(expected), `${f.label} ${tagPath}: single part bytes`);
          const mp = await get(url, { Accept: 'multipart/related; type="application/octet-stream"' });
          assert.equal(mp.status, 200);
          const parts = await parseMultipartResponse(mp);
          assert.equal(parts.length, 1);
          assert.ok(parts[0]?.body.equals(expected), `${f.label} ${tagPath}: multipart bytes`);
          checked++;
        }
      }
      assert.ok(checked >= 5);
      // the URI from metadata itself (not rebuilt by the test)
      const sp = corpus.file('seqPrivate');
      const [md] = (await get(`${srv.url}/dicom-web${instancePath(sp)}/metadata`)).json<DicomJsonDataset[]>();
      const uri = md ? element(md, '00091001')?.BulkDataURI : undefined;
      assert.ok(uri);
      const res = await get(uri, { Accept: 'application/octet-stream' });
      assert.ok(res.body.equals(sp.bulk['00091001'] as Buffer));
      // a path that names no element is 404
      assertJsonError(await get(`${srv.url}/wado${instancePath(sp)}/bulkdata/00091009`, { Accept: 'application/octet-stream' }), 404);
    });

    it('metadata ETag: If-None-Match with it is 304 with no body; another tag is 200', async () => {
      const f = corpus.file('multiframe');
      for (const url of [`${srv.url}/wado/studies/${f.studyUid}/metadata`, `${srv.url}/wado/studies/${f.studyUid}/series/${f.seriesUid}/metadata`, `${srv.url}/wado${instancePath(f)}/metadata`]) {
        const first = await get(url);
        assert.equal(first.status, 200);
        const etag = first.headers['etag'];
        assert.ok(etag, 'ETag present');
        const again = await get(url, { 'If-None-Match': etag });
        assert.equal(again.status, 304);
        assert.equal(again.body.length, 0);
        const other = await get(url, { 'If-None-Match': '"something-else"' });
        assert.equal(other.status, 200);
        assert.ok(other.body.length > 2);
      }
    });

    // ---------------------------------------------------------------------------------------------
    // frames

    async function frames(f: CorpusFile, list: string, accept: string): Promise<{ res: HttpResponse; bodies: Buffer[]; types: (string | undefined)[] }> {
      const res = await get(`${srv.url}/wado${instancePath(f)}/frames/${list}`, { Accept: accept });
      assert.equal(res.status, 200, `${f.label} frames ${list}: ${res.status} ${res.text().slice(0, 200)}`);
      assert.ok(res.body.length > 0);
      const parts = await parseMultipartResponse(res);
      return { res, bodies: parts.map((p) => p.body), types: parts.map((p) => p.headers['content-type']) };
    }

    it('frames: native frames equal the expected pixel bytes (single, multi-frame, implicit VR, big endian returned little endian)', async () => {
      const mf = corpus.file('multiframe');
      const expected = mf.frames as Buffer[];
      for (let n = 1; n <= 10; n++) {
        const { bodies, types } = await frames(mf, String(n), 'multipart/related; type="application/octet-stream"');
        assert.equal(bodies.length, 1);
        assert.ok(bodies[0]?.equals(expected[n - 1] as Buffer), `frame ${n}`);
        assert.equal(types[0], `application/octet-stream; transfer-syntax=${TS.EXPLICIT_LE}`);
      }
      const several = await frames(mf, '1,3,10', FRAMES_ANY_TS);
      assert.equal(several.bodies.length, 3);
      assert.ok(several.bodies[0]?.equals(expected[0] as Buffer));
      assert.ok(several.bodies[1]?.equals(expected[2] as Buffer));
      assert.ok(several.bodies[2]?.equals(expected[9] as Buffer));

      for (const label of ['ct512', 'implicit', 'gb18030']) {
        const f = corpus.file(label);
        const { bodies, types } = await frames(f, '1', FRAMES_ANY_TS);
        assert.ok(bodies[0]?.equals((f.frames as Buffer[])[0] as Buffer), `${label} frame 1`);
        assert.equal(types[0], `application/octet-stream; transfer-syntax=${TS.EXPLICIT_LE}`);
      }

      const be = corpus.file('bigEndian');
      const beFrames = await frames(be, '1,2', FRAMES_ANY_TS);
      assert.equal(beFrames.bodies.length, 2);
      beFrames.bodies.forEach((b, i) => assert.ok(b.equals((be.frames as Buffer[])[i] as Buffer), `big endian frame ${i + 1} as little endian`));
      for (const t of beFrames.types) assert.equal(t, `application/octet-stream; transfer-syntax=${TS.EXPLICIT_LE}`);
    });

    it('frames: encapsulated frames come back as stored for transfer-syntax=*, with the exact part header (BOT, no BOT, RLE)', async () => {
      for (const label of ['jpeg', 'jpegMultiBot', 'jpegMultiNoBot', 'rle']) {
        const f = corpus.file(label);
        const expected = f.frames as Buffer[];
        const list = expected.map((_, i) => String(i + 1)).join(',');
        const { res, bodies, types } = await frames(f, list, FRAMES_ANY_TS);
        assert.equal(bodies.length, expected.length);
        bodies.forEach((b, i) => assert.ok(b.equals(expected[i] as Buffer), `${label} frame ${i + 1}`));
        for (const t of types) assert.equal(t, `application/octet-stream; transfer-syntax=${f.transferSyntax}`);
        const exact = `\r\nContent-Type: application/octet-stream; transfer-syntax=${f.transferSyntax}\r\n`;
        assert.ok(res.body.includes(Buffer.from(exact, 'latin1')), `${label}: exact part header spelling`);
        // frames one at a time, backwards (no BOT: the server must find frame boundaries itself)
        for (let n = expected.length; n >= 1; n--) {
          const one = await frames(f, String(n), FRAMES_ANY_TS);
          assert.ok(one.bodies[0]?.equals(expected[n - 1] as Buffer), `${label} frame ${n} alone`);
        }
      }
    });

    it('frames: out of range is 404, a malformed list 400; /rendered and /thumbnail are 406 for now', async () => {
      const mf = corpus.file('multiframe');
      assertJsonError(await get(`${srv.url}/wado${instancePath(mf)}/frames/11`, { Accept: FRAMES_ANY_TS }), 404);
      assertJsonError(await get(`${srv.url}/wado${instancePath(mf)}/frames/1,11`, { Accept: FRAMES_ANY_TS }), 404);
      assertJsonError(await get(`${srv.url}/wado${instancePath(mf)}/frames/0`, { Accept: FRAMES_ANY_TS }), 404);
      assertJsonError(await get(`${srv.url}/wado${instancePath(corpus.file('jpegMultiNoBot'))}/frames/4`, { Accept: FRAMES_ANY_TS }), 404);
      assertJsonError(await get(`${srv.url}/wado${instancePath(mf)}/frames/abc`, { Accept: FRAMES_ANY_TS }), 400);
      for (const suffix of ['rendered', 'thumbnail', 'frames/1/rendered']) {
        assertJsonError(await get(`${srv.url}/wado${instancePath(mf)}/${suffix}`, { Accept: 'image/jpeg' }), 406);
      }
      assertJsonError(await get(`${srv.url}/dicom-web/studies/${mf.studyUid}/rendered`, { Accept: 'image/jpeg' }), 406);
    });
  });

  describe(`STOW-RS statuses and reasons on a real server (${profile})`, () => {
    let srv: TestServer;
    before(async () => {
      srv = await startTestServer({}, { profile });
    });
    after(async () => {
      await srv?.close();
    });

    it('200 when every instance is stored without warning', async () => {
      const a = simpleInstance({});
      const b = simpleInstance({ studyUid: a.studyUid, seriesUid: a.seriesUid });
      const res = await stow(`${srv.url}/wado/studies`, [a.bytes, b.bytes]);
      assert.equal(res.status, 200);
      assert.match(String(res.headers['content-type']), DICOM_JSON);
      const body = res.json<DicomJsonDataset>();
      assert.equal(items(body, '00081199').length, 2);
      assert.equal(element(body, '00081198'), undefined);
      assert.equal(stringValue(body, '00081190'), `${srv.url}/wado/studies/${a.studyUid}`);
    });

    it('202 with WarningReason B007 (45063) for a leading-zero UID component, and the instance is retrievable', async () => {
      const sopUid = `${generateUid()}.0012`;
      const inst = simpleInstance({ sopUid });
      const res = await stow(`${srv.url}/wado/studies`, [inst.bytes]);
      assert.equal(res.status, 202);
      const body = res.json<DicomJsonDataset>();
      assert.equal(element(body, '00081198'), undefined);
      const refs = items(body, '00081199');
      assert.equal(refs.length, 1);
      assert.equal(Number(firstValue(refs[0] as DicomJsonDataset, '00081196')), 0xb007);
      assert.equal(Number(firstValue(refs[0] as DicomJsonDataset, '00081196')), 45063);
      const back = await get(`${srv.url}/wado/studies/${inst.studyUid}/series/${inst.seriesUid}/instances/${sopUid}`, { Accept: 'application/dicom' });
      assert.equal(back.status, 200);
      assert.ok(back.body.equals(inst.bytes));
    });

    it('202 with a partial failure: a garbage part fails C000 (49152), the good one is stored', async () => {
      const good = simpleInstance({});
      const res = await stow(`${srv.url}/wado/studies`, [good.bytes, Buffer.from('this is not a DICOM file at all, just text '.repeat(20))]);
      assert.equal(res.status, 202);
      const body = res.json<DicomJsonDataset>();
      assert.deepEqual(items(body, '00081199').map((i) => stringValue(i, '00081155')), [good.sopUid]);
      assert.deepEqual(failedReasons(body), [0xc000]);
      assert.deepEqual(failedReasons(body), [49152]);
    });

    it('409 FailureReason A900 (43264): SOP Instance UID missing from the dataset (and empty in File Meta)', async () => {
      const base = simpleInstance({ omitSopUid: true });
      let res = await stow(`${srv.url}/wado/studies`, [base.bytes]);
      assert.equal(res.status, 409);
      let body = res.json<DicomJsonDataset>();
      assert.deepEqual(failedReasons(body), [43264]);
      assert.equal(element(body, '00081199'), undefined);

      const { datasetBytes } = splitPart10(base.bytes);
      const noSop = Buffer.concat([writePart10({ dataset: [], transferSyntaxUid: TS.EXPLICIT_LE, sopClassUid: base.sopClassUid, sopInstanceUid: '' }), datasetBytes]);
      res = await stow(`${srv.url}/wado/studies`, [noSop]);
      assert.equal(res.status, 409);
      body = res.json<DicomJsonDataset>();
      assert.deepEqual(failedReasons(body), [43264]);
      const q = await get(`${srv.url}/wado/studies?StudyInstanceUID=${base.studyUid}`);
      assert.equal(q.text(), '[]');
    });

    it('409 FailureReason A901 (43265): an instance of another study posted to /studies/{other}', async () => {
      const other = simpleInstance({});
      const target = generateUid();
      const res = await stow(`${srv.url}/dicom-web/studies/${target}`, [other.bytes]);
      assert.equal(res.status, 409);
      const body = res.json<DicomJsonDataset>();
      assert.deepEqual(failedReasons(body), [43265]);
      assert.deepEqual(items(body, '00081198').map((i) => stringValue(i, '00081155')), [other.sopUid]);
      assert.equal(element(body, '00081199'), undefined);
      const q = await get(`${srv.url}/wado/studies?StudyInstanceUID=${other.studyUid}`);
      assert.equal(q.text(), '[]');
    });

    it('409 FailureReason C000 (49152): a body of garbage only; nothing stored', async () => {
      const res = await stow(`${srv.url}/wado/studies`, [Buffer.alloc(300, 0x41)]);
      assert.equal(res.status, 409);
      const body = res.json<DicomJsonDataset>();
      assert.deepEqual(failedReasons(body), [49152]);
      assert.equal(element(body, '00081199'), undefined);
      const h = await get(`${srv.url}/health`);
      assert.equal(h.status, 200);
    });

    it('400 for a body that is not multipart (no boundary parameter, no boundary in the body, no part); 415 for text/plain', async () => {
      const inst = simpleInstance({});
      assertJsonError(await request(`${srv.url}/wado/studies`, { method: 'POST', headers: { 'Content-Type': 'multipart/related; type="application/dicom"' }, body: inst.bytes }), 400);
      assertJsonError(await request(`${srv.url}/wado/studies`, { method: 'POST', headers: { 'Content-Type': 'multipart/related; type="application/dicom"; boundary=abc123' }, body: inst.bytes }), 400);
      assertJsonError(await request(`${srv.url}/wado/studies`, { method: 'POST', headers: { 'Content-Type': 'multipart/related; type="application/dicom"; boundary=abc123' }, body: '--abc123--\r\n' }), 400);
      assertJsonError(await request(`${srv.url}/wado/studies`, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'hello' }), 415);
      const q = await get(`${srv.url}/wado/studies?StudyInstanceUID=${inst.studyUid}`);
      assert.equal(q.text(), '[]');
    });

    it('duplicate with the same bytes is 200 and adds no blob; modified bytes replace (old blob gone)', async () => {
      const inst = simpleInstance({ fill: 1 });
      assert.equal((await stow(`${srv.url}/wado/studies`, [inst.bytes])).status, 200);
      const before1 = await srv.countBlobs();
      const dup = await stow(`${srv.url}/wado/studies`, [inst.bytes]);
      assert.equal(dup.status, 200);
      assert.equal(items(dup.json<DicomJsonDataset>(), '00081199').length, 1);
      assert.equal((await srv.countBlobs()), before1, 'a duplicate adds no blob');

      const modified = simpleInstance({ studyUid: inst.studyUid, seriesUid: inst.seriesUid, sopUid: inst.sopUid, fill: 2 });
      assert.ok(!modified.bytes.equals(inst.bytes));
      const rep = await stow(`${srv.url}/wado/studies`, [modified.bytes]);
      assert.equal(rep.status, 200);
      // the old blob is deleted after the commit: allow a moment
      let blobs = -1;
      for (let i = 0; i < 40; i++) {
        blobs = (await srv.countBlobs());
        if (blobs === before1) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(blobs, before1, 'replace keeps the blob count (old blob deleted)');
      const back = await get(`${srv.url}/wado/studies/${inst.studyUid}/series/${inst.seriesUid}/instances/${inst.sopUid}`, { Accept: 'application/dicom' });
      assert.ok(back.body.equals(modified.bytes), 'the new bytes are served');
      const q = await qido(`${srv.url}/wado`, `/studies?StudyInstanceUID=${inst.studyUid}`);
      assert.equal(Number(firstValue(q.results[0] as DicomJsonDataset, '00201208')), 1, 'counters unchanged by replace');
    });
  });

  describe(`STOW-RS request size limit (${profile})`, () => {
    let srv: TestServer;
    before(async () => {
      srv = await startTestServer({ PACS_SERVER__MAX_REQUEST_BYTES: '2000' }, { profile });
    });
    after(async () => {
      await srv?.close();
    });

    it('413 when Content-Length is over max_request_bytes, nothing stored; a small body still passes', async () => {
      const big = simpleInstance({});
      const boundary = newBoundary();
      const body = multipartBody([{ body: Buffer.concat([big.bytes, Buffer.alloc(0)]) }, { body: simpleInstance({ studyUid: big.studyUid }).bytes }], boundary);
      assert.ok(body.length > 2000);
      const res = await request(`${srv.url}/wado/studies`, { method: 'POST', headers: { 'Content-Type': `multipart/related; type="application/dicom"; boundary=${boundary}`, 'Content-Length': body.length }, body });
      assertJsonError(res, 413, 'PAYLOAD_TOO_LARGE');
      const q = await get(`${srv.url}/wado/studies?StudyInstanceUID=${big.studyUid}`);
      assert.equal(q.text(), '[]');
      assert.equal((await srv.countBlobs()), 0);
      const small = simpleInstance({});
      assert.ok(small.bytes.length < 1900);
      assert.equal((await stow(`${srv.url}/wado/studies`, [small.bytes])).status, 200);
    });

    it('a chunked body (no Content-Length) that crosses max_request_bytes: the part in flight fails A700 (0xA700), the stored one stays', async () => {
      const first = simpleInstance({});
      const second = simpleInstance({ studyUid: first.studyUid });
      const boundary = newBoundary();
      const body = multipartBody([{ body: first.bytes }, { body: second.bytes }], boundary);
      assert.ok(body.length > 2000 && first.bytes.length + 200 < 2000);
      const res = await request(`${srv.url}/wado/studies`, {
        method: 'POST',
        headers: { 'Content-Type': `multipart/related; type="application/dicom"; boundary=${boundary}`, 'Transfer-Encoding': 'chunked' },
        body,
      });
      // the first part lies wholly within the limit: it must be stored even when its last bytes and the
      // crossing bytes arrive in the same chunk
      assert.equal(res.status, 202, `expected the first instance stored and the second failed: ${res.status} ${res.text().slice(0, 300)}`);
      const out = res.json<DicomJsonDataset>();
      assert.deepEqual(items(out, '00081199').map((i) => stringValue(i, '00081155')), [first.sopUid]);
      assert.deepEqual(failedReasons(out), [0xa700]);
      const q = await qido(`${srv.url}/wado`, `/studies/${first.studyUid}/instances`);
      assert.deepEqual(q.results.map((d) => stringValue(d, '00080018')), [first.sopUid]);
    });
  });
}

/** Splits a Part-10 file into its File Meta part and its dataset bytes. */
function splitPart10(file: Buffer): { metaBytes: Buffer; datasetBytes: Buffer } {
  // (0002,0000) UL group length right after the preamble and DICM
  const groupLength = file.readUInt32LE(132 + 8);
  const end = 132 + 12 + groupLength;
  return { metaBytes: file.subarray(0, end), datasetBytes: file.subarray(end) };
}
