// A peer's Maximum Length Received (ADR 0023): as SCP an A-ASSOCIATE-RQ announcing less than
// MIN_PEER_MAX_LENGTH (other than 0, no limit) is rejected 1/1/1; and sending a large data set in
// small PDUs to a peer that reads promptly gives the event loop a turn every few milliseconds
// instead of holding it for the whole transfer. The event-loop tests use a peer in a child process
// (plain JavaScript, raw socket): a reader in this process could not read while the loop is held,
// the socket would fill, and the sender would wait for `drain` anyway.
import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { ANONYMOUS } from '../../src/archive/origin.js';
import type { Logger } from '../../src/archive/context.js';
import { EXPLICIT_VR_LE } from '../../src/dicom/transfer-syntax.js';
import { encodeDataset } from '../../src/dicom/writer.js';
import { STUDY_ROOT_GET, VERIFICATION } from '../../src/dimse/acse/sop-classes.js';
import { CommandField, DATA_SET_PRESENT, NO_DATA_SET, decodeCommandSet, encodeCommandSet, type CommandSet } from '../../src/dimse/message/command.js';
import { MIN_PEER_MAX_LENGTH, fragmentPdus, sendDataSetPdus } from '../../src/dimse/message/fragment.js';
import { decodePdu, encodePdu } from '../../src/dimse/pdu/codec.js';
import { emptyUserInformation, type AssociateRq, type Pdu } from '../../src/dimse/pdu/types.js';
import type { BlobStore } from '../../src/storage/blobs.js';
import { SOP_CLASS } from '../helpers/corpus.js';
import { AE, dcmtk, smallInstance, startDimse, startRetrieveDimse, type TestDimse, type TestRetrieveDimse } from './helpers.js';

/**
 * The largest event-loop gap allowed while a data set goes out. Without the send loops' time
 * slices the loop is held for the whole send (24 MiB: 0.7–1 s; the 16 MiB C-GET: ~0.8 s); with
 * them ~30 ms on an idle machine, up to ~175 ms with the whole suite and other work on two cores.
 */
const MAX_LAG_MS = 300;

function associateRq(maxLength: number | undefined, extra: Partial<AssociateRq> = {}): AssociateRq {
  const userInformation = emptyUserInformation();
  if (maxLength !== undefined) userInformation.maxLength = maxLength;
  return {
    type: 'A-ASSOCIATE-RQ',
    protocolVersion: 1,
    calledAe: AE,
    callingAe: 'TINYPDU',
    applicationContext: '1.2.840.10008.3.1.1.1',
    presentationContexts: [{ id: 1, abstractSyntax: VERIFICATION, transferSyntaxes: [EXPLICIT_VR_LE] }],
    userInformation,
    ...extra,
  };
}

/** The first PDU the server answers an A-ASSOCIATE-RQ with (raw socket, bounded). */
async function answerTo(port: number, rq: AssociateRq): Promise<Pdu> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  try {
    await once(socket, 'connect');
    socket.write(encodePdu(rq));
    let buf = Buffer.alloc(0);
    const timeout = setTimeout(() => socket.destroy(new Error('no answer to the A-ASSOCIATE-RQ')), 5000);
    try {
      for await (const chunk of socket as AsyncIterable<Buffer>) {
        buf = Buffer.concat([buf, chunk]);
        if (buf.length >= 6 && buf.length >= 6 + buf.readUInt32BE(2)) return decodePdu(buf.subarray(0, 6 + buf.readUInt32BE(2)));
      }
    } finally {
      clearTimeout(timeout);
    }
    throw new Error('connection closed without an answer');
  } finally {
    socket.destroy();
  }
}

/** Largest gap between the ticks of a 5 ms interval, from start() to stop(). */
function lagMeter(): { stop(): number } {
  let last = performance.now();
  let max = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    max = Math.max(max, now - last);
    last = now;
  }, 5);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(max, performance.now() - last);
    },
  };
}

// ---- the peer in a child process ----

/**
 * A thin DICOM peer (plain ESM, no imports from the repo): connects to host:port, writes what the
 * parent sends ({ write: base64 }), reads every PDU promptly and reports compactly: a P-DATA-TF
 * command set once complete ({ type: 'command', data }), a data set by its byte count once its
 * last fragment arrived ({ type: 'data', bytes }), any other PDU whole ({ type: 'pdu', data }).
 */
const PEER_SOURCE = `
import { connect } from 'node:net';
const [host, port] = process.argv.slice(2);
const socket = connect(Number(port), host);
socket.setNoDelay(true);
let pending = Buffer.alloc(0);
let command = [];
let dataBytes = 0;
socket.on('connect', () => process.send({ type: 'connected' }));
socket.on('data', (chunk) => {
  pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
  let o = 0;
  while (pending.length - o >= 6) {
    const length = pending.readUInt32BE(o + 2);
    if (pending.length - o < 6 + length) break;
    const type = pending[o];
    if (type === 4) {
      let p = o + 6;
      const end = o + 6 + length;
      while (p < end) {
        const pdvLength = pending.readUInt32BE(p);
        const mch = pending[p + 5];
        const data = pending.subarray(p + 6, p + 4 + pdvLength);
        if (mch & 1) {
          command.push(Buffer.from(data));
          if (mch & 2) {
            process.send({ type: 'command', data: Buffer.concat(command).toString('base64') });
            command = [];
          }
        } else {
          dataBytes += data.length;
          if (mch & 2) {
            process.send({ type: 'data', bytes: dataBytes });
            dataBytes = 0;
          }
        }
        p += 4 + pdvLength;
      }
    } else {
      process.send({ type: 'pdu', data: pending.subarray(o, o + 6 + length).toString('base64') });
    }
    o += 6 + length;
  }
  pending = o === pending.length ? Buffer.alloc(0) : Buffer.from(pending.subarray(o));
});
socket.on('error', () => {});
socket.on('close', () => {
  process.send({ type: 'closed' }, () => process.exit(0));
});
process.on('message', (m) => {
  if (m.write !== undefined) socket.write(Buffer.from(m.write, 'base64'));
  if (m.end) socket.end();
});
`;

type PeerMessage = { type: 'connected' } | { type: 'closed' } | { type: 'command'; data: string } | { type: 'data'; bytes: number } | { type: 'pdu'; data: string };

class ChildPeer {
  private readonly queue: PeerMessage[] = [];
  private waiter: (() => void) | undefined;
  private exited = false;

  private constructor(readonly child: ChildProcess) {
    child.on('message', (m: PeerMessage) => {
      this.queue.push(m);
      this.waiter?.();
    });
    child.on('exit', () => {
      this.exited = true;
      this.waiter?.();
    });
  }

  static async start(script: string, port: number): Promise<ChildPeer> {
    const child = fork(script, ['127.0.0.1', String(port)], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const peer = new ChildPeer(child);
    const first = await peer.next(10_000);
    assert.equal(first.type, 'connected');
    return peer;
  }

  write(b: Buffer): void {
    this.child.send({ write: b.toString('base64') });
  }

  async next(timeoutMs: number): Promise<PeerMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.queue.shift();
      if (m !== undefined) return m;
      if (this.exited) throw new Error('peer process exited');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('peer: nothing within the timeout');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.waiter = undefined;
    }
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    const exit = once(this.child, 'exit');
    this.child.kill();
    await exit;
  }
}

let scratch: string;
let peerScript: string;

before(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'pacsnode-maxlen-'));
  peerScript = path.join(scratch, 'peer.mjs');
  await writeFile(peerScript, PEER_SOURCE);
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

describe('SCP: the floor on the peer’s Maximum Length Received', () => {
  let d: TestDimse;
  const lines: { level: string; obj: Record<string, unknown>; msg: string | undefined }[] = [];
  const logger: Logger = {
    debug: (obj, msg) => lines.push({ level: 'debug', obj: obj as Record<string, unknown>, msg }),
    info: (obj, msg) => lines.push({ level: 'info', obj: obj as Record<string, unknown>, msg }),
    warn: (obj, msg) => lines.push({ level: 'warn', obj: obj as Record<string, unknown>, msg }),
    error: (obj, msg) => lines.push({ level: 'error', obj: obj as Record<string, unknown>, msg }),
  };

  before(async () => {
    d = await startDimse({ logger });
  });
  after(async () => {
    await d.close();
  });

  for (const maxLength of [7, 1, MIN_PEER_MAX_LENGTH - 1]) {
    it(`rejects an A-ASSOCIATE-RQ announcing ${maxLength}: A-ASSOCIATE-RJ 1/1/1, logged with the AE titles`, async () => {
      lines.length = 0;
      const answer = await answerTo(d.port, associateRq(maxLength));
      assert.equal(answer.type, 'A-ASSOCIATE-RJ');
      assert.deepEqual({ result: answer.result, source: answer.source, reason: answer.reason }, { result: 1, source: 1, reason: 1 });
      await waitFor(() => lines.some((l) => l.obj.ending === 'rejected'), 3000);
      const line = lines.find((l) => l.obj.ending === 'rejected');
      assert.equal(line?.obj.callingAe, 'TINYPDU');
      assert.equal(line?.obj.calledAe, AE);
      assert.match(String(line?.obj.detail), new RegExp(`Maximum Length Received ${maxLength} is below ${MIN_PEER_MAX_LENGTH}`));
    });
  }

  for (const maxLength of [MIN_PEER_MAX_LENGTH, 0, 4096]) {
    it(`accepts an A-ASSOCIATE-RQ announcing ${maxLength}${maxLength === 0 ? ' (no limit)' : ''}`, async () => {
      const answer = await answerTo(d.port, associateRq(maxLength));
      assert.equal(answer.type, 'A-ASSOCIATE-AC');
    });
  }

  it('answers the called AE check first: a foreign called AE with max length 7 still gets 1/1/7', async () => {
    const answer = await answerTo(d.port, associateRq(7, { calledAe: 'SOMEONE' }));
    assert.equal(answer.type, 'A-ASSOCIATE-RJ');
    assert.deepEqual({ result: answer.result, source: answer.source, reason: answer.reason }, { result: 1, source: 1, reason: 7 });
  });

  it('echoscu with --max-pdu 4096 (DCMTK’s smallest) still works', async () => {
    const r = await dcmtk('echoscu', ['--max-pdu', '4096', '-aet', 'ECHOSCU', '-aec', AE, '127.0.0.1', String(d.port)]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });
});

describe('sending a large data set in small PDUs gives the event loop its turns', () => {
  it(`sendDataSetPdus: 24 MiB at the peer's maximum ${MIN_PEER_MAX_LENGTH} to a prompt reader, event-loop gaps under ${MAX_LAG_MS} ms`, async () => {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    const accepted = once(server, 'connection') as Promise<[Socket]>;
    const peer = await ChildPeer.start(peerScript, port);
    const [socket] = await accepted;
    socket.setNoDelay(true);
    try {
      const size = 24 * 1024 * 1024;
      const data = Buffer.alloc(size, 0x5a);
      async function* source(): AsyncGenerator<Uint8Array> {
        for (let o = 0; o < size; o += 256 * 1024) yield data.subarray(o, Math.min(size, o + 256 * 1024));
      }
      let pdus = 0;
      const meter = lagMeter();
      const started = performance.now();
      const sent = await sendDataSetPdus(1, source(), MIN_PEER_MAX_LENGTH, async (pdu) => {
        pdus++;
        if (!socket.write(pdu)) await once(socket, 'drain');
      });
      const received = await peer.next(60_000);
      const lag = meter.stop();
      const ms = performance.now() - started;
      console.log(`sendDataSetPdus ${size} bytes in ${pdus} PDUs: ${ms.toFixed(0)} ms, largest event-loop gap ${lag.toFixed(1)} ms`);
      assert.equal(sent, size);
      assert.deepEqual(received, { type: 'data', bytes: size });
      assert.ok(lag < MAX_LAG_MS, `event loop held for ${lag.toFixed(0)} ms`);
    } finally {
      socket.destroy();
      await peer.stop();
      server.close();
    }
  });
});

describe('C-GET SCP to a requestor announcing the floor', () => {
  let d: TestRetrieveDimse;
  let studyUid: string;
  const size = 16 * 1024 * 1024;

  before(async () => {
    // The blob comes in one chunk, as an object store or a cache may hand it over: reading the
    // source then gives the event loop no turn (the fs store's 1 MiB reads sometimes do).
    d = await startRetrieveDimse({
      policy: { timeoutSecs: 30 },
      wrapBlobs: (inner: BlobStore): BlobStore => ({
        ...inner,
        get: async (key, options) => {
          const chunks: Buffer[] = [];
          for await (const c of await inner.get(key, options)) chunks.push(c as Buffer);
          return Readable.from([Buffer.concat(chunks)], { objectMode: false });
        },
      }),
    });
    const inst = smallInstance({ sopClassUid: SOP_CLASS.CT, pixelBytes: size });
    const outcome = await d.archive.ingest({ principal: ANONYMOUS, origin: { protocol: 'internal' } }, {
      body: (async function* () {
        yield inst.bytes;
      })(),
    });
    assert.ok(outcome.ok && outcome.studyUid !== undefined, outcome.message);
    studyUid = outcome.studyUid;
  });
  after(async () => {
    await d.close();
  });

  it(`sends an ${size / 1024 / 1024} MiB instance as C-GET sub-operation in ${MIN_PEER_MAX_LENGTH}-byte PDUs, event-loop gaps under ${MAX_LAG_MS} ms`, async () => {
    const peer = await ChildPeer.start(peerScript, d.port);
    try {
      const rq = associateRq(MIN_PEER_MAX_LENGTH, {
        callingAe: 'TINYGET',
        presentationContexts: [
          { id: 1, abstractSyntax: STUDY_ROOT_GET, transferSyntaxes: [EXPLICIT_VR_LE] },
          { id: 3, abstractSyntax: SOP_CLASS.CT, transferSyntaxes: [EXPLICIT_VR_LE] },
        ],
      });
      rq.userInformation.roleSelections = [{ sopClassUid: SOP_CLASS.CT, scuRole: false, scpRole: true }];
      peer.write(encodePdu(rq));
      const ac = await peer.next(5000);
      assert.equal(ac.type, 'pdu');
      assert.equal(decodePdu(Buffer.from((ac as { data: string }).data, 'base64')).type, 'A-ASSOCIATE-AC');

      const meter = lagMeter();
      const started = performance.now();
      const cmd = encodeCommandSet({ commandField: CommandField.C_GET_RQ, commandDataSetType: DATA_SET_PRESENT, affectedSopClassUid: STUDY_ROOT_GET, messageId: 1, priority: 0 });
      const identifier = encodeDataset([{ tag: '00080052', vr: 'CS', value: 'STUDY' }, { tag: '0020000D', vr: 'UI', value: studyUid }], { explicitVr: true });
      for (const pdu of fragmentPdus(1, true, cmd, 16384)) peer.write(pdu);
      for (const pdu of fragmentPdus(1, false, identifier, 16384)) peer.write(pdu);

      let stored = 0;
      let final: CommandSet | undefined;
      while (final === undefined) {
        const m = await peer.next(60_000);
        if (m.type !== 'command') assert.fail(`unexpected ${JSON.stringify(m).slice(0, 200)}`);
        const c = decodeCommandSet(Buffer.from(m.data, 'base64'));
        if (c.commandField === CommandField.C_STORE_RQ) {
          const data = await peer.next(60_000);
          assert.equal(data.type, 'data');
          stored += (data as { bytes: number }).bytes;
          const rsp = encodeCommandSet({
            commandField: CommandField.C_STORE_RSP,
            commandDataSetType: NO_DATA_SET,
            ...(c.affectedSopClassUid !== undefined ? { affectedSopClassUid: c.affectedSopClassUid } : {}),
            ...(c.affectedSopInstanceUid !== undefined ? { affectedSopInstanceUid: c.affectedSopInstanceUid } : {}),
            ...(c.messageId !== undefined ? { messageIdBeingRespondedTo: c.messageId } : {}),
            status: 0,
          });
          for (const pdu of fragmentPdus(3, true, rsp, 16384)) peer.write(pdu);
          continue;
        }
        if (c.commandField === CommandField.C_GET_RSP && c.status !== 0xff00) final = c;
      }
      const lag = meter.stop();
      console.log(`C-GET of ${stored} data set bytes at ${MIN_PEER_MAX_LENGTH}: ${(performance.now() - started).toFixed(0)} ms, largest event-loop gap ${lag.toFixed(1)} ms`);
      assert.equal(final.status, 0);
      assert.equal(final.numberOfCompletedSuboperations, 1);
      assert.ok(stored > size, `only ${stored} data set bytes received`);
      assert.ok(lag < MAX_LAG_MS, `event loop held for ${lag.toFixed(0)} ms`);
      peer.write(encodePdu({ type: 'A-RELEASE-RQ' }));
      const rp = await peer.next(5000);
      assert.equal(rp.type, 'pdu');
    } finally {
      await peer.stop();
    }
  });
});

async function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > ms) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
