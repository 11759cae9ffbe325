import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, open, readdir, rm, stat, utimes, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { createFsBlobStore, FS_TEMP_DIR } from '../../src/storage/fs/fs-blob-store.js';
import { createMemoryBlobStore } from '../../src/storage/memory/memory-blob-store.js';
import { createS3BlobStore } from '../../src/storage/s3/s3-blob-store.js';
import { startS3rver } from '../helpers/s3rver.js';
import { blobStoreContract, collect, pseudoRandom } from './blob-store.contract.js';

blobStoreContract('memory', async () => ({ store: createMemoryBlobStore(), cleanup: async () => {} }));

async function tempRoot(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'pacsnode-blobs-'));
}

for (const fsync of [true, false]) {
  blobStoreContract(`filesystem (fsync=${fsync})`, async () => {
    const root = await tempRoot();
    return { store: createFsBlobStore({ root, fsync }), cleanup: () => rm(root, { recursive: true, force: true }) };
  });
}

// The real AWS SDK against s3rver on loopback (test/helpers/s3rver.ts), checksum mode when_required.
blobStoreContract('s3 (s3rver)', async () => {
  const s3 = await startS3rver();
  const store = createS3BlobStore(s3.storeOptions());
  await store.check();
  return { store, cleanup: () => s3.close() };
});

async function tmpFiles(root: string): Promise<string[]> {
  try {
    return await readdir(join(root, FS_TEMP_DIR));
  } catch {
    return [];
  }
}

async function waitFor(cond: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('filesystem BlobStore specifics', () => {
  it('writes a streaming body to a temp file on disk before the body ends', async () => {
    const root = await tempRoot();
    try {
      const store = createFsBlobStore({ root, fsync: true });
      const body = new PassThrough();
      const key = `2026/11/${randomUUID()}.dcm`;
      const pending = store.put(key, body);
      const written = 3 * 1024 * 1024;
      body.write(pseudoRandom(written, 11));
      await waitFor(async () => {
        const names = await tmpFiles(root);
        if (names.length !== 1 || names[0] === undefined) return false;
        return (await stat(join(root, FS_TEMP_DIR, names[0]))).size >= written;
      });
      assert.equal(await store.stat(key), undefined);
      body.end();
      assert.equal((await pending).size, written);
      assert.deepEqual(await tmpFiles(root), []);
      assert.equal((await stat(join(root, '2026', '11', key.split('/')[2] ?? ''))).size, written);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('with fsync, flushes the start of a blob in the background while the rest still arrives (early write-back)', async () => {
    const root = await tempRoot();
    // Count fdatasync calls on every FileHandle (the class is internal: reached through an instance).
    const probe = await open(join(root, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as { datasync: (this: unknown) => Promise<void> };
    await probe.close();
    const original = proto.datasync;
    let calls = 0;
    proto.datasync = function (this: unknown) {
      calls++;
      return original.call(this);
    };
    try {
      for (const fsync of [true, false]) {
        calls = 0;
        const store = createFsBlobStore({ root: join(root, String(fsync)), fsync });
        const body = new PassThrough();
        const pending = store.put(`2026/11/${randomUUID()}.dcm`, body);
        const first = 1024 * 1024;
        body.write(pseudoRandom(first, 3));
        const tmp = join(root, String(fsync), FS_TEMP_DIR);
        await waitFor(async () => {
          const names = await readdir(tmp).catch(() => []);
          return names[0] !== undefined && (await stat(join(tmp, names[0]))).size >= first;
        });
        await waitFor(async () => !fsync || calls > 0);
        assert.equal(calls > 0, fsync, fsync ? 'no fdatasync before the last byte' : 'an fdatasync without fsync');
        body.end(pseudoRandom(1000, 4));
        assert.equal((await pending).size, first + 1000);
      }
    } finally {
      proto.datasync = original;
      await rm(root, { recursive: true, force: true });
    }
  });

  it('removes the temp file when the body errors or the signal aborts', async () => {
    const root = await tempRoot();
    try {
      const store = createFsBlobStore({ root, fsync: false });
      const body = new PassThrough();
      const pending = store.put('a/b.dcm', body);
      body.write(Buffer.alloc(10_000));
      await waitFor(async () => (await tmpFiles(root)).length === 1);
      body.destroy(new Error('boom'));
      await assert.rejects(pending);
      assert.deepEqual(await tmpFiles(root), []);

      const ac = new AbortController();
      const body2 = new PassThrough();
      const pending2 = store.put('a/c.dcm', body2, { signal: ac.signal });
      body2.write(Buffer.alloc(10_000));
      await waitFor(async () => (await tmpFiles(root)).length === 1);
      ac.abort();
      await assert.rejects(pending2);
      assert.deepEqual(await tmpFiles(root), []);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('cleanupTemporary removes abandoned temp files older than the cut-off only', async () => {
    const root = await tempRoot();
    try {
      const store = createFsBlobStore({ root, fsync: false });
      await mkdir(join(root, FS_TEMP_DIR), { recursive: true });
      const old = join(root, FS_TEMP_DIR, 'abandoned.part');
      const fresh = join(root, FS_TEMP_DIR, 'fresh.part');
      await writeFile(old, 'x');
      await writeFile(fresh, 'y');
      const twoHoursAgo = new Date(Date.now() - 2 * 3_600_000);
      await utimes(old, twoHoursAgo, twoHoursAgo);
      await store.put('k/1.dcm', Readable.from([Buffer.from('z')]));
      assert.equal(await store.cleanupTemporary(new Date(Date.now() - 3_600_000)), 1);
      assert.deepEqual(await tmpFiles(root), ['fresh.part']);
      assert.equal((await collect(store.list())).length, 1);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('list skips the temp directory and works before anything was stored', async () => {
    const root = join(await tempRoot(), 'not-yet-created');
    try {
      const store = createFsBlobStore({ root, fsync: false });
      assert.deepEqual(await collect(store.list()), []);
      assert.equal(await store.cleanupTemporary(new Date()), 0);
      await store.check();
      assert.deepEqual(await collect(store.list()), []);
    } finally {
      await rm(join(root, '..'), { recursive: true, force: true });
    }
  });
});
