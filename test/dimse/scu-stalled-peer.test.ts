// The SCU against a peer that stops reading or misbehaves in negotiation (review findings 2 and
// its observations): a C-STORE destination that stops reading our data set cannot keep the store
// alive by sending small messages meanwhile (trickle), nor fill our memory with them (flood); the
// messages still queued are not handed out after a failure of ours; a context accepted with a
// transfer syntax we did not propose is not used; a message on a context that was not accepted is
// a protocol error; a Maximum Length Received below MIN_PEER_MAX_LENGTH fails the association.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { silentLogger } from '../../src/archive/context.js';
import { CommandField, type CommandSet } from '../../src/dimse/message/command.js';
import { ScuAssociation } from '../../src/dimse/scu/association.js';
import { createScu, ScuError, type StoreItem, type StoreResult } from '../../src/dimse/scu/index.js';
import { SOP_CLASS } from '../helpers/corpus.js';
import { smallInstance } from './helpers.js';
import { acceptAll, messageBytes, startScriptedPeer, type PeerConnection, type ScriptedPeer } from './scripted-peer.js';
import { recordingLogger } from '../helpers/recording-logger.js';

const VERIFICATION = '1.2.840.10008.1.1';
const EXPLICIT_VR_LE = '1.2.840.10008.1.2.1';
const BIG_ENDIAN = '1.2.840.10008.1.2.2';
/** Large enough that our send blocks on a loopback socket whose reader paused (kernel buffers hold a few MiB). */
const DATA_SET_BYTES = 16 * 1024 * 1024;
const MiB = 1024 * 1024;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A Verification association (one context) to the peer, with a 1 s DIMSE timeout. */
function openEcho(port: number, calledAe: string): Promise<ScuAssociation> {
  return ScuAssociation.open({
    target: { host: '127.0.0.1', port, calledAe },
    callingAe: 'STALLTEST',
    contexts: [{ id: 1, abstractSyntax: VERIFICATION, transferSyntaxes: [EXPLICIT_VR_LE] }],
    timeoutMs: 1000,
    maxPduLength: 65536,
    logger: silentLogger,
    operation: 'C-ECHO',
  });
}

/** One instance whose data set is DATA_SET_BYTES long, read in 1 MiB chunks. */
function bigItem(): StoreItem {
  const { bytes, sopUid } = smallInstance({ pixelBytes: 128, accessionNumber: 'STALL' });
  const all = Buffer.concat([bytes, Buffer.alloc(DATA_SET_BYTES)]);
  return {
    sopClassUid: SOP_CLASS.SC,
    sopInstanceUid: sopUid,
    transferSyntaxUid: EXPLICIT_VR_LE,
    size: all.length,
    open: async () =>
      (async function* () {
        for (let o = 0; o < all.length; o += MiB) yield all.subarray(o, o + MiB);
      })(),
  };
}

const echoRq = (messageId: number): CommandSet => ({ commandField: CommandField.C_ECHO_RQ, commandDataSetType: 0x0101, messageId, affectedSopClassUid: VERIFICATION });
const echoRsp = (messageId: number): CommandSet => ({
  commandField: CommandField.C_ECHO_RSP,
  commandDataSetType: 0x0101,
  messageIdBeingRespondedTo: messageId,
  affectedSopClassUid: VERIFICATION,
  status: 0,
});

/** Answers every C-ECHO-RQ with success. */
function answerEcho(contextId: number, command: CommandSet, _data: Buffer | undefined, c: PeerConnection): void {
  if (command.commandField === CommandField.C_ECHO_RQ) c.sendMessage(contextId, echoRsp(command.messageId as number));
}

/** The outcome of a promise if it settles within `ms`, else 'pending'. */
async function within<T>(p: Promise<T>, ms: number): Promise<{ value: T } | { error: unknown } | 'pending'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'pending'>((r) => (timer = setTimeout(() => r('pending'), ms)));
  try {
    return await Promise.race([p.then((value) => ({ value }), (error: unknown) => ({ error })), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

describe('SCU: a peer that stops reading, or negotiates what we did not propose', () => {
  const peers: ScriptedPeer[] = [];
  const peer = async (...args: Parameters<typeof startScriptedPeer>): Promise<ScriptedPeer> => {
    const p = await startScriptedPeer(...args);
    peers.push(p);
    return p;
  };
  after(async () => {
    for (const p of peers) await p.close();
  });

  /**
   * A C-STORE of bigItem() to a peer that reads the C-STORE-RQ command, stops reading, and then
   * sends `message` every `everyMs` (0: as fast as its socket takes them). Resolves with the store's
   * outcome within `capMs` ('pending' past it: the peer is then closed, so the store ends anyway),
   * the elapsed time, the heap growth seen meanwhile, and the association's log line.
   */
  async function storeToStalledPeer(message: (n: number) => CommandSet, everyMs: number, capMs: number) {
    let stop = false;
    const p = await peer({
      onCommand(contextId, command, c) {
        if (command.commandField !== CommandField.C_STORE_RQ) return;
        c.socket.pause();
        c.socket.once('close', () => (stop = true));
        void (async () => {
          let n = 0;
          if (everyMs > 0) {
            while (!stop && !c.socket.destroyed) {
              c.socket.write(messageBytes(contextId, message(++n)));
              await sleep(everyMs);
            }
            return;
          }
          const batch = Buffer.concat(Array.from({ length: 1000 }, () => messageBytes(contextId, message(++n))));
          while (!stop && !c.socket.destroyed) {
            if (!c.socket.write(batch)) await new Promise((r) => (c.socket.once('drain', r), c.socket.once('close', r)));
          }
        })();
      },
    });
    const { logger, lines } = recordingLogger();
    const scu = createScu({ callingAe: 'STALLTEST', timeoutSecs: 1, logger });
    const item = bigItem();
    global.gc?.();
    const baseline = process.memoryUsage().heapUsed;
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().heapUsed)), 20);
    const started = Date.now();
    const outcome = await within<StoreResult>(scu.store({ host: '127.0.0.1', port: p.port, calledAe: 'STALLED' }, [item]), capMs);
    const ms = Date.now() - started;
    clearInterval(sampler);
    stop = true;
    if (outcome === 'pending') await p.close();
    // The association's log line, once it is closed (at most ~1 s after our A-ABORT, which a peer that does not read never takes).
    const closedLineOf = (): { end?: string } | undefined => lines.find((l) => l[2] === 'SCU association closed')?.[1] as { end?: string } | undefined;
    for (let i = 0; i < 40 && closedLineOf() === undefined; i++) await sleep(50);
    const closedLine = closedLineOf();
    return { outcome, ms, growthMiB: (peak - baseline) / MiB, closedLine, peer: p };
  }

  function assertFailedStore(outcome: Awaited<ReturnType<typeof storeToStalledPeer>>['outcome'], error: RegExp): StoreResult {
    assert.notEqual(outcome, 'pending', 'the store did not settle within the cap');
    assert.ok(typeof outcome === 'object' && 'value' in outcome, `the store resolved: ${JSON.stringify(outcome)}`);
    const r = outcome.value;
    assert.equal(r.failed, 1);
    assert.equal(r.results[0]?.outcome, 'failure');
    assert.match(r.results[0]?.error ?? '', error);
    return r;
  }

  it('a peer that stops reading and trickles C-ECHO-RQs: the store fails (a request we do not serve) within the timeout, aborted', async (t) => {
    const { outcome, ms, closedLine, growthMiB } = await storeToStalledPeer(echoRq, 200, 6000);
    t.diagnostic(`settled after ${ms} ms, heap +${growthMiB.toFixed(1)} MiB`);
    assertFailedStore(outcome, /request \(command field 0x0030\) that has no place/);
    assert.ok(ms < 3000, `settled after ${ms} ms`);
    assert.ok(closedLine && closedLine.end !== 'released', `association ended by abort: ${JSON.stringify(closedLine)}`);
  });

  it('a peer that stops reading and trickles unsolicited C-ECHO-RSPs: the store times out (only our own send progress counts), aborted', async (t) => {
    const { outcome, ms, closedLine, growthMiB } = await storeToStalledPeer(echoRsp, 200, 6000);
    t.diagnostic(`settled after ${ms} ms, heap +${growthMiB.toFixed(1)} MiB`);
    assertFailedStore(outcome, /stopped reading/);
    assert.ok(ms < 3000, `settled after ${ms} ms`);
    assert.ok(closedLine && closedLine.end !== 'released', `association ended by abort: ${JSON.stringify(closedLine)}`);
  });

  it('a peer that stops reading and floods C-ECHO-RQs: the store fails at once, memory bounded', async (t) => {
    const { outcome, ms, growthMiB } = await storeToStalledPeer(echoRq, 0, 6000);
    t.diagnostic(`settled after ${ms} ms, heap +${growthMiB.toFixed(1)} MiB`);
    assertFailedStore(outcome, /has no place/);
    assert.ok(ms < 3000, `settled after ${ms} ms`);
    assert.ok(growthMiB < 50, `heap grew by ${growthMiB.toFixed(1)} MiB`);
  });

  it('a peer that stops reading and floods unsolicited responses: the socket is paused (memory bounded), the store times out', async (t) => {
    const { outcome, ms, growthMiB } = await storeToStalledPeer(echoRsp, 0, 6000);
    t.diagnostic(`settled after ${ms} ms, heap +${growthMiB.toFixed(1)} MiB`);
    assertFailedStore(outcome, /stopped reading/);
    assert.ok(ms < 3000, `settled after ${ms} ms`);
    assert.ok(growthMiB < 50, `heap grew by ${growthMiB.toFixed(1)} MiB`);
  });

  it('after a failure of ours, receive() rejects at once: the queued messages are dropped', async () => {
    const p = await peer({
      onMessage(contextId, command, _data, c) {
        // Three answers to one C-ECHO-RQ: two wait in the queue.
        if (command.commandField === CommandField.C_ECHO_RQ) for (let i = 0; i < 3; i++) c.sendMessage(contextId, echoRsp(command.messageId as number));
      },
    });
    const assoc = await openEcho(p.port, 'QUEUE');
    await assoc.sendCommand(1, echoRq(assoc.nextMessageId()));
    const first = await assoc.receive();
    assert.equal(first.command.commandField, CommandField.C_ECHO_RSP);
    await sleep(100); // the other two arrive
    assoc.abort('test');
    await assert.rejects(assoc.receive(), (err: unknown) => err instanceof ScuError && err.code === 'ASSOCIATION_ABORTED');
  });

  it('a response that arrived whole just before the peer aborted is still handed over', async () => {
    const p = await peer({
      onMessage(contextId, command, _data, c) {
        if (command.commandField !== CommandField.C_ECHO_RQ) return;
        c.sendMessage(contextId, echoRsp(command.messageId as number));
        c.send({ type: 'A-ABORT', source: 0, reason: 0 });
      },
    });
    const assoc = await openEcho(p.port, 'LASTWORD');
    await assoc.sendCommand(1, echoRq(assoc.nextMessageId()));
    await sleep(100); // the response and the A-ABORT arrive before anyone asks
    assert.ok(assoc.closed);
    const rsp = await assoc.receive();
    assert.equal(rsp.command.commandField, CommandField.C_ECHO_RSP);
    await assert.rejects(assoc.receive(), (err: unknown) => err instanceof ScuError && err.code === 'ASSOCIATION_ABORTED');
  });

  it('a context accepted with a transfer syntax we did not propose is not used: NO_PRESENTATION_CONTEXT', async () => {
    const p = await peer({
      onRequest(rq) {
        const ac = acceptAll(rq);
        ac.presentationContexts = ac.presentationContexts.map((pc) => ({ ...pc, transferSyntax: BIG_ENDIAN }));
        return ac;
      },
      onMessage: answerEcho,
    });
    const scu = createScu({ callingAe: 'STALLTEST', timeoutSecs: 1 });
    await assert.rejects(scu.echo({ host: '127.0.0.1', port: p.port, calledAe: 'WRONGTS' }), (err: unknown) => err instanceof ScuError && err.code === 'NO_PRESENTATION_CONTEXT');
  });

  it('a response on a presentation context that was not accepted is a PROTOCOL_ERROR, and aborts', async () => {
    const p = await peer({
      onMessage(_contextId, command, data, c) {
        answerEcho(99, command, data, c);
      },
    });
    const scu = createScu({ callingAe: 'STALLTEST', timeoutSecs: 1 });
    await assert.rejects(scu.echo({ host: '127.0.0.1', port: p.port, calledAe: 'CTX99' }), (err: unknown) => err instanceof ScuError && err.code === 'PROTOCOL_ERROR' && /context 99/.test(err.message));
    await sleep(100);
    assert.ok(p.connections[0]?.received.includes('A-ABORT'), `aborted: ${p.connections[0]?.received.join(', ')}`);
  });

  it('an A-ASSOCIATE-AC announcing a Maximum Length Received of 7: PROTOCOL_ERROR at once, A-ABORT; 1024 and 0 (no limit) work', async () => {
    const withMax = (maxLength: number): Promise<ScriptedPeer> => peer({ onRequest: (rq) => acceptAll(rq, { maxLength }), onMessage: answerEcho });
    const tiny = await withMax(7);
    const scu = createScu({ callingAe: 'STALLTEST', timeoutSecs: 1 });
    const started = Date.now();
    await assert.rejects(scu.echo({ host: '127.0.0.1', port: tiny.port, calledAe: 'TINY' }), (err: unknown) => {
      assert.ok(err instanceof ScuError, String(err));
      assert.equal(err.code, 'PROTOCOL_ERROR');
      assert.match(err.message, /Maximum Length Received of 7, below the 1024/);
      return true;
    });
    assert.ok(Date.now() - started < 500, `failed after ${Date.now() - started} ms`);
    await sleep(100);
    const conn = tiny.connections[0];
    assert.ok(conn?.received.includes('A-ABORT'), `aborted: ${conn?.received.join(', ')}`);
    assert.ok(!conn?.received.includes('P-DATA-TF'), 'nothing sent in tiny PDUs');
    for (const maxLength of [1024, 0]) {
      const ok = await withMax(maxLength);
      const r = await scu.echo({ host: '127.0.0.1', port: ok.port, calledAe: 'OK' });
      assert.equal(r.status, 0, `max length ${maxLength}`);
    }
  });
});
