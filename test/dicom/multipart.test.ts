import assert from 'node:assert/strict';
import { PassThrough, Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  closeDelimiter,
  MultipartError,
  multipartBoundary,
  multipartContentType,
  parseContentType,
  parseMultipart,
  partHeader,
  type MultipartErrorCode,
} from '../../src/dicom/multipart.js';

const MiB = 1 << 20;

interface TestPart {
  headers: Record<string, string>;
  body: Buffer;
}

function encode(boundary: string, parts: TestPart[], opts: { preamble?: Buffer; epilogue?: Buffer } = {}): Buffer {
  const out: Buffer[] = [];
  if (opts.preamble) out.push(opts.preamble);
  parts.forEach((p, i) => {
    // After a preamble the first delimiter needs its CRLF.
    out.push(partHeader(boundary, p.headers, i === 0 && opts.preamble === undefined), p.body);
  });
  out.push(closeDelimiter(boundary));
  if (opts.epilogue) out.push(opts.epilogue);
  return Buffer.concat(out);
}

async function* chunks(data: Buffer, sizes: number[]): AsyncGenerator<Uint8Array> {
  let pos = 0;
  let i = 0;
  while (pos < data.length) {
    const size = Math.max(1, sizes.length === 0 ? data.length : (sizes[i++ % sizes.length] as number));
    yield data.subarray(pos, pos + size);
    pos += size;
  }
}

async function* split(data: Buffer, at: number[]): AsyncGenerator<Uint8Array> {
  let prev = 0;
  for (const a of [...at, data.length]) {
    yield data.subarray(prev, a);
    prev = a;
  }
}

async function collect(
  source: AsyncIterable<Uint8Array> | Readable,
  boundary: string,
  opts?: Parameters<typeof parseMultipart>[2],
): Promise<{ headers: Record<string, string>; contentType?: string; body: Buffer }[]> {
  const out = [];
  for await (const part of parseMultipart(source, boundary, opts)) {
    const body = await buffer(part.body);
    out.push(part.contentType === undefined ? { headers: part.headers, body } : { headers: part.headers, contentType: part.contentType, body });
  }
  return out;
}

function isMultipartError(code: MultipartErrorCode) {
  return (e: unknown) => e instanceof MultipartError && e.code === code;
}

const B = 'simple-boundary';
const CT = { 'Content-Type': 'application/dicom' };
const samples: TestPart[] = [
  { headers: CT, body: Buffer.from('first part\r\n--not-the-boundary\r\n') },
  { headers: { 'Content-Type': 'application/dicom', 'Content-Location': 'x' }, body: Buffer.from([0, 1, 2, 13, 10, 45, 45]) },
  { headers: CT, body: Buffer.alloc(0) },
];

describe('parseContentType', () => {
  const cases: [string, string, Record<string, string>][] = [
    ['multipart/related; type="application/dicom"; boundary=abc', 'multipart/related', { type: 'application/dicom', boundary: 'abc' }],
    ['multipart/related; type=application/dicom; boundary="a b:c"', 'multipart/related', { type: 'application/dicom', boundary: 'a b:c' }],
    ['  Multipart/Related ;BOUNDARY = xyz ; Type = "application/dicom" ; start="<1@x>"; ', 'multipart/related', { boundary: 'xyz', type: 'application/dicom', start: '<1@x>' }],
    ['application/dicom', 'application/dicom', {}],
  ];
  for (const [header, type, params] of cases) {
    it(`reads ${JSON.stringify(header)}`, () => {
      assert.deepEqual(parseContentType(header), { type, params });
    });
  }
  for (const garbage of ['', 'multipart', '/related', 'multipart/related; boundary', 'multipart/related; boundary="abc', 'multi part/related', '{}/x']) {
    it(`throws BAD_HEADER on ${JSON.stringify(garbage)}`, () => {
      assert.throws(() => parseContentType(garbage), isMultipartError('BAD_HEADER'));
    });
  }
});

describe('multipart writer', () => {
  it('writes part headers with the names as given, the first without leading CRLF', () => {
    const h = { 'Content-Type': 'application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1' };
    assert.equal(partHeader('b1', h, true).toString(), '--b1\r\nContent-Type: application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1\r\n\r\n');
    assert.equal(partHeader('b1', h, false).toString(), '\r\n--b1\r\nContent-Type: application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1\r\n\r\n');
  });
  it('writes the close delimiter', () => {
    assert.equal(closeDelimiter('b1').toString(), '\r\n--b1--\r\n');
  });
  it('refuses header values that would inject lines', () => {
    assert.throws(() => partHeader('b', { 'Content-Type': 'a\r\nX: y' }, true), isMultipartError('BAD_HEADER'));
  });
  it('makes random boundaries that parse back from the Content-Type', () => {
    const a = multipartBoundary();
    assert.notEqual(a, multipartBoundary());
    assert.ok(a.length >= 20 && a.length <= 70);
    const ct = multipartContentType('application/dicom', a);
    assert.equal(ct, `multipart/related; type="application/dicom"; boundary=${a}`);
    assert.deepEqual(parseContentType(ct), { type: 'multipart/related', params: { type: 'application/dicom', boundary: a } });
  });
  it('quotes extra parameters and boundaries when needed', () => {
    assert.equal(
      multipartContentType('application/octet-stream', 'a b', { 'transfer-syntax': '*' }),
      'multipart/related; type="application/octet-stream"; transfer-syntax=*; boundary="a b"',
    );
  });
});

describe('parseMultipart', () => {
  it('parses parts, their headers and bodies', async () => {
    const parts = await collect(chunks(encode(B, samples), []), B);
    assert.equal(parts.length, 3);
    assert.deepEqual(parts[1]?.headers, { 'content-type': 'application/dicom', 'content-location': 'x' });
    assert.equal(parts[0]?.contentType, 'application/dicom');
    parts.forEach((p, i) => assert.deepEqual(p.body, samples[i]?.body));
  });

  it('accepts a Node Readable as the source', async () => {
    const parts = await collect(Readable.from([encode(B, samples)]), B);
    assert.deepEqual(parts.map((p) => p.body), samples.map((s) => s.body));
  });

  it('finds the boundary split at every offset between two chunks', async () => {
    const data = encode(B, samples);
    for (let at = 0; at <= data.length; at++) {
      const parts = await collect(split(data, [at]), B);
      assert.deepEqual(parts.map((p) => p.body), samples.map((s) => s.body), `split at ${at}`);
    }
  });

  it('finds the boundary with every chunk size up to past the delimiter length', async () => {
    const data = encode(B, samples, { preamble: Buffer.from('pre'), epilogue: Buffer.from('post') });
    for (let size = 1; size <= B.length + 8; size++) {
      const parts = await collect(chunks(data, [size]), B);
      assert.deepEqual(parts.map((p) => p.body), samples.map((s) => s.body), `chunk size ${size}`);
    }
  });

  it('keeps boundary-like bytes that are not a delimiter as data', async () => {
    const tricky = [
      `\r\n--${B}X`, // followed by neither CRLF nor --
      `--${B}\r\n`, // not preceded by CRLF
      `\r\n--${B.slice(0, -1)}\r\n`, // a boundary prefix
      `\r\n--${B}-x`, // a single dash
      `\r\n--${B}  x\r\n`, // padding then data
      `\n--${B}\r\n`, // LF without CR
      `\r\n-${B}--`,
    ];
    const body = Buffer.concat([Buffer.from([0xff, 0x00]), ...tricky.map((t) => Buffer.from(t, 'latin1')), Buffer.from([0x0d])]);
    const data = encode(B, [{ headers: CT, body }, { headers: CT, body: Buffer.from(`\r\n--${B}X`) }]);
    for (let at = 0; at <= data.length; at += 3) {
      const parts = await collect(split(data, [at]), B);
      assert.equal(parts.length, 2);
      assert.deepEqual(parts[0]?.body, body);
      assert.equal(parts[1]?.body.toString(), `\r\n--${B}X`);
    }
  });

  it('allows a preamble, an epilogue and transport padding after boundaries', async () => {
    const data = Buffer.from(
      `This is a preamble.\r\n--${B} x\r\n--${B} \t \r\nContent-Type: a/b\r\n\r\none\r\n--${B}\t\r\n\r\ntwo\r\n--${B}--  \r\nepilogue --${B}\r\n`,
    );
    const parts = await collect(chunks(data, [7]), B);
    assert.deepEqual(parts.map((p) => [p.contentType, p.body.toString()]), [['a/b', 'one'], [undefined, 'two']]);
  });

  it('reads empty parts, with or without a header block', async () => {
    const data = Buffer.from(`--${B}\r\n\r\n\r\n--${B}\r\nContent-Type: a/b\r\n\r\n\r\n--${B}\r\n\r\n--${B}\r\nContent-Type: c/d\r\n--${B}--`);
    const parts = await collect(chunks(data, [1]), B);
    assert.deepEqual(parts.map((p) => [p.contentType, p.body.length]), [[undefined, 0], ['a/b', 0], [undefined, 0], ['c/d', 0]]);
  });

  it('unfolds a header line beginning with a space or tab (RFC 822 continuation)', async () => {
    const data = Buffer.from(`--${B}\r\nContent-Type: application/dicom;\r\n transfer-syntax=1.2.840.10008.1.2.1\r\nX-A: a\r\n\tb\r\n\r\nx\r\n--${B}--`);
    const [part] = await collect(chunks(data, []), B);
    assert.equal(part?.contentType, 'application/dicom; transfer-syntax=1.2.840.10008.1.2.1');
    assert.equal(part?.headers['x-a'], 'a b');
  });

  it('rejects a header block beginning with a space (the dicer crash, CVE-2022-24434) with BAD_HEADER', async () => {
    const data = Buffer.from(`--${B}\r\n Content-Type: application/dicom\r\n\r\nx\r\n--${B}--`);
    await assert.rejects(collect(Readable.from([data]), B), isMultipartError('BAD_HEADER'));
    const data2 = Buffer.from(`--${B}\r\n : x\r\n\r\nx\r\n--${B}--`);
    await assert.rejects(collect(chunks(data2, [1]), B), isMultipartError('BAD_HEADER'));
  });

  it('rejects a header line without a name', async () => {
    const data = Buffer.from(`--${B}\r\nno colon here\r\n\r\nx\r\n--${B}--`);
    await assert.rejects(collect(chunks(data, []), B), isMultipartError('BAD_HEADER'));
  });

  it('fails the part body and the generator with MISSING_CLOSE when the closing delimiter is missing', async () => {
    const data = Buffer.from(`--${B}\r\nContent-Type: a/b\r\n\r\nfirst\r\n--${B}\r\nContent-Type: a/b\r\n\r\ntruncated`);
    const gen = parseMultipart(chunks(data, [5]), B);
    const first = await gen.next();
    assert.ok(!first.done);
    assert.equal((await buffer(first.value.body)).toString(), 'first');
    const second = await gen.next();
    assert.ok(!second.done);
    await assert.rejects(buffer(second.value.body), isMultipartError('MISSING_CLOSE'));
    await assert.rejects(gen.next(), isMultipartError('MISSING_CLOSE'));
  });

  it('throws MISSING_CLOSE without crashing when the unread body of the last part is truncated', async () => {
    const data = Buffer.from(`--${B}\r\n\r\nabc`);
    await assert.rejects(
      (async () => {
        for await (const _part of parseMultipart(chunks(data, []), B)) {
          // Body deliberately not read.
        }
      })(),
      isMultipartError('MISSING_CLOSE'),
    );
    await assert.rejects(collect(chunks(Buffer.from(`--${B}\r\nContent-Ty`), []), B), isMultipartError('MISSING_CLOSE'));
    await assert.rejects(collect(chunks(Buffer.from(`--${B}\r\n\r\nabc\r\n--${B}`), []), B), isMultipartError('MISSING_CLOSE'));
  });

  it('passes an error of the source (e.g. an upstream size limit) to the part body and the generator unchanged', async () => {
    const limit = new Error('over max_request_bytes');
    async function* source(): AsyncGenerator<Uint8Array> {
      yield Buffer.from(`--${B}\r\nContent-Type: a/b\r\n\r\nsome bytes`);
      throw limit;
    }
    const gen = parseMultipart(source(), B);
    const first = await gen.next();
    assert.ok(!first.done);
    await assert.rejects(buffer(first.value.body), (e) => e === limit);
    await assert.rejects(gen.next(), (e) => e === limit);
  });

  it('reports NO_PARTS and NO_BOUNDARY', async () => {
    await assert.rejects(collect(chunks(Buffer.from('no boundary here'), []), B), isMultipartError('NO_PARTS'));
    await assert.rejects(collect(chunks(Buffer.from(`--${B}--\r\n`), []), B), isMultipartError('NO_PARTS'));
    await assert.rejects(collect(chunks(Buffer.alloc(0), []), B), isMultipartError('NO_PARTS'));
    await assert.rejects(collect(chunks(Buffer.from('x'), []), ''), isMultipartError('NO_BOUNDARY'));
    await assert.rejects(collect(chunks(Buffer.from('x'), []), 'a\r\nb'), isMultipartError('NO_BOUNDARY'));
    await assert.rejects(collect(chunks(Buffer.from('x'), []), 'x'.repeat(71)), isMultipartError('NO_BOUNDARY'));
  });

  it('parses 10,000 empty parts quickly, and maxParts refuses more', async () => {
    const n = 10_000;
    const bufs: Buffer[] = [];
    for (let i = 0; i < n; i++) bufs.push(partHeader(B, {}, i === 0));
    bufs.push(closeDelimiter(B));
    const data = Buffer.concat(bufs);
    const started = performance.now();
    let count = 0;
    for await (const part of parseMultipart(chunks(data, [65536]), B)) {
      count++;
      assert.equal((await buffer(part.body)).length, 0);
    }
    assert.equal(count, n);
    assert.ok(performance.now() - started < 5000, `took ${performance.now() - started} ms`);

    let seen = 0;
    await assert.rejects(
      (async () => {
        for await (const _part of parseMultipart(chunks(data, [65536]), B, { maxParts: 100 })) seen++;
      })(),
      isMultipartError('TOO_MANY_PARTS'),
    );
    assert.equal(seen, 100);
  });

  it('refuses a part header block over 8 KiB, also when it arrives byte by byte', async () => {
    const big = encode(B, [{ headers: { 'X-Long': 'a'.repeat(9000) }, body: Buffer.from('x') }]);
    await assert.rejects(collect(chunks(big, []), B), isMultipartError('HEADER_TOO_LARGE'));
    await assert.rejects(collect(chunks(big, [1]), B), isMultipartError('HEADER_TOO_LARGE'));
    const ok = encode(B, [{ headers: { 'X-Long': 'a'.repeat(8000) }, body: Buffer.from('x') }]);
    assert.equal((await collect(chunks(ok, [100]), B))[0]?.headers['x-long']?.length, 8000);
    await assert.rejects(collect(chunks(ok, []), B, { maxHeaderBytes: 1024 }), isMultipartError('HEADER_TOO_LARGE'));
  });

  it('discards the body of a part the consumer skips or reads only in part', async () => {
    const big = Buffer.alloc(5 * MiB, 0x61);
    const data = encode(B, [
      { headers: { 'Content-Type': 'a/1' }, body: big },
      { headers: { 'Content-Type': 'a/2' }, body: big },
      { headers: { 'Content-Type': 'a/3' }, body: Buffer.from('last') },
    ]);
    const types: string[] = [];
    let last = '';
    let i = 0;
    for await (const part of parseMultipart(chunks(data, [65536]), B)) {
      types.push(part.contentType ?? '');
      if (i === 1) {
        // Read a little of the second body, then move on.
        const it = part.body[Symbol.asyncIterator]();
        await it.next();
      }
      if (i === 2) last = (await buffer(part.body)).toString();
      i++;
    }
    assert.deepEqual(types, ['a/1', 'a/2', 'a/3']);
    assert.equal(last, 'last');
  });

  it('stops cleanly when the consumer breaks out early', async () => {
    const data = encode(B, samples);
    for await (const part of parseMultipart(chunks(data, [3]), B)) {
      assert.equal(part.contentType, 'application/dicom');
      break;
    }
  });

  it('streams a 64 MiB part with bounded buffering: bytes reach the consumer before the part ends', async () => {
    const total = 64 * MiB;
    const chunk = Buffer.alloc(MiB, 0x5a);
    let pushed = 0;
    let received = 0;
    let receivedAt40: number | undefined;
    let maxInFlight = 0;
    async function* source(): AsyncGenerator<Uint8Array> {
      yield partHeader(B, CT, true);
      while (pushed < total) {
        if (pushed >= 40 * MiB && receivedAt40 === undefined) receivedAt40 = received;
        pushed += chunk.length;
        maxInFlight = Math.max(maxInFlight, pushed - received);
        yield chunk;
      }
      yield closeDelimiter(B);
    }
    for await (const part of parseMultipart(source(), B)) {
      for await (const c of part.body) received += (c as Buffer).length;
    }
    assert.equal(received, total);
    assert.ok(receivedAt40 !== undefined && receivedAt40 >= 32 * MiB, `received ${receivedAt40} when 40 MiB were pushed`);
    assert.ok(maxInFlight <= 4 * MiB, `up to ${maxInFlight} bytes were buffered`);
  });

  it('pauses the producer while the consumer is slow (backpressure)', async () => {
    const source = new PassThrough();
    const total = 32 * MiB;
    let written = 0;
    let producerWaiting = false;
    const producer = (async () => {
      source.write(partHeader(B, CT, true));
      const chunk = Buffer.alloc(256 * 1024, 0x33);
      while (written < total) {
        written += chunk.length;
        if (!source.write(chunk)) {
          producerWaiting = true;
          await new Promise((resolve) => source.once('drain', resolve));
          producerWaiting = false;
        }
      }
      source.end(closeDelimiter(B));
    })();
    let received = 0;
    for await (const part of parseMultipart(source, B)) {
      const it = part.body[Symbol.asyncIterator]();
      const first = await it.next();
      received += (first.value as Buffer).length;
      await sleep(300);
      assert.ok(producerWaiting, 'the producer should be waiting for drain');
      assert.ok(written <= 4 * MiB, `the producer wrote ${written} bytes while the consumer was stalled`);
      for (let r = await it.next(); r.done !== true; r = await it.next()) received += (r.value as Buffer).length;
    }
    await producer;
    assert.equal(received, total);
  });

  it('round-trips arbitrary parts split at arbitrary chunk sizes (property)', async () => {
    const boundaries = ['b', 'xy', 'Boundary_1', multipartBoundary()];
    const trickyFor = (b: string) =>
      ['\r\n', '\r\n\r\n', '--', `--${b}`, `\r\n--${b}`, `\r\n--${b}X`, `\r\n--${b.slice(0, -1)}`, `\r\n-${b}`, `--${b}--`, `\r\n--${b} `].map((s) =>
        Buffer.from(s, 'latin1'),
      );
    const isRealDelimiterIn = (x: Buffer, b: string): boolean => {
      const d = Buffer.from(`\r\n--${b}`, 'latin1');
      for (let at = x.indexOf(d); at >= 0; at = x.indexOf(d, at + 1)) {
        let p = at + d.length;
        if (x[p] === 0x2d && x[p + 1] === 0x2d) return true;
        while (x[p] === 0x20 || x[p] === 0x09) p++;
        if (x[p] === 0x0d && x[p + 1] === 0x0a) return true;
      }
      return false;
    };
    const crlf = Buffer.from('\r\n');
    const arb = fc
      .integer({ min: 0, max: boundaries.length - 1 })
      .chain((bi) => {
        const b = boundaries[bi] as string;
        const piece = fc.oneof(fc.uint8Array({ maxLength: 40 }).map((u) => Buffer.from(u)), fc.constantFrom(...trickyFor(b)));
        const body = fc.array(piece, { maxLength: 8 }).map((ps) => Buffer.concat(ps));
        const headers = fc.oneof(
          fc.constant({}),
          fc.constant({ 'Content-Type': 'application/dicom' }),
          fc.record({ 'Content-Type': fc.constantFrom('application/dicom', 'application/octet-stream; transfer-syntax=*'), 'Content-Location': fc.string({ unit: fc.constantFrom(...'abz09/.'), maxLength: 12 }) }),
        );
        return fc.record({
          boundary: fc.constant(b),
          parts: fc.array(fc.record({ headers, body }), { minLength: 1, maxLength: 5 }),
          preamble: fc.option(body, { nil: undefined }),
          epilogue: fc.option(body, { nil: undefined }),
          sizes: fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 8 }),
        });
      });
    await fc.assert(
      fc.asyncProperty(arb, async ({ boundary, parts, preamble, epilogue, sizes }) => {
        // A body holding a real delimiter is not encodable with this boundary (RFC 2046 5.1.1).
        for (const x of [...parts.map((p) => p.body), ...(preamble ? [preamble] : [])]) {
          fc.pre(!isRealDelimiterIn(Buffer.concat([crlf, x, crlf]), boundary));
        }
        const data = encode(boundary, parts, { preamble, epilogue });
        const got = await collect(chunks(data, sizes), boundary);
        assert.equal(got.length, parts.length);
        got.forEach((g, i) => {
          const want = parts[i] as TestPart;
          assert.deepEqual(g.body, want.body);
          assert.deepEqual(g.headers, Object.fromEntries(Object.entries(want.headers).map(([k, v]) => [k.toLowerCase(), v])));
        });
      }),
      { numRuns: 500 },
    );
  });
});
