// S3 BlobStore specifics beyond the contract suite, through the real AWS SDK against s3rver.
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { after, describe, it } from 'node:test';
import {
  CreateMultipartUploadCommand,
  GetObjectCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { isStorageError } from '../../src/storage/errors.js';
import { createS3BlobStore, s3ClientConfig } from '../../src/storage/s3/s3-blob-store.js';
import { collect, pseudoRandom, readAll } from '../contract/blob-store.contract.js';
import { startS3rver } from '../helpers/s3rver.js';

const MIB = 1024 * 1024;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function waitFor(cond: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Writes `data` into a PassThrough in `chunk`-sized writes, honouring backpressure, then ends it. */
async function feed(body: PassThrough, data: Buffer, chunk: number): Promise<void> {
  for (let off = 0; off < data.length; off += chunk) {
    if (!body.write(data.subarray(off, off + chunk))) await new Promise((r) => body.once('drain', r));
  }
  body.end();
}

async function rejectsWithCode(p: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isStorageError(e), `expected StorageError ${code}, got ${String(e)}`);
    assert.equal(e.code, code);
    if (message) assert.match(e.message, message);
    return true;
  });
}

const s3 = await startS3rver();
const raw = new S3Client(s3ClientConfig(s3.storeOptions()));
after(() => raw.destroy());

describe('S3 BlobStore (s3rver)', () => {
  it('a 20 MiB body streamed through a PassThrough arrives byte-identical, as a multipart upload (checksum_mode = when_required)', async () => {
    const store = createS3BlobStore(s3.storeOptions({ checksumMode: 'when_required' }));
    try {
      const key = `stream/${randomUUID()}.dcm`;
      const data = pseudoRandom(20 * MIB, 20);
      const body = new PassThrough();
      const pending = store.put(key, body);
      // Uneven writes, so part boundaries never line up with chunk boundaries.
      const head = data.subarray(0, 9 * MIB);
      for (let off = 0; off < head.length; off += 65_537) {
        if (!body.write(head.subarray(off, off + 65_537))) await new Promise((r) => body.once('drain', r));
      }
      // A multipart upload is under way (and no object visible) before the body ends.
      await waitFor(async () => (await s3.pendingUploads()).length === 1);
      assert.equal(await store.stat(key), undefined);
      await feed(body, data.subarray(head.length), 65_537);
      assert.deepEqual(await pending, { key, size: data.length });
      const back = await readAll(await store.get(key));
      assert.equal(back.length, data.length);
      assert.equal(sha(back), sha(data));
      assert.deepEqual(await s3.pendingUploads(), []);
    } finally {
      await store.close();
    }
  });

  it('the trap: with the SDK default (when_supported) a streamed PutObject is stored with aws-chunked framing', async () => {
    // Why storage.checksum_mode defaults to when_required (STACK.md). The store itself only sends
    // buffered parts, so it is safe in both modes; this pins the behaviour that makes the option matter.
    const data = pseudoRandom(MIB + 3, 4);
    const results: Record<string, boolean> = {};
    for (const mode of ['when_supported', 'when_required'] as const) {
      const client = new S3Client(s3ClientConfig(s3.storeOptions({ checksumMode: mode })));
      try {
        const key = `trap/${mode}/${randomUUID()}.dcm`;
        const body = new PassThrough();
        body.end(data);
        await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: body, ContentLength: data.length }));
        const res = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
        assert.ok(res.Body instanceof Readable);
        results[mode] = (await readAll(res.Body)).equals(data);
      } finally {
        client.destroy();
      }
    }
    assert.deepEqual(results, { when_supported: false, when_required: true });
    const store = createS3BlobStore(s3.storeOptions({ checksumMode: 'when_supported' }));
    try {
      const key = `trap/store/${randomUUID()}.dcm`;
      const body = new PassThrough();
      const pending = store.put(key, body);
      await feed(body, data, 10_000);
      await pending;
      assert.ok((await readAll(await store.get(key))).equals(data));
    } finally {
      await store.close();
    }
  });

  it('serves byte ranges, across part boundaries too', async () => {
    const store = createS3BlobStore(s3.storeOptions({ partSize: 5 * MIB }));
    try {
      const key = `range/${randomUUID()}.dcm`;
      const data = pseudoRandom(11 * MIB + 17, 5);
      await store.put(key, Readable.from([data.subarray(0, 3 * MIB), data.subarray(3 * MIB)]));
      const cases: [number | undefined, number | undefined][] = [
        [5 * MIB - 10, 5 * MIB + 9],
        [1, 1], // (not 0-0: s3rver 3.7 reads `bytes=0-0` as the whole object)
        [10 * MIB, undefined],
        [undefined, 99],
        [data.length - 1, data.length + 1000],
      ];
      for (const [start, end] of cases) {
        const got = await readAll(await store.get(key, { start, end }));
        assert.ok(got.equals(data.subarray(start ?? 0, end === undefined ? undefined : end + 1)), `range ${start}-${end}`);
      }
      // Past the end: empty, like a file read; an empty range too.
      assert.equal((await readAll(await store.get(key, { start: data.length + 5 }))).length, 0);
      assert.equal((await readAll(await store.get(key, { start: 10, end: 9 }))).length, 0);
      await rejectsWithCode(store.get(key, { start: -1 }), 'INVALID_PARAMETER');
      await rejectsWithCode(store.get(`range/${randomUUID()}.dcm`, { start: 10, end: 20 }), 'NOT_FOUND');
      await rejectsWithCode(store.get(`range/${randomUUID()}.dcm`, { start: 10, end: 9 }), 'NOT_FOUND');
    } finally {
      await store.close();
    }
  });

  it('a missing bucket fails check() with a clear message and is never created', async () => {
    const store = createS3BlobStore(s3.storeOptions({ bucket: 'no-such-bucket' }));
    try {
      await rejectsWithCode(store.check(), 'STORAGE_UNAVAILABLE', /bucket "no-such-bucket" does not exist.*never creates/);
      await rejectsWithCode(store.put('a/b.dcm', Readable.from([Buffer.from('x')])), 'STORAGE_UNAVAILABLE', /no-such-bucket/);
      await rejectsWithCode(store.check(), 'STORAGE_UNAVAILABLE', /does not exist/);
    } finally {
      await store.close();
    }
  });

  it('an unreachable endpoint fails check() naming it', async () => {
    const dead = createS3BlobStore(s3.storeOptions({ endpoint: 'http://127.0.0.1:9' }));
    try {
      await rejectsWithCode(dead.check(), 'STORAGE_UNAVAILABLE', /127\.0\.0\.1:9.*unreachable/);
    } finally {
      await dead.close();
    }
  });

  it('aborting a multipart upload in flight leaves no object and no pending upload', async () => {
    const store = createS3BlobStore(s3.storeOptions({ partSize: 5 * MIB }));
    try {
      const key = `abort/${randomUUID()}.dcm`;
      const ac = new AbortController();
      const body = new PassThrough();
      const pending = store.put(key, body, { signal: ac.signal });
      body.write(pseudoRandom(6 * MIB, 6)); // more than one part: the multipart upload starts
      await waitFor(async () => (await s3.pendingUploads()).length === 1);
      ac.abort();
      await assert.rejects(pending, (e: unknown) => e instanceof Error && e.name === 'AbortError');
      assert.equal(await store.stat(key), undefined);
      assert.deepEqual(await s3.pendingUploads(), []);

      // A body that fails after a part was sent: the same.
      const key2 = `abort/${randomUUID()}.dcm`;
      const body2 = new PassThrough();
      const pending2 = store.put(key2, body2);
      body2.write(pseudoRandom(6 * MIB, 7));
      await waitFor(async () => (await s3.pendingUploads()).length === 1);
      body2.destroy(new Error('client went away'));
      await assert.rejects(pending2, /client went away/);
      assert.equal(await store.stat(key2), undefined);
      assert.deepEqual(await s3.pendingUploads(), []);
    } finally {
      await store.close();
    }
  });

  it('cleanupTemporary aborts multipart uploads older than the cut-off, across pages', async () => {
    const paged = await startS3rver({ uploadsPageSize: 2 });
    const client = new S3Client(s3ClientConfig(paged.storeOptions()));
    const store = createS3BlobStore(paged.storeOptions());
    try {
      // Abandoned uploads, as a crashed instance leaves them (one with a part).
      for (let i = 0; i < 5; i++) {
        const Key = `stale/${i}/${randomUUID()}.dcm`;
        const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: paged.bucket, Key }));
        if (i === 0) await client.send(new UploadPartCommand({ Bucket: paged.bucket, Key, UploadId, PartNumber: 1, Body: Buffer.alloc(1000, 1) }));
      }
      await store.put('kept/1.dcm', Readable.from([Buffer.from('keep')]));
      assert.equal((await paged.pendingUploads()).length, 5);
      assert.equal(await store.cleanupTemporary(new Date(Date.now() - 3_600_000)), 0);
      assert.equal((await paged.pendingUploads()).length, 5);
      assert.equal(await store.cleanupTemporary(new Date(Date.now() + 60_000)), 5);
      assert.deepEqual(await paged.pendingUploads(), []);
      assert.equal(await store.cleanupTemporary(new Date(Date.now() + 60_000)), 0);
      assert.deepEqual((await collect(store.list())).map((s) => s.key), ['kept/1.dcm']);
    } finally {
      client.destroy();
      await store.close();
      await paged.close();
    }
  });

  it('against plain s3rver (no ListMultipartUploads) cleanupTemporary reports 0 and a failed put still leaves no object', async () => {
    const plain = await startS3rver({ multipartExtensions: false });
    const store = createS3BlobStore(plain.storeOptions({ partSize: 5 * MIB }));
    try {
      assert.equal(await store.cleanupTemporary(new Date(Date.now() + 60_000)), 0);
      const key = `plain/${randomUUID()}.dcm`;
      const body = new PassThrough();
      const pending = store.put(key, body);
      body.write(pseudoRandom(6 * MIB, 8));
      await waitFor(async () => (await plain.pendingUploads()).length === 1);
      body.destroy(new Error('boom'));
      await assert.rejects(pending, /boom/);
      assert.equal(await store.stat(key), undefined);
    } finally {
      await store.close();
      await plain.close();
    }
  });

  it('list skips objects under keys the store would never write, and pages through results', async () => {
    const store = createS3BlobStore(s3.storeOptions());
    try {
      const p = `foreign${randomUUID().slice(0, 8)}`;
      await raw.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `${p}/.hidden`, Body: Buffer.from('x') }));
      await store.put(`${p}/ok.dcm`, Readable.from([Buffer.from('y')]));
      assert.deepEqual((await collect(store.list({ prefix: `${p}/` }))).map((s) => s.key), [`${p}/ok.dcm`]);
    } finally {
      await store.close();
    }
  });

  it('memory does not grow with the upload size (loose check)', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const store = createS3BlobStore(s3.storeOptions({ partSize: 5 * MIB, queueSize: 2 }));
    try {
      gc();
      const baseline = process.memoryUsage().arrayBuffers;
      let peak = baseline;
      const sampler = setInterval(() => {
        gc();
        peak = Math.max(peak, process.memoryUsage().arrayBuffers);
      }, 150);
      const total = 160 * MIB;
      const chunk = pseudoRandom(256 * 1024, 9);
      // Generated on the fly: the test itself never holds the body.
      const body = Readable.from(
        (function* gen() {
          for (let sent = 0; sent < total; sent += chunk.length) yield Buffer.from(chunk);
        })(),
      );
      const key = `mem/${randomUUID()}.dcm`;
      try {
        assert.equal((await store.put(key, body)).size, total);
      } finally {
        clearInterval(sampler);
      }
      const growth = peak - baseline;
      // Measured 16–44 MiB here whatever the size (s3rver runs in this process too); whole-body
      // buffering would be ≥ 160 MiB.
      assert.ok(growth < 64 * MIB, `external memory grew by ${(growth / MIB).toFixed(1)} MiB for a ${total / MIB} MiB upload`);
      assert.equal((await store.stat(key))?.size, total);
    } finally {
      await store.close();
    }
  });
});

describe('S3 client configuration', () => {
  it('maps checksum_mode, path style, endpoint and static credentials', async () => {
    const c = s3ClientConfig(s3.storeOptions({ checksumMode: 'when_required' }));
    assert.equal(c.requestChecksumCalculation, 'WHEN_REQUIRED');
    assert.equal(c.responseChecksumValidation, 'WHEN_REQUIRED');
    assert.equal(c.forcePathStyle, true);
    assert.equal(c.endpoint, s3.endpoint);
    assert.deepEqual(c.credentials, { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' });
    const aws = s3ClientConfig({ bucket: 'b', region: 'eu-west-1', forcePathStyle: false, checksumMode: 'when_supported' });
    assert.equal(aws.endpoint, undefined);
    assert.equal(aws.credentials, undefined); // the default credential chain
    assert.equal(aws.requestChecksumCalculation, 'WHEN_SUPPORTED');
    assert.throws(() => s3ClientConfig({ ...s3.storeOptions(), secretKey: '' }), /both storage.access_key and storage.secret_key/);
  });
});

