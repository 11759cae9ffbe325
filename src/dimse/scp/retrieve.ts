/**
 * What the C-MOVE and C-GET SCPs share (PS3.4 C.4.2, C.4.3): the identifier becomes the one Query
 * model of C-FIND and QIDO-RS (scp/find.ts `plan`), the matches at the retrieve level are resolved
 * to stored instances through archive.query and archive.locate, and the responses carry the
 * sub-operation counts and, when something failed, the Failed SOP Instance UID List (0008,0058).
 */
import type { Archive } from '../../archive/archive.js';
import type { CallContext } from '../../archive/context.js';
import { isArchiveError } from '../../archive/errors.js';
import type { QueryParams } from '../../archive/query/build-query.js';
import type { QueryLevel } from '../../dicom/query-model.js';
import type { DicomJsonDataset, Tag } from '../../dicom/types.js';
import { EXPLICIT_VR_LE } from '../../dicom/transfer-syntax.js';
import { encodeDataset } from '../../dicom/writer.js';
import type { AcceptedContext } from '../acse/negotiate.js';
import { FIND_OF_RETRIEVE } from '../acse/sop-classes.js';
import { DATA_SET_PRESENT, NO_DATA_SET, type CommandSet } from '../message/command.js';
import { INTERNAL_ERROR_COMMENT } from '../message/status.js';
import type { OperationContext } from './context.js';
import { decodeIdentifier, IdentifierError, keyText, offendingTag, plan, type Plan } from './find.js';
import { loggableError } from '../../util/loggable-error.js';

/** An instance to retrieve, as archive.locate gives it (what archive.openInstance takes). */
export type RetrieveInstance = Parameters<Archive['openInstance']>[1];

/** Statuses of C-MOVE-RSP and C-GET-RSP (PS3.4 C.4.2.1.5, C.4.3.1.4). */
export const RetrieveStatus = {
  SUCCESS: 0x0000,
  PENDING: 0xff00,
  CANCEL: 0xfe00,
  /** Sub-operations complete: one or more failures or warnings. */
  WARNING: 0xb000,
  /** Refused: out of resources, unable to calculate the number of matches. */
  UNABLE_TO_CALCULATE_MATCHES: 0xa701,
  /** Refused: out of resources, unable to perform sub-operations. */
  UNABLE_TO_PERFORM_SUBOPERATIONS: 0xa702,
  /** C-MOVE only. */
  MOVE_DESTINATION_UNKNOWN: 0xa801,
  IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS: 0xa900,
  CANNOT_UNDERSTAND: 0xc000,
  /** Unable to process: the query failed while running. */
  UNABLE_TO_PROCESS: 0xc001,
  NOT_AUTHORIZED: 0x0124,
  SOP_CLASS_NOT_SUPPORTED: 0x0122,
} as const;

export interface RetrieveResponse {
  command: CommandSet;
  identifier?: Buffer;
}

export interface RetrieveSignals {
  /** C-CANCEL of this operation: stop after the sub-operation in progress. */
  cancelled: AbortSignal;
  /** The association ended: nothing more can be sent. */
  ended: AbortSignal;
}

/** The C-MOVE SCP: responses to send, pending ones first, the final one last. */
export type MoveHandler = (ctx: OperationContext, req: CommandSet, identifier: Buffer, signals: RetrieveSignals) => AsyncIterable<RetrieveResponse>;

/** What a C-GET handler may do on its own association besides answering. */
export interface GetIo extends RetrieveSignals {
  /** Accepted storage contexts on which the requestor accepted the SCP role. */
  storageContexts: readonly AcceptedContext[];
  nextMessageId(): number;
  /**
   * Sends a C-STORE-RQ and its data set (streamed, within the peer's maximum PDU length) and
   * resolves with the C-STORE-RSP. Rejects when the association fails; the association is aborted
   * when the data set source fails midway or no response comes within the DIMSE timeout.
   */
  store(contextId: number, command: CommandSet, dataSet: AsyncIterable<Uint8Array>): Promise<CommandSet>;
}

/** The C-GET SCP: responses to send, pending ones first, the final one last. */
export type GetHandler = (ctx: OperationContext, req: CommandSet, identifier: Buffer, io: GetIo) => AsyncIterable<RetrieveResponse>;

export type SubOperationOutcome = 'success' | 'warning' | 'failure';

/** Sub-operation bookkeeping of one C-MOVE or C-GET. */
export class SubOperations {
  completed = 0;
  failed = 0;
  warning = 0;
  readonly failedUids: string[] = [];

  constructor(readonly total: number) {}

  get remaining(): number {
    return this.total - this.completed - this.failed - this.warning;
  }

  record(outcome: SubOperationOutcome, sopInstanceUid: string): void {
    if (outcome === 'success') this.completed++;
    else if (outcome === 'warning') this.warning++;
    else {
      this.failed++;
      this.failedUids.push(sopInstanceUid);
    }
  }

  /**
   * The final status once the sub-operations ended (SPEC §4): FE00 after C-CANCEL; B000 when any
   * failed or warned — also when all failed (they were attempted; ADR 0013); 0000 otherwise (also
   * when there was nothing to retrieve). A702 is kept for a move whose destination could not be
   * reached at all (move.ts).
   */
  finalStatus(cancelled: boolean): number {
    if (cancelled) return RetrieveStatus.CANCEL;
    if (this.failed > 0 || this.warning > 0) return RetrieveStatus.WARNING;
    return RetrieveStatus.SUCCESS;
  }
}

/** (0008,0058) is UI: in Explicit VR its value length is 16 bits, so the list is cut to what fits. */
const MAX_UID_LIST_BYTES = 0xfffe;

/** The identifier of a final response: the Failed SOP Instance UID List, in the context's syntax. */
export function failedUidIdentifier(uids: readonly string[], transferSyntax: string): Buffer {
  const kept: string[] = [];
  let length = 0;
  for (const uid of uids) {
    const add = uid.length + (kept.length > 0 ? 1 : 0);
    if (length + add > MAX_UID_LIST_BYTES) break;
    kept.push(uid);
    length += add;
  }
  return encodeDataset([{ tag: '00080058', vr: 'UI', value: kept }], { explicitVr: transferSyntax === EXPLICIT_VR_LE, littleEndian: true });
}

export interface ResponseOptions {
  counts?: SubOperations;
  /** Include Number of Remaining Sub-operations (pending and cancel responses). */
  remaining?: boolean;
  errorComment?: string;
  offending?: Tag;
}

/** A C-MOVE-RSP or C-GET-RSP; a final response with failures carries the failed UID list. */
export function retrieveResponse(commandField: number, req: CommandSet, ctx: OperationContext, status: number, o: ResponseOptions = {}): RetrieveResponse {
  const counts = o.counts;
  const final = status !== RetrieveStatus.PENDING;
  const identifier = final && counts !== undefined && counts.failedUids.length > 0 ? failedUidIdentifier(counts.failedUids, ctx.presentation.transferSyntax) : undefined;
  const command: CommandSet = {
    commandField,
    commandDataSetType: identifier ? DATA_SET_PRESENT : NO_DATA_SET,
    affectedSopClassUid: req.affectedSopClassUid ?? ctx.presentation.abstractSyntax,
    ...(req.messageId !== undefined ? { messageIdBeingRespondedTo: req.messageId } : {}),
    status,
    ...(counts !== undefined && (o.remaining === true || status === RetrieveStatus.PENDING) ? { numberOfRemainingSuboperations: clampUs(counts.remaining) } : {}),
    ...(counts !== undefined
      ? { numberOfCompletedSuboperations: clampUs(counts.completed), numberOfFailedSuboperations: clampUs(counts.failed), numberOfWarningSuboperations: clampUs(counts.warning) }
      : {}),
    ...(o.errorComment !== undefined ? { errorComment: o.errorComment.slice(0, 64) } : {}),
    ...(o.offending !== undefined ? { offendingElement: [o.offending] } : {}),
  };
  return identifier ? { command, identifier } : { command };
}

/** Counts are US: a retrieve of more than 65535 instances reports 65535 (documented). */
function clampUs(n: number): number {
  return Math.min(Math.max(0, n), 0xffff);
}

/** The unique key of each level: a C-MOVE/C-GET identifier must give it (PS3.4 C.4.2.2.1). */
const UNIQUE_KEY: Readonly<Record<QueryLevel, Tag>> = { patient: '00100020', study: '0020000D', series: '0020000E', instance: '00080018' };

export type Selection = { ok: true; plan: Plan } | { ok: false; status: number; comment: string; offending?: Tag };

/**
 * The identifier as a query plan of the C-FIND model of the same information model. The unique key
 * of the retrieve level must hold a value (or a list): retrieving "every study" by an empty key is
 * refused with A900.
 */
export function planRetrieve(identifier: Buffer, ctx: OperationContext, defaultCharacterSet: string): Selection {
  const findClass = FIND_OF_RETRIEVE[ctx.presentation.abstractSyntax];
  if (findClass === undefined) return { ok: false, status: RetrieveStatus.SOP_CLASS_NOT_SUPPORTED, comment: 'not a Query/Retrieve MOVE or GET SOP class' };
  let ds: DicomJsonDataset;
  let p: Plan;
  try {
    ds = decodeIdentifier(identifier, ctx, defaultCharacterSet);
    p = plan(ds, findClass);
  } catch (err) {
    if (!(err instanceof IdentifierError)) throw err;
    return { ok: false, status: err.status, comment: err.message, ...(err.offending !== undefined ? { offending: err.offending } : {}) };
  }
  const key = UNIQUE_KEY[p.level];
  const el = ds[key];
  if (el === undefined || keyText(el).replace(/[ \0\\*]/g, '') === '') {
    return { ok: false, status: RetrieveStatus.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, comment: `no value for the unique key of level ${p.levelText}`, offending: key };
  }
  return { ok: true, plan: p };
}

/** A failure of archive.query/locate as a C-MOVE/C-GET status. */
export function retrieveFailure(err: unknown): { status: number; comment: string; offending?: Tag } {
  // Only the archive's own messages reach the peer; a driver's or the runtime's text goes to the log.
  if (!isArchiveError(err)) return { status: RetrieveStatus.UNABLE_TO_PROCESS, comment: INTERNAL_ERROR_COMMENT };
  const comment = err.message;
  const key = typeof err.details?.['key'] === 'string' ? err.details['key'] : undefined;
  const offending = offendingTag(key);
  switch (err.code) {
    case 'INVALID_QUERY':
    case 'INVALID_UID':
    case 'INVALID_PARAMETER':
      return { status: RetrieveStatus.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, comment, ...(offending !== undefined ? { offending } : {}) };
    case 'FORBIDDEN':
    case 'UNAUTHORIZED':
      return { status: RetrieveStatus.NOT_AUTHORIZED, comment };
    case 'DATABASE_UNAVAILABLE':
    case 'STORAGE_UNAVAILABLE':
      return { status: RetrieveStatus.UNABLE_TO_CALCULATE_MATCHES, comment };
    default:
      return { status: RetrieveStatus.UNABLE_TO_PROCESS, comment };
  }
}

interface Scope {
  studyUid: string;
  seriesUid?: string;
  sopUid?: string;
}

const STUDY_UID: Tag = '0020000D';
const SERIES_UID: Tag = '0020000E';
const SOP_UID: Tag = '00080018';

function firstText(ds: DicomJsonDataset, tag: Tag): string | undefined {
  const v = ds[tag]?.Value?.[0];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/**
 * The instances a plan selects, in the archive's order, without duplicates: the matches at the
 * retrieve level (PATIENT: the studies of the matching patients) by archive.query, page by page,
 * then each match's instances by archive.locate. Instance rows are small; the list is what the
 * Number of Remaining Sub-operations needs up front.
 */
/** The instances a C-MOVE / C-GET identifier selects, or the failure to answer with. */
export type Selected =
  | { ok: true; level: string; instances: RetrieveInstance[] }
  | { ok: false; status: number; level?: string; errorComment: string; offending?: Tag };

/** Identifier -> plan -> instances (the same Query model as C-FIND); failures logged when unexpected. */
export async function planAndSelect(
  archive: Pick<Archive, 'query' | 'locate' | 'settings'>,
  ctx: OperationContext,
  identifier: Buffer,
  signal: AbortSignal,
  operation: 'C-MOVE' | 'C-GET',
): Promise<Selected> {
  const selection = planRetrieve(identifier, ctx, archive.settings.defaultCharacterSet);
  if (!selection.ok) return { ok: false, status: selection.status, errorComment: selection.comment, ...(selection.offending !== undefined ? { offending: selection.offending } : {}) };
  const level = selection.plan.level;
  try {
    return { ok: true, level, instances: await selectInstances(archive, ctx.call, selection.plan, signal) };
  } catch (err) {
    const f = retrieveFailure(err);
    if (f.status !== RetrieveStatus.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS) ctx.logger.error({ callingAe: ctx.callingAe, err: loggableError(err) }, `${operation} selection failed`);
    return { ok: false, status: f.status, level, errorComment: f.comment, ...(f.offending !== undefined ? { offending: f.offending } : {}) };
  }
}

export async function selectInstances(archive: Pick<Archive, 'query' | 'locate' | 'settings'>, call: CallContext, p: Plan, signal?: AbortSignal): Promise<RetrieveInstance[]> {
  const level: QueryLevel = p.level === 'patient' ? 'study' : p.level;
  const pageSize = Math.max(1, archive.settings.qidoMaxLimit);
  const scopes: Scope[] = [];
  for (let offset = 0; ; ) {
    if (signal?.aborted) return [];
    const params: QueryParams = [...p.params, ['includefield', `${STUDY_UID},${SERIES_UID},${SOP_UID}`], ['limit', String(pageSize)], ['offset', String(offset)]];
    const page = await archive.query(call, {
      level,
      ...(p.studyUid !== undefined ? { studyUid: p.studyUid } : {}),
      ...(p.seriesUid !== undefined ? { seriesUid: p.seriesUid } : {}),
      params,
    });
    for (const ds of page.datasets) {
      const studyUid = firstText(ds, STUDY_UID);
      if (studyUid === undefined) continue;
      const seriesUid = level === 'series' || level === 'instance' ? firstText(ds, SERIES_UID) : undefined;
      const sopUid = level === 'instance' ? firstText(ds, SOP_UID) : undefined;
      scopes.push({ studyUid, ...(seriesUid !== undefined ? { seriesUid } : {}), ...(sopUid !== undefined ? { sopUid } : {}) });
    }
    if (page.remaining === 0 || page.datasets.length === 0) break;
    offset += page.datasets.length;
  }
  const seen = new Set<string>();
  const out: RetrieveInstance[] = [];
  for (const scope of scopes) {
    if (signal?.aborted) return out;
    let rows: AsyncIterable<RetrieveInstance>;
    try {
      rows = await archive.locate(call, scope);
    } catch (err) {
      // Deleted between the query and now: nothing to retrieve for this match.
      if (isArchiveError(err) && err.code === 'NOT_FOUND') continue;
      throw err;
    }
    for await (const row of rows) {
      if (seen.has(row.sopUid)) continue;
      seen.add(row.sopUid);
      out.push(row);
    }
  }
  return out;
}
