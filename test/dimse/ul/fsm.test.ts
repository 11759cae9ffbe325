// The PS3.8 state machine: the table as data, and both sides of real associations over loopback
// TCP (an in-process requestor against an in-process acceptor), transition by transition.
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { decodePdu, encodePdu, encodeSinglePdv } from '../../../src/dimse/pdu/codec.js';
import { emptyUserInformation, type AssociateRq, type Pdu } from '../../../src/dimse/pdu/types.js';
import { UpperLayer, type PdvFragment, type Transition } from '../../../src/dimse/ul/association.js';
import { ACTIONS, EVENTS, STATES, TRANSITIONS, actionFor, type Event, type State } from '../../../src/dimse/ul/fsm.js';

const limits = { maxPDataLength: 16384, maxOtherLength: 1024 * 1024 };
const RQ: AssociateRq = {
  type: 'A-ASSOCIATE-RQ',
  protocolVersion: 1,
  calledAe: 'ACCEPTOR',
  callingAe: 'REQUESTOR',
  applicationContext: '1.2.840.10008.3.1.1.1',
  presentationContexts: [{ id: 1, abstractSyntax: '1.2.840.10008.1.1', transferSyntaxes: ['1.2.840.10008.1.2'] }],
  userInformation: { ...emptyUserInformation(), maxLength: 16384 },
};

const steps = (trace: Transition[]): string[] => trace.map((t) => `${t.event} ${t.from} ${t.action} ${t.to}`);

function waitFor(cond: () => boolean, ms = 3000): Promise<void> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      if (cond()) resolve();
      else if (Date.now() - start > ms) reject(new Error('timed out'));
      else setTimeout(tick, 5);
    };
    tick();
  });
}

describe('state transition table (PS3.8 Table 9-10)', () => {
  it('names only defined states, events and actions', () => {
    for (const [event, row] of Object.entries(TRANSITIONS)) {
      assert.ok(event in EVENTS);
      for (const [state, action] of Object.entries(row)) {
        assert.ok(state in STATES, state);
        assert.ok(action in ACTIONS, action);
      }
    }
  });

  it('defines every received-PDU event in every state with a transport connection', () => {
    const pduEvents: Event[] = ['Evt3', 'Evt4', 'Evt6', 'Evt10', 'Evt12', 'Evt13', 'Evt16', 'Evt17', 'Evt19'];
    const connected = (Object.keys(STATES) as State[]).filter((s) => s !== 'Sta1' && s !== 'Sta4');
    for (const e of pduEvents) for (const s of connected) assert.ok(actionFor(e, s), `${e} in ${s}`);
  });

  it('answers unexpected PDUs as the standard says', () => {
    assert.equal(actionFor('Evt10', 'Sta2'), 'AA-1');
    assert.equal(actionFor('Evt6', 'Sta6'), 'AA-8');
    assert.equal(actionFor('Evt13', 'Sta6'), 'AA-8');
    assert.equal(actionFor('Evt19', 'Sta6'), 'AA-8');
    assert.equal(actionFor('Evt19', 'Sta13'), 'AA-7');
    assert.equal(actionFor('Evt10', 'Sta13'), 'AA-6');
    assert.equal(actionFor('Evt12', 'Sta7'), 'AR-8');
    assert.equal(actionFor('Evt13', 'Sta10'), 'AR-10');
    assert.equal(actionFor('Evt18', 'Sta2'), 'AA-2');
    assert.equal(actionFor('Evt18', 'Sta6'), undefined);
  });
});

describe('associations over TCP', () => {
  let server: Server;
  let port: number;
  const accepted: Socket[] = [];
  before(async () => {
    server = createServer({ noDelay: true }, (s) => accepted.push(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });
  after(async () => {
    for (const s of accepted) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  const nextAccepted = async (n: number): Promise<Socket> => {
    await waitFor(() => accepted.length >= n);
    return accepted[n - 1] as Socket;
  };

  it('establishes, transfers data and releases through the standard transitions on both sides', async () => {
    const aTrace: Transition[] = [];
    const rTrace: Transition[] = [];
    const received: PdvFragment[] = [];
    let rClosed = false;
    let aClosed = false;
    const acceptor: UpperLayer = new UpperLayer({
      role: 'acceptor',
      artimMs: 2000,
      limits,
      trace: (t) => aTrace.push(t),
      user: {
        associateIndication: (rq) => acceptor.accept({ ...rq, type: 'A-ASSOCIATE-AC', presentationContexts: [{ id: 1, result: 0, transferSyntax: '1.2.840.10008.1.2' }] }),
        pData: (f) => received.push({ ...f, data: Buffer.from(f.data) }),
        releaseIndication: () => acceptor.releaseResponse(),
        closed: () => (aClosed = true),
      },
    });
    const requestor: UpperLayer = new UpperLayer({
      role: 'requestor',
      artimMs: 2000,
      limits,
      trace: (t) => rTrace.push(t),
      user: {
        associateConfirm: (pdu) => {
          assert.equal(pdu.type, 'A-ASSOCIATE-AC');
          void requestor.sendPData(encodeSinglePdv(1, true, true, Buffer.from('hello!'))).then(() => requestor.release());
        },
        pData: () => {},
        closed: () => (rClosed = true),
      },
    });
    const n = accepted.length + 1;
    requestor.associate(RQ, () => connect(port, '127.0.0.1'));
    acceptor.attach(await nextAccepted(n));
    await waitFor(() => rClosed && aClosed);
    assert.deepEqual(steps(rTrace), ['Evt1 Sta1 AE-1 Sta4', 'Evt2 Sta4 AE-2 Sta5', 'Evt3 Sta5 AE-3 Sta6', 'Evt9 Sta6 DT-1 Sta6', 'Evt11 Sta6 AR-1 Sta7', 'Evt13 Sta7 AR-3 Sta1']);
    assert.deepEqual(steps(aTrace), [
      'Evt5 Sta1 AE-5 Sta2',
      'Evt6 Sta2 AE-6 Sta3',
      'Evt7 Sta3 AE-7 Sta6',
      'Evt10 Sta6 DT-2 Sta6',
      'Evt12 Sta6 AR-2 Sta8',
      'Evt14 Sta8 AR-4 Sta13',
      'Evt17 Sta13 AR-5 Sta1',
    ]);
    assert.equal(Buffer.concat(received.map((f) => f.data)).toString(), 'hello!');
  });

  it('aborts and closes when the peer does not take a P-DATA write within sendTimeoutMs', async () => {
    let aClosed = false;
    let established = false;
    const acceptor: UpperLayer = new UpperLayer({
      role: 'acceptor',
      artimMs: 2000,
      sendTimeoutMs: 300,
      limits,
      user: {
        associateIndication: (rq) => acceptor.accept({ ...rq, type: 'A-ASSOCIATE-AC', presentationContexts: [{ id: 1, result: 0, transferSyntax: '1.2.840.10008.1.2' }] }),
        pData: () => {},
        closed: () => (aClosed = true),
      },
    });
    const requestor: UpperLayer = new UpperLayer({
      role: 'requestor',
      artimMs: 2000,
      limits,
      user: {
        associateConfirm: () => {
          established = true;
          requestor.pause(); // reads nothing from now on
        },
        pData: () => {},
      },
    });
    const n = accepted.length + 1;
    requestor.associate(RQ, () => connect(port, '127.0.0.1'));
    acceptor.attach(await nextAccepted(n));
    await waitFor(() => established);
    const pdu = encodeSinglePdv(1, false, false, Buffer.alloc(1024 * 1024));
    const started = Date.now();
    let failure: unknown;
    try {
      for (let i = 0; i < 1000; i++) await acceptor.sendPData(pdu);
    } catch (err) {
      failure = err;
    }
    assert.match(String(failure), /peer stopped reading/);
    await waitFor(() => aClosed);
    assert.ok(Date.now() - started < 5000, 'the stalled write was not given up in time');
    requestor.destroy();
  });

  /** A raw peer: writes bytes, collects the PDUs answered, resolves when the acceptor closes. */
  async function rawPeer(send: Buffer, opts: { artimMs?: number; closeAfterAbort?: boolean } = {}): Promise<{ trace: Transition[]; pdus: Pdu[]; ms: number }> {
    const trace: Transition[] = [];
    let closed = false;
    const acceptor = new UpperLayer({ role: 'acceptor', artimMs: opts.artimMs ?? 2000, limits, trace: (t) => trace.push(t), user: { pData: () => {}, closed: () => (closed = true) } });
    const n = accepted.length + 1;
    const peer = connect(port, '127.0.0.1');
    const got: Buffer[] = [];
    peer.on('data', (d: Buffer) => {
      got.push(d);
      if (opts.closeAfterAbort === true && d[0] === 0x07) peer.end();
    });
    peer.on('error', () => {});
    const start = Date.now();
    acceptor.attach(await nextAccepted(n));
    if (send.length > 0) peer.write(send);
    await waitFor(() => closed, 5000);
    const ms = Date.now() - start;
    peer.destroy();
    const all = Buffer.concat(got);
    const pdus: Pdu[] = [];
    for (let o = 0; o + 6 <= all.length; ) {
      const len = all.readUInt32BE(o + 2);
      pdus.push(decodePdu(all.subarray(o, o + 6 + len)));
      o += 6 + len;
    }
    return { trace, pdus, ms };
  }

  it('aborts (2/2) a PDU other than A-ASSOCIATE-RQ in Sta2 and closes when the peer does', async () => {
    const r = await rawPeer(encodePdu({ type: 'A-RELEASE-RQ' }), { closeAfterAbort: true });
    assert.deepEqual(steps(r.trace), ['Evt5 Sta1 AE-5 Sta2', 'Evt12 Sta2 AA-1 Sta13', 'Evt17 Sta13 AR-5 Sta1']);
    assert.deepEqual(r.pdus, [{ type: 'A-ABORT', source: 2, reason: 2 }]);
  });

  it('aborts an unknown PDU type with reason 1', async () => {
    const r = await rawPeer(Buffer.from('GET / HTTP/1.1\r\n\r\n'), { closeAfterAbort: true });
    assert.deepEqual(steps(r.trace).slice(1, 2), ['Evt19 Sta2 AA-1 Sta13']);
    assert.deepEqual(r.pdus, [{ type: 'A-ABORT', source: 2, reason: 1 }]);
  });

  it('rejects protocol version 2 only (1/2/2) and waits in Sta13 until ARTIM expires', async () => {
    const r = await rawPeer(encodePdu({ ...RQ, protocolVersion: 2 }), { artimMs: 300 });
    assert.deepEqual(steps(r.trace), ['Evt5 Sta1 AE-5 Sta2', 'Evt6 Sta2 AE-6 Sta13', 'Evt18 Sta13 AA-2 Sta1']);
    assert.deepEqual(r.pdus, [{ type: 'A-ASSOCIATE-RJ', result: 1, source: 2, reason: 2 }]);
    assert.ok(r.ms >= 250, `closed after ${r.ms} ms`);
  });

  it('closes a connection that sends nothing when ARTIM expires in Sta2', async () => {
    const r = await rawPeer(Buffer.alloc(0), { artimMs: 200 });
    assert.deepEqual(steps(r.trace), ['Evt5 Sta1 AE-5 Sta2', 'Evt18 Sta2 AA-2 Sta1']);
  });
});
