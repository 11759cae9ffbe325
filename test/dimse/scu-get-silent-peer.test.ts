// C-GET as SCU against a peer that is slow between sub-operations: pending C-GET responses are
// optional (PS3.4 C.4.3.3.1), and an SCP fetching from nearline storage may be silent for longer
// than the DIMSE timeout before its next C-STORE-RQ, so that wait is not timed (as for C-MOVE).
// A sub-operation's data set that stops arriving half-way is still timed out.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { encodeDataset } from '../../src/dicom/writer.js';
import { CommandField, type CommandSet } from '../../src/dimse/message/command.js';
import { createScu, ScuError, type GetSink } from '../../src/dimse/scu/index.js';
import { SOP_CLASS } from '../helpers/corpus.js';
import { acceptAll, messageBytes, startScriptedPeer, type PeerConnection, type ScriptedPeer } from './scripted-peer.js';

const EXPLICIT_VR_LE = '1.2.840.10008.1.2.1';
const SOP_UID = '1.2.826.0.1.3680043.2.1125.77.1';
/** The silence before the sub-operation, against a DIMSE timeout of 1 s. */
const SILENCE_MS = 2500;

const dataSet = encodeDataset(
  [
    { tag: '00080016', vr: 'UI', value: SOP_CLASS.SC },
    { tag: '00080018', vr: 'UI', value: SOP_UID },
    { tag: '7FE00010', vr: 'OB', value: Buffer.alloc(100_000, 7) },
  ],
  { explicitVr: true, littleEndian: true },
);

/** Accepts everything, and the SCP role for every SOP class the requestor offers it for. */
function acceptWithRoles(rq: Parameters<typeof acceptAll>[0]): ReturnType<typeof acceptAll> {
  const ac = acceptAll(rq);
  ac.userInformation.roleSelections = rq.userInformation.roleSelections.map((r) => ({ sopClassUid: r.sopClassUid, scuRole: false, scpRole: r.scpRole }));
  return ac;
}

/** The context the requestor proposed for Secondary Capture in Explicit VR LE alone. */
function storageContext(c: PeerConnection): number {
  const pc = c.rq?.presentationContexts.find((p) => p.abstractSyntax === SOP_CLASS.SC && p.transferSyntaxes[0] === EXPLICIT_VR_LE);
  if (!pc) throw new Error('no Secondary Capture context proposed');
  return pc.id;
}

function storeRq(messageId: number): CommandSet {
  return { commandField: CommandField.C_STORE_RQ, commandDataSetType: 0x0000, messageId, priority: 0, affectedSopClassUid: SOP_CLASS.SC, affectedSopInstanceUid: SOP_UID };
}

describe('C-GET SCU: a peer silent between sub-operations', () => {
  const peers: ScriptedPeer[] = [];
  after(async () => {
    for (const p of peers) await p.close();
  });

  const sink: GetSink = async (instance) => {
    let bytes = 0;
    for await (const chunk of instance.part10) bytes += (chunk as Buffer).length;
    return bytes > dataSet.length ? { status: 0 } : { status: 0xa700, errorComment: 'short' };
  };
  const get = (port: number, received: number[]): ReturnType<ReturnType<typeof createScu>['get']> =>
    createScu({ callingAe: 'GETTEST', timeoutSecs: 1 }).get(
      { host: '127.0.0.1', port, calledAe: 'NEARLINE' },
      { level: 'STUDY', studyUid: '1.2.3.4' },
      { sink, storageContexts: [{ sopClassUid: SOP_CLASS.SC, transferSyntaxes: [EXPLICIT_VR_LE] }], onInstance: (i) => received.push(i.status) },
    );

  it('waits longer than the DIMSE timeout for the next C-STORE-RQ (nearline fetch), then takes it and the final response', { timeout: 20_000 }, async () => {
    let getRq: { contextId: number; messageId: number; sopClass: string } | undefined;
    const p = await startScriptedPeer({
      onRequest: (rq) => acceptWithRoles(rq),
      onMessage(contextId, command, _data, c) {
        if (command.commandField === CommandField.C_GET_RQ) {
          getRq = { contextId, messageId: command.messageId as number, sopClass: command.affectedSopClassUid as string };
          setTimeout(() => c.sendMessage(storageContext(c), storeRq(1), dataSet), SILENCE_MS);
        } else if (command.commandField === CommandField.C_STORE_RSP && getRq !== undefined) {
          c.sendMessage(getRq.contextId, {
            commandField: CommandField.C_GET_RSP,
            commandDataSetType: 0x0101,
            messageIdBeingRespondedTo: getRq.messageId,
            affectedSopClassUid: getRq.sopClass,
            status: command.status === 0 ? 0x0000 : 0xb000,
            numberOfRemainingSuboperations: 0,
            numberOfCompletedSuboperations: command.status === 0 ? 1 : 0,
            numberOfFailedSuboperations: command.status === 0 ? 0 : 1,
            numberOfWarningSuboperations: 0,
          });
        }
      },
    });
    peers.push(p);
    const received: number[] = [];
    const started = Date.now();
    const r = await get(p.port, received);
    assert.ok(Date.now() - started >= SILENCE_MS, 'the answer came after the silence');
    assert.equal(r.status, 0);
    assert.equal(r.completed, 1);
    assert.equal(r.received, 1);
    assert.deepEqual(received, [0]);
  });

  it("a sub-operation's data set that stops half-way still times out (TIMEOUT, within a few seconds)", { timeout: 20_000 }, async () => {
    const p = await startScriptedPeer({
      onRequest: (rq) => acceptWithRoles(rq),
      onMessage(_contextId, command, _data, c) {
        if (command.commandField !== CommandField.C_GET_RQ) return;
        const bytes = messageBytes(storageContext(c), storeRq(1), dataSet);
        // The command and the first data PDUs, never the last one.
        c.socket.write(bytes.subarray(0, bytes.length - 20_000));
      },
    });
    peers.push(p);
    const started = Date.now();
    await assert.rejects(get(p.port, []), (err: unknown) => err instanceof ScuError && err.code === 'TIMEOUT');
    const took = Date.now() - started;
    assert.ok(took < 5000, `timed out after ${took} ms`);
  });
});
