// The filesystem blob store's writer (src/storage/fs/file-writer.ts): chunks are written at their
// offsets as they arrive, several at once, yet the file is exactly the input; outstanding bytes are
// bounded; failures surface; nothing is written after destroy() returns.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import { fileWriter } from '../../src/storage/fs/file-writer.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A FileHandle stand-in whose writes complete only when released, in any order. */
function heldHandle(): { fh: FileHandle; held: (() => void)[]; written: Map<number, Buffer>; maxOutstanding: () => number; fail: (err: Error) => void } {
  const held: (() => void)[] = [];
  const written = new Map<number, Buffer>();
  let outstanding = 0;
  let max = 0;
  let failWith: Error | undefined;
  const fh = {
    writev(bufs: Buffer[], position: number) {
      const data = Buffer.concat(bufs);
      outstanding += data.length;
      max = Math.max(max, outstanding);
      return new Promise((resolve, reject) => {
        held.push(() => {
          outstanding -= data.length;
          if (failWith) {
            reject(failWith);
            return;
          }
          written.set(position, data);
          resolve({ bytesWritten: data.length, buffers: bufs });
        });
      });
    },
  } as unknown as FileHandle;
  return { fh, held, written, maxOutstanding: () => max, fail: (err) => (failWith = err) };
}

/** The bytes the stand-in received, in file order. */
const fileOf = (written: Map<number, Buffer>): Buffer => Buffer.concat([...written.entries()].sort((a, b) => a[0] - b[0]).map(([, b]) => b));

describe('fileWriter', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'pacsnode-file-writer-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes chunks of every size, overlapping, into exactly the input bytes', async () => {
    const sizes = [1, 7, 4096, 65536, 3, 1 << 20, 123457, 0, 65536, 2 * 1024 * 1024 + 5, 17];
    const chunks = sizes.map((n) => randomBytes(n));
    const file = path.join(dir, 'a.bin');
    const fh = await open(file, 'w');
    const writer = fileWriter(fh);
    try {
      await pipeline(Readable.from(chunks), writer);
    } finally {
      await fh.close();
    }
    assert.equal(sha(await readFile(file)), sha(Buffer.concat(chunks)));
    assert.equal(writer.bytesAccepted, Buffer.concat(chunks).length);
  });

  it('starts the next write before the previous one completes, completing out of order, batching the rest', async () => {
    const h = heldHandle();
    const w = fileWriter(h.fh);
    const chunks = [randomBytes(1000), randomBytes(2000), randomBytes(3000), randomBytes(4000), randomBytes(5000)];
    // The first two arrive in ticks of their own, the rest together while both are in flight.
    w.write(chunks[0]);
    await new Promise((r) => setImmediate(r));
    w.write(chunks[1]);
    await new Promise((r) => setImmediate(r));
    for (const c of chunks.slice(2)) w.write(c);
    w.end();
    await new Promise((r) => setImmediate(r));
    assert.equal(h.held.length, 2, 'two writes in flight at once');
    // Complete in reverse order: the data still lands at the right offsets.
    for (const release of h.held.splice(0).reverse()) release();
    await new Promise((r) => setImmediate(r));
    assert.equal(h.held.length, 1, 'the chunks that arrived meanwhile go in one writev');
    h.held.splice(0).forEach((release) => release());
    await new Promise<void>((resolve, reject) => w.on('finish', resolve).on('error', reject));
    assert.deepEqual([...h.written.keys()].sort((a, b) => a - b), [0, 1000, 3000]);
    assert.deepEqual(fileOf(h.written), Buffer.concat(chunks));
  });

  it('chunks handed over in the same tick go out in one writev, the end included (a body buffered while the file was opened)', async () => {
    const file = path.join(dir, 'one-writev.bin');
    const fh = await open(file, 'w');
    const writevs: number[] = [];
    const writev = fh.writev.bind(fh);
    Object.assign(fh, {
      writev: (bufs: Buffer[], position: number) => {
        writevs.push(bufs.length);
        return writev(bufs, position);
      },
    });
    const chunks = [randomBytes(360), randomBytes(65_374), ...Array.from({ length: 7 }, () => randomBytes(65_536)), randomBytes(1290)];
    try {
      const w = fileWriter(fh);
      // pipe() hands a paused stream's buffered chunks over in one go, as the blob store's put does
      const body = new Readable({ read() {} });
      for (const c of chunks) body.push(c);
      body.push(null);
      await pipeline(body, w);
    } finally {
      await fh.close();
    }
    assert.deepEqual(writevs, [chunks.length], 'one writev holding every chunk');
    assert.equal(sha(await readFile(file)), sha(Buffer.concat(chunks)));
  });

  it('applies backpressure: at most 4 MiB (plus the chunk that crossed it) outstanding', async () => {
    const h = heldHandle();
    const w = fileWriter(h.fh);
    const chunk = randomBytes(1024 * 1024);
    let accepted = 0;
    const done = (async () => {
      for (let i = 0; i < 12; i++) {
        if (!w.write(chunk)) await new Promise((r) => w.once('drain', r));
        accepted++;
      }
      w.end();
    })();
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(h.held.length <= 6, `writes issued while none completed: ${h.held.length}`);
    assert.ok(accepted < 12, 'the writer accepted everything without any write completing');
    // Release writes as they come until the end.
    while (!w.writableFinished) {
      const release = h.held.shift();
      if (release) release();
      await new Promise((r) => setImmediate(r));
    }
    await done;
    assert.ok(h.maxOutstanding() <= 5 * 1024 * 1024, `outstanding bytes peaked at ${h.maxOutstanding()}`);
    assert.equal(fileOf(h.written).length, 12 * chunk.length);
  });

  it('finishes short writes: a writev that wrote part of its buffers goes on from there', async () => {
    const file = Buffer.alloc(40_000);
    let calls = 0;
    const fh = {
      async writev(bufs: Buffer[], position: number) {
        calls++;
        const data = Buffer.concat(bufs).subarray(0, 999); // never more than 999 bytes at a time
        data.copy(file, position);
        return { bytesWritten: data.length, buffers: bufs };
      },
    } as unknown as FileHandle;
    const chunks = [randomBytes(10_000), randomBytes(1), randomBytes(0), randomBytes(29_999)];
    await pipeline(Readable.from(chunks), fileWriter(fh));
    assert.deepEqual(file, Buffer.concat(chunks));
    assert.ok(calls >= 40);
  });

  it('a failed write fails the stream', async () => {
    const h = heldHandle();
    h.fail(new Error('disk full'));
    const source = Readable.from([randomBytes(100), randomBytes(100)]);
    const piped = pipeline(source, fileWriter(h.fh));
    const releaser = setInterval(() => h.held.shift()?.(), 1);
    try {
      await assert.rejects(piped, /disk full/);
    } finally {
      clearInterval(releaser);
    }
  });

  it('early write-back: one fdatasync at a time once writeBackBytes were written, none after the last byte, awaited by writeBack()', async () => {
    const h = heldHandle();
    const syncs: { release: (err?: Error) => void }[] = [];
    Object.assign(h.fh, {
      datasync: () =>
        new Promise<void>((resolve, reject) => {
          syncs.push({ release: (err) => (err ? reject(err) : resolve()) });
        }),
    });
    const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
    const releaseWrites = async (): Promise<void> => {
      while (h.held.length > 0) {
        for (const release of h.held.splice(0)) release();
        await tick();
      }
    };
    const w = fileWriter(h.fh, { writeBackBytes: 1000 });
    w.write(randomBytes(600));
    await releaseWrites();
    assert.equal(syncs.length, 0, 'a write-back before writeBackBytes were written');
    w.write(randomBytes(600));
    await releaseWrites();
    assert.equal(syncs.length, 1, 'no write-back once 1200 bytes were written');
    // While one runs, another 1200 bytes start none; they start the next once it has finished.
    w.write(randomBytes(1200));
    await releaseWrites();
    assert.equal(syncs.length, 1, 'a second write-back while the first still ran');
    syncs[0]?.release(new Error('EIO')); // a failed early sync is left to the caller's own fsync
    await tick();
    w.write(randomBytes(10));
    await releaseWrites();
    assert.equal(syncs.length, 2);
    // writeBack() waits for the running fdatasync.
    let waited = false;
    const wb = w.writeBack().then(() => (waited = true));
    await tick();
    assert.equal(waited, false, 'writeBack() did not wait for the running fdatasync');
    syncs[1]?.release();
    await wb;
    // The last byte: no new write-back although 1510 bytes are unsynced (the caller's fsync follows).
    w.write(randomBytes(1500));
    const finished = new Promise((r) => w.end(r));
    await releaseWrites();
    await finished;
    await w.writeBack();
    assert.equal(syncs.length, 2, 'a write-back started after end()');
    assert.equal(fileOf(h.written).length, 600 + 600 + 1200 + 10 + 1500);
  });

  it('without writeBackBytes there is no early write-back', async () => {
    const h = heldHandle();
    let syncs = 0;
    Object.assign(h.fh, { datasync: async () => void syncs++ });
    const w = fileWriter(h.fh);
    for (let i = 0; i < 8; i++) w.write(randomBytes(1 << 20));
    const finished = new Promise((r) => w.end(r));
    await new Promise((r) => setImmediate(r));
    while (h.held.length > 0 || syncs < 0) {
      for (const release of h.held.splice(0)) release();
      await new Promise((r) => setImmediate(r));
    }
    await finished;
    await w.writeBack();
    assert.equal(syncs, 0);
  });

  it('destroy() reports only after every issued write has settled', async () => {
    const h = heldHandle();
    const w = fileWriter(h.fh);
    w.on('error', () => {});
    w.write(randomBytes(10));
    w.write(randomBytes(10));
    await new Promise((r) => setImmediate(r));
    let closed = false;
    w.on('close', () => (closed = true));
    w.destroy(new Error('aborted'));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(closed, false, 'closed while writes were still outstanding');
    for (const release of h.held.splice(0)) release();
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(closed, true);
  });
});
