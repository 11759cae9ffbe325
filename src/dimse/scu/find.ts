/**
 * C-FIND SCU (PS3.4 C.4.1, PS3.7 9.1.2): the identifier built from keys (keyword or tag -> value,
 * the value's matching as the peer applies it: wildcards, ranges, UID lists), each pending response
 * handed on as a DICOM JSON dataset as it arrives. A consumer that stops early makes us send
 * C-CANCEL (PS3.7 9.3.2.3) and wait, bounded, for the final response before releasing.
 */
import type { Logger } from '../../archive/context.js';
import { parseTagOrKeyword, vrForTag } from '../../dicom/dictionary.js';
import { readPart10HeaderFromBuffer } from '../../dicom/header-reader.js';
import { stripInternal } from '../../dicom/json.js';
import { EXPLICIT_VR_LE, IMPLICIT_VR_LE } from '../../dicom/transfer-syntax.js';
import type { DicomJsonDataset, VR } from '../../dicom/types.js';
import { encodeDataset, encodeFileMeta, type WriteElement } from '../../dicom/writer.js';
import { PATIENT_ROOT_FIND, STUDY_ROOT_FIND } from '../acse/sop-classes.js';
import { CommandField, DATA_SET_PRESENT, NO_DATA_SET, Priority } from '../message/command.js';
import { Status } from '../message/status.js';
import { ScuAssociation, type ScuTarget } from './association.js';
import { ScuError } from './errors.js';

export type FindLevel = 'PATIENT' | 'STUDY' | 'SERIES' | 'IMAGE';
export type FindModel = 'study' | 'patient';

export interface FindRequest {
  level: FindLevel;
  /** Study Root (default) or Patient Root. */
  model?: FindModel;
  /** Matching keys: keyword or 8-hex tag -> value; an empty value (or null) asks for the attribute back. */
  keys?: Readonly<Record<string, string | null>>;
  /** Further return keys (keyword or tag), as QIDO's includefield. */
  returnKeys?: readonly string[];
  /** Leave out the default return keys of the level (only `keys` and `returnKeys` are asked for). */
  noDefaultReturnKeys?: boolean;
  signal?: AbortSignal;
}

export interface FindDeps {
  callingAe: string;
  timeoutMs: number;
  maxPduLength: number;
  logger: Logger;
}

export const FIND_LEVELS: readonly FindLevel[] = ['PATIENT', 'STUDY', 'SERIES', 'IMAGE'];

/**
 * Asked for unless told otherwise: the attributes a listing at that level shows. Unique keys of
 * higher levels are left out on purpose: in a hierarchical query they must carry a value.
 */
const DEFAULT_RETURN_KEYS: Readonly<Record<FindLevel, readonly string[]>> = {
  PATIENT: ['PatientName', 'PatientID', 'PatientBirthDate', 'PatientSex'],
  STUDY: ['StudyInstanceUID', 'StudyDate', 'StudyTime', 'AccessionNumber', 'PatientName', 'PatientID', 'StudyID', 'StudyDescription', 'ModalitiesInStudy'],
  SERIES: ['SeriesInstanceUID', 'Modality', 'SeriesNumber', 'SeriesDescription'],
  IMAGE: ['SOPInstanceUID', 'SOPClassUID', 'InstanceNumber'],
};

const QUERY_RETRIEVE_LEVEL = '00080052';
const SPECIFIC_CHARACTER_SET = '00080005';
const BINARY_NUMBER_VRS: ReadonlySet<VR> = new Set<VR>(['US', 'SS', 'UL', 'SL', 'FL', 'FD', 'SV', 'UV']);

function keyTag(key: string): string {
  const tag = parseTagOrKeyword(key.trim());
  if (tag === undefined) throw new ScuError('INVALID_REQUEST', `unknown attribute ${JSON.stringify(key)}`, { key });
  return tag;
}

function keyElement(tag: string, raw: string | null): WriteElement {
  const vr = vrForTag(tag) ?? 'UN';
  if (vr === 'SQ') throw new ScuError('INVALID_REQUEST', `sequence keys are not supported (${tag})`, { key: tag });
  const value = (raw ?? '').trim();
  if (value === '') return { tag, vr };
  if (BINARY_NUMBER_VRS.has(vr)) {
    const numbers = value.split('\\').map(Number);
    if (numbers.some((n) => !Number.isFinite(n))) throw new ScuError('INVALID_REQUEST', `${tag} needs a number`, { key: tag });
    return { tag, vr, value: numbers };
  }
  // A UID list as QIDO writes it ("a,b") is DICOM's multi-value "a\b".
  return { tag, vr, value: vr === 'UI' ? value.replaceAll(',', '\\') : value };
}

/** The C-FIND identifier as elements (Query/Retrieve Level first in meaning, sorted on encoding). */
export function findIdentifier(request: FindRequest): WriteElement[] {
  if (!FIND_LEVELS.includes(request.level)) throw new ScuError('INVALID_REQUEST', `level must be one of ${FIND_LEVELS.join(', ')}`, { level: request.level });
  if ((request.model ?? 'study') === 'study' && request.level === 'PATIENT') {
    throw new ScuError('INVALID_REQUEST', 'the Study Root model has no PATIENT level (use model "patient")', { level: request.level });
  }
  const elements = new Map<string, WriteElement>();
  if (request.noDefaultReturnKeys !== true) for (const k of DEFAULT_RETURN_KEYS[request.level]) elements.set(keyTag(k), keyElement(keyTag(k), null));
  for (const k of request.returnKeys ?? []) {
    const tag = keyTag(k);
    if (!elements.has(tag)) elements.set(tag, keyElement(tag, null));
  }
  for (const [k, v] of Object.entries(request.keys ?? {})) {
    const tag = keyTag(k);
    if (tag === QUERY_RETRIEVE_LEVEL || tag === SPECIFIC_CHARACTER_SET) continue;
    elements.set(tag, keyElement(tag, v));
  }
  elements.set(QUERY_RETRIEVE_LEVEL, { tag: QUERY_RETRIEVE_LEVEL, vr: 'CS', value: request.level });
  // Only non-ASCII text needs a character set; then all of it is UTF-8 (PS3.5 6.1.2.3).
  const nonAscii = [...elements.values()].some((e) => typeof e.value === 'string' && /[^\x20-\x7e]/.test(e.value));
  if (nonAscii) elements.set(SPECIFIC_CHARACTER_SET, { tag: SPECIFIC_CHARACTER_SET, vr: 'CS', value: 'ISO_IR 192' });
  return [...elements.values()];
}

/** A response identifier (a data set in the context's transfer syntax) as DICOM JSON. */
export function decodeIdentifier(bytes: Buffer, transferSyntaxUid: string): DicomJsonDataset {
  const meta = encodeFileMeta({ transferSyntaxUid, sopClassUid: '1.2', sopInstanceUid: '1.2' });
  const parsed = readPart10HeaderFromBuffer(Buffer.concat([meta, bytes]), { bulkdataThreshold: 1024 * 1024 });
  return stripInternal(parsed.dataset);
}

function isPending(status: number): boolean {
  return status === Status.PENDING || status === Status.PENDING_WARNING;
}

export async function* findDatasets(deps: FindDeps, target: ScuTarget, request: FindRequest): AsyncGenerator<DicomJsonDataset, void, undefined> {
  const identifier = findIdentifier(request);
  const sopClass = (request.model ?? 'study') === 'patient' ? PATIENT_ROOT_FIND : STUDY_ROOT_FIND;
  const assoc = await ScuAssociation.open({
    target,
    callingAe: deps.callingAe,
    contexts: [{ id: 1, abstractSyntax: sopClass, transferSyntaxes: [EXPLICIT_VR_LE, IMPLICIT_VR_LE] }],
    timeoutMs: deps.timeoutMs,
    maxPduLength: deps.maxPduLength,
    logger: deps.logger,
    operation: 'C-FIND',
    ...(request.signal ? { signal: request.signal } : {}),
  });
  let finished = false;
  const messageId = assoc.nextMessageId();
  try {
    const ctx = assoc.contextFor(sopClass);
    if (!ctx) throw new ScuError('NO_PRESENTATION_CONTEXT', `${target.calledAe} does not accept ${(request.model ?? 'study') === 'patient' ? 'Patient' : 'Study'} Root C-FIND`);
    const ts = ctx.transferSyntax;
    const explicitVr = ts !== IMPLICIT_VR_LE;
    const utf8 = identifier.some((e) => e.tag === SPECIFIC_CHARACTER_SET);
    const data = encodeDataset(identifier, { explicitVr, littleEndian: true, ...(utf8 ? { encodeText: (t: string) => Buffer.from(t, 'utf8') } : {}) });
    await assoc.sendCommand(ctx.id, {
      commandField: CommandField.C_FIND_RQ,
      commandDataSetType: DATA_SET_PRESENT,
      affectedSopClassUid: sopClass,
      messageId,
      priority: Priority.MEDIUM,
    });
    await assoc.sendDataSet(ctx.id, data);
    for (;;) {
      const rsp = await assoc.receive();
      const cmd = rsp.command;
      if (cmd.commandField !== CommandField.C_FIND_RSP || cmd.messageIdBeingRespondedTo !== messageId) {
        throw new ScuError('PROTOCOL_ERROR', `unexpected message 0x${cmd.commandField.toString(16)} during C-FIND`);
      }
      const status = cmd.status ?? Status.PROCESSING_FAILURE;
      if (isPending(status)) {
        if (rsp.dataSet === undefined) continue;
        let ds: DicomJsonDataset;
        try {
          ds = decodeIdentifier(rsp.dataSet, ts);
        } catch (err) {
          throw new ScuError('PROTOCOL_ERROR', `unreadable C-FIND response: ${err instanceof Error ? err.message : String(err)}`);
        }
        yield ds;
        continue;
      }
      finished = true;
      if (status === Status.SUCCESS || status === Status.CANCEL) return;
      throw new ScuError('DIMSE_FAILURE', `${target.calledAe} answered C-FIND with status 0x${status.toString(16).padStart(4, '0')}${cmd.errorComment ? ` (${cmd.errorComment})` : ''}`, {
        status,
        ...(cmd.errorComment ? { errorComment: cmd.errorComment } : {}),
      });
    }
  } catch (err) {
    finished = true;
    await assoc.endAfter(err);
    throw err;
  } finally {
    if (!finished && !assoc.closed) await cancel(assoc, messageId, deps.timeoutMs);
    if (!assoc.closed) await assoc.release();
  }
}

/**
 * C-CANCEL, then the responses still in flight are drained until the final one: within timeoutMs
 * in all (a peer that ignores the C-CANCEL and goes on sending matches is aborted), not only
 * between two responses.
 */
async function cancel(assoc: ScuAssociation, messageId: number, timeoutMs: number): Promise<void> {
  const ctx = [...assoc.accepted.values()][0];
  if (!ctx) return;
  const timer = setTimeout(() => {
    if (!assoc.closed) assoc.abort(`no final response to C-CANCEL within ${timeoutMs} ms`);
  }, timeoutMs);
  timer.unref();
  try {
    await assoc.sendCommand(ctx.id, { commandField: CommandField.C_CANCEL_RQ, commandDataSetType: NO_DATA_SET, messageIdBeingRespondedTo: messageId });
    for (;;) {
      const rsp = await assoc.receive();
      const status = rsp.command.status ?? Status.PROCESSING_FAILURE;
      if (rsp.command.commandField === CommandField.C_FIND_RSP && !isPending(status)) return;
    }
  } catch {
    if (!assoc.closed) assoc.abort('C-CANCEL not answered');
  } finally {
    clearTimeout(timer);
  }
}
