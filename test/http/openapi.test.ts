// /api/openapi.json describes every HTTP route: the document is compared with Fastify's own route
// table, so a route registered without a schema (or left out of the document) fails here.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { routeTable, type RouteEntry } from '../../src/http/app.js';
import { get } from '../helpers/http.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

interface Operation {
  operationId?: string;
  summary?: string;
  tags?: string[];
  parameters?: { in: string; name: string; required?: boolean; schema?: Record<string, unknown> }[];
  responses?: Record<string, { content?: Record<string, { schema?: Record<string, unknown> }> }>;
  requestBody?: { content?: Record<string, unknown> };
}
interface OpenApiDoc {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<string, Record<string, Operation>>;
  components?: { schemas?: Record<string, unknown> };
}

/** The Swagger UI's own routes (index page, static assets, its copy of the document) are not API. */
const isDocsUi = (url: string): boolean => url === '/api/docs' || url.startsWith('/api/docs/');
/** Fastify `:param` and `*` as OpenAPI writes them. */
const openApiPath = (url: string): string => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}').replace(/\*$/, '{*}');

describe('OpenAPI document', () => {
  let srv: TestServer;
  let doc: OpenApiDoc;
  let routes: RouteEntry[];

  before(async () => {
    srv = await startTestServer();
    const res = await get(`${srv.url}/api/openapi.json`);
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    doc = res.json<OpenApiDoc>();
    routes = routeTable(srv.server.http).filter((r) => r.method !== 'HEAD' && r.method !== 'OPTIONS' && !isDocsUi(r.url));
  });
  after(async () => srv?.close());

  it('is OpenAPI 3.x with info', () => {
    assert.match(doc.openapi, /^3\.\d+\.\d+$/);
    assert.equal(doc.info.title, 'pacsnode');
    assert.ok(doc.info.version.length > 0);
  });

  it('every registered route has a schema with tags, summary and operationId', () => {
    assert.ok(routes.length > 40, `only ${routes.length} routes`);
    const missing = routes.filter((r) => {
      const s = r.schema as { tags?: unknown; summary?: unknown; operationId?: unknown; hide?: unknown } | undefined;
      return !s || s.hide === true || !Array.isArray(s.tags) || typeof s.summary !== 'string' || typeof s.operationId !== 'string';
    });
    assert.deepEqual(missing.map((r) => `${r.method} ${r.url}`), []);
  });

  it('lists exactly the routes Fastify serves (paths and methods)', () => {
    const served = new Set(routes.map((r) => `${r.method} ${openApiPath(r.url)}`));
    const documented = new Set<string>();
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const method of Object.keys(ops)) documented.add(`${method.toUpperCase()} ${path}`);
    }
    assert.deepEqual([...served].filter((x) => !documented.has(x)).sort(), [], 'served but not documented');
    assert.deepEqual([...documented].filter((x) => !served.has(x)).sort(), [], 'documented but not served');
    for (const must of ['GET /health', 'GET /api/openapi.json', 'GET /api/studies', 'DELETE /api/studies/{study}', 'GET /api/statistics', 'POST /wado/studies', 'GET /dicom-web/studies/{study}/series/{series}/instances/{instance}/frames/{frames}']) {
      assert.ok(documented.has(must), must);
    }
  });

  it('operation ids are unique', () => {
    const ids = Object.values(doc.paths).flatMap((ops) => Object.values(ops).map((o) => o.operationId));
    assert.equal(new Set(ids).size, ids.length);
  });

  it('describes parameters: UID patterns in paths, the list query of /api/studies', () => {
    const getStudy = doc.paths['/api/studies/{study}']?.['get'];
    const study = getStudy?.parameters?.find((p) => p.in === 'path' && p.name === 'study');
    assert.equal(study?.required, true);
    assert.equal(typeof study?.schema?.['pattern'], 'string');
    const qido = doc.paths['/wado/studies/{study}/series']?.['get'];
    assert.ok(qido?.parameters?.some((p) => p.in === 'path' && p.name === 'study' && typeof p.schema?.['pattern'] === 'string'));
    const names = doc.paths['/api/studies']?.['get']?.parameters?.filter((p) => p.in === 'query').map((p) => p.name).sort();
    assert.deepEqual(names, ['accession_number', 'limit', 'modality', 'offset', 'patient_id', 'patient_name', 'sort', 'study_date']);
  });

  it('documents response bodies: JSON schemas for the REST API, media types for DICOMweb streams', () => {
    for (const [path, method, status] of [
      ['/api/studies', 'get', '200'],
      ['/api/studies/{study}', 'get', '200'],
      ['/api/studies/{study}/series', 'get', '200'],
      ['/api/series/{series}', 'get', '200'],
      ['/api/series/{series}/instances', 'get', '200'],
      ['/api/instances/{instance}', 'get', '200'],
      ['/api/statistics', 'get', '200'],
      ['/api/studies/{study}', 'get', '404'],
    ] as const) {
      const res = doc.paths[path]?.[method]?.responses?.[status];
      assert.ok(res?.content?.['application/json']?.schema, `${method} ${path} ${status}`);
    }
    for (const path of ['/api/studies/{study}', '/api/series/{series}', '/api/instances/{instance}']) {
      assert.ok(doc.paths[path]?.['delete']?.responses?.['204'], `DELETE ${path} 204`);
    }
    const retrieve = doc.paths['/wado/studies/{study}']?.['get']?.responses?.['200']?.content ?? {};
    assert.ok(Object.keys(retrieve).some((t) => t.startsWith('multipart/related')));
    const stowBody = doc.paths['/wado/studies']?.['post']?.requestBody?.content ?? {};
    assert.deepEqual(Object.keys(stowBody).sort(), ['application/dicom', 'multipart/related']);
  });

  it('is browsable at /api/docs with assets served locally (no CDN)', async () => {
    const page = await get(`${srv.url}/api/docs/`);
    assert.equal(page.status, 200);
    const html = page.text();
    assert.match(html, /swagger-ui/i);
    assert.doesNotMatch(html, /(src|href)=["']https?:\/\//);
    const bundle = await get(`${srv.url}/api/docs/static/swagger-ui-bundle.js`);
    assert.equal(bundle.status, 200);
    assert.ok(bundle.body.length > 100_000);
  });
});
