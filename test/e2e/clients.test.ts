// The requests of ../shared/CLIENTS.md replayed exactly (OHIF 3.13's study list, study open and
// per-frame retrieval; dicomweb-client 0.11's encoded values), plus CORS, remote access, trust_proxy,
// public_base_url and the one error shape.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { api } from 'dicomweb-client';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import type { Config } from '../../src/config/schema.js';
import type { DicomJsonDataset } from '../../src/dicom/types.js';
import { generateUid } from '../../src/dicom/uids.js';
import { buildHttpApp } from '../../src/http/app.js';
import { generateCorpus, simpleInstance, TS, type Corpus, type CorpusFile } from '../helpers/corpus.js';
import {
  assertJsonError,
  element,
  firstValue,
  get as rawGet,
  installXhr,
  parseMultipartResponse,
  personName,
  request,
  stow,
  stringValue,
  values,
  type HttpResponse,
} from '../helpers/http.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const OHIF_FRAME_ACCEPT = 'multipart/related; type=application/octet-stream; transfer-syntax=*';
const OHIF_LIST = '/studies?limit=101&offset=0&fuzzymatching=false&includefield=00081030,00080060,00080090,00100030';

function toArrayBuffer(b: Buffer): ArrayBuffer {
  const ab = new ArrayBuffer(b.length);
  new Uint8Array(ab).set(b);
  return ab;
}

function studyUids(list: DicomJsonDataset[]): string[] {
  return list.map((d) => stringValue(d, '0020000D') ?? '').sort();
}

/** Every response a client sees: a 200 must never have an empty body (OHIF hangs on it). */
const seen: { url: string; status: number; length: number }[] = [];
async function get(url: string, headers: Record<string, string> = {}): Promise<HttpResponse> {
  const res = await rawGet(url, headers);
  seen.push({ url, status: res.status, length: res.body.length });
  if (res.status === 200) assert.ok(res.body.length > 0, `200 with an empty body: ${url}`);
  return res;
}

describe('OHIF and dicomweb-client requests replayed (CLIENTS.md)', () => {
  let srv: TestServer;
  let corpus: Corpus;
  let base: string;

  before(async () => {
    corpus = await generateCorpus();
    srv = await startTestServer();
    base = `${srv.url}/wado`;
    const res = await stow(`${base}/studies`, corpus.files.map((f) => f.bytes));
    assert.equal(res.status, 200, res.text().slice(0, 300));
  });
  after(async () => {
    await srv?.close();
    await corpus?.cleanup();
  });

  it('OHIF study list: includefield as ONE comma-separated parameter returns StudyDescription (and the other fields)', async () => {
    const res = await get(`${base}${OHIF_LIST}`, { Accept: 'application/dicom+json' });
    assert.equal(res.status, 200);
    const list = res.json<DicomJsonDataset[]>();
    assert.equal(list.length, corpus.studies.length);
    for (const s of corpus.studies) {
      const ds = list.find((d) => stringValue(d, '0020000D') === s.studyUid);
      assert.ok(ds, s.key);
      assert.equal(stringValue(ds, '00081030'), s.description, `${s.key}: StudyDescription present`);
      assert.equal(stringValue(ds, '00100030'), s.patient.birthDate);
      assert.equal(personName(ds, '00080090')?.Alphabetic, 'House^Gregory');
      assert.ok(values(ds, '00080061').length > 0, 'ModalitiesInStudy');
    }
    // no Warning: 6 results under the limit of 101
    assert.equal(res.headers['warning'], undefined);
  });

  it('OHIF study list filters, as typed', async () => {
    const s = (k: string): string => corpus.study(k).studyUid;
    const cases: [string, string[]][] = [
      ['PatientName=*doe*', [s('doe')]],
      ['PatientName=*DOE*', [s('doe')]],
      ['00100020=*123*', [s('doe'), s('mueller')]],
      ['AccessionNumber=*123XY*', [s('doe')]],
      ['StudyDescription=*ABDOMEN*', [s('doe')]],
      ['ModalitiesInStudy=CT', [s('doe'), s('mueller')]],
      ['StudyDate=20200101-20201231', [s('doe'), s('mueller'), s('wangUtf8')]],
      ['PatientName=*doe*&StudyDate=20200101-20201231&ModalitiesInStudy=CT', [s('doe')]],
    ];
    for (const [filter, expected] of cases) {
      const res = await get(`${base}${OHIF_LIST}&${filter}`, { Accept: 'application/dicom+json' });
      assert.equal(res.status, 200, filter);
      assert.deepEqual(studyUids(res.json<DicomJsonDataset[]>()), [...expected].sort(), filter);
    }
  });

  it('OHIF study open sequence, then one frame request per frame with its exact Accept header', async () => {
    const study = corpus.study('wangUtf8');
    // twice, as OHIF does
    for (let i = 0; i < 2; i++) {
      const res = await get(`${base}${OHIF_LIST}&StudyInstanceUID=${study.studyUid}`, { Accept: 'application/dicom+json' });
      assert.equal(res.status, 200);
      assert.deepEqual(studyUids(res.json<DicomJsonDataset[]>()), [study.studyUid]);
    }
    const seriesRes = await get(`${base}/studies/${study.studyUid}/series?includefield=00080021,00080031,0008103E,00200011`, { Accept: 'application/dicom+json' });
    assert.equal(seriesRes.status, 200);
    const series = seriesRes.json<DicomJsonDataset[]>();
    assert.equal(series.length, 2);
    for (const se of series) {
      assert.equal(stringValue(se, '00080021'), study.studyDate);
      assert.equal(stringValue(se, '00080031'), '101600');
      assert.ok(stringValue(se, '0008103E'));
      assert.ok(Number(firstValue(se, '00200011')) >= 1);
    }
    const priors = await get(`${base}/studies?00100020=${study.patient.patientId}`, { Accept: 'application/dicom+json' });
    assert.deepEqual(studyUids(priors.json<DicomJsonDataset[]>()), [study.studyUid]);

    let frameRequests = 0;
    for (const se of series) {
      const seriesUid = stringValue(se, '0020000E') as string;
      const md = await get(`${base}/studies/${study.studyUid}/series/${seriesUid}/metadata`, { Accept: 'application/dicom+json' });
      assert.equal(md.status, 200);
      for (const inst of md.json<DicomJsonDataset[]>()) {
        const sopUid = stringValue(inst, '00080018') as string;
        const file = corpus.files.find((f) => f.sopUid === sopUid) as CorpusFile;
        assert.ok(file);
        const n = Number(firstValue(inst, '00280008') ?? 1);
        assert.equal(n, file.numberOfFrames);
        for (let frame = 1; frame <= n; frame++) {
          const res = await get(`${base}/studies/${study.studyUid}/series/${seriesUid}/instances/${sopUid}/frames/${frame}`, { Accept: OHIF_FRAME_ACCEPT });
          frameRequests++;
          assert.equal(res.status, 200);
          assert.match(String(res.headers['content-type']), /^multipart\/related;/);
          const exact = Buffer.from(`\r\nContent-Type: application/octet-stream; transfer-syntax=${file.transferSyntax}\r\n`, 'latin1');
          assert.ok(res.body.includes(exact), `exact part header for ${file.label} frame ${frame}`);
          const parts = await parseMultipartResponse(res);
          assert.equal(parts.length, 1);
          assert.ok(parts[0]?.body.equals((file.frames as Buffer[])[frame - 1] as Buffer), `${file.label} frame ${frame} bytes`);
        }
      }
    }
    assert.equal(frameRequests, 1 + 3 + 3);
  });

  it('OHIF per-frame retrieval of native, big-endian and RLE instances with the OHIF Accept header', async () => {
    for (const label of ['ct512', 'multiframe', 'bigEndian', 'implicit', 'rle']) {
      const f = corpus.file(label);
      const frames = f.frames as Buffer[];
      for (let n = 1; n <= frames.length; n++) {
        const res = await get(`${base}/studies/${f.studyUid}/series/${f.seriesUid}/instances/${f.sopUid}/frames/${n}`, { Accept: OHIF_FRAME_ACCEPT });
        assert.equal(res.status, 200, `${label} frame ${n}`);
        const ts = f.transferSyntax === TS.RLE ? TS.RLE : TS.EXPLICIT_LE;
        assert.ok(res.body.includes(Buffer.from(`\r\nContent-Type: application/octet-stream; transfer-syntax=${ts}\r\n`, 'latin1')), `${label}: part header`);
        const parts = await parseMultipartResponse(res);
        assert.ok(parts[0]?.body.equals(frames[n - 1] as Buffer), `${label} frame ${n}`);
      }
    }
  });

  it('OHIF rendered/thumbnail requests with Accept */* and ?accept=image/jpeg are answered, never 200 empty', async () => {
    const f = corpus.file('ct512');
    for (const suffix of ['rendered', 'thumbnail']) {
      const res = await get(`${base}/studies/${f.studyUid}/series/${f.seriesUid}/instances/${f.sopUid}/${suffix}?accept=image%2Fjpeg`, { Accept: '*/*' });
      assert.ok(res.status === 406 || (res.status === 200 && /^image\/jpeg/.test(String(res.headers['content-type']))), `${suffix}: ${res.status}`);
      if (res.status !== 200) assertJsonError(res, 406);
    }
  });

  it('dicomweb-client: searchForStudies percent-encodes PatientName=DOE^JOHN and finds it; metadata, instance and frames', async () => {
    installXhr();
    const urls: string[] = [];
    const hook = (xhr: unknown, metadata: { url: string }): unknown => {
      urls.push(metadata.url);
      return xhr;
    };
    const client = new api.DICOMwebClient({ url: base, singlepart: false, verbose: false, requestHooks: [hook] });
    const doe = corpus.study('doe');
    const found = (await client.searchForStudies({ queryParams: { PatientName: 'DOE^JOHN' } })) as unknown as DicomJsonDataset[];
    assert.ok(urls.some((u) => u.includes('PatientName=DOE%5EJOHN')), `encoded query sent: ${urls.join(' ')}`);
    assert.deepEqual(studyUids(found), [doe.studyUid]);
    assert.equal(personName(found[0] as DicomJsonDataset)?.Alphabetic, 'DOE^JOHN');

    // a non-ASCII value through the client too
    const yamada = (await client.searchForStudies({ queryParams: { PatientName: '山田^太郎' } })) as unknown as DicomJsonDataset[];
    assert.deepEqual(studyUids(yamada), [corpus.study('yamada').studyUid]);

    const md = await client.retrieveStudyMetadata({ studyInstanceUID: doe.studyUid, request: {} });
    assert.equal(md.length, 2);
    const doeFiles = corpus.files.filter((f) => f.studyUid === doe.studyUid);
    for (const f of doeFiles) {
      const inst = (md as unknown as DicomJsonDataset[]).find((d) => stringValue(d, '00080018') === f.sopUid);
      assert.ok(inst);
      assert.ok(element(inst, '7FE00010'), 'pixel data listed');
    }

    const f = corpus.file('multiframe');
    const ab = await client.retrieveInstance({ studyInstanceUID: f.studyUid, seriesInstanceUID: f.seriesUid, sopInstanceUID: f.sopUid, mediaTypes: undefined as unknown as string[], request: {} });
    assert.ok(Buffer.from(ab).equals(f.bytes), 'retrieveInstance: byte-identical');

    const frames = (await client.retrieveInstanceFrames({ studyInstanceUID: f.studyUid, seriesInstanceUID: f.seriesUid, sopInstanceUID: f.sopUid, frameNumbers: '2,5', request: {} })) as unknown as ArrayBuffer[];
    assert.equal(frames.length, 2);
    assert.ok(Buffer.from(frames[0] as ArrayBuffer).equals((f.frames as Buffer[])[1] as Buffer));
    assert.ok(Buffer.from(frames[1] as ArrayBuffer).equals((f.frames as Buffer[])[4] as Buffer));

    const jpeg = corpus.file('jpegMultiNoBot');
    const jf = (await client.retrieveInstanceFrames({
      studyInstanceUID: jpeg.studyUid,
      seriesInstanceUID: jpeg.seriesUid,
      sopInstanceUID: jpeg.sopUid,
      frameNumbers: '3',
      mediaTypes: [{ mediaType: 'application/octet-stream', transferSyntaxUID: '*' }],
      request: {},
    } as Parameters<typeof client.retrieveInstanceFrames>[0])) as unknown as ArrayBuffer[];
    assert.equal(jf.length, 1);
    assert.ok(Buffer.from(jf[0] as ArrayBuffer).equals((jpeg.frames as Buffer[])[2] as Buffer));

    // storeInstances to a study URL (quoted type) works as well
    const extra = simpleInstance({ studyUid: doe.studyUid });
    const stored: unknown = await client.storeInstances({ datasets: [toArrayBuffer(extra.bytes)], studyInstanceUID: doe.studyUid });
    const response = JSON.parse(String(stored)) as DicomJsonDataset;
    assert.equal(stringValue(response, '00081190'), `${base}/studies/${doe.studyUid}`);
  });

  it('no 200 with an empty body was seen anywhere in these replays', () => {
    assert.ok(seen.length > 20);
    const empty = seen.filter((s) => s.status === 200 && s.length === 0);
    assert.deepEqual(empty, []);
  });
});

// -------------------------------------------------------------------------------------------------

describe('CORS for viewers on another origin', () => {
  let srv: TestServer;
  const ORIGIN = 'http://viewer.example';
  before(async () => {
    srv = await startTestServer({ PACS_SERVER__CORS_ORIGINS: '["http://viewer.example"]' });
    assert.equal((await stow(`${srv.url}/wado/studies`, [simpleInstance({}).bytes, simpleInstance({}).bytes])).status, 200);
  });
  after(async () => {
    await srv?.close();
  });

  it('preflight for a QIDO GET and a STOW POST is allowed for the configured origin only', async () => {
    const pre = await request(`${srv.url}/wado/studies`, {
      method: 'OPTIONS',
      headers: { Origin: ORIGIN, 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'accept' },
    });
    assert.ok(pre.status === 204 || pre.status === 200, `preflight ${pre.status}`);
    assert.equal(pre.headers['access-control-allow-origin'], ORIGIN);
    assert.match(String(pre.headers['access-control-allow-methods']), /GET/);
    const post = await request(`${srv.url}/dicom-web/studies`, {
      method: 'OPTIONS',
      headers: { Origin: ORIGIN, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' },
    });
    assert.ok(post.status === 204 || post.status === 200);
    assert.equal(post.headers['access-control-allow-origin'], ORIGIN);
    assert.match(String(post.headers['access-control-allow-methods']), /POST/);
    const other = await request(`${srv.url}/wado/studies`, { method: 'OPTIONS', headers: { Origin: 'http://evil.example', 'Access-Control-Request-Method': 'GET' } });
    assert.notEqual(other.headers['access-control-allow-origin'], 'http://evil.example');
  });

  it('responses carry Access-Control-Allow-Origin (errors too) and expose Warning', async () => {
    const ok = await get(`${srv.url}/wado/studies?limit=1`, { Origin: ORIGIN });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers['access-control-allow-origin'], ORIGIN);
    const exposed = String(ok.headers['access-control-expose-headers']).toLowerCase().split(/\s*,\s*/);
    assert.ok(exposed.includes('warning'), `exposed: ${exposed.join(',')}`);
    assert.ok(exposed.includes('content-type'));
    assert.match(String(ok.headers['warning']), /^299 pacsnode: "There are 1 additional results that can be requested"$/);

    const notFound = await get(`${srv.url}/wado/studies/${generateUid()}/metadata`, { Origin: ORIGIN });
    assertJsonError(notFound, 404);
    assert.equal(notFound.headers['access-control-allow-origin'], ORIGIN);
    const noRoute = await get(`${srv.url}/wado/no-such-thing`, { Origin: ORIGIN });
    assertJsonError(noRoute, 404);
    assert.equal(noRoute.headers['access-control-allow-origin'], ORIGIN);
    const bad = await get(`${srv.url}/wado/studies?StudyDate=-`, { Origin: ORIGIN });
    assertJsonError(bad, 400);
    assert.equal(bad.headers['access-control-allow-origin'], ORIGIN);
    const stowBad = await request(`${srv.url}/wado/studies`, { method: 'POST', headers: { Origin: ORIGIN, 'Content-Type': 'text/plain' }, body: 'x' });
    assertJsonError(stowBad, 415);
    assert.equal(stowBad.headers['access-control-allow-origin'], ORIGIN);
  });
});

// -------------------------------------------------------------------------------------------------

describe('remote access, trust_proxy and public_base_url (buildHttpApp + inject)', () => {
  let srv: TestServer;
  let inst: ReturnType<typeof simpleInstance>;
  const apps: FastifyInstance[] = [];

  async function app(server: Partial<Config['server']>): Promise<FastifyInstance> {
    const config: Config = { ...srv.config, server: { ...srv.config.server, ...server } };
    const a = await buildHttpApp({ archive: srv.server.archive, config, nodes: srv.server.nodes, jobs: srv.server.jobs });
    apps.push(a);
    return a;
  }

  function json<T>(res: LightMyRequestResponse): T {
    return JSON.parse(res.body) as T;
  }

  before(async () => {
    srv = await startTestServer();
    inst = simpleInstance({});
    assert.equal((await stow(`${srv.url}/wado/studies`, [inst.bytes])).status, 200);
  });
  after(async () => {
    for (const a of apps) await a.close();
    await srv?.close();
  });

  it('a non-loopback client gets 403 REMOTE_ACCESS_DISABLED (JSON shape) unless http_remote_access = true', async () => {
    const closed = await app({ http_remote_access: false });
    for (const url of ['/health', '/wado/studies', `/dicom-web/studies/${inst.studyUid}/metadata`]) {
      const res = await closed.inject({ method: 'GET', url, remoteAddress: '10.1.2.3' });
      assert.equal(res.statusCode, 403, url);
      assert.match(String(res.headers['content-type']), /^application\/json/);
      const body = json<{ error: { code: string; message: string; details: Record<string, unknown> } }>(res);
      assert.equal(body.error.code, 'REMOTE_ACCESS_DISABLED');
      assert.equal(typeof body.error.message, 'string');
      assert.deepEqual(typeof body.error.details, 'object');
    }
    const v6 = await closed.inject({ method: 'GET', url: '/health', remoteAddress: '2001:db8::1' });
    assert.equal(v6.statusCode, 403);
    for (const local of ['127.0.0.1', '::1', '::ffff:127.0.0.1']) {
      const res = await closed.inject({ method: 'GET', url: '/health', remoteAddress: local });
      assert.equal(res.statusCode, 200, local);
    }
    const open = await app({ http_remote_access: true });
    const h = await open.inject({ method: 'GET', url: '/health', remoteAddress: '10.1.2.3' });
    assert.equal(h.statusCode, 200);
    const q = await open.inject({ method: 'GET', url: `/wado/studies?StudyInstanceUID=${inst.studyUid}`, remoteAddress: '10.1.2.3' });
    assert.equal(q.statusCode, 200);
    assert.equal(json<DicomJsonDataset[]>(q).length, 1);
  });

  it('with trust_proxy, the client address is the one the proxy appended to X-Forwarded-For, not what the client wrote before it', async () => {
    const proxied = await app({ http_remote_access: false, trust_proxy: true });
    // The proxy on loopback forwards a remote client that claims to be 127.0.0.1.
    const spoofed = await proxied.inject({ method: 'GET', url: '/health', remoteAddress: '127.0.0.1', headers: { 'x-forwarded-for': '127.0.0.1, 10.1.2.3' } });
    assert.equal(spoofed.statusCode, 403);
    const local = await proxied.inject({ method: 'GET', url: '/health', remoteAddress: '127.0.0.1', headers: { 'x-forwarded-for': '127.0.0.1' } });
    assert.equal(local.statusCode, 200);
  });

  it('the 403 for a remote client still carries CORS headers for an allowed origin (errors too)', async () => {
    const a = await app({ http_remote_access: false, cors_origins: ['http://viewer.example'] });
    const res = await a.inject({ method: 'GET', url: '/wado/studies', remoteAddress: '10.1.2.3', headers: { origin: 'http://viewer.example' } });
    assert.equal(res.statusCode, 403);
    assert.equal(json<{ error: { code: string } }>(res).error.code, 'REMOTE_ACCESS_DISABLED');
    assert.equal(res.headers['access-control-allow-origin'], 'http://viewer.example');
  });

  it('X-Forwarded-Host/-Proto shape RetrieveURL only with trust_proxy = true', async () => {
    const fwd = { host: 'internal:8042', 'x-forwarded-host': 'pacs.example.org', 'x-forwarded-proto': 'https' };
    const trusting = await app({ trust_proxy: true });
    let res = await trusting.inject({ method: 'GET', url: `/wado/studies?StudyInstanceUID=${inst.studyUid}`, headers: fwd });
    assert.equal(res.statusCode, 200);
    assert.equal(stringValue(json<DicomJsonDataset[]>(res)[0] as DicomJsonDataset, '00081190'), `https://pacs.example.org/wado/studies/${inst.studyUid}`);

    const plain = await app({ trust_proxy: false });
    res = await plain.inject({ method: 'GET', url: `/dicom-web/studies?StudyInstanceUID=${inst.studyUid}`, headers: fwd });
    assert.equal(stringValue(json<DicomJsonDataset[]>(res)[0] as DicomJsonDataset, '00081190'), `http://internal:8042/dicom-web/studies/${inst.studyUid}`);

    // the real server (trust_proxy = false): the Host it was reached by
    const real = await get(`${srv.url}/wado/studies?StudyInstanceUID=${inst.studyUid}`, { 'X-Forwarded-Host': 'evil.example', 'X-Forwarded-Proto': 'https' });
    assert.equal(stringValue(real.json<DicomJsonDataset[]>()[0] as DicomJsonDataset, '00081190'), `${srv.url}/wado/studies/${inst.studyUid}`);
  });

  it('public_base_url is the base of RetrieveURL and BulkDataURI, whatever the request said', async () => {
    const pub = await app({ public_base_url: 'https://pacs.example.com/base/', trust_proxy: true });
    const headers = { host: 'internal:8042', 'x-forwarded-host': 'other.example', 'x-forwarded-proto': 'http' };
    let res = await pub.inject({ method: 'GET', url: `/dicom-web/studies?StudyInstanceUID=${inst.studyUid}`, headers });
    assert.equal(stringValue(json<DicomJsonDataset[]>(res)[0] as DicomJsonDataset, '00081190'), `https://pacs.example.com/base/dicom-web/studies/${inst.studyUid}`);
    res = await pub.inject({ method: 'GET', url: `/wado/studies/${inst.studyUid}/series/${inst.seriesUid}/instances/${inst.sopUid}/metadata`, headers });
    assert.equal(res.statusCode, 200);
    const md = json<DicomJsonDataset[]>(res)[0] as DicomJsonDataset;
    // 64 bytes of pixel data: InlineBinary by the threshold, or (the header reader stops at Pixel Data) a
    // BulkDataURI — which then must be on the public base
    const pd = element(md, '7FE00010');
    if (pd?.InlineBinary !== undefined) assert.equal(pd.InlineBinary, Buffer.alloc(64, 7).toString('base64'));
    else assert.equal(pd?.BulkDataURI, `https://pacs.example.com/base/wado/studies/${inst.studyUid}/series/${inst.seriesUid}/instances/${inst.sopUid}/bulkdata/7FE00010`);
    const again = simpleInstance({ studyUid: inst.studyUid, seriesUid: inst.seriesUid });
    const boundary = 'pub-base-boundary';
    const body = Buffer.concat([Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`), again.bytes, Buffer.from(`\r\n--${boundary}--\r\n`)]);
    res = await pub.inject({ method: 'POST', url: '/wado/studies', headers: { ...headers, 'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}` }, payload: body });
    assert.equal(res.statusCode, 200, res.body);
    const stowed = json<DicomJsonDataset>(res);
    assert.equal(stringValue(stowed, '00081190'), `https://pacs.example.com/base/wado/studies/${inst.studyUid}`);
  });
});

// -------------------------------------------------------------------------------------------------

describe('every error response has the one JSON shape', () => {
  let srv: TestServer;
  before(async () => {
    srv = await startTestServer();
  });
  after(async () => {
    await srv?.close();
  });

  it('4xx from routing, validation, negotiation, STOW and not-found all use {"error":{"code","message","details"}} without stack traces', async () => {
    const inst = simpleInstance({});
    assert.equal((await stow(`${srv.url}/wado/studies`, [inst.bytes])).status, 200);
    const ip = `/studies/${inst.studyUid}/series/${inst.seriesUid}/instances/${inst.sopUid}`;
    const cases: [string, Promise<HttpResponse>, number][] = [
      ['no route', rawGet(`${srv.url}/wado/nothing-here`), 404],
      ['no route outside the roots', rawGet(`${srv.url}/nothing`), 404],
      ['unknown study', rawGet(`${srv.url}/wado/studies/${generateUid()}/metadata`), 404],
      ['unknown instance', rawGet(`${srv.url}/dicom-web/studies/${inst.studyUid}/series/${inst.seriesUid}/instances/${generateUid()}`, { Accept: 'application/dicom' }), 404],
      ['bad UID in path', rawGet(`${srv.url}/wado/studies/1.2.x`), 400],
      ['bad UID in query', rawGet(`${srv.url}/wado/studies?StudyInstanceUID=abc`), 400],
      ['date "-"', rawGet(`${srv.url}/wado/studies?StudyDate=-`), 400],
      ['bad percent-encoding', rawGet(`${srv.url}/wado/studies?PatientName=%E0%A4%A`), 400],
      ['QIDO not acceptable', rawGet(`${srv.url}/wado/studies`, { Accept: 'image/png' }), 406],
      ['retrieve not acceptable', rawGet(`${srv.url}/wado${ip}`, { Accept: 'text/html' }), 406],
      ['rendered', rawGet(`${srv.url}/wado${ip}/rendered`), 406],
      ['frame out of range', rawGet(`${srv.url}/wado${ip}/frames/2`, { Accept: OHIF_FRAME_ACCEPT }), 404],
      ['STOW text/plain', request(`${srv.url}/wado/studies`, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'x' }), 415],
      ['STOW application/json', request(`${srv.url}/wado/studies`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' }), 415],
      ['STOW no boundary', request(`${srv.url}/wado/studies`, { method: 'POST', headers: { 'Content-Type': 'multipart/related; type="application/dicom"' }, body: inst.bytes }), 400],
      ['STOW bad study UID in path', request(`${srv.url}/wado/studies/1..2`, { method: 'POST', headers: { 'Content-Type': 'application/dicom' }, body: inst.bytes }), 400],
    ];
    for (const [name, p, status] of cases) {
      const res = await p;
      assert.equal(res.status, status, `${name}: ${res.status} ${res.text().slice(0, 200)}`);
      const body = assertJsonError(res, status);
      assert.ok(!/\n\s+at |\.ts:\d+|node_modules/.test(res.text()), `${name}: no stack trace (${body.error.message})`);
    }
  });
});
