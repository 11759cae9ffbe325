// STOW-RS reads the next part of a request while the previous one is made durable and committed,
// and still commits the parts in their order: proven with a real SQLite + filesystem archive whose
// MetadataStore holds the first commit back until the next part's blob has been written.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { createArchive } from '../../src/archive/archive.js';
import { createJobService } from '../../src/archive/jobs.js';
import { createNodeService } from '../../src/archive/nodes.js';
import { loadConfig } from '../../src/config/load.js';
import { generateUid } from '../../src/dicom/uids.js';
import { buildHttpApp } from '../../src/http/app.js';
import { archiveSettings, openStores, type Stores } from '../../src/main.js';
import type { BlobStore } from '../../src/storage/blobs.js';
import type { MetadataStore } from '../../src/storage/metadata.js';
import { simpleInstance } from '../helpers/corpus.js';
import { get, stow } from '../helpers/http.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Resolves when `cond()` holds (checked on every blob put), or false after `ms`. */
function waiter(): { wait(cond: () => boolean, ms: number): Promise<boolean>; poke(): void } {
  const waiting: { cond: () => boolean; done: (ok: boolean) => void }[] = [];
  return {
    wait(cond, ms) {
      if (cond()) return Promise.resolve(true);
      return new Promise((resolve) => {
        const entry = { cond, done: resolve };
        waiting.push(entry);
        setTimeout(() => {
          const i = waiting.indexOf(entry);
          if (i >= 0) waiting.splice(i, 1);
          resolve(false);
        }, ms).unref();
      });
    },
    poke() {
      for (const w of [...waiting]) {
        if (w.cond()) {
          waiting.splice(waiting.indexOf(w), 1);
          w.done(true);
        }
      }
    },
  };
}

describe('STOW-RS: parts overlap, commits keep their order', () => {
  let dir: string;
  let stores: Stores;
  let app: FastifyInstance;
  let base: string;
  let putsDone = 0;
  let commits = 0;
  /** Whether the first commit of a request saw the second part's blob written while it was held. */
  let overlapped: boolean | undefined;
  const puts = waiter();

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'pacsnode-stow-overlap-'));
    const config = loadConfig({
      env: { PACS_SERVER__HTTP_PORT: '0', PACS_SERVER__DICOM_PORT: '0', PACS_STORAGE__GC_INTERVAL_SECS: '0' },
      cwd: dir,
      packageRoot: dir,
    });
    const logger = pino({ level: process.env['PACS_TEST_LOG'] ?? 'silent' });
    stores = await openStores(config, logger);
    const blobs: BlobStore = {
      ...stores.blobs,
      async put(key, body, options) {
        const result = await stores.blobs.put(key, body, options);
        putsDone++;
        puts.poke();
        return result;
      },
    };
    const metadata: MetadataStore = {
      ...stores.metadata,
      async commitInstance(record, options) {
        if (commits++ === 0) {
          // Held until the request's second blob is durable: only an overlapping STOW gets there.
          overlapped = await puts.wait(() => putsDone >= 2, 3000);
        }
        return stores.metadata.commitInstance(record, options);
      },
    };
    const archive = createArchive({ metadata, blobs, settings: archiveSettings(config), logger });
    app = await buildHttpApp({ archive, config, logger, nodes: createNodeService({ store: stores.nodes }), jobs: createJobService({ store: stores.jobs }) });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address();
    assert.ok(address !== null && typeof address === 'object');
    base = `http://127.0.0.1:${address.port}`;
  });

  beforeEach(() => {
    putsDone = 0;
    commits = 0;
    overlapped = undefined;
  });

  after(async () => {
    await app?.close();
    await stores?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('writes the second part while the first one commits; both stored', async () => {
    const studyUid = generateUid();
    const a = simpleInstance({ studyUid, fill: 1 });
    const b = simpleInstance({ studyUid, fill: 2 });
    const res = await stow(`${base}/wado/studies`, [a.bytes, b.bytes]);
    assert.equal(res.status, 200, res.text());
    assert.equal(overlapped, true, 'the second part was not received while the first was committing');
    const found = JSON.parse((await get(`${base}/wado/studies/${studyUid}/instances`)).text()) as unknown[];
    assert.equal(found.length, 2);
  });

  it('two copies of one SOP Instance in one request: the later part wins, as if stored one after the other', async () => {
    const studyUid = generateUid();
    const seriesUid = generateUid();
    const sopUid = generateUid();
    const first = simpleInstance({ studyUid, seriesUid, sopUid, fill: 3 });
    const second = simpleInstance({ studyUid, seriesUid, sopUid, fill: 4 });
    assert.notEqual(sha(first.bytes), sha(second.bytes));
    const res = await stow(`${base}/wado/studies`, [first.bytes, second.bytes]);
    assert.equal(res.status, 200, res.text());
    assert.equal(overlapped, true);
    const stored = await get(`${base}/wado/studies/${studyUid}/series/${seriesUid}/instances/${sopUid}`, { Accept: 'multipart/related; type="application/dicom"; transfer-syntax=*' });
    assert.equal(stored.status, 200);
    assert.ok(stored.body.includes(second.bytes.subarray(132)), 'the stored instance is not the later part');
    assert.ok(!stored.body.includes(first.bytes.subarray(132)));
    const count = JSON.parse((await get(`${base}/wado/studies/${studyUid}/instances`)).text()) as unknown[];
    assert.equal(count.length, 1);
  });
});
