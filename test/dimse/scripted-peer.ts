// A scriptable DICOM acceptor for SCU tests: it answers the A-ASSOCIATE-RQ as the script says
// (by default: every context accepted with its first transfer syntax), reassembles DIMSE
// messages from P-DATA-TF and hands them to the script, which may answer, stay silent or abort.
// Built on the project's own PDU and command-set codecs; byte-level framing is its own, so that
// a script can also misbehave below the DIMSE layer (socket.write raw bytes, destroy the socket,
// socket.pause() to stop reading what the SCU sends).
import { createServer, type Server, type Socket } from 'node:net';
import { decodeCommandSet, encodeCommandSet, type CommandSet } from '../../src/dimse/message/command.js';
import { fragmentPdus } from '../../src/dimse/message/fragment.js';
import { decodePdu, encodePdu } from '../../src/dimse/pdu/codec.js';
import { encodeDataset } from '../../src/dicom/writer.js';
import { emptyUserInformation, type AssociateAc, type AssociateRq, type Pdu } from '../../src/dimse/pdu/types.js';

const NO_DATA_SET = 0x0101;
const PDATA_TF = 0x04;

export interface PeerConnection {
  readonly socket: Socket;
  rq?: AssociateRq;
  /** PDU types received, in order ('P-DATA-TF' for data). */
  readonly received: string[];
  send(pdu: Pdu): void;
  sendMessage(contextId: number, command: CommandSet, dataSet?: Buffer): void;
}

/** A DIMSE message as P-DATA-TF PDUs (max length 16384), for scripts writing at their own pace. */
export function messageBytes(contextId: number, command: CommandSet, dataSet?: Buffer): Buffer {
  const pdus = [...fragmentPdus(contextId, true, encodeCommandSet(command), 16384)];
  if (dataSet) pdus.push(...fragmentPdus(contextId, false, dataSet, 16384));
  return Buffer.concat(pdus);
}

/**
 * A final C-MOVE-RSP or C-GET-RSP to `request` with these counts, and a Failed SOP Instance UID
 * List (0008,0058) of `failedUids` as its identifier (Explicit VR LE: the first syntax our SCU
 * proposes for its Q/R context).
 */
export function sendRetrieveFinal(
  c: PeerConnection,
  contextId: number,
  request: CommandSet,
  o: { status: number; completed: number; failed: number; failedUids: readonly string[] },
): void {
  const identifier = encodeDataset([{ tag: '00080058', vr: 'UI', value: o.failedUids.join('\\') }], { explicitVr: true, littleEndian: true });
  c.sendMessage(
    contextId,
    {
      commandField: request.commandField | 0x8000,
      commandDataSetType: 0x0000,
      messageIdBeingRespondedTo: request.messageId as number,
      affectedSopClassUid: request.affectedSopClassUid as string,
      status: o.status,
      numberOfCompletedSuboperations: o.completed,
      numberOfFailedSuboperations: o.failed,
      numberOfWarningSuboperations: 0,
    },
    identifier,
  );
}

export interface PeerScript {
  /** The answer to the A-ASSOCIATE-RQ; 'silent': none. Default: acceptAll. */
  onRequest?(rq: AssociateRq, c: PeerConnection): AssociateAc | Pdu | 'silent';
  /**
   * A command set, as soon as it is complete (before its data set, if one follows); onMessage
   * still follows once the message is whole.
   */
  onCommand?(contextId: number, command: CommandSet, c: PeerConnection): void;
  /** A whole DIMSE message (command, and data set when it has one). */
  onMessage?(contextId: number, command: CommandSet, dataSet: Buffer | undefined, c: PeerConnection): void;
}

export interface ScriptedPeer {
  readonly port: number;
  readonly connections: PeerConnection[];
  close(): Promise<void>;
}

/** Every proposed context accepted with its first transfer syntax; `maxLength` announced (default 16384). */
export function acceptAll(rq: AssociateRq, options: { maxLength?: number } = {}): AssociateAc {
  const ui = emptyUserInformation();
  ui.maxLength = options.maxLength ?? 16384;
  ui.implementationClassUid = '1.2.3.4.5';
  return {
    type: 'A-ASSOCIATE-AC',
    protocolVersion: 1,
    calledAe: rq.calledAe,
    callingAe: rq.callingAe,
    applicationContext: rq.applicationContext,
    presentationContexts: rq.presentationContexts.map((pc) => ({ id: pc.id, result: 0 as const, transferSyntax: pc.transferSyntaxes[0] as string })),
    userInformation: ui,
  };
}

export async function startScriptedPeer(script: PeerScript = {}): Promise<ScriptedPeer> {
  const connections: PeerConnection[] = [];
  const server: Server = createServer((socket) => {
    socket.setNoDelay(true);
    socket.on('error', () => {});
    let pending = Buffer.alloc(0);
    const commandParts: Buffer[] = [];
    const dataParts: Buffer[] = [];
    let awaitingData: { contextId: number; command: CommandSet } | undefined;
    const c: PeerConnection = {
      socket,
      received: [],
      send(pdu) {
        if (!socket.destroyed) socket.write(encodePdu(pdu));
      },
      sendMessage(contextId, command, dataSet) {
        if (socket.destroyed) return;
        for (const pdu of fragmentPdus(contextId, true, encodeCommandSet(command), 16384)) socket.write(pdu);
        if (dataSet) for (const pdu of fragmentPdus(contextId, false, dataSet, 16384)) socket.write(pdu);
      },
    };
    connections.push(c);
    const onPData = (raw: Buffer): void => {
      for (let o = 6; o + 6 <= raw.length; ) {
        const length = raw.readUInt32BE(o);
        const contextId = raw[o + 4] as number;
        const header = raw[o + 5] as number;
        const data = Buffer.from(raw.subarray(o + 6, o + 4 + length));
        o += 4 + length;
        const last = (header & 2) !== 0;
        if ((header & 1) !== 0) {
          commandParts.push(data);
          if (!last) continue;
          const command = decodeCommandSet(Buffer.concat(commandParts.splice(0)));
          script.onCommand?.(contextId, command, c);
          if (command.commandDataSetType === NO_DATA_SET) script.onMessage?.(contextId, command, undefined, c);
          else awaitingData = { contextId, command };
        } else {
          dataParts.push(data);
          if (!last || !awaitingData) continue;
          const m = awaitingData;
          awaitingData = undefined;
          script.onMessage?.(m.contextId, m.command, Buffer.concat(dataParts.splice(0)), c);
        }
      }
    };
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 6) {
        const length = pending.readUInt32BE(2);
        if (pending.length < 6 + length) break;
        const raw = pending.subarray(0, 6 + length);
        pending = pending.subarray(6 + length);
        if (raw[0] === PDATA_TF) {
          c.received.push('P-DATA-TF');
          onPData(raw);
          continue;
        }
        const pdu = decodePdu(Buffer.from(raw));
        c.received.push(pdu.type);
        if (pdu.type === 'A-ASSOCIATE-RQ') {
          c.rq = pdu;
          const answer = script.onRequest ? script.onRequest(pdu, c) : acceptAll(pdu);
          if (answer !== 'silent') c.send(answer);
        } else if (pdu.type === 'A-RELEASE-RQ') {
          c.send({ type: 'A-RELEASE-RP' });
        } else if (pdu.type === 'A-ABORT') {
          socket.destroy();
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    connections,
    async close() {
      for (const c of connections) c.socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
