// The node service as DIMSE will use it (whitelist and move-destination lookups) and the host/AE
// validators on their own; the HTTP suite (test/http/nodes.test.ts) covers every rule end to end.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isArchiveError } from '../../src/archive/errors.js';
import { createNodeService, isHostname, isIpv4, isIpv6, normaliseAeTitle, type NodeService } from '../../src/archive/nodes.js';
import { SYSTEM } from '../../src/archive/origin.js';
import { createSqliteStores, type SqliteStores } from '../../src/storage/sqlite/sqlite-metadata-store.js';

const ctx = { principal: SYSTEM, origin: { protocol: 'dimse' as const, callingAe: 'SCU' } };

describe('node service', () => {
  let stores: SqliteStores;
  let nodes: NodeService;
  before(async () => {
    stores = createSqliteStores({ path: ':memory:' });
    await stores.migrate();
    nodes = createNodeService({ store: stores.nodes, now: () => new Date('2026-05-01T00:00:00.000Z') });
    await nodes.upsert(ctx, { aeTitle: 'DEST1', host: '127.0.0.1', port: 11112 });
    await nodes.upsert(ctx, { aeTitle: 'NODEST', host: '127.0.0.1', port: 11113, moveDestination: false });
  });
  after(() => stores.close());

  it('find is exact and case-sensitive (spaces trimmed as in the A-ASSOCIATE-RQ)', async () => {
    assert.equal((await nodes.find(ctx, 'DEST1'))?.port, 11112);
    assert.equal((await nodes.find(ctx, 'DEST1           '))?.port, 11112);
    assert.equal(await nodes.find(ctx, 'dest1'), undefined);
    assert.equal(await nodes.find(ctx, 'UNKNOWN'), undefined);
  });

  it('moveDestinations lists only flagged nodes', async () => {
    assert.deepEqual((await nodes.moveDestinations(ctx)).map((n) => n.aeTitle), ['DEST1']);
  });

  it('uses the injected clock and reports the field of the first invalid value', async () => {
    const { node } = await nodes.upsert(ctx, { aeTitle: 'CLOCK', host: 'h', port: 1 });
    assert.equal(node.createdAt.toISOString(), '2026-05-01T00:00:00.000Z');
    await assert.rejects(nodes.upsert(ctx, { aeTitle: 'OK', host: '', port: 0 }), (e: unknown) => isArchiveError(e) && e.details?.['field'] === 'host');
  });

  it('get and remove of an unknown node are NOT_FOUND', async () => {
    await assert.rejects(nodes.get(ctx, 'NONE'), (e: unknown) => isArchiveError(e) && e.code === 'NOT_FOUND');
    await assert.rejects(nodes.remove(ctx, 'NONE'), (e: unknown) => isArchiveError(e) && e.code === 'NOT_FOUND');
  });
});

describe('node validators', () => {
  it('IPv4', () => {
    for (const ok of ['0.0.0.0', '127.0.0.1', '255.255.255.255', '10.0.0.1']) assert.ok(isIpv4(ok), ok);
    for (const bad of ['256.0.0.1', '1.2.3', '1.2.3.4.5', '01.2.3.4', '1.2.3.-4', '']) assert.ok(!isIpv4(bad), bad);
  });
  it('IPv6', () => {
    for (const ok of ['::', '::1', '1::', 'fe80::1%eth0', '2001:db8::1', '1:2:3:4:5:6:7:8', '::ffff:10.0.0.1', '64:ff9b::192.0.2.33']) assert.ok(isIpv6(ok), ok);
    for (const bad of [':', ':::', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8:9', '12345::', '::ffff:999.0.0.1', 'fe80::1%', 'g::1', '1::2::3']) assert.ok(!isIpv6(bad), bad);
  });
  it('host names', () => {
    for (const ok of ['localhost', 'a', 'pacs-1.example.org', 'x1.y2', 'example.org.', '1host.example']) assert.ok(isHostname(ok), ok);
    for (const bad of ['', '-a', 'a-', 'a..b', 'a b', '1.2.3', '80', 'é.example', `${'a'.repeat(64)}.org`]) assert.ok(!isHostname(bad), bad);
  });
  it('AE titles keep case and inner spaces, lose outer spaces', () => {
    assert.equal(normaliseAeTitle('  My Ae '), 'My Ae');
    assert.throws(() => normaliseAeTitle('A\\B'), (e: unknown) => isArchiveError(e) && e.details?.['field'] === 'ae_title');
  });
});
