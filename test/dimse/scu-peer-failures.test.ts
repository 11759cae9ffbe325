// The SCU when the peer fails it: a peer's Error Comment (free text that may quote a refused
// birth date) never reaches the log, and a failure status ends the operation with A-RELEASE; a
// peer that stops answering (or aborts) during a C-STORE ends the run instead of costing a new
// association and a whole timeout per remaining instance, also for C-MOVE sub-operations; a peer
// closing between two instances still gets a new association; the SCU's socket has TCP keepalive.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { generateUid } from '../../src/dicom/uids.js';
import { CommandField } from '../../src/dimse/message/command.js';
import { createScu, ScuError, type StoreItem } from '../../src/dimse/scu/index.js';
import { SOP_CLASS } from '../helpers/corpus.js';
import { AE, dcmtk, finalResponseOf, smallInstance, startRetrieveDimse, storeRetrieveFixture, type RetrieveFixture, type TestRetrieveDimse } from './helpers.js';
import { startScriptedPeer, type ScriptedPeer } from './scripted-peer.js';
import { recordingLogger } from '../helpers/recording-logger.js';

const run = promisify(execFile);
const BIRTH_DATE = '1970/03/14';

function item(): StoreItem {
  const { bytes, sopUid } = smallInstance({ pixelBytes: 128, accessionNumber: 'PEER' });
  return {
    sopClassUid: SOP_CLASS.SC,
    sopInstanceUid: sopUid,
    transferSyntaxUid: '1.2.840.10008.1.2.1',
    size: bytes.length,
    open: async () =>
      (async function* () {
        yield bytes;
      })(),
  };
}

const storeRsp = (command: { messageId?: number; affectedSopClassUid?: string; affectedSopInstanceUid?: string }, status: number) => ({
  commandField: CommandField.C_STORE_RSP,
  commandDataSetType: 0x0101,
  messageIdBeingRespondedTo: command.messageId as number,
  affectedSopClassUid: command.affectedSopClassUid as string,
  affectedSopInstanceUid: command.affectedSopInstanceUid as string,
  status,
});

describe('SCU: a failing peer', () => {
  const peers: ScriptedPeer[] = [];
  const peer = async (...args: Parameters<typeof startScriptedPeer>): Promise<ScriptedPeer> => {
    const p = await startScriptedPeer(...args);
    peers.push(p);
    return p;
  };
  after(async () => {
    for (const p of peers) await p.close();
  });

  it("a C-FIND refused with an Error Comment quoting the value: the comment reaches the caller, never the log; the association is released", async () => {
    const p = await peer({
      onMessage(contextId, command, _data, c) {
        if (command.commandField !== CommandField.C_FIND_RQ) return;
        c.sendMessage(contextId, {
          commandField: CommandField.C_FIND_RSP,
          commandDataSetType: 0x0101,
          messageIdBeingRespondedTo: command.messageId as number,
          affectedSopClassUid: command.affectedSopClassUid as string,
          status: 0xa900,
          errorComment: `"${BIRTH_DATE}" is not a DA value`,
        });
      },
    });
    const { logger, lines } = recordingLogger();
    const scu = createScu({ callingAe: 'PEERTEST', timeoutSecs: 5, logger });
    const drain = async (): Promise<void> => {
      for await (const _ of scu.find({ host: '127.0.0.1', port: p.port, calledAe: 'PEER' }, { level: 'STUDY', keys: { PatientBirthDate: '19700314' } }));
    };
    await assert.rejects(drain(), (err: unknown) => {
      assert.ok(err instanceof ScuError);
      assert.equal(err.code, 'DIMSE_FAILURE');
      assert.equal(err.details['status'], 0xa900);
      assert.match(err.message, /is not a DA value/);
      return true;
    });
    await new Promise((r) => setTimeout(r, 100));
    assert.ok(lines.length > 0, 'the association was logged');
    assert.doesNotMatch(JSON.stringify(lines), /1970\/03\/14/);
    const conn = p.connections[0];
    assert.ok(conn);
    assert.ok(conn.received.includes('A-RELEASE-RQ'), `released, not aborted: ${conn.received.join(', ')}`);
    assert.ok(!conn.received.includes('A-ABORT'));
  });

  it('a C-ECHO answered with a failure status is released too', async () => {
    const p = await peer({
      onMessage(contextId, command, _data, c) {
        c.sendMessage(contextId, { commandField: CommandField.C_ECHO_RSP, commandDataSetType: 0x0101, messageIdBeingRespondedTo: command.messageId as number, affectedSopClassUid: command.affectedSopClassUid as string, status: 0x0211 });
      },
    });
    const scu = createScu({ callingAe: 'PEERTEST', timeoutSecs: 5 });
    await assert.rejects(scu.echo({ host: '127.0.0.1', port: p.port, calledAe: 'PEER' }), (err: unknown) => err instanceof ScuError && err.code === 'DIMSE_FAILURE');
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(p.connections[0]?.received, ['A-ASSOCIATE-RQ', 'P-DATA-TF', 'A-RELEASE-RQ']);
  });

  it('a peer that never answers a C-STORE: one timeout ends the run, the rest is not sent, on one association', async () => {
    const p = await peer({});
    const scu = createScu({ callingAe: 'PEERTEST', timeoutSecs: 1 });
    const started = Date.now();
    const items = Array.from({ length: 6 }, item);
    const r = await scu.store({ host: '127.0.0.1', port: p.port, calledAe: 'PEER' }, items);
    const ms = Date.now() - started;
    assert.equal(r.failed, 6);
    assert.equal(p.connections.length, 1, 'associations opened');
    assert.ok(ms < 3500, `took ${ms} ms (a timeout per instance would take ~6 s)`);
    assert.match(r.results[0]?.error ?? '', /no answer|within/);
    for (const x of r.results.slice(1)) assert.match(x.error ?? '', /^not sent: the association failed on an earlier instance/);
    // the instances not sent are named (a REST store job lists them in failed_uids)
    assert.deepEqual(
      r.results.map((x) => x.sopInstanceUid),
      items.map((x) => x.sopInstanceUid),
    );
  });

  it('a source of ours that stalls longer than the timeout is not the peer stopping to read: the run goes on', async () => {
    const p = await peer({
      onMessage(contextId, command, _data, c) {
        if (command.commandField === CommandField.C_STORE_RQ) c.sendMessage(contextId, storeRsp(command, 0));
      },
    });
    const scu = createScu({ callingAe: 'PEERTEST', timeoutSecs: 0.5 });
    const slow = item();
    const open = slow.open;
    // half the data set, then 1.5 s of nothing from our side (a slow blob store), then the rest
    slow.open = async () => {
      const chunks: Uint8Array[] = [];
      for await (const c of await open()) chunks.push(c);
      const bytes = Buffer.concat(chunks);
      return (async function* () {
        yield bytes.subarray(0, bytes.length >> 1);
        await new Promise((r) => setTimeout(r, 1500));
        yield bytes.subarray(bytes.length >> 1);
      })();
    };
    const r = await scu.store({ host: '127.0.0.1', port: p.port, calledAe: 'PEER' }, [item(), slow, item(), item()]);
    assert.equal(r.completed, 4, JSON.stringify(r.results.map((x) => x.error ?? 'ok')));
    assert.equal(p.connections.length, 1);
  });

  it('a peer that aborts during a C-STORE: the rest is not sent', async () => {
    const p = await peer({
      onMessage(_contextId, command, _data, c) {
        if (command.commandField === CommandField.C_STORE_RQ) c.send({ type: 'A-ABORT', source: 2, reason: 0 });
      },
    });
    const scu = createScu({ callingAe: 'PEERTEST', timeoutSecs: 5 });
    const r = await scu.store({ host: '127.0.0.1', port: p.port, calledAe: 'PEER' }, Array.from({ length: 5 }, item));
    assert.equal(r.failed, 5);
    assert.equal(p.connections.length, 1);
    for (const x of r.results.slice(1)) assert.match(x.error ?? '', /^not sent: /);
  });

  it('a peer that answers, then aborts between two instances: the next instance goes on a new association', async () => {
    let answered = 0;
    const p = await peer({
      onMessage(contextId, command, _data, c) {
        if (command.commandField !== CommandField.C_STORE_RQ) return;
        c.sendMessage(contextId, storeRsp(command, 0));
        answered++;
        // After the response is out: the SCU sees the association end before its next instance.
        if (answered === 1) setTimeout(() => c.send({ type: 'A-ABORT', source: 2, reason: 0 }), 5);
      },
    });
    const scu = createScu({ callingAe: 'PEERTEST', timeoutSecs: 5 });
    const items = Array.from({ length: 3 }, item);
    const first = items[0] as StoreItem;
    // The first instance's response arrives, then the abort, before the second instance is opened.
    const slowSecond: StoreItem = { ...(items[1] as StoreItem), open: async () => (await new Promise((r) => setTimeout(r, 200)), (items[1] as StoreItem).open()) };
    const r = await scu.store({ host: '127.0.0.1', port: p.port, calledAe: 'PEER' }, [first, slowSecond, items[2] as StoreItem]);
    assert.equal(r.completed, 3, JSON.stringify(r.results));
    assert.equal(p.connections.length, 2);
  });

  it("the SCU's socket has TCP keepalive (a vanished peer is found also while a C-MOVE waits untimed)", async () => {
    const p = await peer({});
    const scu = createScu({ callingAe: 'PEERTEST', timeoutSecs: 5 });
    const moving = scu.move({ host: '127.0.0.1', port: p.port, calledAe: 'PEER' }, { level: 'STUDY', studyUid: generateUid() }, { destination: 'ELSEWHERE' });
    moving.catch(() => undefined);
    for (let i = 0; i < 50 && !p.connections[0]?.received.includes('P-DATA-TF'); i++) await new Promise((r) => setTimeout(r, 20));
    const { stdout } = await run('ss', ['-tnoH', 'state', 'established', 'dst', `127.0.0.1:${p.port}`]);
    assert.match(stdout, /timer:\(keepalive,/, stdout);
    await p.close();
    await assert.rejects(moving);
  });
});

describe('C-MOVE SCP: a destination that never answers its C-STORE', () => {
  let d: TestRetrieveDimse;
  let f: RetrieveFixture;
  let hung: ScriptedPeer;
  before(async () => {
    d = await startRetrieveDimse({ policy: { timeoutSecs: 1 } });
    f = await storeRetrieveFixture(d.archive);
    hung = await startScriptedPeer({});
    d.addNode({ aeTitle: 'HUNG', host: '127.0.0.1', port: hung.port });
  });
  after(async () => {
    await hung.close();
    await d.close();
  });

  it('answers the final C-MOVE-RSP after one timeout, every sub-operation failed, one destination association', async () => {
    const started = Date.now();
    const r = await dcmtk('movescu', ['-d', '-S', '-aet', 'MOVESCU', '-aec', AE, '-aem', 'HUNG', '-to', '10', '-ta', '10', '-td', '20', '-k', 'QueryRetrieveLevel=STUDY', '-k', `StudyInstanceUID=${f.studyA}`, '127.0.0.1', String(d.port)], 60_000);
    const ms = Date.now() - started;
    const log = r.stdout + r.stderr;
    const final = finalResponseOf(log);
    assert.ok(final, log.slice(-2000));
    assert.equal(final.failed, 4);
    assert.equal(final.completed, 0);
    assert.equal(hung.connections.length, 1, 'destination associations');
    assert.ok(ms < 4500, `took ${ms} ms (a timeout per sub-operation would take ~4 s more)`);
  });
});
