/**
 * Storage SCP (PS3.4 Annex B): the received data set streams into archive.ingest behind a File
 * Meta header built from the negotiated transfer syntax and the command set, so the stored blob
 * is exactly the bytes received (ARCHITECTURE rule 4). Backpressure is the data set stream's:
 * while ingest does not read, the transport stays paused.
 */
import type { Readable } from 'node:stream';
import type { Archive } from '../../archive/archive.js';
import { CommandField, NO_DATA_SET, type CommandSet } from '../message/command.js';
import { drainDataSet, part10Stream } from '../message/part10-stream.js';
import { Status, storeStatus } from '../message/status.js';
import type { OperationContext } from './context.js';

/** Error Comment (0000,0902) is LO: 64 characters. */
function comment(text: string | undefined): { errorComment: string } | Record<string, never> {
  return text ? { errorComment: text.slice(0, 64) } : {};
}

export interface StoreResult {
  response: CommandSet;
  /** Bytes of data set received. */
  bytes: number;
  sopInstanceUid?: string;
}

export async function handleStore(archive: Pick<Archive, 'ingest'>, ctx: OperationContext, req: CommandSet, dataSet: Readable): Promise<StoreResult> {
  const sopClassUid = req.affectedSopClassUid ?? '';
  const sopInstanceUid = req.affectedSopInstanceUid ?? '';
  const respond = (status: number, text?: string): CommandSet => ({
    commandField: CommandField.C_STORE_RSP,
    commandDataSetType: NO_DATA_SET,
    affectedSopClassUid: sopClassUid,
    affectedSopInstanceUid: sopInstanceUid,
    ...(req.messageId !== undefined ? { messageIdBeingRespondedTo: req.messageId } : {}),
    status,
    ...comment(text),
  });

  if (sopClassUid !== ctx.presentation.abstractSyntax) {
    await drainDataSet(dataSet);
    return { response: respond(Status.SOP_CLASS_NOT_SUPPORTED, 'Affected SOP Class differs from the presentation context'), bytes: 0 };
  }
  if (sopInstanceUid === '') {
    await drainDataSet(dataSet);
    return { response: respond(Status.CANNOT_UNDERSTAND, 'no Affected SOP Instance UID'), bytes: 0 };
  }

  const part10 = part10Stream({ sopClassUid, sopInstanceUid, transferSyntaxUid: ctx.presentation.transferSyntax, sourceAeTitle: ctx.callingAe }, dataSet);
  const outcome = await archive.ingest(ctx.call, { body: part10.body, expectedIdentity: { sopClassUid, sopInstanceUid }, builtFileMeta: true });
  // Ingest reads to the end even when it fails early; this only covers a stream it left unread.
  await drainDataSet(dataSet);
  const status = storeStatus(outcome);
  return {
    response: respond(status, outcome.ok ? undefined : outcome.message),
    bytes: part10.dataSetBytes,
    ...(outcome.sopInstanceUid !== undefined ? { sopInstanceUid: outcome.sopInstanceUid } : {}),
  };
}
