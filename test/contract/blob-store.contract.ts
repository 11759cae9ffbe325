import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { isStorageError } from '../../src/storage/errors.js';
import type { BlobStat, BlobStore } from '../../src/storage/blobs.js';

/**
 * The BlobStore contract: every adapter (memory, fs, s3) passes this suite unchanged.
 * Each test works under its own random key prefix, so adapters may share one backing store.
 */
export interface BlobStoreFixture {
  store: BlobStore;
  cleanup: () => Promise<void>;
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(typeof c === 'string' ? Buffer.from(c) : (c as Buffer));
  return Buffer.concat(chunks);
}

export async function collect(iter: AsyncIterable<BlobStat>): Promise<BlobStat[]> {
  const out: BlobStat[] = [];
  for await (const s of iter) out.push(s);
  return out;
}

/** Deterministic pseudo-random bytes (xorshift), so large bodies need no stored fixture. */
export function pseudoRandom(length: number, seed = 1): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    buf[i] = x & 0xff;
  }
  return buf;
}

function chunked(data: Buffer, chunkSize: number): Readable {
  return Readable.from(
    (function* gen() {
      for (let i = 0; i < data.length; i += chunkSize) yield data.subarray(i, i + chunkSize);
    })(),
  );
}

/** A body that sends `first` and then fails with an error. */
function failingBody(first: Buffer): Readable {
  return Readable.from(
    (async function* gen() {
      yield first;
      await new Promise((r) => setTimeout(r, 5));
      throw new Error('client went away');
    })(),
  );
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const tick = (ms = 10): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function assertRejectsWith(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isStorageError(e), `expected StorageError ${code}, got ${String(e)}`);
    assert.equal(e.code, code);
    return true;
  });
}

export function blobStoreContract(name: string, factory: () => Promise<BlobStoreFixture>): void {
  describe(`BlobStore contract: ${name}`, () => {
    let fx: BlobStoreFixture;
    let store: BlobStore;
    before(async () => {
      fx = await factory();
      store = fx.store;
    });
    after(async () => {
      await fx.store.close();
      await fx.cleanup();
    });
    /** A fresh prefix per test: tests never see each other's objects. */
    const prefix = (): string => `t${randomUUID().replaceAll('-', '')}/`;

    it('round-trips binary bytes and reports the size', async () => {
      const key = `${prefix()}2026/11/${randomUUID()}.dcm`;
      const data = randomBytes(70_001);
      const res = await store.put(key, Readable.from([data]));
      assert.deepEqual(res, { key, size: data.length });
      assert.ok((await readAll(await store.get(key))).equals(data));
    });

    it('stores an empty object', async () => {
      const key = `${prefix()}empty.dcm`;
      const res = await store.put(key, Readable.from([]));
      assert.equal(res.size, 0);
      assert.equal((await readAll(await store.get(key))).length, 0);
      assert.equal((await store.stat(key))?.size, 0);
    });

    it('streams 5 MiB sent in chunks and returns identical bytes', async () => {
      const key = `${prefix()}big.dcm`;
      const data = pseudoRandom(5 * 1024 * 1024, 42);
      const res = await store.put(key, chunked(data, 64 * 1024), { sizeHint: data.length });
      assert.equal(res.size, data.length);
      const back = await readAll(await store.get(key));
      assert.equal(back.length, data.length);
      assert.equal(sha(back), sha(data));
    });

    it('serves inclusive byte ranges', async () => {
      const key = `${prefix()}range.dcm`;
      const data = pseudoRandom(10_000, 7);
      await store.put(key, Readable.from([data]));
      assert.ok((await readAll(await store.get(key, { start: 100, end: 199 }))).equals(data.subarray(100, 200)));
      assert.ok((await readAll(await store.get(key, { start: 9_990 }))).equals(data.subarray(9_990)));
      assert.ok((await readAll(await store.get(key, { end: 9 }))).equals(data.subarray(0, 10)));
      assert.ok((await readAll(await store.get(key, { start: 5, end: 5 }))).equals(data.subarray(5, 6)));
    });

    it('stats an object and returns undefined for an absent key', async () => {
      const key = `${prefix()}stat.dcm`;
      const before = Date.now();
      await store.put(key, Readable.from([Buffer.from('hello')]));
      const s = await store.stat(key);
      assert.ok(s);
      assert.equal(s.key, key);
      assert.equal(s.size, 5);
      assert.ok(s.modifiedAt instanceof Date);
      // Allow for coarse filesystem/S3 timestamps.
      assert.ok(s.modifiedAt.getTime() >= before - 2_000 && s.modifiedAt.getTime() <= Date.now() + 2_000);
      assert.equal(await store.stat(`${prefix()}absent.dcm`), undefined);
    });

    it('rejects get of an absent key with NOT_FOUND', async () => {
      await assertRejectsWith(store.get(`${prefix()}absent.dcm`), 'NOT_FOUND');
    });

    it('a key prefix of stored objects is not itself an object', async () => {
      const p = prefix();
      await store.put(`${p}2026/11/x.dcm`, Readable.from([Buffer.from('x')]));
      assert.equal(await store.stat(`${p}2026/11`), undefined);
      await assertRejectsWith(store.get(`${p}2026/11`), 'NOT_FOUND');
      await assertRejectsWith(store.get(`${p}2026/11/x.dcm/y`), 'NOT_FOUND');
      await store.delete(`${p}2026/11/x.dcm/y`);
    });

    it('deletes, and deleting again (or an absent key) is not an error', async () => {
      const key = `${prefix()}del.dcm`;
      await store.put(key, Readable.from([Buffer.from('x')]));
      await store.delete(key);
      assert.equal(await store.stat(key), undefined);
      await assertRejectsWith(store.get(key), 'NOT_FOUND');
      await store.delete(key);
      await store.delete(`${prefix()}never.dcm`);
    });

    it('lists committed objects by prefix and age', async () => {
      const p = prefix();
      const keys = [`${p}2026/11/a.dcm`, `${p}2026/11/b.dcm`, `${p}2026/12/c.dcm`];
      for (const k of keys) await store.put(k, Readable.from([Buffer.from(k)]));
      const all = await collect(store.list({ prefix: p }));
      assert.deepEqual(all.map((s) => s.key).sort(), [...keys].sort());
      for (const s of all) assert.equal(s.size, Buffer.byteLength(s.key));
      const nov = await collect(store.list({ prefix: `${p}2026/11/` }));
      assert.deepEqual(nov.map((s) => s.key).sort(), keys.slice(0, 2));
      const partial = await collect(store.list({ prefix: `${p}2026/1` }));
      assert.equal(partial.length, 3);
      const future = await collect(store.list({ prefix: p, olderThan: new Date(Date.now() + 60_000) }));
      assert.equal(future.length, 3);
      const past = await collect(store.list({ prefix: p, olderThan: new Date(Date.now() - 60_000) }));
      assert.equal(past.length, 0);
      assert.equal((await collect(store.list({ prefix: `${prefix()}` }))).length, 0);
    });

    it('lists everything without options, and never a temporary', async () => {
      const p = prefix();
      const key = `${p}x.dcm`;
      const body = new PassThrough();
      const pending = store.put(`${p}pending.dcm`, body);
      body.write(Buffer.alloc(1000, 1));
      await store.put(key, Readable.from([Buffer.from('x')]));
      const mine = (await collect(store.list())).filter((s) => s.key.startsWith(p));
      assert.deepEqual(mine.map((s) => s.key), [key]);
      body.end();
      await pending;
    });

    it('a body that errors midway leaves no object', async () => {
      const key = `${prefix()}fail.dcm`;
      await assert.rejects(store.put(key, failingBody(pseudoRandom(200_000, 3))));
      assert.equal(await store.stat(key), undefined);
      await assertRejectsWith(store.get(key), 'NOT_FOUND');
    });

    it('an aborted signal fails the put and leaves no object', async () => {
      const key = `${prefix()}abort.dcm`;
      const body = new PassThrough();
      const ac = new AbortController();
      const pending = store.put(key, body, { signal: ac.signal });
      body.write(pseudoRandom(100_000, 5));
      await tick(20);
      ac.abort();
      await assert.rejects(pending);
      assert.equal(await store.stat(key), undefined);
      await assertRejectsWith(store.get(key), 'NOT_FOUND');
    });

    it('a signal aborted before the put fails it without creating anything', async () => {
      const key = `${prefix()}pre-abort.dcm`;
      const ac = new AbortController();
      ac.abort();
      await assert.rejects(store.put(key, Readable.from([Buffer.from('x')]), { signal: ac.signal }));
      assert.equal(await store.stat(key), undefined);
    });

    it('an object is invisible while its body is still streaming', async () => {
      const key = `${prefix()}streaming.dcm`;
      const body = new PassThrough();
      const pending = store.put(key, body);
      const half = pseudoRandom(256 * 1024, 9);
      body.write(half);
      await tick(30);
      assert.equal(await store.stat(key), undefined);
      await assertRejectsWith(store.get(key), 'NOT_FOUND');
      const rest = pseudoRandom(1000, 10);
      body.end(rest);
      const res = await pending;
      assert.equal(res.size, half.length + rest.length);
      assert.equal((await store.stat(key))?.size, half.length + rest.length);
    });

    it('concurrent puts of different keys all land intact', async () => {
      const p = prefix();
      const items = Array.from({ length: 12 }, (_, i) => ({ key: `${p}${i}.dcm`, data: pseudoRandom(50_000 + i * 997, i + 100) }));
      await Promise.all(items.map((it) => store.put(it.key, chunked(it.data, 8192))));
      for (const it of items) assert.equal(sha(await readAll(await store.get(it.key))), sha(it.data));
    });

    it('cleanupTemporary never removes committed objects nor a live upload newer than the cut-off', async () => {
      const p = prefix();
      const key = `${p}kept.dcm`;
      await store.put(key, Readable.from([Buffer.from('keep')]));
      const body = new PassThrough();
      const pending = store.put(`${p}live.dcm`, body);
      body.write(Buffer.alloc(4096, 2));
      await tick(20);
      const removed = await store.cleanupTemporary(new Date(Date.now() - 3_600_000));
      assert.equal(typeof removed, 'number');
      body.end(Buffer.alloc(10, 3));
      assert.equal((await pending).size, 4106);
      assert.equal((await store.stat(`${p}live.dcm`))?.size, 4106);
      await store.cleanupTemporary(new Date(Date.now() + 60_000));
      assert.equal((await readAll(await store.get(key))).toString(), 'keep');
    });

    it('refuses keys that could escape the store', async () => {
      const bad = ['', '/abs.dcm', '../escape.dcm', 'a/../../b.dcm', 'a/./b.dcm', 'a//b.dcm', 'a\\b.dcm', 'a\u0000b.dcm', '.tmp/x.dcm'];
      for (const key of bad) {
        await assertRejectsWith(store.put(key, Readable.from([Buffer.from('x')])), 'INVALID_PARAMETER');
        await assertRejectsWith(store.get(key), 'INVALID_PARAMETER');
        await assertRejectsWith(store.stat(key), 'INVALID_PARAMETER');
        await assertRejectsWith(store.delete(key), 'INVALID_PARAMETER');
      }
    });

    it('check() passes on a usable store', async () => {
      await store.check();
    });
  });
}
