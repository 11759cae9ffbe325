// A STOW-RS client that goes silent part-way through its body is abandoned after the stall timeout
// (STOW_STALL_MS, shortened here): the connection is destroyed, the part in flight stores nothing,
// and the server goes on serving. A large-header permit it held is released with its ingest.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { createArchive } from '../../src/archive/archive.js';
import { createJobService } from '../../src/archive/jobs.js';
import { createNodeService } from '../../src/archive/nodes.js';
import { loadConfig } from '../../src/config/load.js';
import { buildHttpApp } from '../../src/http/app.js';
import { archiveSettings, openStores, type Stores } from '../../src/main.js';
import { simpleInstance } from '../helpers/corpus.js';
import { get, newBoundary, stow } from '../helpers/http.js';

describe('STOW-RS: a client that stops sending', () => {
  let dir: string;
  let stores: Stores;
  let app: FastifyInstance;
  let port: number;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'pacsnode-stow-stall-'));
    const config = loadConfig({ env: { PACS_SERVER__HTTP_PORT: '0', PACS_SERVER__DICOM_PORT: '0', PACS_STORAGE__GC_INTERVAL_SECS: '0', PACS_FILESYSTEM_STORAGE__FSYNC: 'false' }, cwd: dir, packageRoot: dir });
    const logger = pino({ level: process.env['PACS_TEST_LOG'] ?? 'silent' });
    stores = await openStores(config, logger);
    const archive = createArchive({ metadata: stores.metadata, blobs: stores.blobs, settings: archiveSettings(config), logger });
    app = await buildHttpApp({ archive, config, logger, nodes: createNodeService({ store: stores.nodes }), jobs: createJobService({ store: stores.jobs }), stowStallMs: 500 });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address();
    assert.ok(address !== null && typeof address === 'object');
    port = address.port;
  });
  after(async () => {
    await app?.close();
    await stores?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('is disconnected after the stall timeout, stores nothing of the part in flight, and others are served', { timeout: 20_000 }, async () => {
    const inst = simpleInstance({});
    const boundary = newBoundary();
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const closed = new Promise<number>((resolve) => {
      const started = Date.now();
      socket.once('close', () => resolve(Date.now() - started));
    });
    socket.on('error', () => {});
    socket.on('data', () => {});
    socket.write(
      `POST /wado/studies HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/related; type="application/dicom"; boundary=${boundary}\r\nTransfer-Encoding: chunked\r\n\r\n`,
    );
    const first = Buffer.concat([Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`, 'latin1'), inst.bytes.subarray(0, inst.bytes.length >> 1)]);
    socket.write(`${first.length.toString(16)}\r\n`);
    socket.write(first);
    socket.write('\r\n');
    // ... and nothing more.
    const waited = await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(-1), 10_000))]);
    assert.ok(waited >= 400 && waited < 5000, `connection closed after ${waited} ms (stall timeout 500 ms)`);
    const found = JSON.parse((await get(`http://127.0.0.1:${port}/wado/instances?SOPInstanceUID=${inst.sopUid}`)).text()) as unknown[];
    assert.deepEqual(found, []);
    const other = simpleInstance({});
    assert.equal((await stow(`http://127.0.0.1:${port}/wado/studies`, [other.bytes])).status, 200);
  });
});
