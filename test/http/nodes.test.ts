// /api/nodes (SPEC §5): list envelope, upsert by AE title (201 created / 200 updated), exact
// case-sensitive lookup, DELETE 204/404, and every validation rule answered with
// 400 INVALID_PARAMETER naming the field. The app holds just these routes, the zod compilers and
// the one error handler; requests go through inject().
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { AccessPolicy } from '../../src/archive/access/policy.js';
import { createNodeService } from '../../src/archive/nodes.js';
import { registerNodeRoutes, type NodeJson } from '../../src/http/api/nodes.js';
import { errorHandler, notFoundHandler } from '../../src/http/errors.js';
import { createSqliteStores, type SqliteStores } from '../../src/storage/sqlite/sqlite-metadata-store.js';

interface ErrorJson {
  error: { code: string; message: string; details: Record<string, unknown> };
}
interface ListJson {
  items: NodeJson[];
  total: number;
  limit: number;
  offset: number;
}

const NODE_KEYS = ['ae_title', 'allow_find', 'allow_retrieve', 'allow_store', 'created_at', 'description', 'host', 'move_destination', 'port', 'updated_at'];

async function buildApp(stores: SqliteStores, policy?: AccessPolicy): Promise<FastifyInstance> {
  const app = Fastify();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler);
  app.decorateRequest('principal', null);
  registerNodeRoutes(app, { nodes: createNodeService({ store: stores.nodes, ...(policy ? { policy } : {}) }) });
  await app.ready();
  return app;
}

function assertError(res: LightMyRequestResponse, status: number, code: string): ErrorJson {
  assert.equal(res.statusCode, status, res.body);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  const body = res.json<ErrorJson>();
  assert.deepEqual(Object.keys(body.error).sort(), ['code', 'details', 'message']);
  assert.equal(body.error.code, code);
  return body;
}

const enc = encodeURIComponent;

describe('/api/nodes', () => {
  let stores: SqliteStores;
  let app: FastifyInstance;
  before(async () => {
    stores = createSqliteStores({ path: ':memory:' });
    await stores.migrate();
    app = await buildApp(stores);
  });
  after(async () => {
    await app.close();
    await stores.close();
  });

  const post = (payload: unknown) => app.inject({ method: 'POST', url: '/api/nodes', payload: payload as object });
  const getNode = (ae: string) => app.inject({ method: 'GET', url: `/api/nodes/${enc(ae)}` });

  describe('upsert, read, delete', () => {
    it('POST creates a node (201) with the defaults and answers the stored node', async () => {
      const res = await post({ ae_title: 'CREATE1', host: 'pacs.example.org', port: 104 });
      assert.equal(res.statusCode, 201, res.body);
      const node = res.json<NodeJson>();
      assert.deepEqual(Object.keys(node).sort(), NODE_KEYS);
      assert.deepEqual(
        { ...node, created_at: undefined, updated_at: undefined },
        {
          ae_title: 'CREATE1',
          host: 'pacs.example.org',
          port: 104,
          description: null,
          allow_store: true,
          allow_find: true,
          allow_retrieve: true,
          move_destination: true,
          created_at: undefined,
          updated_at: undefined,
        },
      );
      assert.match(node.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.equal(node.updated_at, node.created_at);
      const got = await getNode('CREATE1');
      assert.equal(got.statusCode, 200);
      assert.deepEqual(got.json(), node);
    });

    it('POST of an existing AE title replaces it (200), keeping created_at', async () => {
      const first = (await post({ ae_title: 'UPSERT1', host: 'a.example', port: 104, description: 'first', allow_find: false })).json<NodeJson>();
      await new Promise((r) => setTimeout(r, 5));
      const res = await post({ ae_title: 'UPSERT1', host: '10.1.2.3', port: 11112, allow_store: false, move_destination: false });
      assert.equal(res.statusCode, 200, res.body);
      const node = res.json<NodeJson>();
      assert.equal(node.host, '10.1.2.3');
      assert.equal(node.port, 11112);
      // Upsert replaces the whole node: omitted fields return to their defaults.
      assert.equal(node.description, null);
      assert.equal(node.allow_find, true);
      assert.equal(node.allow_store, false);
      assert.equal(node.move_destination, false);
      assert.equal(node.created_at, first.created_at);
      assert.ok(node.updated_at > first.updated_at);
      assert.deepEqual((await getNode('UPSERT1')).json(), node);
    });

    it('trims the AE title: "  TRIM1  " is stored as TRIM1 and updates it', async () => {
      assert.equal((await post({ ae_title: '  TRIM1  ', host: 'h', port: 1 })).json<NodeJson>().ae_title, 'TRIM1');
      const again = await post({ ae_title: 'TRIM1', host: 'h', port: 2 });
      assert.equal(again.statusCode, 200);
      // 16 characters inside the spaces are fine.
      const sixteen = await post({ ae_title: '  ABCDEFGHIJKLMNOP ', host: 'h', port: 1 });
      assert.equal(sixteen.statusCode, 201, sixteen.body);
      assert.equal(sixteen.json<NodeJson>().ae_title, 'ABCDEFGHIJKLMNOP');
    });

    it('AE titles are case-sensitive and may hold inner spaces (path parameters URL-encoded)', async () => {
      assert.equal((await post({ ae_title: 'CaseAE', host: 'h', port: 1 })).statusCode, 201);
      assert.equal((await post({ ae_title: 'CASEAE', host: 'h', port: 2 })).statusCode, 201);
      assert.equal((await getNode('CaseAE')).json<NodeJson>().port, 1);
      assert.equal((await getNode('CASEAE')).json<NodeJson>().port, 2);
      assertError(await getNode('caseae'), 404, 'NOT_FOUND');
      assert.equal((await post({ ae_title: 'MY AE', host: 'h', port: 3 })).statusCode, 201);
      assert.equal((await getNode('MY AE')).json<NodeJson>().port, 3);
      assert.equal((await app.inject({ method: 'DELETE', url: `/api/nodes/${enc('MY AE')}` })).statusCode, 204);
    });

    it('DELETE answers 204 with no body, then 404; the node is gone', async () => {
      await post({ ae_title: 'DEL1', host: 'h', port: 104 });
      const res = await app.inject({ method: 'DELETE', url: '/api/nodes/DEL1' });
      assert.equal(res.statusCode, 204);
      assert.equal(res.body, '');
      assertError(await app.inject({ method: 'DELETE', url: '/api/nodes/DEL1' }), 404, 'NOT_FOUND');
      assertError(await getNode('DEL1'), 404, 'NOT_FOUND');
      assertError(await app.inject({ method: 'DELETE', url: '/api/nodes/NEVER' }), 404, 'NOT_FOUND');
    });

    it('GET of an unknown node is 404 in the error shape', async () => {
      const body = assertError(await getNode('UNKNOWN-AE'), 404, 'NOT_FOUND');
      assert.equal(body.error.details['ae_title'], 'UNKNOWN-AE');
    });
  });

  describe('list', () => {
    let listApp: FastifyInstance;
    let listStores: SqliteStores;
    before(async () => {
      listStores = createSqliteStores({ path: ':memory:' });
      await listStores.migrate();
      listApp = await buildApp(listStores);
      for (const [ae, dest] of [['B', true], ['A', false], ['D', true], ['C', true]] as const) {
        const res = await listApp.inject({ method: 'POST', url: '/api/nodes', payload: { ae_title: ae, host: 'h', port: 104, move_destination: dest } });
        assert.equal(res.statusCode, 201);
      }
    });
    after(async () => {
      await listApp.close();
      await listStores.close();
    });
    const list = (query = '') => listApp.inject({ method: 'GET', url: `/api/nodes${query}` });

    it('answers the list envelope, ordered by AE title, default limit 100', async () => {
      const res = await list();
      assert.equal(res.statusCode, 200);
      const body = res.json<ListJson>();
      assert.deepEqual(Object.keys(body).sort(), ['items', 'limit', 'offset', 'total']);
      assert.deepEqual(body.items.map((n) => n.ae_title), ['A', 'B', 'C', 'D']);
      assert.equal(body.total, 4);
      assert.equal(body.limit, 100);
      assert.equal(body.offset, 0);
      for (const n of body.items) assert.deepEqual(Object.keys(n).sort(), NODE_KEYS);
    });

    it('pages with limit and offset; total counts every match', async () => {
      const body = (await list('?limit=2&offset=1')).json<ListJson>();
      assert.deepEqual(body.items.map((n) => n.ae_title), ['B', 'C']);
      assert.deepEqual([body.total, body.limit, body.offset], [4, 2, 1]);
      const beyond = (await list('?offset=10')).json<ListJson>();
      assert.deepEqual([beyond.items.length, beyond.total], [0, 4]);
    });

    it('filters by move_destination', async () => {
      const yes = (await list('?move_destination=true')).json<ListJson>();
      assert.deepEqual(yes.items.map((n) => n.ae_title), ['B', 'C', 'D']);
      assert.equal(yes.total, 3);
      const no = (await list('?move_destination=false')).json<ListJson>();
      assert.deepEqual(no.items.map((n) => n.ae_title), ['A']);
    });

    for (const [query, field] of [
      ['?limit=0', 'limit'],
      ['?limit=1001', 'limit'],
      ['?limit=abc', 'limit'],
      ['?limit=1.5', 'limit'],
      ['?offset=-1', 'offset'],
      ['?limit=0x10', 'limit'],
      ['?offset=1e3', 'offset'],
      ['?offset=', 'offset'],
      ['?limit=+5', 'limit'],
      ['?move_destination=yes', 'move_destination'],
    ] as const) {
      it(`refuses ${query} naming ${field}`, async () => {
        const body = assertError(await list(query), 400, 'INVALID_PARAMETER');
        assert.equal(body.error.details['field'], field);
      });
    }
  });

  describe('validation: 400 INVALID_PARAMETER naming the field, nothing stored', () => {
    const valid = { ae_title: 'VALID', host: 'pacs.example.org', port: 104 };
    const cases: [string, Record<string, unknown>, string][] = [
      ['ae_title missing', { host: 'h', port: 104 }, 'ae_title'],
      ['ae_title not a string', { ...valid, ae_title: 42 }, 'ae_title'],
      ['ae_title empty', { ...valid, ae_title: '' }, 'ae_title'],
      ['ae_title only spaces', { ...valid, ae_title: '    ' }, 'ae_title'],
      ['ae_title of 17 characters', { ...valid, ae_title: 'ABCDEFGHIJKLMNOPQ' }, 'ae_title'],
      ['ae_title with a backslash', { ...valid, ae_title: 'AE\\ONE' }, 'ae_title'],
      ['ae_title with a tab', { ...valid, ae_title: 'AE\tONE' }, 'ae_title'],
      ['ae_title with a newline at the end', { ...valid, ae_title: 'AEONE\n' }, 'ae_title'],
      ['ae_title with NUL', { ...valid, ae_title: 'AE\u0000' }, 'ae_title'],
      ['ae_title with DEL', { ...valid, ae_title: 'AE\u007f' }, 'ae_title'],
      ['ae_title with ESC', { ...valid, ae_title: '\u001bAE' }, 'ae_title'],
      ['ae_title with a C1 control', { ...valid, ae_title: 'AE\u0085' }, 'ae_title'],
      ['ae_title not ASCII', { ...valid, ae_title: 'CAFÉ' }, 'ae_title'],
      ['host missing', { ae_title: 'X', port: 104 }, 'host'],
      ['host not a string', { ...valid, host: 10 }, 'host'],
      ['host empty', { ...valid, host: '' }, 'host'],
      ['host only spaces', { ...valid, host: '   ' }, 'host'],
      ['host with a space', { ...valid, host: 'pacs example.org' }, 'host'],
      ['host with a bad character', { ...valid, host: 'pacs!.example.org' }, 'host'],
      ['host label starting with a hyphen', { ...valid, host: '-pacs.example.org' }, 'host'],
      ['host with an empty label', { ...valid, host: 'pacs..example.org' }, 'host'],
      ['host IPv4 out of range', { ...valid, host: '999.1.1.1' }, 'host'],
      ['host IPv4 with three parts', { ...valid, host: '10.1.2' }, 'host'],
      ['host all digits', { ...valid, host: '8080' }, 'host'],
      ['host with a port', { ...valid, host: 'pacs.example.org:104' }, 'host'],
      ['host a URL', { ...valid, host: 'http://pacs.example.org' }, 'host'],
      ['host IPv6 with two ::', { ...valid, host: '1::2::3' }, 'host'],
      ['host IPv6 with too many groups', { ...valid, host: '1:2:3:4:5:6:7:8:9' }, 'host'],
      ['host IPv6 with a bad group', { ...valid, host: '2001:db8::g' }, 'host'],
      ['host longer than 253', { ...valid, host: `${'a'.repeat(60)}.`.repeat(5) + 'org' }, 'host'],
      ['host label longer than 63', { ...valid, host: `${'a'.repeat(64)}.org` }, 'host'],
      ['port missing', { ae_title: 'X', host: 'h' }, 'port'],
      ['port 0', { ...valid, port: 0 }, 'port'],
      ['port 65536', { ...valid, port: 65536 }, 'port'],
      ['port negative', { ...valid, port: -104 }, 'port'],
      ['port fractional', { ...valid, port: 104.5 }, 'port'],
      ['port as a string', { ...valid, port: '104' }, 'port'],
      ['port null', { ...valid, port: null }, 'port'],
      ['description of 257 characters', { ...valid, description: 'd'.repeat(257) }, 'description'],
      ['description not a string', { ...valid, description: 7 }, 'description'],
      ['allow_store not a boolean', { ...valid, allow_store: 'yes' }, 'allow_store'],
      ['allow_find as a number', { ...valid, allow_find: 1 }, 'allow_find'],
      ['allow_retrieve null', { ...valid, allow_retrieve: null }, 'allow_retrieve'],
      ['move_destination as a string', { ...valid, move_destination: 'true' }, 'move_destination'],
    ];
    for (const [name, body, field] of cases) {
      it(`${name} -> field ${field}`, async () => {
        const aeBefore = typeof body['ae_title'] === 'string' ? (body['ae_title'] as string).trim() : undefined;
        const res = await post(body);
        const err = assertError(res, 400, 'INVALID_PARAMETER');
        assert.equal(err.error.details['field'], field, err.error.message);
        assert.ok(err.error.message.length > 0);
        if (aeBefore && aeBefore.length > 0 && !aeBefore.includes('/')) {
          assertError(await getNode(aeBefore), 404, 'NOT_FOUND');
        }
      });
    }

    it('a body that is not a JSON object is refused', async () => {
      assertError(await app.inject({ method: 'POST', url: '/api/nodes', headers: { 'content-type': 'application/json' }, payload: '[1,2]' }), 400, 'INVALID_PARAMETER');
      const bad = await app.inject({ method: 'POST', url: '/api/nodes', headers: { 'content-type': 'application/json' }, payload: '{"ae_title":' });
      assert.equal(bad.statusCode, 400);
    });

    const accepted: [string, Record<string, unknown>, Partial<NodeJson>][] = [
      ['a 16-character AE title', { ae_title: 'SIXTEEN_CHARS_AE' }, { ae_title: 'SIXTEEN_CHARS_AE' }],
      ['a one-character AE title', { ae_title: 'Z' }, { ae_title: 'Z' }],
      ['punctuation in the AE title', { ae_title: 'A-B_C.D*E@F' }, { ae_title: 'A-B_C.D*E@F' }],
      ['host localhost', { ae_title: 'H1', host: 'localhost' }, { host: 'localhost' }],
      ['host IPv4', { ae_title: 'H2', host: '192.168.1.10' }, { host: '192.168.1.10' }],
      ['host IPv6 loopback', { ae_title: 'H3', host: '::1' }, { host: '::1' }],
      ['host IPv6 in brackets (stored without)', { ae_title: 'H4', host: '[2001:db8::ff00:42:8329]' }, { host: '2001:db8::ff00:42:8329' }],
      ['host IPv4-mapped IPv6', { ae_title: 'H5', host: '::ffff:192.0.2.1' }, { host: '::ffff:192.0.2.1' }],
      ['host full IPv6', { ae_title: 'H6', host: '2001:0db8:0000:0000:0000:ff00:0042:8329' }, { host: '2001:0db8:0000:0000:0000:ff00:0042:8329' }],
      ['host FQDN with a trailing dot', { ae_title: 'H7', host: 'pacs-01.example.org.' }, { host: 'pacs-01.example.org.' }],
      ['host with an underscore (container name)', { ae_title: 'H8', host: 'orthanc_1' }, { host: 'orthanc_1' }],
      ['host with surrounding spaces (trimmed)', { ae_title: 'H9', host: '  pacs  ' }, { host: 'pacs' }],
      ['port 1', { ae_title: 'P1', port: 1 }, { port: 1 }],
      ['port 65535', { ae_title: 'P2', port: 65535 }, { port: 65535 }],
      ['description of 256 characters', { ae_title: 'D1', description: 'd'.repeat(256) }, { description: 'd'.repeat(256) }],
      ['description of 256 non-ASCII characters', { ae_title: 'D2', description: 'é'.repeat(256) }, { description: 'é'.repeat(256) }],
      ['description null', { ae_title: 'D3', description: null }, { description: null }],
      ['every flag false', { ae_title: 'F1', allow_store: false, allow_find: false, allow_retrieve: false, move_destination: false }, { allow_store: false, allow_find: false, allow_retrieve: false, move_destination: false }],
      ['an unknown extra field (ignored)', { ae_title: 'X1', colour: 'blue' }, { ae_title: 'X1' }],
    ];
    for (const [name, patch, expected] of accepted) {
      it(`accepts ${name}`, async () => {
        const res = await post({ ...valid, ...patch });
        assert.ok(res.statusCode === 201 || res.statusCode === 200, res.body);
        const node = res.json<NodeJson>();
        for (const [k, v] of Object.entries(expected)) assert.deepEqual(node[k as keyof NodeJson], v, k);
        assert.ok(!('colour' in node));
      });
    }
  });

  describe('authorization', () => {
    it('reads need "read", changes need "admin" (anonymous -> 401)', async () => {
      const readOnly: AccessPolicy = { allows: (_ctx, action) => action === 'read' };
      const ro = await buildApp(stores, readOnly);
      try {
        assert.equal((await ro.inject({ method: 'GET', url: '/api/nodes' })).statusCode, 200);
        assert.equal((await ro.inject({ method: 'GET', url: '/api/nodes/CREATE1' })).statusCode, 200);
        assertError(await ro.inject({ method: 'POST', url: '/api/nodes', payload: { ae_title: 'NOPE', host: 'h', port: 1 } }), 401, 'UNAUTHORIZED');
        assertError(await ro.inject({ method: 'DELETE', url: '/api/nodes/CREATE1' }), 401, 'UNAUTHORIZED');
        assert.equal((await ro.inject({ method: 'GET', url: '/api/nodes/CREATE1' })).statusCode, 200);
      } finally {
        await ro.close();
      }
    });
  });
});
