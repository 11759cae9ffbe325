/**
 * C-MOVE SCU (PS3.4 C.4.2, PS3.7 9.1.4), and the request/response exchange C-GET shares with it:
 * the identifier names what to retrieve (Query/Retrieve Level and the unique keys down to it),
 * each pending response's sub-operation counts are reported as they arrive, and the final
 * response settles the call with its status, counts and Failed SOP Instance UID List (0008,0058).
 * An AbortSignal sends C-CANCEL-RQ and waits (bounded by the DIMSE timeout) for the final
 * response, usually Cancel (FE00) with the counts so far.
 */
import type { Logger } from '../../archive/context.js';
import { normaliseAeTitle } from '../../archive/nodes.js';
import { EXPLICIT_VR_LE, IMPLICIT_VR_LE } from '../../dicom/transfer-syntax.js';
import { validateUid } from '../../dicom/uid.js';
import { encodeDataset, type WriteElement } from '../../dicom/writer.js';
import { PATIENT_ROOT_GET, PATIENT_ROOT_MOVE, STUDY_ROOT_GET, STUDY_ROOT_MOVE } from '../acse/sop-classes.js';
import { CommandField, DATA_SET_PRESENT, NO_DATA_SET, Priority, type CommandSet } from '../message/command.js';
import { Status } from '../message/status.js';
import { ScuAssociation, type ReceivedMessage, type ScuTarget } from './association.js';
import { ScuError } from './errors.js';
import { decodeIdentifier } from './find.js';
import { isAddressableUid } from '../../dicom/uid.js';

export type RetrieveLevel = 'PATIENT' | 'STUDY' | 'SERIES' | 'IMAGE';
export type RetrieveModel = 'study' | 'patient';
export const RETRIEVE_LEVELS: readonly RetrieveLevel[] = ['PATIENT', 'STUDY', 'SERIES', 'IMAGE'];

/**
 * What to retrieve: the unique keys of the level and of every level above it (PS3.4 C.4.2.2.1
 * hierarchical retrieval). Study Root unless `model` is 'patient' (the PATIENT level implies it);
 * Patient Root needs `patientId` at every level.
 */
export interface RetrieveRequest {
  level: RetrieveLevel;
  model?: RetrieveModel;
  /** (0010,0020) PatientID: PATIENT level, and every level under Patient Root. */
  patientId?: string;
  /** (0020,000D): STUDY, SERIES and IMAGE levels. */
  studyUid?: string;
  /** (0020,000E): SERIES and IMAGE levels. */
  seriesUid?: string;
  /** (0008,0018), one or more: IMAGE level. */
  sopUids?: readonly string[];
}

/** The sub-operation counts of a C-MOVE/C-GET response ((0000,1020)–(0000,1023), PS3.7 9.3.3/9.3.4). */
export interface RetrieveCounts {
  /** Absent when the peer does not say (it is optional in a final response). */
  remaining?: number;
  completed: number;
  failed: number;
  warning: number;
}

/** One pending response. */
export interface RetrieveProgress extends RetrieveCounts {
  /** FF00 */
  status: number;
}

export interface RetrieveResult extends RetrieveCounts {
  /** The final status: 0000 all done; B000 some failed or warned; FE00 cancelled. (Failures reject.) */
  status: number;
  /** Failed SOP Instance UID List (0008,0058) of the final response. */
  failedUids: string[];
  /** The signal fired and C-CANCEL was sent (the status says whether the peer stopped early). */
  cancelled: boolean;
  errorComment?: string;
  durationMs: number;
}

export interface RetrieveOptions {
  signal?: AbortSignal;
  /** Each pending response, as it arrives. */
  onProgress?: (progress: RetrieveProgress) => void;
}

export interface MoveOptions extends RetrieveOptions {
  /** Move Destination (0000,0600): the AE the peer sends the instances to. Default: our own AE title (callingAe). */
  destination?: string;
}

export interface RetrieveDeps {
  callingAe: string;
  timeoutMs: number;
  maxPduLength: number;
  logger: Logger;
}

const NATIVE_LE = [EXPLICIT_VR_LE, IMPLICIT_VR_LE];
const FAILED_SOP_INSTANCE_UID_LIST = '00080058';

function hex(status: number): string {
  return `0x${status.toString(16).padStart(4, '0')}`;
}

/** What a final failure status means (PS3.4 C.4.2.1.5, C.4.3.1.4; PS3.7 C). */
export function retrieveStatusText(status: number): string {
  switch (status) {
    case Status.MOVE_DESTINATION_UNKNOWN:
      return 'move destination unknown';
    case Status.OUT_OF_RESOURCES_MATCHES:
      return 'out of resources: unable to calculate the number of matches';
    case 0xa702:
      return 'out of resources: unable to perform sub-operations';
    case Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS:
      return 'identifier does not match SOP class';
    case Status.SOP_CLASS_NOT_SUPPORTED:
      return 'SOP class not supported';
    case Status.NOT_AUTHORIZED:
      return 'not authorized';
    case Status.UNRECOGNIZED_OPERATION:
      return 'unrecognized operation';
    case Status.PROCESSING_FAILURE:
      return 'processing failure';
    default:
      return (status & 0xf000) === 0xc000 ? 'unable to process' : 'failed';
  }
}

function isPending(status: number): boolean {
  return status === Status.PENDING || status === Status.PENDING_WARNING;
}

/** Success, Warning (Bxxx) and Cancel settle a retrieve; any other final status fails it. */
function isFinalOk(status: number): boolean {
  return status === Status.SUCCESS || status === Status.CANCEL || (status & 0xf000) === 0xb000;
}

function uid(value: string | undefined, field: string): string {
  if (value === undefined) throw new ScuError('INVALID_REQUEST', `${field} is required at this level`, { field });
  const v = validateUid(value);
  if (!v.ok) throw new ScuError('INVALID_REQUEST', `${field} is not a valid UID (${v.reason})`, { field });
  return v.uid;
}

/** The model a request uses: Patient Root for the PATIENT level or when asked, else Study Root. */
export function retrieveModel(request: RetrieveRequest): RetrieveModel {
  return request.level === 'PATIENT' ? 'patient' : (request.model ?? 'study');
}

/** The C-MOVE/C-GET identifier (unique keys only, PS3.4 C.4.2.2.1). */
export function retrieveIdentifier(request: RetrieveRequest): WriteElement[] {
  const { level } = request;
  if (!RETRIEVE_LEVELS.includes(level)) throw new ScuError('INVALID_REQUEST', `level must be one of ${RETRIEVE_LEVELS.join(', ')}`, { field: 'level' });
  const model = retrieveModel(request);
  if (model !== 'study' && model !== 'patient') throw new ScuError('INVALID_REQUEST', 'model must be "study" or "patient"', { field: 'model' });
  const depth = RETRIEVE_LEVELS.indexOf(level);
  const elements: WriteElement[] = [{ tag: '00080052', vr: 'CS', value: level }];
  if (model === 'patient') {
    const patientId = request.patientId?.trim() ?? '';
    if (patientId === '') throw new ScuError('INVALID_REQUEST', 'patient_id is required with the Patient Root model', { field: 'patient_id' });
    if (patientId.length > 64 || patientId.includes('\\')) throw new ScuError('INVALID_REQUEST', 'patient_id must be at most 64 characters without a backslash', { field: 'patient_id' });
    // Only non-ASCII text needs a character set; then the identifier is UTF-8 (PS3.5 6.1.2.3).
    if (/[^\x20-\x7e]/.test(patientId)) elements.push({ tag: '00080005', vr: 'CS', value: 'ISO_IR 192' });
    elements.push({ tag: '00100020', vr: 'LO', value: patientId });
  }
  if (depth >= 1) elements.push({ tag: '0020000D', vr: 'UI', value: uid(request.studyUid, 'study_uid') });
  if (depth >= 2) elements.push({ tag: '0020000E', vr: 'UI', value: uid(request.seriesUid, 'series_uid') });
  if (depth >= 3) {
    const sops = request.sopUids ?? [];
    if (sops.length === 0) throw new ScuError('INVALID_REQUEST', 'sop_uids is required at level IMAGE', { field: 'sop_uids' });
    // UI VM 1-n; each value 64 bytes at most, the element fits a 32-bit length easily.
    elements.push({ tag: '00080018', vr: 'UI', value: sops.map((s) => uid(s, 'sop_uids')).join('\\') });
  }
  return elements;
}

export function moveSopClass(request: RetrieveRequest): string {
  return retrieveModel(request) === 'patient' ? PATIENT_ROOT_MOVE : STUDY_ROOT_MOVE;
}

export function getSopClass(request: RetrieveRequest): string {
  return retrieveModel(request) === 'patient' ? PATIENT_ROOT_GET : STUDY_ROOT_GET;
}

/** Opens an association whose opening (only) the caller's signal cancels: once open, the signal means C-CANCEL. */
export async function openForRetrieve(options: Omit<Parameters<typeof ScuAssociation.open>[0], 'signal'> & { signal?: AbortSignal }): Promise<ScuAssociation> {
  const { signal, ...rest } = options;
  if (signal?.aborted) throw new ScuError('CANCELLED', 'cancelled');
  const opening = new AbortController();
  const onAbort = (): void => opening.abort();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    return await ScuAssociation.open({ ...rest, signal: opening.signal });
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

export interface RetrieveExchange {
  assoc: ScuAssociation;
  target: ScuTarget;
  operation: 'C-MOVE' | 'C-GET';
  sopClass: string;
  identifier: WriteElement[];
  moveDestination?: string;
  timeoutMs: number;
  options: RetrieveOptions;
  /**
   * A DIMSE request from the peer on this association (C-GET: its C-STORE-RQs, data set streamed):
   * answers with the response to send. Absent: a request is a protocol error.
   */
  onRequest?: (msg: ReceivedMessage) => Promise<CommandSet>;
}

function countsOf(cmd: CommandSet): RetrieveCounts {
  return {
    ...(cmd.numberOfRemainingSuboperations !== undefined ? { remaining: cmd.numberOfRemainingSuboperations } : {}),
    completed: cmd.numberOfCompletedSuboperations ?? 0,
    failed: cmd.numberOfFailedSuboperations ?? 0,
    warning: cmd.numberOfWarningSuboperations ?? 0,
  };
}

/** Failed SOP Instance UIDs kept from one response (a C-MOVE/C-GET of a whole study holds a few thousand). */
export const MAX_FAILED_UIDS = 100_000;

function failedUidsOf(rsp: ReceivedMessage, transferSyntax: string): string[] {
  if (rsp.dataSet === undefined || rsp.dataSet.length === 0) return [];
  try {
    const ds = decodeIdentifier(rsp.dataSet, transferSyntax);
    const values = ds[FAILED_SOP_INSTANCE_UID_LIST]?.Value ?? [];
    // The peer's list, as far as it names instances: UIDs only (no padding, no control
    // characters, nothing PostgreSQL refuses), at most MAX_FAILED_UIDS of them.
    const out: string[] = [];
    for (const v of values) {
      if (out.length >= MAX_FAILED_UIDS) break;
      if (typeof v === 'string' && isAddressableUid(v)) out.push(v);
    }
    return out;
  } catch {
    // An unreadable identifier loses the list, not the result.
    return [];
  }
}

/**
 * Sends the C-MOVE-RQ/C-GET-RQ with its identifier and runs the exchange to the final response.
 * Failure statuses reject with DIMSE_FAILURE (details: status, counts, failedUids, errorComment).
 * The association is left open (the caller releases or aborts it).
 */
export async function exchangeRetrieve(x: RetrieveExchange): Promise<RetrieveResult> {
  const started = Date.now();
  const { assoc, target, operation, sopClass, options } = x;
  const isMove = operation === 'C-MOVE';
  const ctx = assoc.contextFor(sopClass);
  if (!ctx) throw new ScuError('NO_PRESENTATION_CONTEXT', `${target.calledAe} does not accept ${sopClass === PATIENT_ROOT_MOVE || sopClass === PATIENT_ROOT_GET ? 'Patient' : 'Study'} Root ${operation}`);
  const utf8 = x.identifier.some((e) => e.tag === '00080005');
  const data = encodeDataset(x.identifier, { explicitVr: ctx.transferSyntax !== IMPLICIT_VR_LE, littleEndian: true, ...(utf8 ? { encodeText: (t: string) => Buffer.from(t, 'utf8') } : {}) });
  const messageId = assoc.nextMessageId();
  await assoc.sendCommand(ctx.id, {
    commandField: isMove ? CommandField.C_MOVE_RQ : CommandField.C_GET_RQ,
    commandDataSetType: DATA_SET_PRESENT,
    affectedSopClassUid: sopClass,
    messageId,
    priority: Priority.MEDIUM,
    ...(isMove ? { moveDestination: x.moveDestination as string } : {}),
  });
  await assoc.sendDataSet(ctx.id, data);

  const responseField = isMove ? CommandField.C_MOVE_RSP : CommandField.C_GET_RSP;
  let cancelSent: Promise<void> | undefined;
  let cancelTimer: NodeJS.Timeout | undefined;
  const sendCancel = (): void => {
    if (cancelSent !== undefined || assoc.closed) return;
    cancelSent = assoc.sendCommand(ctx.id, { commandField: CommandField.C_CANCEL_RQ, commandDataSetType: NO_DATA_SET, messageIdBeingRespondedTo: messageId });
    cancelSent.catch(() => {});
    // The peer owes us the final response; one that keeps us waiting past the timeout is aborted.
    cancelTimer = setTimeout(() => {
      if (!assoc.closed) assoc.abort(`no final response to C-CANCEL within ${x.timeoutMs} ms`);
    }, x.timeoutMs);
    cancelTimer.unref();
  };
  const signal = options.signal;
  signal?.addEventListener('abort', sendCancel, { once: true });
  if (signal?.aborted) sendCancel();
  let last: RetrieveCounts = { completed: 0, failed: 0, warning: 0 };
  try {
    for (;;) {
      let rsp: ReceivedMessage;
      try {
        // Pending responses are optional (PS3.4 C.4.2.3.1, C.4.3.3.1): a C-MOVE SCP working on
        // its sub-operations, or a C-GET SCP fetching an instance from nearline storage before
        // its next C-STORE-RQ, may be silent for longer than the DIMSE timeout. A data set being
        // received (a C-GET sub-operation) is still timed, and so is every send of ours.
        rsp = await assoc.receive({ untimed: true });
      } catch (err) {
        if (cancelSent !== undefined) throw new ScuError('CANCELLED', `cancelled; ${target.calledAe} did not answer the C-CANCEL (${err instanceof Error ? err.message : String(err)})`, { ...last });
        throw err;
      }
      const cmd = rsp.command;
      if (rsp.dataStream !== undefined || (cmd.commandField & 0x8000) === 0) {
        if (!x.onRequest) throw new ScuError('PROTOCOL_ERROR', `unexpected request 0x${cmd.commandField.toString(16)} during ${operation}`);
        const response = await x.onRequest(rsp);
        await assoc.sendCommand(rsp.contextId, response);
        continue;
      }
      if (cmd.commandField !== responseField || cmd.messageIdBeingRespondedTo !== messageId) {
        throw new ScuError('PROTOCOL_ERROR', `unexpected message 0x${cmd.commandField.toString(16)} during ${operation}`);
      }
      const status = cmd.status ?? Status.PROCESSING_FAILURE;
      const counts = countsOf(cmd);
      if (isPending(status)) {
        last = counts;
        options.onProgress?.({ status, ...counts });
        continue;
      }
      const failedUids = failedUidsOf(rsp, ctx.transferSyntax);
      // A final response without Remaining: none remain after success/warning; after a cancel or a failure we cannot tell.
      const remaining = counts.remaining ?? (status === Status.SUCCESS || (status & 0xf000) === 0xb000 ? 0 : undefined);
      const final: RetrieveCounts = { ...counts, ...(remaining !== undefined ? { remaining } : {}) };
      if (!isFinalOk(status)) {
        const text = retrieveStatusText(status);
        throw new ScuError('DIMSE_FAILURE', `${target.calledAe} answered ${operation} with status ${hex(status)} (${text})${cmd.errorComment ? `: ${cmd.errorComment}` : ''}`, {
          status,
          ...final,
          failedUids,
          ...(cmd.errorComment ? { errorComment: cmd.errorComment } : {}),
        });
      }
      return {
        status,
        ...final,
        failedUids,
        cancelled: cancelSent !== undefined,
        ...(cmd.errorComment ? { errorComment: cmd.errorComment } : {}),
        durationMs: Date.now() - started,
      };
    }
  } finally {
    signal?.removeEventListener('abort', sendCancel);
    if (cancelTimer !== undefined) clearTimeout(cancelTimer);
  }
}

export async function moveInstances(deps: RetrieveDeps, target: ScuTarget, request: RetrieveRequest, options: MoveOptions = {}): Promise<RetrieveResult> {
  const identifier = retrieveIdentifier(request);
  let destination: string;
  try {
    destination = normaliseAeTitle(options.destination ?? deps.callingAe, 'destination');
  } catch (err) {
    throw new ScuError('INVALID_REQUEST', err instanceof Error ? err.message : 'invalid destination', { field: 'destination' });
  }
  const sopClass = moveSopClass(request);
  const assoc = await openForRetrieve({
    target,
    callingAe: deps.callingAe,
    contexts: [{ id: 1, abstractSyntax: sopClass, transferSyntaxes: NATIVE_LE }],
    timeoutMs: deps.timeoutMs,
    maxPduLength: deps.maxPduLength,
    logger: deps.logger,
    operation: 'C-MOVE',
    ...(options.signal ? { signal: options.signal } : {}),
  });
  try {
    const result = await exchangeRetrieve({ assoc, target, operation: 'C-MOVE', sopClass, identifier, moveDestination: destination, timeoutMs: deps.timeoutMs, options });
    await assoc.release();
    return result;
  } catch (err) {
    await assoc.endAfter(err);
    throw err;
  }
}
