/** Verification SCP (PS3.4 Annex A): C-ECHO always succeeds. */
import { CommandField, NO_DATA_SET, type CommandSet } from '../message/command.js';
import { Status } from '../message/status.js';

export function handleEcho(req: CommandSet): CommandSet {
  return {
    commandField: CommandField.C_ECHO_RSP,
    commandDataSetType: NO_DATA_SET,
    affectedSopClassUid: req.affectedSopClassUid ?? '1.2.840.10008.1.1',
    ...(req.messageId !== undefined ? { messageIdBeingRespondedTo: req.messageId } : {}),
    status: Status.SUCCESS,
  };
}
