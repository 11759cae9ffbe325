// The streaming ZIP writer, read back by independent implementations (Info-ZIP unzip, python3
// zipfile): stored entries, CRC while streaming, ZIP64 (forced with lowered thresholds), declared
// sizes enforced, one entry open at a time, cleanup on destroy, flat memory.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, describe, it } from 'node:test';
import { crc32 } from 'node:zlib';
import { zipStream, type ZipEntry, type ZipOptions } from '../../src/util/zip.js';
import { patternBytes } from '../helpers/corpus.js';
import { pythonZipInfo, unzipList, unzipRead, unzipTest } from '../helpers/zip.js';

interface Source {
  name: string;
  data: Buffer;
  mtime?: Date;
}

/** Yields `data` in uneven chunks, as a blob store would. */
function chunked(data: Buffer, sizes = [1, 7, 4096, 65536, 100_000]): Readable {
  const parts: Buffer[] = [];
  let i = 0;
  for (let o = 0; o < data.length; ) {
    const n = sizes[i++ % sizes.length] as number;
    parts.push(data.subarray(o, o + n));
    o += n;
  }
  return Readable.from(parts, { objectMode: false });
}

async function* entriesOf(sources: Source[]): AsyncGenerator<ZipEntry> {
  for (const s of sources) {
    yield { name: s.name, size: s.data.length, ...(s.mtime ? { mtime: s.mtime } : {}), open: async () => chunked(s.data) };
  }
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('zipStream', () => {
  let dir: string;
  let n = 0;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'pacsnode-zip-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function writeZip(entries: AsyncIterable<ZipEntry>, options: ZipOptions = {}): Promise<string> {
    const file = path.join(dir, `${n++}.zip`);
    await pipeline(zipStream(entries, options), createWriteStream(file));
    return file;
  }

  it('writes stored entries with CRC-32 and sizes that unzip and python read back byte for byte', async () => {
    const mtime = new Date(2024, 4, 17, 13, 45, 31);
    const sources: Source[] = [
      { name: '1.2.3/4.5.6/7.8.9.dcm', data: patternBytes(300_001, 1), mtime },
      { name: '1.2.3/4.5.6/7.8.10.dcm', data: Buffer.alloc(0), mtime },
      { name: '1.2.3/4.5.7/1.dcm', data: Buffer.from([42]), mtime },
      { name: '1.2.3/4.5.7/2.dcm', data: patternBytes(1_500_000, 2), mtime },
    ];
    const file = await writeZip(entriesOf(sources));
    await unzipTest(file);
    assert.deepEqual(await unzipList(file), sources.map((s) => s.name));
    for (const s of sources) assert.ok((await unzipRead(file, s.name)).equals(s.data), s.name);

    const py = await pythonZipInfo(file);
    assert.equal(py.bad, null);
    assert.equal(py.entries.length, sources.length);
    py.entries.forEach((e, i) => {
      const s = sources[i] as Source;
      assert.equal(e.name, s.name);
      assert.equal(e.size, s.data.length);
      assert.equal(e.compressSize, s.data.length, 'stored: compressed size = size');
      assert.equal(e.compressType, 0, 'method 0 (stored)');
      assert.equal(e.crc, crc32(s.data));
      assert.equal(e.flagBits & 0x0808, 0x0808, 'data descriptor and UTF-8 flags');
      assert.equal(e.extra, '', 'no ZIP64 extra below the limits');
      assert.deepEqual(e.dateTime, [2024, 5, 17, 13, 45, 30], 'DOS time, 2-second resolution');
      assert.equal(e.sha256, sha(s.data));
    });
  });

  it('writes an empty archive that readers accept', async () => {
    const file = await writeZip(entriesOf([]));
    const bytes = await readFile(file);
    assert.equal(bytes.length, 22, 'only the end of central directory record');
    assert.equal(bytes.readUInt32LE(0), 0x06054b50);
    assert.deepEqual((await pythonZipInfo(file)).entries, []);
  });

  it('marks names as UTF-8', async () => {
    const sources: Source[] = [{ name: 'Müller/山田/ü.dcm', data: patternBytes(1000, 3) }];
    const file = await writeZip(entriesOf(sources));
    const py = await pythonZipInfo(file);
    assert.equal(py.entries[0]?.name, 'Müller/山田/ü.dcm');
    assert.equal(py.entries[0]?.sha256, sha(sources[0]?.data as Buffer));
  });

  it('uses ZIP64 fields, 8-byte data descriptors and the ZIP64 end records past the limits (thresholds lowered)', async () => {
    const threshold = 1000;
    const sources: Source[] = [
      { name: 'a/small-1.dcm', data: patternBytes(600, 4) }, // nothing overflows
      { name: 'a/big-1.dcm', data: patternBytes(5000, 5) }, // size overflows
      { name: 'a/small-2.dcm', data: patternBytes(700, 6) }, // only its offset overflows
      { name: 'a/big-2.dcm', data: patternBytes(threshold, 7) }, // size exactly at the limit: ZIP64
      { name: 'a/empty.dcm', data: Buffer.alloc(0) },
    ];
    const file = await writeZip(entriesOf(sources), { zip64Threshold: threshold, zip64CountThreshold: 3 });
    await unzipTest(file);
    assert.deepEqual(await unzipList(file), sources.map((s) => s.name));
    for (const s of sources) assert.ok((await unzipRead(file, s.name)).equals(s.data), s.name);

    const py = await pythonZipInfo(file);
    assert.equal(py.bad, null);
    const bytes = await readFile(file);
    py.entries.forEach((e, i) => {
      const s = sources[i] as Source;
      assert.equal(e.name, s.name);
      assert.equal(e.size, s.data.length);
      assert.equal(e.crc, crc32(s.data));
      assert.equal(e.sha256, sha(s.data));
      const sizes64 = s.data.length >= threshold;
      const offset64 = e.headerOffset >= threshold;
      // Central directory extra: id 0x0001, then sizes and/or offset in the fixed order.
      const want = sizes64 || offset64 ? 4 + (sizes64 ? 16 : 0) + (offset64 ? 8 : 0) : 0;
      assert.equal(e.extra.length / 2, want, `${s.name}: ZIP64 extra length`);
      if (want > 0) assert.equal(e.extra.slice(0, 4), '0100');

      // Local header: the ZIP64 extra exactly when the size overflows, and then a 24-byte descriptor.
      const lh = e.headerOffset;
      assert.equal(bytes.readUInt32LE(lh), 0x04034b50);
      assert.equal(bytes.readUInt16LE(lh + 4), sizes64 ? 45 : 20, 'version needed');
      assert.equal(bytes.readUInt32LE(lh + 14), 0, 'CRC in the data descriptor');
      const nameLen = bytes.readUInt16LE(lh + 26);
      const extraLen = bytes.readUInt16LE(lh + 28);
      assert.equal(extraLen, sizes64 ? 20 : 0);
      if (sizes64) {
        assert.equal(bytes.readUInt32LE(lh + 18), 0xffffffff);
        assert.equal(bytes.readUInt16LE(lh + 30 + nameLen), 0x0001);
      }
      const dd = lh + 30 + nameLen + extraLen + s.data.length;
      assert.equal(bytes.readUInt32LE(dd), 0x08074b50, 'data descriptor signature');
      assert.equal(bytes.readUInt32LE(dd + 4), crc32(s.data));
      if (sizes64) {
        assert.equal(bytes.readBigUInt64LE(dd + 8), BigInt(s.data.length));
        assert.equal(bytes.readBigUInt64LE(dd + 16), BigInt(s.data.length));
      } else {
        assert.equal(bytes.readUInt32LE(dd + 8), s.data.length);
        assert.equal(bytes.readUInt32LE(dd + 12), s.data.length);
      }
    });

    // Tail: ZIP64 EOCD record (56) + locator (20) + EOCD (22) with sentinels.
    const eocd = bytes.length - 22;
    assert.equal(bytes.readUInt32LE(eocd), 0x06054b50);
    assert.equal(bytes.readUInt16LE(eocd + 10), 0xffff, 'entry count overflows the lowered count limit');
    assert.equal(bytes.readUInt32LE(eocd + 16), 0xffffffff, 'central directory offset overflows');
    const loc = eocd - 20;
    assert.equal(bytes.readUInt32LE(loc), 0x07064b50);
    assert.equal(bytes.readUInt32LE(loc + 16), 1, 'one disk');
    const rec = Number(bytes.readBigUInt64LE(loc + 8));
    assert.equal(rec, loc - 56);
    assert.equal(bytes.readUInt32LE(rec), 0x06064b50);
    assert.equal(bytes.readBigUInt64LE(rec + 32), BigInt(sources.length));
    const cdSize = Number(bytes.readBigUInt64LE(rec + 40));
    const cdOffset = Number(bytes.readBigUInt64LE(rec + 48));
    assert.equal(cdOffset + cdSize, rec);
    assert.equal(bytes.readUInt32LE(cdOffset), 0x02014b50);
  });

  it('fails when a source yields fewer bytes than declared', async () => {
    async function* entries(): AsyncGenerator<ZipEntry> {
      yield { name: 'short.dcm', size: 100, open: async () => chunked(Buffer.alloc(99)) };
    }
    await assert.rejects(collect(zipStream(entries())), /short\.dcm has 99 bytes, 100 declared/);
  });

  it('fails, and closes the source, when a source yields more bytes than declared', async () => {
    let source: Readable | undefined;
    async function* entries(): AsyncGenerator<ZipEntry> {
      yield {
        name: 'long.dcm',
        size: 100,
        open: async () => {
          source = Readable.from([Buffer.alloc(60), Buffer.alloc(60), Buffer.alloc(60)], { objectMode: false });
          return source;
        },
      };
    }
    await assert.rejects(collect(zipStream(entries())), /long\.dcm is longer than its declared 100 bytes/);
    assert.equal(source?.destroyed, true);
  });

  it('opens entries one at a time and reads no further ahead than the consumer', async () => {
    const events: string[] = [];
    let produced = 0;
    const chunk = Buffer.alloc(64 * 1024, 1);
    const perEntry = 64; // chunks: 4 MiB per entry
    async function* entries(): AsyncGenerator<ZipEntry> {
      for (let i = 0; i < 3; i++) {
        events.push(`next ${i}`);
        yield {
          name: `${i}.bin`,
          size: chunk.length * perEntry,
          open: async () => {
            events.push(`open ${i}`);
            return (async function* () {
              for (let c = 0; c < perEntry; c++) {
                produced += chunk.length;
                yield chunk;
              }
              events.push(`end ${i}`);
            })();
          },
        };
      }
    }
    const zip = zipStream(entries(), { highWaterMark: 256 * 1024 });
    const it = zip[Symbol.asyncIterator]();
    await it.next();
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    // The consumer took one chunk: the writer filled its buffer (256 KiB) and stopped.
    assert.ok(produced <= 512 * 1024, `read ahead ${produced} bytes`);
    assert.deepEqual(events, ['next 0', 'open 0']);
    for (;;) if ((await it.next()).done) break;
    assert.deepEqual(events, ['next 0', 'open 0', 'end 0', 'next 1', 'open 1', 'end 1', 'next 2', 'open 2', 'end 2']);
  });

  it('closes the open source and the entry iterator when destroyed mid-entry', async () => {
    let source: Readable | undefined;
    let entriesClosed = false;
    let opened = 0;
    async function* entries(): AsyncGenerator<ZipEntry> {
      try {
        for (let i = 0; i < 5; i++) {
          yield {
            name: `${i}.bin`,
            size: 100 * 1024 * 1024,
            open: async () => {
              opened++;
              const c = Buffer.alloc(64 * 1024);
              // A source that never ends on its own (like a slow blob read).
              source = new Readable({
                read() {
                  this.push(c);
                },
              });
              return source;
            },
          };
        }
      } finally {
        entriesClosed = true;
      }
    }
    const zip = zipStream(entries());
    let received = 0;
    for await (const c of zip) {
      received += (c as Buffer).length;
      if (received > 2 * 1024 * 1024) break; // for-await break destroys the stream
    }
    await new Promise((r) => setImmediate(r));
    for (let i = 0; i < 50 && !entriesClosed; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(opened, 1);
    assert.equal(source?.destroyed, true, 'blob stream closed');
    assert.equal(entriesClosed, true, 'entry iterator returned');
  });

  it('keeps memory flat while streaming a 200 MB entry', async () => {
    const size = 200 * 1024 * 1024;
    const block = Buffer.alloc(1024 * 1024); // the same zeros, again and again: no garbage from the source
    async function* entries(): AsyncGenerator<ZipEntry> {
      yield {
        name: 'big.bin',
        size,
        open: async () =>
          (async function* () {
            for (let o = 0; o < size; o += block.length) yield block;
          })(),
      };
    }
    let expectedCrc = 0;
    for (let o = 0; o < size; o += block.length) expectedCrc = crc32(block, expectedCrc);

    const before = process.memoryUsage().rss;
    let peak = before;
    let total = 0;
    let tail = Buffer.alloc(0);
    for await (const c of zipStream(entries())) {
      const b = c as Buffer;
      total += b.length;
      tail = Buffer.concat([tail, b.subarray(Math.max(0, b.length - 4096))]).subarray(-4096);
      const rss = process.memoryUsage().rss;
      if (rss > peak) peak = rss;
    }
    const growth = peak - before;
    // Loose bound: buffers of a few MiB are fine, holding the entry (200 MiB) is not.
    assert.ok(growth < 64 * 1024 * 1024, `RSS grew by ${Math.round(growth / 1024 / 1024)} MiB`);
    const name = 'big.bin';
    assert.equal(total, 30 + name.length + size + 16 + 46 + name.length + 22);
    // Data descriptor: right before the central directory.
    const dd = tail.length - 22 - (46 + name.length) - 16;
    assert.equal(tail.readUInt32LE(dd), 0x08074b50);
    assert.equal(tail.readUInt32LE(dd + 4), expectedCrc);
    assert.equal(tail.readUInt32LE(dd + 8), size);
  });
});
