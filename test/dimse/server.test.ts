// The DIMSE SCP end to end: real DCMTK tools (TCP_NODELAY=1) and raw in-process peers against
// createDimseServer over a real archive (SQLite file + filesystem blobs).
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { inflateRawSync } from 'node:zlib';
import { ANONYMOUS } from '../../src/archive/origin.js';
import { CommandField, decodeCommandSet, encodeCommandSet, NO_DATA_SET } from '../../src/dimse/message/command.js';
import { fragmentPdus } from '../../src/dimse/message/fragment.js';
import { decodePdu, encodePdu, encodeSinglePdv } from '../../src/dimse/pdu/codec.js';
import { emptyUserInformation, type AssociateRq, type Pdu } from '../../src/dimse/pdu/types.js';
import { UpperLayer } from '../../src/dimse/ul/association.js';
import { DEFLATED_EXPLICIT_VR_LE, EXPLICIT_VR_BE, EXPLICIT_VR_LE, IMPLICIT_VR_LE } from '../../src/dicom/transfer-syntax.js';
import { generateUid } from '../../src/dicom/uids.js';
import { encodeDataset } from '../../src/dicom/writer.js';
import { generateCorpus, SOP_CLASS, type Corpus } from '../helpers/corpus.js';
import { AE, dcmtk, datasetOf, smallInstance, startDimse, type TestDimse } from './helpers.js';
import { STUDY_ROOT_FIND } from '../../src/dimse/acse/sop-classes.js';
import { createFindHandler } from '../../src/dimse/scp/find.js';

const CTX = { principal: ANONYMOUS, origin: { protocol: 'internal' as const } };

function instance(transferSyntaxUid: string): { bytes: Buffer; sopUid: string } {
  return smallInstance({ transferSyntaxUid });
}

async function storedBytes(d: TestDimse, sopUid: string): Promise<{ ts: string; bytes: Buffer }> {
  const row = await d.metadata.getInstance(sopUid);
  assert.ok(row, `instance ${sopUid} not stored`);
  const chunks: Buffer[] = [];
  for await (const c of await d.archive.openInstance(CTX, row)) chunks.push(c as Buffer);
  return { ts: row.transferSyntaxUid, bytes: Buffer.concat(chunks) };
}

async function blobFiles(d: TestDimse): Promise<number> {
  const walk = async (dir: string): Promise<number> => {
    let n = 0;
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      n += e.isDirectory() ? await walk(path.join(dir, e.name)) : 1;
    }
    return n;
  };
  return walk(path.join(d.dir, 'blobs'));
}

const RQ = (contexts: [string, string[]][], calledAe = AE, callingAe = 'RAWSCU'): AssociateRq => ({
  type: 'A-ASSOCIATE-RQ',
  protocolVersion: 1,
  calledAe,
  callingAe,
  applicationContext: '1.2.840.10008.3.1.1.1',
  presentationContexts: contexts.map(([abstractSyntax, transferSyntaxes], i) => ({ id: 2 * i + 1, abstractSyntax, transferSyntaxes })),
  userInformation: { ...emptyUserInformation(), maxLength: 16384 },
});

/** A raw peer: writes what it is told, collects the PDUs it gets, notices when the server closes. */
class RawPeer {
  readonly socket: Socket;
  private buf = Buffer.alloc(0);
  readonly pdus: Pdu[] = [];
  closed = false;
  constructor(port: number) {
    this.socket = connect(port, '127.0.0.1');
    this.socket.setNoDelay(true);
    this.socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 6 && this.buf.length >= 6 + this.buf.readUInt32BE(2)) {
        const n = 6 + this.buf.readUInt32BE(2);
        this.pdus.push(decodePdu(this.buf.subarray(0, n)));
        this.buf = this.buf.subarray(n);
      }
    });
    this.socket.on('error', () => {});
    this.socket.on('close', () => (this.closed = true));
  }
  async next(ms = 3000): Promise<Pdu> {
    const start = Date.now();
    while (this.pdus.length === 0) {
      if (Date.now() - start > ms) throw new Error('no PDU received');
      if (this.closed) throw new Error('closed without a PDU');
      await new Promise((r) => setTimeout(r, 5));
    }
    return this.pdus.shift() as Pdu;
  }
  async associate(contexts: [string, string[]][]): Promise<void> {
    this.socket.write(encodePdu(RQ(contexts)));
    const ac = await this.next();
    assert.equal(ac.type, 'A-ASSOCIATE-AC');
  }
  end(): void {
    this.socket.destroy();
  }
}

/** An in-process C-ECHO on its own association (our upper layer as requestor), bounded by `ms`. */
function echo(port: number, ms = 2000): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      ul.destroy();
      reject(new Error('C-ECHO timed out'));
    }, ms);
    let status: number | undefined;
    const parts: Buffer[] = [];
    const ul: UpperLayer = new UpperLayer({
      role: 'requestor',
      artimMs: ms,
      limits: { maxPDataLength: 16384, maxOtherLength: 1024 * 1024 },
      user: {
        associateConfirm: (pdu) => {
          if (pdu.type !== 'A-ASSOCIATE-AC' || pdu.presentationContexts[0]?.result !== 0) return reject(new Error('echo association refused'));
          const cmd = encodeCommandSet({ commandField: CommandField.C_ECHO_RQ, commandDataSetType: NO_DATA_SET, messageId: 1, affectedSopClassUid: '1.2.840.10008.1.1' });
          for (const p of fragmentPdus(1, true, cmd, 16384)) void ul.sendPData(p);
        },
        pData: (f) => {
          parts.push(Buffer.from(f.data));
          if (f.end && f.last) {
            status = decodeCommandSet(Buffer.concat(parts)).status;
            ul.release();
          }
        },
        closed: () => {
          clearTimeout(timer);
          if (status === undefined) reject(new Error('no C-ECHO response'));
          else resolve(status);
        },
      },
    });
    ul.associate(RQ([['1.2.840.10008.1.1', [IMPLICIT_VR_LE]]], AE, 'ECHOSCU'), () => connect(port, '127.0.0.1'));
  });
}

describe('DIMSE SCP with DCMTK', () => {
  let d: TestDimse;
  let dir: string;
  let corpus: Corpus;
  before(async () => {
    d = await startDimse();
    dir = await mkdtemp(path.join(tmpdir(), 'pacsnode-dimse-files-'));
    corpus = await generateCorpus();
  });
  after(async () => {
    await d.close();
    await corpus.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers echoscu', async () => {
    const r = await dcmtk('echoscu', ['-aet', 'ECHOSCU', '-aec', AE, '127.0.0.1', String(d.port)]);
    assert.equal(r.code, 0, r.stderr);
  });

  const native: [string, string, string[]][] = [
    ['-xi', IMPLICIT_VR_LE, ['-xi']],
    ['-xe', EXPLICIT_VR_LE, ['-xe']],
    ['-xb', EXPLICIT_VR_BE, ['-xb']],
    ['-xd', DEFLATED_EXPLICIT_VR_LE, ['-xd']],
  ];
  for (const [option, ts, args] of native) {
    it(`stores what storescu ${option} sends: transfer syntax ${ts} recorded, dataset bytes unchanged`, async () => {
      const f = instance(ts);
      const file = path.join(dir, `${option}.dcm`);
      await writeFile(file, f.bytes);
      const r = await dcmtk('storescu', ['-aet', 'STORESCU', '-aec', AE, ...args, '127.0.0.1', String(d.port), file]);
      assert.equal(r.code, 0, r.stderr);
      const stored = await storedBytes(d, f.sopUid);
      assert.equal(stored.ts, ts);
      if (ts === DEFLATED_EXPLICIT_VR_LE) {
        // storescu inflates and deflates again as it sends, so the compressed bytes differ from the file's
        assert.ok(inflateRawSync(datasetOf(stored.bytes)).equals(inflateRawSync(datasetOf(f.bytes))), 'inflated dataset differs');
      } else {
        assert.ok(datasetOf(stored.bytes).equals(datasetOf(f.bytes)), 'dataset bytes differ');
      }
    });
  }

  for (const [option, label] of [['-xy', 'jpegSingle'], ['-xr', 'rle']] as const) {
    it(`stores compressed data sent with storescu ${option} unchanged`, async () => {
      const f = corpus.files.find((x) => x.label === label) ?? corpus.files.find((x) => x.transferSyntax === (option === '-xy' ? '1.2.840.10008.1.2.4.50' : '1.2.840.10008.1.2.5'));
      assert.ok(f, `corpus has no ${label}`);
      const r = await dcmtk('storescu', ['-aet', 'STORESCU', '-aec', AE, option, '127.0.0.1', String(d.port), f.path]);
      assert.equal(r.code, 0, r.stderr);
      const stored = await storedBytes(d, f.sopUid);
      assert.equal(stored.ts, f.transferSyntax);
      assert.ok(datasetOf(stored.bytes).equals(datasetOf(await readFile(f.path))), 'dataset bytes differ');
      // our File Meta names the sender
      assert.ok(stored.bytes.subarray(0, 400).includes(Buffer.from('STORESCU')));
    });
  }

  it('stores a whole corpus in one association with default proposals (status 0000 for each)', async () => {
    const files = corpus.files.filter((x) => !x.transferSyntax.startsWith('1.2.840.10008.1.2.4') && x.transferSyntax !== '1.2.840.10008.1.2.5');
    const r = await dcmtk('storescu', ['-aet', 'STORESCU', '-aec', AE, '127.0.0.1', String(d.port), ...files.map((x) => x.path)]);
    assert.equal(r.code, 0, r.stderr);
    for (const f of files) assert.equal((await d.metadata.getInstance(f.sopUid))?.sopUid, f.sopUid);
  });

  it('rejects a called AE title that is not ours (1/1/7)', async () => {
    const r = await dcmtk('echoscu', ['-aet', 'ECHOSCU', '-aec', 'NOTUS', '127.0.0.1', String(d.port)]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Called AE Title Not Recognized/i);
  });
});

describe('DIMSE SCP policy', () => {
  it('rejects an unregistered calling AE under the whitelist (1/1/3) and accepts a registered one', async () => {
    const d = await startDimse({ policy: { whitelist: true }, nodes: { KNOWN: { allowStore: true, allowFind: true, allowRetrieve: true } } });
    try {
      const bad = await dcmtk('echoscu', ['-aet', 'STRANGER', '-aec', AE, '127.0.0.1', String(d.port)]);
      assert.notEqual(bad.code, 0);
      assert.match(bad.stderr, /Calling AE Title Not Recognized/i);
      const good = await dcmtk('echoscu', ['-aet', 'KNOWN', '-aec', AE, '127.0.0.1', String(d.port)]);
      assert.equal(good.code, 0, good.stderr);
    } finally {
      await d.close();
    }
  });

  it('rejects associations over max_associations (2/3/2) while the others work', async () => {
    const d = await startDimse({ policy: { maxAssociations: 1 } });
    const holder = new RawPeer(d.port);
    try {
      await holder.associate([['1.2.840.10008.1.1', [IMPLICIT_VR_LE]]]);
      const second = new RawPeer(d.port);
      second.socket.write(encodePdu(RQ([['1.2.840.10008.1.1', [IMPLICIT_VR_LE]]])));
      assert.deepEqual(await second.next(), { type: 'A-ASSOCIATE-RJ', result: 2, source: 3, reason: 2 });
      second.end();
      const r = await dcmtk('echoscu', ['-aet', 'ECHOSCU', '-aec', AE, '127.0.0.1', String(d.port)]);
      assert.match(r.stderr, /Local Limit Exceeded/i);
    } finally {
      holder.end();
      await d.close();
    }
  });
});

describe('DIMSE SCP: the A-ASSOCIATE-AC', () => {
  it('returns the Called and Calling AE Title fields byte for byte as received (PS3.8 9.3.3)', async () => {
    const d = await startDimse();
    try {
      const rq = encodePdu(RQ([['1.2.840.10008.1.1', [IMPLICIT_VR_LE]]]));
      // Leading spaces in the called AE, NUL padding in the calling AE: both legal, both echoed.
      const fields = Buffer.concat([Buffer.from('  PACSNODE      ', 'latin1'), Buffer.from('RAWSCU\0\0\0\0\0\0\0\0\0\0', 'latin1')]);
      fields.copy(rq, 10);
      const socket = connect(d.port, '127.0.0.1');
      socket.on('error', () => {});
      const ac = await new Promise<Buffer>((resolve, reject) => {
        let got = Buffer.alloc(0);
        socket.on('data', (b: Buffer) => {
          got = Buffer.concat([got, b]);
          if (got.length >= 6 && got.length >= 6 + got.readUInt32BE(2)) resolve(got);
        });
        socket.once('close', () => reject(new Error('closed before an answer')));
        socket.write(rq);
      });
      socket.destroy();
      assert.equal(ac[0], 0x02, 'A-ASSOCIATE-AC');
      assert.ok(ac.subarray(10, 42).equals(fields), `AE fields: ${JSON.stringify(ac.subarray(10, 42).toString('latin1'))}`);
    } finally {
      await d.close();
    }
  });
});

describe('DIMSE SCP: connections that never send an A-ASSOCIATE-RQ', () => {
  it('do not take association slots: with 40 idle connections open and max_associations 2, two echoes succeed; the oldest idle ones are closed past 32', { timeout: 30_000 }, async () => {
    const d = await startDimse({ policy: { maxAssociations: 2 } });
    const idle: Socket[] = [];
    try {
      for (let i = 0; i < 40; i++) {
        const s = connect(d.port, '127.0.0.1');
        s.on('error', () => {});
        await new Promise<void>((resolve) => s.once('connect', () => resolve()));
        idle.push(s);
      }
      await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(await Promise.all([echo(d.port), echo(d.port)]), [0, 0]);
      const closed = idle.filter((s) => s.destroyed || s.readableEnded);
      assert.ok(closed.length >= 8, `${closed.length} of the idle connections were closed`);
      assert.ok(idle.slice(0, 8).every((s) => s.destroyed || s.readableEnded), 'the oldest ones');
      assert.ok(idle.slice(-10).every((s) => !s.destroyed && !s.readableEnded), 'not the newest');
    } finally {
      for (const s of idle) s.destroy();
      await d.close();
    }
  });
});

describe('DIMSE SCP: rejected connections the peer keeps open', () => {
  it('do not pile up: 60 requests answered 1/1/7 and held open, then an echo still succeeds', { timeout: 30_000 }, async () => {
    const d = await startDimse({ policy: { maxAssociations: 2 } });
    const held: RawPeer[] = [];
    try {
      for (let i = 0; i < 60; i++) {
        const p = new RawPeer(d.port);
        p.socket.write(encodePdu(RQ([['1.2.840.10008.1.1', [IMPLICIT_VR_LE]]], 'NOTOURS')));
        assert.deepEqual(await p.next(), { type: 'A-ASSOCIATE-RJ', result: 1, source: 1, reason: 7 });
        held.push(p);
      }
      assert.equal(await echo(d.port), 0);
      assert.ok(held.filter((p) => p.closed).length >= 28, `${held.filter((p) => p.closed).length} of the held connections were closed`);
    } finally {
      for (const p of held) p.end();
      await d.close();
    }
  });
});

describe('DIMSE SCP under abuse: only the offending association ends, nothing is stored', () => {
  let d: TestDimse;
  before(async () => {
    d = await startDimse({ policy: { timeoutSecs: 3 } });
  });
  after(async () => {
    await d.close();
  });

  const STORAGE: [string, string[]][] = [[SOP_CLASS.SC, [EXPLICIT_VR_LE]]];

  it('aborts a P-DATA-TF announcing 1 GiB with A-ABORT 2/6', async () => {
    const p = new RawPeer(d.port);
    await p.associate(STORAGE);
    const header = Buffer.from([0x04, 0, 0x40, 0, 0, 0]);
    p.socket.write(header);
    assert.deepEqual(await p.next(), { type: 'A-ABORT', source: 2, reason: 6 });
    assert.equal(await echo(d.port), 0);
    p.end();
  });

  it('aborts garbage bytes (unrecognized PDU, reason 1) before association', async () => {
    const p = new RawPeer(d.port);
    p.socket.write(Buffer.from('\x47\x45\x54 / HTTP/1.1\r\nHost: x\r\n\r\n', 'latin1'));
    assert.deepEqual(await p.next(), { type: 'A-ABORT', source: 2, reason: 1 });
    assert.equal(await echo(d.port), 0);
    p.end();
  });

  it('aborts an unknown PDU type on an established association (reason 1)', async () => {
    const p = new RawPeer(d.port);
    await p.associate(STORAGE);
    p.socket.write(Buffer.from([0x0a, 0, 0, 0, 0, 4, 0, 0, 0, 0]));
    assert.deepEqual(await p.next(), { type: 'A-ABORT', source: 2, reason: 1 });
    assert.equal(await echo(d.port), 0);
    p.end();
  });

  it('aborts an A-ASSOCIATE-RQ on an established association (unexpected PDU, reason 2)', async () => {
    const p = new RawPeer(d.port);
    await p.associate(STORAGE);
    p.socket.write(encodePdu(RQ(STORAGE)));
    assert.deepEqual(await p.next(), { type: 'A-ABORT', source: 2, reason: 2 });
    p.end();
  });

  /** A raw peer associated for storage that sent a C-STORE-RQ and the part of its data set `cut` keeps. */
  async function partialStore(cut: (ds: Buffer) => Buffer): Promise<{ p: RawPeer; sopUid: string; before: number }> {
    const before = await blobFiles(d);
    const f = instance(EXPLICIT_VR_LE);
    const p = new RawPeer(d.port);
    await p.associate(STORAGE);
    const cmd = encodeCommandSet({ commandField: CommandField.C_STORE_RQ, commandDataSetType: 0, messageId: 1, priority: 0, affectedSopClassUid: SOP_CLASS.SC, affectedSopInstanceUid: f.sopUid });
    p.socket.write(encodeSinglePdv(1, true, true, cmd));
    p.socket.write(encodeSinglePdv(1, false, false, cut(datasetOf(f.bytes))));
    return { p, sopUid: f.sopUid, before };
  }

  it('stores nothing when the peer disconnects mid-dataset, and echoes meanwhile', async () => {
    const { p, sopUid, before } = await partialStore((ds) => ds.subarray(0, ds.length - 100));
    assert.equal(await echo(d.port), 0);
    p.end();
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await blobFiles(d), before);
    assert.equal(await d.metadata.getInstance(sopUid), undefined);
  });

  it('aborts a peer that sends request after request without reading the responses (window 1); others unaffected', { timeout: 30_000 }, async () => {
    const p = new RawPeer(d.port);
    await p.associate([['1.2.840.10008.1.1', [IMPLICIT_VR_LE]]]);
    p.socket.pause(); // reads no response from now on: once the socket buffers are full, they wait
    const started = Date.now();
    let id = 0;
    while (!p.closed && Date.now() - started < 15_000) {
      const batch: Buffer[] = [];
      for (let i = 0; i < 1000; i++) {
        id = (id % 0xffff) + 1;
        const cmd = encodeCommandSet({ commandField: CommandField.C_ECHO_RQ, commandDataSetType: NO_DATA_SET, messageId: id, affectedSopClassUid: '1.2.840.10008.1.1' });
        batch.push(encodeSinglePdv(1, true, true, cmd));
      }
      if (!p.socket.write(Buffer.concat(batch))) {
        await new Promise((r) => {
          const t = setTimeout(r, 200);
          p.socket.once('drain', () => {
            clearTimeout(t);
            r(undefined);
          });
        });
      }
    }
    assert.equal(p.closed, true, 'the association was not ended');
    const serverRss = process.memoryUsage().rss;
    assert.ok(serverRss < 1024 * 1024 * 1024, `memory grew to ${serverRss} bytes`);
    assert.equal(await echo(d.port), 0);
    p.end();
  });

  it('aborts when the data set announced by a C-STORE-RQ stops coming for the DIMSE timeout; nothing stored', { timeout: 30_000 }, async () => {
    const { p, sopUid, before } = await partialStore((ds) => ds.subarray(0, 100));
    const started = Date.now();
    assert.equal((await p.next(8000)).type, 'A-ABORT');
    const waited = Date.now() - started;
    assert.ok(waited >= 2500 && waited < 6000, `aborted after ${waited} ms with a 3 s timeout`);
    p.end();
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(await blobFiles(d), before);
    assert.equal(await d.metadata.getInstance(sopUid), undefined);
  });

  it('aborts an A-RELEASE-RQ that arrives while a data set is incomplete (it can never complete); nothing stored, the slot freed', { timeout: 30_000 }, async () => {
    const { p, sopUid, before } = await partialStore((ds) => ds.subarray(0, 100));
    await new Promise((r) => setTimeout(r, 100));
    const active = d.server.associations;
    p.socket.write(encodePdu({ type: 'A-RELEASE-RQ' }));
    // Answered at once (not after the 3 s DIMSE timeout): no A-RELEASE-RP, an A-ABORT.
    assert.equal((await p.next(2000)).type, 'A-ABORT');
    p.end();
    // The slot is freed (polled: the close is asynchronous).
    for (let i = 0; i < 100 && d.server.associations !== active - 1; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(d.server.associations, active - 1);
    assert.equal(await blobFiles(d), before);
    assert.equal(await d.metadata.getInstance(sopUid), undefined);
  });

  it('aborts an A-RELEASE-RQ that arrives in the middle of a command set', { timeout: 30_000 }, async () => {
    const p = new RawPeer(d.port);
    await p.associate(STORAGE);
    const cmd = encodeCommandSet({ commandField: CommandField.C_STORE_RQ, commandDataSetType: 0, messageId: 1, priority: 0, affectedSopClassUid: SOP_CLASS.SC, affectedSopInstanceUid: generateUid() });
    p.socket.write(encodeSinglePdv(1, true, false, cmd.subarray(0, 20)));
    p.socket.write(encodePdu({ type: 'A-RELEASE-RQ' }));
    assert.equal((await p.next(2000)).type, 'A-ABORT');
    p.end();
  });

  /** One C-STORE by a raw peer: the command names `affected`, the data set is `ds` (sent whole, last flag set). */
  async function rawStore(affected: { sopUid: string; sopClassUid?: string }, ds: Buffer, transferSyntax = EXPLICIT_VR_LE): Promise<number | undefined> {
    const p = new RawPeer(d.port);
    await p.associate([[affected.sopClassUid ?? SOP_CLASS.SC, [transferSyntax]]]);
    const cmd = encodeCommandSet({ commandField: CommandField.C_STORE_RQ, commandDataSetType: 0, messageId: 5, priority: 0, affectedSopClassUid: affected.sopClassUid ?? SOP_CLASS.SC, affectedSopInstanceUid: affected.sopUid });
    for (const pdu of fragmentPdus(1, true, cmd, 16384)) p.socket.write(pdu);
    for (const pdu of fragmentPdus(1, false, ds, 16384)) p.socket.write(pdu);
    const rsp = await p.next();
    p.end();
    return rsp.type === 'P-DATA-TF' ? decodeCommandSet(Buffer.concat(rsp.pdvs.map((v) => v.data))).status : undefined;
  }

  it('answers A900 and stores nothing when the data set names another SOP Instance or SOP Class than the command (PS3.4 B.2.3)', async () => {
    const before = await blobFiles(d);
    const f = instance(EXPLICIT_VR_LE);
    const other = generateUid();
    assert.equal(await rawStore({ sopUid: other }, datasetOf(f.bytes)), 0xa900);
    assert.equal(await rawStore({ sopUid: f.sopUid, sopClassUid: '1.2.840.10008.5.1.4.1.1.2' }, datasetOf(f.bytes)), 0xa900);
    assert.equal(await d.metadata.getInstance(f.sopUid), undefined);
    assert.equal(await d.metadata.getInstance(other), undefined);
    assert.equal(await blobFiles(d), before);
  });

  it('answers C000 and stores nothing when the data set ends inside its Pixel Data', async () => {
    const before = await blobFiles(d);
    const f = instance(EXPLICIT_VR_LE);
    const ds = datasetOf(f.bytes);
    assert.equal(await rawStore({ sopUid: f.sopUid }, ds.subarray(0, ds.length - 100)), 0xc000);
    assert.equal(await d.metadata.getInstance(f.sopUid), undefined);
    assert.equal(await blobFiles(d), before);
  });

  it('answers C000 and stores nothing when the data set carries File Meta elements (group 0002) that would override the negotiated transfer syntax', async () => {
    const before = await blobFiles(d);
    // Negotiated Implicit VR; the data set claims Explicit VR and is encoded so: stored, it would be
    // recorded as Explicit behind a File Meta saying Implicit, a file no reader can open.
    const f = instance(EXPLICIT_VR_LE);
    const intruder = encodeDataset([{ tag: '00020010', vr: 'UI', value: EXPLICIT_VR_LE }], { explicitVr: true });
    assert.equal(await rawStore({ sopUid: f.sopUid }, Buffer.concat([intruder, datasetOf(f.bytes)]), IMPLICIT_VR_LE), 0xc000);
    assert.equal(await d.metadata.getInstance(f.sopUid), undefined);
    assert.equal(await blobFiles(d), before);
    // the same data set without it, on an Explicit VR context, is stored
    assert.equal(await rawStore({ sopUid: f.sopUid }, datasetOf(f.bytes)), 0);
  });

  it('answers a C-ECHO-RQ that wrongly carries a data set, discarding it', async () => {
    const p = new RawPeer(d.port);
    await p.associate([['1.2.840.10008.1.1', [IMPLICIT_VR_LE]]]);
    const cmd = encodeCommandSet({ commandField: CommandField.C_ECHO_RQ, commandDataSetType: 0, messageId: 3, affectedSopClassUid: '1.2.840.10008.1.1' });
    p.socket.write(encodeSinglePdv(1, true, true, cmd));
    for (const pdu of fragmentPdus(1, false, Buffer.alloc(2 * 1024 * 1024), 16384)) p.socket.write(pdu);
    const rsp = await p.next();
    assert.equal(rsp.type, 'P-DATA-TF');
    const command = decodeCommandSet(rsp.type === 'P-DATA-TF' ? Buffer.concat(rsp.pdvs.map((v) => v.data)) : Buffer.alloc(0));
    assert.equal(command.status, 0);
    p.socket.write(encodePdu({ type: 'A-RELEASE-RQ' }));
    assert.deepEqual(await p.next(), { type: 'A-RELEASE-RP' });
    p.end();
  });

  it('stores a dataset sent in many small fragments by a raw peer, answering 0000', async () => {
    const f = instance(EXPLICIT_VR_LE);
    const ds = datasetOf(f.bytes);
    const p = new RawPeer(d.port);
    await p.associate(STORAGE);
    const cmd = encodeCommandSet({ commandField: CommandField.C_STORE_RQ, commandDataSetType: 0, messageId: 7, priority: 0, affectedSopClassUid: SOP_CLASS.SC, affectedSopInstanceUid: f.sopUid });
    for (const pdu of fragmentPdus(1, true, cmd, 20)) p.socket.write(pdu);
    for (const pdu of fragmentPdus(1, false, ds, 64)) p.socket.write(pdu);
    const rsp = await p.next();
    assert.equal(rsp.type, 'P-DATA-TF');
    const command = decodeCommandSet(rsp.type === 'P-DATA-TF' ? Buffer.concat(rsp.pdvs.map((v) => v.data)) : Buffer.alloc(0));
    assert.equal(command.commandField, CommandField.C_STORE_RSP);
    assert.equal(command.status, 0);
    assert.equal(command.messageIdBeingRespondedTo, 7);
    p.socket.write(encodePdu({ type: 'A-RELEASE-RQ' }));
    assert.deepEqual(await p.next(), { type: 'A-RELEASE-RP' });
    p.end();
    assert.ok(datasetOf((await storedBytes(d, f.sopUid)).bytes).equals(ds));
  });
});

describe('DIMSE SCP negotiation under abuse', () => {
  it('answers one SOP Class Extended Negotiation item per SOP class, however many the request repeats (an over-long answer ended the process)', async () => {
    const d = await startDimse({ find: (archive) => createFindHandler({ archive, aeTitle: AE }) });
    try {
      const rq = RQ([[STUDY_ROOT_FIND, [IMPLICIT_VR_LE]]]);
      // 1770 sub-items of 37 bytes: the request's user information item just fits its 16-bit
      // length; answering each one (plus our own sub-items) would not.
      rq.userInformation.extendedNegotiations = Array.from({ length: 1770 }, () => ({ sopClassUid: STUDY_ROOT_FIND, info: Buffer.alloc(4) }));
      const p = new RawPeer(d.port);
      p.socket.write(encodePdu(rq));
      const ac = await p.next();
      assert.equal(ac.type, 'A-ASSOCIATE-AC');
      assert.equal(ac.type === 'A-ASSOCIATE-AC' ? ac.userInformation.extendedNegotiations.length : -1, 1);
      assert.equal(await echo(d.port), 0);
      p.end();
    } finally {
      await d.close();
    }
  });
});

describe('DIMSE SCP requests missing parts', () => {
  it('answers A900 to a C-FIND-RQ without identifier and to a C-STORE-RQ without data set (not 0211), and aborts a request without Message ID', async () => {
    const d = await startDimse({ find: (archive) => createFindHandler({ archive, aeTitle: AE }) });
    try {
      const p = new RawPeer(d.port);
      await p.associate([[STUDY_ROOT_FIND, [IMPLICIT_VR_LE]], [SOP_CLASS.SC, [EXPLICIT_VR_LE]]]);
      const answer = async (): Promise<ReturnType<typeof decodeCommandSet>> => {
        const rsp = await p.next();
        assert.equal(rsp.type, 'P-DATA-TF');
        return decodeCommandSet(Buffer.concat(rsp.type === 'P-DATA-TF' ? rsp.pdvs.map((v) => v.data) : []));
      };
      p.socket.write(encodeSinglePdv(1, true, true, encodeCommandSet({ commandField: CommandField.C_FIND_RQ, commandDataSetType: NO_DATA_SET, messageId: 7, priority: 0, affectedSopClassUid: STUDY_ROOT_FIND })));
      const find = await answer();
      assert.deepEqual([find.commandField, find.status, find.messageIdBeingRespondedTo], [CommandField.C_FIND_RSP, 0xa900, 7]);
      const sopUid = generateUid();
      p.socket.write(encodeSinglePdv(3, true, true, encodeCommandSet({ commandField: CommandField.C_STORE_RQ, commandDataSetType: NO_DATA_SET, messageId: 8, priority: 0, affectedSopClassUid: SOP_CLASS.SC, affectedSopInstanceUid: sopUid })));
      const store = await answer();
      assert.deepEqual([store.commandField, store.status, store.messageIdBeingRespondedTo, store.affectedSopInstanceUid], [CommandField.C_STORE_RSP, 0xa900, 8, sopUid]);
      // a C-ECHO-RQ without (0000,0110): no response could name it
      p.socket.write(encodeSinglePdv(1, true, true, encodeCommandSet({ commandField: CommandField.C_ECHO_RQ, commandDataSetType: NO_DATA_SET, affectedSopClassUid: '1.2.840.10008.1.1' })));
      assert.equal((await p.next(2000)).type, 'A-ABORT');
      p.end();
      assert.equal(await echo(d.port), 0);
    } finally {
      await d.close();
    }
  });
});
