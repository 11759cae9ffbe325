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
    write(buf: Buffer, offset: number, length: number, position: number) {
      outstanding += length;
      max = Math.max(max, outstanding);
      return new Promise((resolve, reject) => {
        held.push(() => {
          outstanding -= length;
          if (failWith) {
            reject(failWith);
            return;
          }
          written.set(position, Buffer.from(buf.subarray(offset, offset + length)));
          resolve({ bytesWritten: length, buffer: buf });
        });
      });
    },
  } as unknown as FileHandle;
  return { fh, held, written, maxOutstanding: () => max, fail: (err) => (failWith = err) };
}

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
    try {
      await pipeline(Readable.from(chunks), fileWriter(fh));
    } finally {
      await fh.close();
    }
    assert.equal(sha(await readFile(file)), sha(Buffer.concat(chunks)));
  });

  it('starts the next write before the previous one completes, completing out of order', async () => {
    const h = heldHandle();
    const w = fileWriter(h.fh);
    const chunks = [randomBytes(1000), randomBytes(2000), randomBytes(3000)];
    for (const c of chunks) w.write(c);
    w.end();
    await new Promise((r) => setImmediate(r));
    assert.equal(h.held.length, 3, 'all three writes were issued at once');
    // Complete in reverse order: the data still lands at the right offsets.
    for (const release of [...h.held].reverse()) release();
    await new Promise<void>((resolve, reject) => w.on('finish', resolve).on('error', reject));
    assert.deepEqual([...h.written.keys()].sort((a, b) => a - b), [0, 1000, 3000]);
    assert.deepEqual(Buffer.concat([0, 1000, 3000].map((k) => h.written.get(k) as Buffer)), Buffer.concat(chunks));
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
    assert.equal(h.written.size, 12);
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
